// Merges LoRA / LoHA deltas into a copy of one model component's weights (unet/ or text_encoder/), in memory.
// The files on disk are only read.
//
// onnxruntime-node 1.30 accepts `externalData: [{ path, data }]` with buffers, but once that table is given,
// EVERY external file the model names must be in it (graph.cc: "External file: weights.pb not found from the
// table user provided"): in-memory and on-disk external data cannot be mixed. So there are two ways out:
//  - "inline" (default): patched initializers are rewritten into the model bytes as raw_data; the others stay
//    external and ORT reads them from the component directory, named by the session config entry
//    `session.model_external_initializers_file_folder_path` (without it a model loaded from bytes cannot reach
//    its external files). Only the patched tensors are copied. Bounded by protobuf's 2 GiB message limit.
//  - "copy": when the patched tensors would push the model bytes past `inlineLimitBytes`, each external file is
//    read into a fresh buffer, patched in place, and handed over through `externalData`.
// Either way ORT copies the weights into its own memory while the session is created (verified: changing the
// buffers after create() does not change outputs), so the buffers can be dropped once the session exists.
import { constants as bufferConstants } from "node:buffer";
import { createHash } from "node:crypto";
import { open, readFile, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { basename, isAbsolute, join, normalize, sep } from "node:path";
import { moduleDelta, openAdapter } from "./adapter.js";
import type { AdapterComponent, AdapterDescription, AdapterModule, LoraAdapter, MatMulKernel } from "./adapter.js";
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from "../pipeline/tensor/float16.codec.js";
import { buildModuleMap } from "./module-map.js";
import type { ModuleMap, ModuleTarget } from "./module-map.js";
import { encodeRawTensorSlot, OnnxDataType, parseOnnxModel, rewriteInitializers } from "./onnx-graph.js";
import { readSafetensorsFile } from "./safetensors.reader.js";
import type { OnnxInitializer, OnnxModel, WireWriter } from "./onnx-graph.js";

export type ModelComponentName = "unet" | "text_encoder";

export interface AdapterUse {
  adapter: LoraAdapter;
  /** The adapter's strength (1 = as trained; 0 = no effect). */
  weight: number;
}

/** The onnxruntime session options a merged model needs (see sessionOptionsFor). */
export interface MergedSessionOptions {
  externalData?: { path: string; data: Uint8Array }[];
  extra?: { session: { model_external_initializers_file_folder_path: string } };
}

export interface AdapterMatch {
  adapter: string;
  /** Modules of this component that were merged. */
  applied: number;
  /** Module keys of this component that match no weight in the model. */
  unmatched: string[];
  /** Matched modules not merged, with why (shared weight, unsupported dtype). */
  skipped: { key: string; reason: string }[];
}

export interface MergedModel {
  component: ModelComponentName;
  strategy: "unchanged" | "inline" | "copy";
  modelBytes: Uint8Array;
  /** Where ORT must read the external files still on disk ("unchanged", "inline"); null when none are. */
  externalDataDir: string | null;
  /** In-memory copies of every external file ("copy"); empty otherwise. */
  externalData: { path: string; data: Uint8Array }[];
  patchedInitializers: string[];
  /** Bytes of tensor data this result holds beyond the base model's files (for a cache's memory bound). */
  heldBytes: number;
  adapters: AdapterMatch[];
}

export interface MergeOptions {
  component?: ModelComponentName;
  /** Largest model bytes the inline strategy may produce (protobuf caps messages at 2 GiB). */
  inlineLimitBytes?: number;
  /** The kernel for ΔW products (default: plain TypeScript; onnx-matmul.kernel.ts is ~20x faster). */
  matmul?: MatMulKernel;
}

export class LoraMergeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LoraMergeError";
  }
}

const DEFAULT_INLINE_LIMIT = 1536 * 1024 * 1024;

const ELEMENT_BYTES: Record<number, number> = { [OnnxDataType.FLOAT]: 4, [OnnxDataType.FLOAT16]: 2, [OnnxDataType.BFLOAT16]: 2 };

export function componentOfDir(dir: string): ModelComponentName {
  const name = basename(normalize(dir));
  if (name === "unet" || name === "text_encoder") return name;
  throw new LoraMergeError(`${dir}: not a unet/ or text_encoder/ directory (pass options.component)`);
}

interface Planned {
  target: ModuleTarget;
  parts: { use: AdapterUse; module: AdapterModule }[];
}

