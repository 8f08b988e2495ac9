// The only file that imports onnxruntime-node. Everything else sees plain typed arrays and the tensor
// metadata the export declares, so model adapters can pick names, dtypes and ranks from it.
import { performance } from "node:perf_hooks";
import * as ort from "onnxruntime-node";
import { float16ToFloat32, float32ToFloat16 } from "../tensor/float16.codec.js";

export type ElementType = "float32" | "float16" | "int32" | "int64" | "other";

export interface TensorInfo {
  name: string;
  type: ElementType;
  /** Declared shape; symbolic or unknown dimensions are strings. */
  shape: ReadonlyArray<number | string>;
}

/** What a caller feeds: floats and integers as host arrays, converted to the input's declared dtype here. */
export interface HostTensor {
  data: Float32Array | Int32Array;
  dims: readonly number[];
}

/** Every float output comes back as float32 (float16 exports are widened), integer outputs as int32. */
export interface OutputTensor {
  data: Float32Array;
  dims: number[];
}

export interface SessionSettings {
  intraOpThreads: number;
  graphOptimizationLevel: "disabled" | "basic" | "extended" | "all";
  device: "cpu" | "cuda" | "mps";
}

export type SessionSource =
  | { path: string }
  /**
   * A model built or patched in memory. Its external weights are read from `externalDataDir`, or else come from
   * `externalData` (every file the model names: ORT does not mix in-memory and on-disk external data).
   */
  | { bytes: Uint8Array; externalDataDir: string | null; externalData?: readonly { path: string; data: Uint8Array }[] };

export interface ModelSession {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  run(feeds: Record<string, HostTensor>, outputNames?: readonly string[]): Promise<Record<string, OutputTensor>>;
  release(): Promise<void>;
}

/** Accumulates the time spent inside `run()` across every session it created. */
export class OnnxBackend {
  #runMs = 0;
  constructor(private readonly settings: SessionSettings) {}

  /** Milliseconds spent inside onnxruntime `run()` calls so far (read before and after a job). */
  get runMs(): number {
    return this.#runMs;
  }

  async createSession(source: SessionSource): Promise<ModelSession> {
    // Flattened by the binding into session config keys ("session.intra_op.allow_spinning").
    const session: Record<string, unknown> = {
      // Pool threads otherwise busy-wait after each run; on a shared CPU they then compete with the pipeline's
      // own thread between UNet calls (measured: 1.03 vs 1.04-1.07 wall/ort, and 2x faster under load).
      intra_op: { allow_spinning: "0" },
    };
    // A model loaded from bytes resolves external data against this folder, not the process cwd.
    if ("bytes" in source && source.externalDataDir !== null) {
      session.model_external_initializers_file_folder_path = source.externalDataDir;
    }
    const options: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: this.settings.graphOptimizationLevel,
      // CUDA is opt-in; "mps" has no onnxruntime-node provider on Linux, so it runs on the CPU.
      executionProviders: this.settings.device === "cuda" ? ["cuda", "cpu"] : ["cpu"],
      logSeverityLevel: 3,
      extra: { session },
      ...(this.settings.intraOpThreads > 0 ? { intraOpNumThreads: this.settings.intraOpThreads } : {}),
      // ORT copies these buffers into the session while creating it; the caller may drop them afterwards.
      ...("bytes" in source && source.externalData?.length ? { externalData: source.externalData } : {}),
    };
    const created =
      "path" in source
        ? await ort.InferenceSession.create(source.path, options)
        : await ort.InferenceSession.create(source.bytes, options);
    return new OrtSession(created, (ms) => {
      this.#runMs += ms;
    });
  }
}

class OrtSession implements ModelSession {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  readonly #byName: Map<string, TensorInfo>;

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly addRunMs: (ms: number) => void,
  ) {
    this.inputs = session.inputMetadata.map(toInfo);
    this.outputs = session.outputMetadata.map(toInfo);
    this.#byName = new Map(this.inputs.map((info) => [info.name, info]));
  }

  async run(feeds: Record<string, HostTensor>, outputNames?: readonly string[]): Promise<Record<string, OutputTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, tensor] of Object.entries(feeds)) {
      const info = this.#byName.get(name);
      if (!info) throw new Error(`model has no input named ${name}`);
      ortFeeds[name] = toOrtTensor(info, tensor);
    }
    const started = performance.now();
    let results: ort.InferenceSession.ReturnType;
    try {
      results = outputNames ? await this.session.run(ortFeeds, outputNames) : await this.session.run(ortFeeds);
    } finally {
      this.addRunMs(performance.now() - started);
    }
    const out: Record<string, OutputTensor> = {};
    for (const [name, value] of Object.entries(results)) {
      const tensor = value as ort.Tensor;
      out[name] = { data: fromOrtData(tensor), dims: [...tensor.dims] };
      tensor.dispose();
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function toInfo(meta: ort.InferenceSession.ValueMetadata): TensorInfo {
  if (!meta.isTensor) return { name: meta.name, type: "other", shape: [] };
  const known = ["float32", "float16", "int32", "int64"] as const;
  const type = (known as readonly string[]).includes(meta.type) ? (meta.type as ElementType) : "other";
  return { name: meta.name, type, shape: meta.shape };
}

function toOrtTensor(info: TensorInfo, tensor: HostTensor): ort.Tensor {
  const dims = [...tensor.dims];
  const { data } = tensor;
  switch (info.type) {
    case "float32":
      return new ort.Tensor("float32", data instanceof Float32Array ? data : Float32Array.from(data), dims);
    case "float16":
      return new ort.Tensor("float16", float32ToFloat16(data), dims);
    case "int32":
      return new ort.Tensor("int32", data instanceof Int32Array ? data : Int32Array.from(data, Math.trunc), dims);
    case "int64": {
      // numpy's astype(int64) truncates toward zero; diffusers' ONNX pipeline feeds timesteps that way.
      const wide = new BigInt64Array(data.length);
      for (let i = 0; i < data.length; i++) wide[i] = BigInt(Math.trunc(data[i]));
      return new ort.Tensor("int64", wide, dims);
    }
    default:
      throw new Error(`input ${info.name} has an unsupported element type`);
  }
}

function fromOrtData(tensor: ort.Tensor): Float32Array {
  const data = tensor.data;
  if (data instanceof Float32Array) return data;
  if (tensor.type === "float16") return float16ToFloat32(data as Uint16Array);
  if (data instanceof BigInt64Array) return Float32Array.from(data, (v) => Number(v));
  if (ArrayBuffer.isView(data)) return Float32Array.from(data as unknown as ArrayLike<number>);
  throw new Error(`output of type ${tensor.type} is not numeric`);
}
