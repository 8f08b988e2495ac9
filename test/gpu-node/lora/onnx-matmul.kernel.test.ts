import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsMatMul, openAdapter } from "../../../gpu-node/lora/adapter.js";
import { mergeAdapters } from "../../../gpu-node/lora/lora-merge.js";
import { parseOnnxModel } from "../../../gpu-node/lora/onnx-graph.js";
import { createOnnxMatMul } from "../../../gpu-node/lora/onnx-matmul.kernel.js";
import type { OnnxMatMul } from "../../../gpu-node/lora/onnx-matmul.kernel.js";
import { parseSafetensors } from "../../../gpu-node/lora/safetensors.reader.js";
import { OnnxBackend } from "../../../gpu-node/pipeline/backends/onnx.backend.js";
import { encodeSafetensors, fixtureRng, lohaModule, loraModule, TINY_MODULES } from "../../helpers/lora-fixtures.js";

describe("onnxruntime MatMul kernel", () => {
  let kernel: OnnxMatMul;
  beforeAll(async () => {
    kernel = await createOnnxMatMul(new OnnxBackend({ intraOpThreads: 1, graphOptimizationLevel: "all", device: "cpu" }));
  });
  afterAll(async () => {
    await kernel.release();
  });

  it("computes the same products as the TypeScript kernel, for any shape", async () => {
    const rng = fixtureRng(3);
    for (const [m, k, n] of [[1, 1, 1], [32, 4, 256], [7, 3, 5], [64, 16, 288]]) {
      const a = Float32Array.from({ length: m * k }, rng);
      const b = Float32Array.from({ length: k * n }, rng);
      const fast = await kernel.matmul(a, b, m, k, n);
      const slow = await jsMatMul(a, b, m, k, n);
      expect(fast.length).toBe(m * n);
      for (let i = 0; i < fast.length; i++) expect(fast[i]).toBeCloseTo(slow[i], 5);
    }
  });

  it("merges the same weights as the TypeScript kernel", async () => {
    const U = TINY_MODULES.unet;
    const rng = fixtureRng(4);
    const tensors = { ...loraModule(U.to_q, { rank: 4, alpha: 2, rng }), ...loraModule(U.conv1, { rank: 4, rng }), ...lohaModule(U.ff_proj, { rank: 4, rng }) };
    const adapter = openAdapter("k", parseSafetensors(encodeSafetensors(tensors), "k.safetensors"));
    const unet = join(process.cwd(), "models/tiny-sd/unet");
    const a = await mergeAdapters(unet, [{ adapter, weight: 0.9 }], { matmul: kernel.matmul });
    const b = await mergeAdapters(unet, [{ adapter, weight: 0.9 }]);
    expect(a.patchedInitializers).toEqual(b.patchedInitializers);
    const values = (bytes: Uint8Array, name: string) => {
      const init = parseOnnxModel(bytes, "merged").initializers.get(name)!;
      if (init.data.kind !== "raw") throw new Error(`${name} is not inline`);
      return new Float32Array(bytes.slice(init.data.start, init.data.end).buffer);
    };
    for (const name of a.patchedInitializers) {
      const x = values(a.modelBytes, name);
      const y = values(b.modelBytes, name);
      for (let i = 0; i < x.length; i++) expect(Math.abs(x[i] - y[i])).toBeLessThan(1e-5);
    }
  });
});