/** Which modules of an adapter land on which weights of a component; needs only the adapter's header. */
export function matchAdapter(
  name: string,
  description: AdapterDescription,
  map: ModuleMap,
  component: ModelComponentName,
): { match: AdapterMatch; pairs: { module: AdapterModule; target: ModuleTarget }[] } {
  const match: AdapterMatch = { adapter: name, applied: 0, unmatched: [], skipped: [] };
  const pairs: { module: AdapterModule; target: ModuleTarget }[] = [];
  for (const module of description.modules) {
    if (module.component !== (component satisfies AdapterComponent)) continue;
    const target = map.targets.get(module.module);
    if (!target) {
      match.unmatched.push(module.key);
      continue;
    }
    const kernelOk = module.kernel === null || (module.kernel[0] === target.kh && module.kernel[1] === target.kw);
    if (module.out !== target.out || module.inFlat !== target.in * target.kh * target.kw || !kernelOk) {
      const kernel = module.kernel ? `, kernel ${module.kernel.join("x")}` : "";
      throw new LoraMergeError(
        `${name}: module ${module.key} has ΔW [${module.out}, ${module.inFlat}${kernel}] but ${target.nodeName} ` +
          `reads ${target.initializer.name} as [out ${target.out}, in ${target.in}, ${target.kh}x${target.kw}] ` +
          `(shape mismatch: an adapter for another base model?)`,
      );
    }
    if (target.sharedBy > 1) {
      match.skipped.push({ key: module.key, reason: `${target.initializer.name} is shared by ${target.sharedBy} nodes` });
      continue;
    }
    if (!(target.initializer.dataType in ELEMENT_BYTES)) {
      match.skipped.push({ key: module.key, reason: `${target.initializer.name} has ONNX data type ${target.initializer.dataType} (float, float16, bfloat16 supported)` });
      continue;
    }
    if (target.initializer.data.kind === "unsupported" || target.initializer.data.kind === "none") {
      match.skipped.push({ key: module.key, reason: `${target.initializer.name} has no readable data` });
      continue;
    }
    match.applied++;
    pairs.push({ module, target });
  }
  return { match, pairs };
}

/** A component's module map, for matching adapters without merging (listing unmatched keys). */
export async function readModuleMap(componentDir: string): Promise<ModuleMap> {
  const path = join(componentDir, "model.onnx");
  return buildModuleMap(parseOnnxModel(await readFile(path), path));
}

export async function mergeAdapters(componentDir: string, uses: readonly AdapterUse[], options: MergeOptions = {}): Promise<MergedModel> {
  const component = options.component ?? componentOfDir(componentDir);
  const modelPath = join(componentDir, "model.onnx");
  const bytes = await readFile(modelPath);
  const model = parseOnnxModel(bytes, modelPath);
  const map = buildModuleMap(model);
  const hasExternal = [...model.initializers.values()].some((i) => i.data.kind === "external");
  const externalDataDir = hasExternal ? componentDir : null;

  // 1. Plan: which initializers change, and by what.
  const plan = new Map<string, Planned>();
  const adapters: AdapterMatch[] = [];
  for (const use of uses) {
    if (!Number.isFinite(use.weight)) throw new LoraMergeError(`${use.adapter.name}: weight ${use.weight} is not a finite number`);
    const { match, pairs } = matchAdapter(use.adapter.name, use.adapter.description, map, component);
    adapters.push(match);
    for (const { module, target } of pairs) {
      const name = target.initializer.name;
      let planned = plan.get(name);
      if (!planned) plan.set(name, (planned = { target, parts: [] }));
      planned.parts.push({ use, module });
    }
  }
  if (plan.size === 0) {
    return { component, strategy: "unchanged", modelBytes: bytes, externalDataDir, externalData: [], patchedInitializers: [], heldBytes: 0, adapters };
  }

  const files = new ExternalFiles(componentDir, modelPath);
  try {
    const patchedBytes = [...plan.values()].reduce((n, p) => n + tensorBytes(p.target.initializer), 0);
    const inlineLimit = options.inlineLimitBytes ?? DEFAULT_INLINE_LIMIT;
    if (bytes.byteLength + patchedBytes <= inlineLimit) {
      // 2a. Inline: patched initializers become raw_data slots in new model bytes, filled in place.
      const replacements = new Map<string, WireWriter>();
      for (const [name, { target }] of plan) {
        const init = target.initializer;
        replacements.set(name, encodeRawTensorSlot({ name, dims: init.dims, dataType: init.dataType, byteLength: tensorBytes(init) }));
      }
      const { bytes: modelBytes, slots } = rewriteInitializers(model, replacements);
      for (const [name, planned] of plan) slots.get(name)!.set(await mergedTensor(planned, model, files, options.matmul));
      return {
        component,
        strategy: "inline",
        modelBytes,
        externalDataDir,
        externalData: [],
        patchedInitializers: [...plan.keys()],
        heldBytes: modelBytes.byteLength,
        adapters,
      };
    }
    // 2b. Copy: every external file in memory (ORT wants all of them once any is given), patched in place.
    const embeddedPatched = [...plan.values()].some((p) => p.target.initializer.data.kind !== "external");
    const modelBytes = embeddedPatched ? new Uint8Array(bytes) : bytes;
    const copies = new Map<string, Uint8Array>();
    for (const init of model.initializers.values()) {
      if (init.data.kind === "external" && !copies.has(init.data.location)) {
        copies.set(init.data.location, await files.readWhole(init.data.location));
      }
    }
    for (const planned of plan.values()) {
      const merged = await mergedTensor(planned, model, files, options.matmul);
      const data = planned.target.initializer.data;
      if (data.kind === "external") copies.get(data.location)!.set(merged, data.offset);
      else if (data.kind === "raw" || data.kind === "float_data") modelBytes.set(merged, data.start);
    }
    const externalData = [...copies].map(([path, data]) => ({ path, data }));
    return {
      component,
      strategy: "copy",
      modelBytes,
      externalDataDir: null,
      externalData,
      patchedInitializers: [...plan.keys()],
      heldBytes: externalData.reduce((n, f) => n + f.data.byteLength, 0) + (embeddedPatched ? modelBytes.byteLength : 0),
      adapters,
    };
  } finally {
    await files.close();
  }
}

