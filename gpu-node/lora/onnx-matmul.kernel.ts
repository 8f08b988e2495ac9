// A MatMulKernel run by onnxruntime (MLAS): ΔW = up·down is the merge's heavy step, and MLAS runs it about
// 20x faster than the TypeScript loop (bench:lora). One session with symbolic dims serves every shape. The
// session comes from the pipeline's ORT backend (the only code that touches onnxruntime); like every ORT run
// it blocks its thread, so merges run in the pipeline's worker thread, not on the service's event loop.
import type { MatMulKernel } from "./adapter.js";
import { WireWriter } from "./onnx-graph.js";

const FLOAT = 1;

/** What the kernel needs of the backend (gpu-node/pipeline/backends/onnx.backend.ts's OnnxBackend). */
export interface MatMulSessionFactory {
  createSession(source: { bytes: Uint8Array; externalDataDir: null }): Promise<{
    run(
      feeds: Record<string, { data: Float32Array; dims: readonly number[] }>,
      outputNames?: readonly string[],
    ): Promise<Record<string, { data: Float32Array; dims: number[] }>>;
    release(): Promise<void>;
  }>;
}

function valueInfo(name: string, dims: [string, string]): WireWriter {
  const shape = new WireWriter();
  for (const d of dims) shape.message(1, new WireWriter().string(2, d)); // Dimension.dim_param
  const tensor = new WireWriter().int(1, FLOAT).message(2, shape); // TypeProto.Tensor: elem_type, shape
  return new WireWriter().string(1, name).message(2, new WireWriter().message(1, tensor)); // ValueInfo: name, type
}

/** ModelProto for c[M, N] = a[M, K] · b[K, N] (opset 17). */
export function matMulModel(): Uint8Array {
  const node = new WireWriter().string(1, "a").string(1, "b").string(2, "c").string(3, "lora_delta").string(4, "MatMul");
  const graph = new WireWriter()
    .message(1, node)
    .string(2, "lora_delta")
    .message(11, valueInfo("a", ["M", "K"]))
    .message(11, valueInfo("b", ["K", "N"]))
    .message(12, valueInfo("c", ["M", "N"]));
  const opset = new WireWriter().string(1, "").int(2, 17);
  return new WireWriter().int(1, 8).string(2, "sd-image-api").message(7, graph).message(8, opset).finish().bytes;
}

export interface OnnxMatMul {
  matmul: MatMulKernel;
  release(): Promise<void>;
}

export async function createOnnxMatMul(backend: MatMulSessionFactory): Promise<OnnxMatMul> {
  const session = await backend.createSession({ bytes: matMulModel(), externalDataDir: null });
  return {
    matmul: async (a, b, m, k, n) => {
      const out = await session.run({ a: { data: a, dims: [m, k] }, b: { data: b, dims: [k, n] } }, ["c"]);
      // onnxruntime-node copies outputs into JS-owned memory, so the array outlives the run.
      return out.c.data;
    },
    release: () => session.release(),
  };
}
