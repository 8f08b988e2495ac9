// Kohya LoRA / LoCon and LyCORIS LoHA files → per-module weight deltas.
//
// Keys look like `<prefix><module>.<part>` where prefix is lora_unet_ / lora_te_ / lora_te1_ / lora_te2_ and the
// module is the diffusers module path with "." replaced by "_" (lora_unet_down_blocks_0_..._attn1_to_q).
//   LoRA:  lora_down.weight [r, in(, kh, kw)], lora_up.weight [out, r(, 1, 1)], optional lora_mid.weight
//          [r, r, kh, kw] (LoCon Tucker), alpha.  ΔW = up · (mid ×) down · alpha / r
//   LoHA:  hada_w1_a [out, r], hada_w1_b [r, in·kh·kw], hada_w2_a, hada_w2_b, alpha;
//          with Tucker: hada_t1/hada_t2 [r, r, kh, kw], hada_w*_a [r, out], hada_w*_b [r, in].
//          ΔW = (w1a·w1b) ⊙ (w2a·w2b) · alpha / r
// alpha absent → alpha = r (scale 1). Every ΔW is in torch layout [out, in, kh, kw] (kh = kw = 1 for linear).
import type { SafetensorsEntry, SafetensorsFile } from "./safetensors.reader.js";

export type AdapterComponent = "unet" | "text_encoder" | "text_encoder_2";
export type AdapterKind = "lora" | "loha";

const PREFIXES: [string, AdapterComponent][] = [
  ["lora_unet_", "unet"],
  ["lora_te1_", "text_encoder"],
  ["lora_te2_", "text_encoder_2"],
  ["lora_te_", "text_encoder"],
];