/**
 * Options to spread into onnxruntime's InferenceSession.create(merged.modelBytes, { ...yours, ...these }).
 * Keep `merged` referenced until create() resolves; ORT copies the weights while creating the session.
 */
export function sessionOptionsFor(merged: Pick<MergedModel, "externalDataDir" | "externalData">): MergedSessionOptions {
  if (merged.externalData.length > 0) return { externalData: merged.externalData };
  if (merged.externalDataDir) return { extra: { session: { model_external_initializers_file_folder_path: merged.externalDataDir } } };
  return {};
}

function tensorBytes(init: OnnxInitializer): number {
  return init.dims.reduce((a, b) => a * b, 1) * ELEMENT_BYTES[init.dataType];
}

/** W + Σ weight·ΔW for one initializer, encoded in its own data type. */
async function mergedTensor(planned: Planned, model: OnnxModel, files: ExternalFiles, matmul: MatMulKernel | undefined): Promise<Uint8Array> {
  const { target } = planned;
  const init = target.initializer;
  const values = decode(await baseBytes(init, model, files), init.dataType, init.data.kind === "external");
  // ΔW is built in the initializer's own layout (MatMul weights are stored [in, out]), so adding is one pass.
  const layout = target.layout === "in_out" ? "in_out" : "out_in";
  for (const { use, module } of planned.parts) {
    const delta = await moduleDelta(use.adapter.file, module, use.weight, { layout, matmul });
    for (let i = 0; i < values.length; i++) values[i] += delta[i];
  }
  return encode(values, init.dataType);
}

/** `owned`: the bytes are a fresh array of our own (read from a file), usable in place. */
function decode(bytes: Uint8Array, dataType: number, owned: boolean): Float32Array {
  let copy = bytes;
  if (!owned || bytes.byteOffset % 4 !== 0) {
    // A fresh, aligned copy (a Node Buffer's slice() would be a view of a shared pool).
    copy = new Uint8Array(bytes.byteLength);
    copy.set(bytes);
  }
  if (dataType === OnnxDataType.FLOAT) return new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4);
  if (dataType === OnnxDataType.FLOAT16) return float16ToFloat32(new Uint16Array(copy.buffer, copy.byteOffset, copy.byteLength / 2));
  return bfloat16ToFloat32(new Uint16Array(copy.buffer, copy.byteOffset, copy.byteLength / 2));
}

function encode(values: Float32Array, dataType: number): Uint8Array {
  if (dataType === OnnxDataType.FLOAT) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const halves = dataType === OnnxDataType.FLOAT16 ? float32ToFloat16(values) : float32ToBfloat16(values);
  return new Uint8Array(halves.buffer);
}

async function baseBytes(init: OnnxInitializer, model: OnnxModel, files: ExternalFiles): Promise<Uint8Array> {
  const expected = tensorBytes(init);
  const data = init.data;
  if (data.kind === "raw" || data.kind === "float_data") {
    if (data.end - data.start !== expected) {
      throw new LoraMergeError(`${model.label}: initializer ${init.name} holds ${data.end - data.start} bytes, expected ${expected} for [${init.dims.join(", ")}]`);
    }
    return model.bytes.subarray(data.start, data.end);
  }
  if (data.kind === "external") {
    if (data.length !== null && data.length !== expected) {
      throw new LoraMergeError(`${model.label}: initializer ${init.name} has external length ${data.length}, expected ${expected} for [${init.dims.join(", ")}]`);
    }
    return files.read(data.location, data.offset, expected);
  }
  throw new LoraMergeError(`${model.label}: initializer ${init.name} has no readable data`);
}

/** Read-only access to a component's external data files (never outside its directory). */
class ExternalFiles {
  private handles = new Map<string, FileHandle>();
  constructor(
    private readonly dir: string,
    private readonly label: string,
  ) {}

  private resolve(location: string): string {
    const rel = normalize(location);
    if (isAbsolute(rel) || rel === ".." || rel.startsWith(`..${sep}`)) {
      throw new LoraMergeError(`${this.label}: external data location "${location}" leaves the model directory`);
    }
    return join(this.dir, rel);
  }

  private async handle(location: string): Promise<FileHandle> {
    let h = this.handles.get(location);
    if (!h) {
      const path = this.resolve(location);
      try {
        h = await open(path, "r");
      } catch (err) {
        throw new LoraMergeError(`${this.label}: cannot open external data ${path} (${(err as Error).message})`);
      }
      this.handles.set(location, h);
    }
    return h;
  }

  async read(location: string, offset: number, length: number): Promise<Uint8Array> {
    const h = await this.handle(location);
    const out = new Uint8Array(length);
    const { bytesRead } = await h.read(out, 0, length, offset);
    if (bytesRead !== length) {
      throw new LoraMergeError(`${this.label}: external data ${location} ends before [${offset}, ${offset + length}) (truncated?)`);
    }
    return out;
  }

  /** The whole file in a fresh buffer, read in pieces (fs.readFile stops at 2 GiB). */
  async readWhole(location: string): Promise<Uint8Array> {
    const h = await this.handle(location);
    const { size } = await h.stat();
    if (size > bufferConstants.MAX_LENGTH) {
      throw new LoraMergeError(`${this.label}: external data ${location} is ${size} bytes, more than one buffer holds (${bufferConstants.MAX_LENGTH}); too many patched weights to merge inline`);
    }
    // allocUnsafeSlow: never a slice of Node's shared pool (this buffer is handed to onnxruntime).
    const out = Buffer.allocUnsafeSlow(size);
    const piece = 256 * 1024 * 1024;
    for (let pos = 0; pos < size; ) {
      const { bytesRead } = await h.read(out, pos, Math.min(piece, size - pos), pos);
      if (bytesRead === 0) throw new LoraMergeError(`${this.label}: external data ${location} shrank while being read`);
      pos += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.handles.values()].map((h) => h.close()));
    this.handles.clear();
  }
}

export interface MergedSet {
  /** adapterSetKey() of the set: equal keys give equal weights. */
  key: string;
  unet: MergedModel;
  textEncoder: MergedModel;
  /** Bytes both results hold beyond the base files (a cache's memory bound). */
  heldBytes: number;
}

/**
 * The pipeline's entry point: reads each adapter once and merges the set into the UNet and the text encoder of
 * the diffusers-layout model at `modelDir`. Weight-0 entries are skipped (they merge to the base weights).
 */
export async function mergeAdapterSet(
  modelDir: string,
  set: readonly { name: string; path: string; weight: number }[],
  options: Omit<MergeOptions, "component"> = {},
): Promise<MergedSet> {
  const key = await adapterSetKey(set);
  const uses: AdapterUse[] = [];
  for (const entry of set) {
    if (entry.weight === 0) continue;
    uses.push({ adapter: openAdapter(entry.name, await readSafetensorsFile(entry.path)), weight: entry.weight });
  }
  const unet = await mergeAdapters(join(modelDir, "unet"), uses, { ...options, component: "unet" });
  const textEncoder = await mergeAdapters(join(modelDir, "text_encoder"), uses, { ...options, component: "text_encoder" });
  return { key, unet, textEncoder, heldBytes: unet.heldBytes + textEncoder.heldBytes };
}

/**
 * A cache key for an adapter set: order-free, and changing when a file changes (size and mtime).
 * Weight-0 entries are left out: they merge to the base weights.
 */
export async function adapterSetKey(entries: readonly { name: string; path: string; weight: number }[]): Promise<string> {
  const parts: string[] = [];
  for (const e of entries) {
    if (e.weight === 0) continue;
    const s = await stat(e.path);
    parts.push(JSON.stringify([e.name, e.weight, e.path, s.size, s.mtimeMs]));
  }
  parts.sort();
  if (parts.length === 0) return "base";
  return createHash("sha256").update(parts.join("\n")).digest("hex");
}