const LORA_PARTS = ["lora_down.weight", "lora_up.weight", "lora_mid.weight", "alpha"] as const;
const LOHA_PARTS = ["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "alpha"] as const;

export interface AdapterModule {
  /** The module key as written in the file, e.g. lora_unet_down_blocks_0_attentions_0_proj_in. */
  key: string;
  component: AdapterComponent;
  /** The key without its prefix: the diffusers module path with "_" separators. */
  module: string;
  kind: AdapterKind;
  rank: number;
  out: number;
  /** in · kh · kw: what a ΔW row holds. */
  inFlat: number;
  /** Kernel size when the file tells it (LoRA conv, LoHA Tucker); null when only in·kh·kw is known. */
  kernel: [number, number] | null;
  /** The file's tensor names for this module (e.g. "<key>.lora_down.weight"). */
  tensors: Partial<Record<string, string>>;
}

export interface AdapterDescription {
  modules: AdapterModule[];
  /** Keys this engine does not apply (other LyCORIS algorithms, DoRA, unknown prefixes), one per module key. */
  unsupported: { key: string; reason: string }[];
}

export class AdapterFormatError extends Error {
  constructor(label: string, problem: string) {
    super(`${label}: ${problem}`);
    this.name = "AdapterFormatError";
  }
}

function splitKey(name: string): { moduleKey: string; part: string } | null {
  for (const part of [...LORA_PARTS, ...LOHA_PARTS]) {
    if (name.endsWith(`.${part}`)) return { moduleKey: name.slice(0, -(part.length + 1)), part };
  }
  const dot = name.indexOf(".");
  if (dot < 0) return null;
  return { moduleKey: name.slice(0, dot), part: name.slice(dot + 1) };
}

function componentOf(moduleKey: string): { component: AdapterComponent; module: string } | null {
  for (const [prefix, component] of PREFIXES) {
    if (moduleKey.startsWith(prefix)) return { component, module: moduleKey.slice(prefix.length) };
  }
  return null;
}

/** Groups a file's tensors by module and checks the shapes agree; needs the header only. */
export function describeAdapter(entries: Map<string, SafetensorsEntry>, label: string): AdapterDescription {
  const groups = new Map<string, Map<string, SafetensorsEntry>>();
  const unsupported: { key: string; reason: string }[] = [];
  for (const [name, entry] of entries) {
    const split = splitKey(name);
    if (!split) {
      unsupported.push({ key: name, reason: "not a <module>.<part> key" });
      continue;
    }
    let group = groups.get(split.moduleKey);
    if (!group) groups.set(split.moduleKey, (group = new Map()));
    group.set(split.part, entry);
  }
  const modules: AdapterModule[] = [];
  for (const [moduleKey, parts] of groups) {
    const where = componentOf(moduleKey);
    if (!where) {
      unsupported.push({ key: moduleKey, reason: "unknown prefix (expected lora_unet_, lora_te_, lora_te1_ or lora_te2_)" });
      continue;
    }
    const tensors: Record<string, string> = {};
    for (const part of parts.keys()) tensors[part] = `${moduleKey}.${part}`;
    if (parts.has("dora_scale")) {
      unsupported.push({ key: moduleKey, reason: "DoRA (dora_scale) is not supported" });
      continue;
    }
    if (parts.has("lora_down.weight") || parts.has("lora_up.weight")) {
      modules.push({ key: moduleKey, ...where, kind: "lora", tensors, ...loraShape(moduleKey, parts, label) });
    } else if (parts.has("hada_w1_a")) {
      modules.push({ key: moduleKey, ...where, kind: "loha", tensors, ...lohaShape(moduleKey, parts, label) });
    } else {
      const kinds = [...parts.keys()].join(", ");
      unsupported.push({ key: moduleKey, reason: `not LoRA or LoHA (parts: ${kinds})` });
    }
  }
  return { modules, unsupported };
}

type Shape = Pick<AdapterModule, "rank" | "out" | "inFlat" | "kernel">;

function need(parts: Map<string, SafetensorsEntry>, part: string, key: string, label: string): number[] {
  const entry = parts.get(part);
  if (!entry) throw new AdapterFormatError(label, `module ${key} has no ${part}`);
  return entry.shape;
}

function checkAlpha(parts: Map<string, SafetensorsEntry>, key: string, label: string): void {
  const alpha = parts.get("alpha");
  if (alpha && alpha.shape.reduce((a, b) => a * b, 1) !== 1) {
    throw new AdapterFormatError(label, `module ${key}: alpha has shape [${alpha.shape.join(", ")}], expected a scalar`);
  }
}

function mismatch(label: string, key: string, detail: string): AdapterFormatError {
  return new AdapterFormatError(label, `module ${key}: shape mismatch (${detail})`);
}

function loraShape(key: string, parts: Map<string, SafetensorsEntry>, label: string): Shape {
  const down = need(parts, "lora_down.weight", key, label);
  const up = need(parts, "lora_up.weight", key, label);
  checkAlpha(parts, key, label);
  const fmt = (s: number[]) => `[${s.join(", ")}]`;
  if ((down.length !== 2 && down.length !== 4) || down.length !== up.length) {
    throw mismatch(label, key, `lora_down ${fmt(down)} and lora_up ${fmt(up)} must both be 2-D or both 4-D`);
  }
  const rank = down[0];
  if (up[1] !== rank) throw mismatch(label, key, `lora_up ${fmt(up)} does not take rank ${rank} from lora_down ${fmt(down)}`);
  if (up.length === 4 && (up[2] !== 1 || up[3] !== 1)) throw mismatch(label, key, `lora_up ${fmt(up)} must be [out, r, 1, 1]`);
  const mid = parts.get("lora_mid.weight")?.shape;
  if (mid) {
    // LoCon Tucker: down [r, in, 1, 1], mid [r, r, kh, kw], up [out, r, 1, 1].
    if (mid.length !== 4 || mid[0] !== rank || mid[1] !== rank || down.length !== 4 || down[2] !== 1 || down[3] !== 1) {
      throw mismatch(label, key, `lora_mid ${fmt(mid)} with lora_down ${fmt(down)}`);
    }
    return { rank, out: up[0], inFlat: down[1] * mid[2] * mid[3], kernel: [mid[2], mid[3]] };
  }
  if (down.length === 4) return { rank, out: up[0], inFlat: down[1] * down[2] * down[3], kernel: [down[2], down[3]] };
  return { rank, out: up[0], inFlat: down[1], kernel: [1, 1] };
}

function lohaShape(key: string, parts: Map<string, SafetensorsEntry>, label: string): Shape {
  const fmt = (s: number[]) => `[${s.join(", ")}]`;
  const w1a = need(parts, "hada_w1_a", key, label);
  const w1b = need(parts, "hada_w1_b", key, label);
  const w2a = need(parts, "hada_w2_a", key, label);
  const w2b = need(parts, "hada_w2_b", key, label);
  checkAlpha(parts, key, label);
  for (const [n, s] of [["hada_w1_a", w1a], ["hada_w1_b", w1b], ["hada_w2_a", w2a], ["hada_w2_b", w2b]] as const) {
    if (s.length !== 2) throw mismatch(label, key, `${n} ${fmt(s)} must be 2-D`);
  }
  const t1 = parts.get("hada_t1")?.shape;
  const t2 = parts.get("hada_t2")?.shape;
  if ((t1 === undefined) !== (t2 === undefined)) throw new AdapterFormatError(label, `module ${key} has only one of hada_t1 / hada_t2`);
  const rank = w1b[0];
  if (t1 && t2) {
    // Tucker: w*_a [r, out], w*_b [r, in], t* [r, r, kh, kw].
    const ok =
      t1.length === 4 &&
      t2.length === 4 &&
      t1[0] === rank &&
      t1[1] === rank &&
      w1a[0] === rank &&
      t2[0] === w2b[0] &&
      t2[1] === w2b[0] &&
      w2a[0] === w2b[0] &&
      w1a[1] === w2a[1] &&
      w1b[1] === w2b[1] &&
      t1[2] === t2[2] &&
      t1[3] === t2[3];
    if (!ok) throw mismatch(label, key, `Tucker LoHA hada_t1 ${fmt(t1)} hada_w1_a ${fmt(w1a)} hada_w1_b ${fmt(w1b)} hada_t2 ${fmt(t2)} hada_w2_a ${fmt(w2a)} hada_w2_b ${fmt(w2b)}`);
    return { rank, out: w1a[1], inFlat: w1b[1] * t1[2] * t1[3], kernel: [t1[2], t1[3]] };
  }
  const ok = w1a[1] === rank && w2a[1] === w2b[0] && w1a[0] === w2a[0] && w1b[1] === w2b[1];
  if (!ok) throw mismatch(label, key, `hada_w1_a ${fmt(w1a)} hada_w1_b ${fmt(w1b)} hada_w2_a ${fmt(w2a)} hada_w2_b ${fmt(w2b)}`);
  return { rank, out: w1a[0], inFlat: w1b[1], kernel: null };
}

// ---- ΔW computation ----

/** c[m, n] = a[m, k] · b[k, n], row-major. The merge's one heavy operation; see onnx-matmul.kernel.ts. */
export type MatMulKernel = (a: Float32Array, b: Float32Array, m: number, k: number, n: number) => Float32Array | Promise<Float32Array>;

/**
 * Plain TypeScript kernel: i-k-j order so the inner loop runs over contiguous memory, four rows of b per pass
 * so each c element is loaded and stored once per four multiply-adds (about twice as fast as one row per pass).
 */
export const jsMatMul: MatMulKernel = (a, b, m, k, n) => {
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    const ai = i * k;
    let p = 0;
    for (; p + 4 <= k; p += 4) {
      const a0 = a[ai + p];
      const a1 = a[ai + p + 1];
      const a2 = a[ai + p + 2];
      const a3 = a[ai + p + 3];
      const b0 = p * n;
      const b1 = b0 + n;
      const b2 = b1 + n;
      const b3 = b2 + n;
      for (let j = 0; j < n; j++) c[ci + j] += a0 * b[b0 + j] + a1 * b[b1 + j] + a2 * b[b2 + j] + a3 * b[b3 + j];
    }
    for (; p < k; p++) {
      const aip = a[ai + p];
      const bp = p * n;
      for (let j = 0; j < n; j++) c[ci + j] += aip * b[bp + j];
    }
  }
  return c;
};

export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  // 32x32 tiles keep both sides in cache for large matrices.
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(cols, c0 + T);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) t[c * rows + r] = a[r * cols + c];
    }
  }
  return t;
}

function scaled(a: Float32Array, s: number): Float32Array {
  if (s === 1) return a;
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] * s;
  return out;
}

/**
 * Tucker rebuild: W[p, q, k, l] = Σ_i Σ_j left[p, i] · core[i, j, k, l] · right[j, q]
 * (LyCORIS' einsum "i j k l, j r, i p -> p r k l" with left = waᵀ). Returns [out, in·kh·kw].
 */
async function tuckerRebuild(core: Float32Array, left: Float32Array, right: Float32Array, r: number, out: number, inDim: number, kk: number, mm: MatMulKernel): Promise<Float32Array> {
  // a[i, q, kl] = Σ_j core[i, j, kl] · right[j, q]  (r²·in·kk: small next to the product below)
  const a = new Float32Array(r * inDim * kk);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) {
      for (let kl = 0; kl < kk; kl++) {
        const c = core[(i * r + j) * kk + kl];
        if (c === 0) continue;
        for (let q = 0; q < inDim; q++) a[(i * inDim + q) * kk + kl] += c * right[j * inDim + q];
      }
    }
  }
  return mm(left, a, out, r, inDim * kk);
}

function alphaOf(file: SafetensorsFile, mod: AdapterModule): number {
  const name = mod.tensors.alpha;
  if (!name) return mod.rank;
  const alpha = file.readFloat32(name)[0];
  if (!Number.isFinite(alpha)) throw new AdapterFormatError(file.label, `module ${mod.key}: alpha is ${alpha}`);
  return alpha;
}

function read(file: SafetensorsFile, mod: AdapterModule, part: string): Float32Array {
  const name = mod.tensors[part];
  if (!name) throw new AdapterFormatError(file.label, `module ${mod.key} has no ${part}`);
  return file.readFloat32(name);
}

export interface DeltaOptions {
  /**
   * "out_in" (default): torch's [out, in·kh·kw]. "in_out": [in, out], the layout MatMul weights are stored in;
   * built as (down)ᵀ·(up)ᵀ so no large transpose is needed.
   */
  layout?: "out_in" | "in_out";
  matmul?: MatMulKernel;
}

/** ΔW for one module times alpha/rank and `multiplier` (the adapter's weight), in the layout asked for. */
export async function moduleDelta(file: SafetensorsFile, mod: AdapterModule, multiplier: number, options: DeltaOptions = {}): Promise<Float32Array> {
  const mm = options.matmul ?? jsMatMul;
  const transposed = options.layout === "in_out";
  // The scale goes into the smaller factor, not into the out·in product.
  const scale = (alphaOf(file, mod) / mod.rank) * multiplier;
  const { rank: r, out, inFlat } = mod;
  const hasCore = Boolean(mod.tensors["lora_mid.weight"] || mod.tensors.hada_t1);
  let delta: Float32Array;
  if (mod.kind === "lora") {
    const up = scaled(read(file, mod, "lora_up.weight"), scale);
    const down = read(file, mod, "lora_down.weight");
    if (hasCore) {
      const kk = mod.kernel![0] * mod.kernel![1];
      delta = await tuckerRebuild(read(file, mod, "lora_mid.weight"), up, down, r, out, inFlat / kk, kk, mm);
    } else if (transposed) {
      return mm(transpose(down, r, inFlat), transpose(up, out, r), inFlat, r, out);
    } else {
      return mm(up, down, out, r, inFlat);
    }
  } else {
    const w1a = scaled(read(file, mod, "hada_w1_a"), scale);
    const w1b = read(file, mod, "hada_w1_b");
    const w2a = read(file, mod, "hada_w2_a");
    const w2b = read(file, mod, "hada_w2_b");
    let w1: Float32Array;
    let w2: Float32Array;
    if (hasCore) {
      const kk = mod.kernel![0] * mod.kernel![1];
      const inDim = inFlat / kk;
      const r2 = w2b.length / inDim;
      w1 = await tuckerRebuild(read(file, mod, "hada_t1"), transpose(w1a, r, out), w1b, r, out, inDim, kk, mm);
      w2 = await tuckerRebuild(read(file, mod, "hada_t2"), transpose(w2a, r2, out), w2b, r2, out, inDim, kk, mm);
    } else {
      const r2 = w2b.length / inFlat;
      if (transposed) {
        w1 = await mm(transpose(w1b, r, inFlat), transpose(w1a, out, r), inFlat, r, out);
        w2 = await mm(transpose(w2b, r2, inFlat), transpose(w2a, out, r2), inFlat, r2, out);
      } else {
        w1 = await mm(w1a, w1b, out, r, inFlat);
        w2 = await mm(w2a, w2b, out, r2, inFlat);
      }
      for (let i = 0; i < w1.length; i++) w1[i] *= w2[i];
      return w1;
    }
    for (let i = 0; i < w1.length; i++) w1[i] *= w2[i];
    delta = w1;
  }
  // Tucker forms come out as [out, in·kh·kw]; they are conv weights, so "in_out" is rare here.
  return transposed ? transpose(delta, out, inFlat) : delta;
}

/** An adapter file with its parsed modules. */
export interface LoraAdapter {
  name: string;
  file: SafetensorsFile;
  description: AdapterDescription;
}

export function openAdapter(name: string, file: SafetensorsFile): LoraAdapter {
  return { name, file, description: describeAdapter(file.entries, file.label) };
}
