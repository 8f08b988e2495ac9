// Writes tiny kohya LoRA / LyCORIS LoHA .safetensors files against the tiny model's real module names, and
// computes their ΔW the slow, obvious way (index sums straight from the formulas) to check the engine against.
// Values are multiples of 1/1024 with |numerator| < 256, exact in F32, F16 and BF16, so a file stored in any of
// the three formats means the same numbers.
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

export type FixtureDtype = "F32" | "F16" | "BF16";

export interface FixtureTensor {
  dtype: FixtureDtype | string;
  shape: number[];
  values: Float32Array;
}

export type FixtureTensors = Record<string, FixtureTensor>;

/** Module facts of models/tiny-sd, as its ONNX files hold them (out, in, kernel; the layout ONNX stores). */
export const TINY_MODULES = {
  unet: {
    to_q: { key: "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", out: 32, in: 32, kh: 1, kw: 1, initializer: "onnx::MatMul_3661", layout: "in_out" },
    attn2_to_k: { key: "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k", out: 64, in: 32, kh: 1, kw: 1, initializer: "onnx::MatMul_3736", layout: "in_out" },
    ff_proj: { key: "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_0_proj", out: 256, in: 32, kh: 1, kw: 1, initializer: "onnx::MatMul_3681", layout: "in_out" },
    proj_in: { key: "lora_unet_down_blocks_0_attentions_0_proj_in", out: 32, in: 32, kh: 1, kw: 1, initializer: "down_blocks.0.attentions.0.proj_in.weight", layout: "conv" },
    conv1: { key: "lora_unet_down_blocks_1_resnets_0_conv1", out: 64, in: 32, kh: 3, kw: 3, initializer: "down_blocks.1.resnets.0.conv1.weight", layout: "conv" },
    up_conv1: { key: "lora_unet_up_blocks_0_resnets_0_conv1", out: 64, in: 128, kh: 3, kw: 3, initializer: "up_blocks.0.resnets.0.conv1.weight", layout: "conv" },
    shortcut: { key: "lora_unet_down_blocks_1_resnets_0_conv_shortcut", out: 64, in: 32, kh: 1, kw: 1, initializer: "down_blocks.1.resnets.0.conv_shortcut.weight", layout: "conv" },
    time_emb_proj: { key: "lora_unet_down_blocks_0_resnets_0_time_emb_proj", out: 32, in: 128, kh: 1, kw: 1, initializer: "down_blocks.0.resnets.0.time_emb_proj.weight", layout: "out_in" },
  },
  text_encoder: {
    q_proj: { key: "lora_te_text_model_encoder_layers_0_self_attn_q_proj", out: 32, in: 32, kh: 1, kw: 1, initializer: "onnx::MatMul_422", layout: "in_out" },
    fc1: { key: "lora_te_text_model_encoder_layers_1_mlp_fc1", out: 64, in: 32, kh: 1, kw: 1, initializer: "onnx::MatMul_446", layout: "in_out" },
  },
} as const;

export interface ModuleSpec {
  key: string;
  out: number;
  in: number;
  kh: number;
  kw: number;
}

/** Deterministic values k/1024, |k| < 256 (mulberry32). */
export function fixtureRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return (Math.floor(u * 511) - 255) / 1024;
  };
}

function fill(n: number, rng: () => number): Float32Array {
  return Float32Array.from({ length: n }, rng);
}

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

function tensor(dtype: FixtureDtype, shape: number[], rng: () => number): FixtureTensor {
  return { dtype, shape, values: fill(prod(shape), rng) };
}

/** Kohya LoRA: linear ([r, in] / [out, r]) or conv ([r, in, kh, kw] / [out, r, 1, 1]); `mid` adds LoCon Tucker. */
export function loraModule(
  spec: ModuleSpec,
  opts: { rank: number; alpha?: number; dtype?: FixtureDtype; conv?: boolean; mid?: boolean; rng: () => number },
): FixtureTensors {
  const { rank: r, dtype = "F32", rng } = opts;
  const conv = opts.conv ?? (spec.kh !== 1 || spec.kw !== 1);
  const out: FixtureTensors = {};
  if (opts.mid) {
    out[`${spec.key}.lora_down.weight`] = tensor(dtype, [r, spec.in, 1, 1], rng);
    out[`${spec.key}.lora_mid.weight`] = tensor(dtype, [r, r, spec.kh, spec.kw], rng);
    out[`${spec.key}.lora_up.weight`] = tensor(dtype, [spec.out, r, 1, 1], rng);
  } else if (conv) {
    out[`${spec.key}.lora_down.weight`] = tensor(dtype, [r, spec.in, spec.kh, spec.kw], rng);
    out[`${spec.key}.lora_up.weight`] = tensor(dtype, [spec.out, r, 1, 1], rng);
  } else {
    out[`${spec.key}.lora_down.weight`] = tensor(dtype, [r, spec.in], rng);
    out[`${spec.key}.lora_up.weight`] = tensor(dtype, [spec.out, r], rng);
  }
  if (opts.alpha !== undefined) out[`${spec.key}.alpha`] = { dtype, shape: [], values: Float32Array.of(opts.alpha) };
  return out;
}

/** LyCORIS LoHA; `tucker` stores hada_t1/t2 [r, r, kh, kw] with w*_a [r, out] and w*_b [r, in]. */
export function lohaModule(
  spec: ModuleSpec,
  opts: { rank: number; alpha?: number; dtype?: FixtureDtype; tucker?: boolean; rng: () => number },
): FixtureTensors {
  const { rank: r, dtype = "F32", rng } = opts;
  const out: FixtureTensors = {};
  const k = spec.key;
  if (opts.tucker) {
    out[`${k}.hada_t1`] = tensor(dtype, [r, r, spec.kh, spec.kw], rng);
    out[`${k}.hada_w1_a`] = tensor(dtype, [r, spec.out], rng);
    out[`${k}.hada_w1_b`] = tensor(dtype, [r, spec.in], rng);
    out[`${k}.hada_t2`] = tensor(dtype, [r, r, spec.kh, spec.kw], rng);
    out[`${k}.hada_w2_a`] = tensor(dtype, [r, spec.out], rng);
    out[`${k}.hada_w2_b`] = tensor(dtype, [r, spec.in], rng);
  } else {
    const inFlat = spec.in * spec.kh * spec.kw;
    out[`${k}.hada_w1_a`] = tensor(dtype, [spec.out, r], rng);
    out[`${k}.hada_w1_b`] = tensor(dtype, [r, inFlat], rng);
    out[`${k}.hada_w2_a`] = tensor(dtype, [spec.out, r], rng);
    out[`${k}.hada_w2_b`] = tensor(dtype, [r, inFlat], rng);
  }
  if (opts.alpha !== undefined) out[`${k}.alpha`] = { dtype, shape: [], values: Float32Array.of(opts.alpha) };
  return out;
}

/**
 * The reference ΔW of one module (torch layout [out, in, kh, kw], flattened), times alpha/rank and `weight`,
 * written as the plain sums of the formulas, independent of the engine's code.
 */
export function referenceDelta(tensors: FixtureTensors, spec: ModuleSpec, weight: number): Float64Array {
  const k = spec.key;
  const t = (part: string) => tensors[`${k}.${part}`];
  const { out: O, in: I, kh: KH, kw: KW } = spec;
  const KK = KH * KW;
  const delta = new Float64Array(O * I * KK);
  const at = (o: number, i: number, kk: number) => (o * I + i) * KK + kk;
  let rank: number;
  if (t("lora_down.weight")) {
    const down = t("lora_down.weight");
    const up = t("lora_up.weight").values;
    rank = down.shape[0];
    const mid = t("lora_mid.weight");
    for (let o = 0; o < O; o++)
      for (let i = 0; i < I; i++)
        for (let kk = 0; kk < KK; kk++) {
          let s = 0;
          if (mid) {
            // Σ_n Σ_m up[o, n] mid[n, m, kk] down[m, i]
            for (let n = 0; n < rank; n++)
              for (let m = 0; m < rank; m++) s += up[o * rank + n] * mid.values[(n * rank + m) * KK + kk] * down.values[m * I + i];
          } else {
            // down is [r, in, kh, kw] (kh = kw = 1 for linear)
            for (let n = 0; n < rank; n++) s += up[o * rank + n] * down.values[(n * I + i) * KK + kk];
          }
          delta[at(o, i, kk)] = s;
        }
  } else {
    const w1a = t("hada_w1_a");
    const w1b = t("hada_w1_b");
    const w2a = t("hada_w2_a").values;
    const w2b = t("hada_w2_b").values;
    rank = w1b.shape[0];
    const t1 = t("hada_t1");
    const t2 = t("hada_t2");
    for (let o = 0; o < O; o++)
      for (let i = 0; i < I; i++)
        for (let kk = 0; kk < KK; kk++) {
          let a = 0;
          let b = 0;
          if (t1 && t2) {
            // einsum("i j k l, j r, i p -> p r k l", t, w_b, w_a)
            for (let p = 0; p < rank; p++)
              for (let q = 0; q < rank; q++) {
                a += t1.values[(p * rank + q) * KK + kk] * w1b.values[q * I + i] * w1a.values[p * O + o];
                b += t2.values[(p * rank + q) * KK + kk] * w2b[q * I + i] * w2a[p * O + o];
              }
          } else {
            const col = i * KK + kk;
            for (let n = 0; n < rank; n++) {
              a += w1a.values[o * rank + n] * w1b.values[n * I * KK + col];
              b += w2a[o * rank + n] * w2b[n * I * KK + col];
            }
          }
          delta[at(o, i, kk)] = a * b;
        }
  }
  const alpha = t("alpha")?.values[0] ?? rank;
  const scale = (alpha / rank) * weight;
  for (let x = 0; x < delta.length; x++) delta[x] *= scale;
  return delta;
}

// ---- encoding ----

/** Exact encoders for the fixture values (which are exactly representable); not general converters. */
function exactHalf(x: number, mantissaBits: number, exponentBits: number): number {
  const bias = (1 << (exponentBits - 1)) - 1;
  const sign = x < 0 || Object.is(x, -0) ? 1 : 0;
  const a = Math.abs(x);
  const total = 1 + exponentBits + mantissaBits;
  if (a === 0) return sign << (total - 1);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  let biased = e + bias;
  let mant: number;
  if (biased <= 0) {
    // subnormal
    mant = a / 2 ** (1 - bias - mantissaBits);
    biased = 0;
  } else {
    mant = (a / 2 ** e - 1) * 2 ** mantissaBits;
  }
  if (!Number.isInteger(mant)) throw new Error(`fixture value ${x} is not exact in this format`);
  return (sign << (total - 1)) | (biased << mantissaBits) | mant;
}

function encodeValues(t: FixtureTensor): Uint8Array {
  const n = t.values.length;
  switch (t.dtype) {
    case "F32":
      return new Uint8Array(Float32Array.from(t.values).buffer);
    case "F16": {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = exactHalf(t.values[i], 10, 5);
      return new Uint8Array(out.buffer);
    }
    case "BF16": {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = exactHalf(t.values[i], 7, 8);
      return new Uint8Array(out.buffer);
    }
    case "I64": {
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) out[i] = BigInt(Math.trunc(t.values[i]));
      return new Uint8Array(out.buffer);
    }
    default:
      // Unknown dtypes (for malformed-file tests): one byte per element.
      return new Uint8Array(n);
  }
}

/**
 * A .safetensors image. `align` pads the header with spaces to a multiple of 8 as the reference writer does;
 * without it tensor data can start at odd offsets (which readers must cope with).
 */
export function encodeSafetensors(tensors: FixtureTensors, opts: { metadata?: Record<string, string>; align?: boolean } = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  const datas: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const data = encodeValues(t);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + data.byteLength] };
    datas.push(data);
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  if (opts.align ?? true) json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + jsonBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
  out.set(jsonBytes, 8);
  let pos = 8 + jsonBytes.byteLength;
  for (const d of datas) {
    out.set(d, pos);
    pos += d.byteLength;
  }
  return out;
}

export async function writeSafetensors(path: string, tensors: FixtureTensors, opts: { metadata?: Record<string, string>; align?: boolean } = {}): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, encodeSafetensors(tensors, opts));
  return path;
}

// ---- synthetic ONNX models (for layouts the tiny model lacks: Transpose-fed MatMul, Gemm transB=0, shared
// weights, float16 and float_data storage) ----

class Proto {
  private chunks: Uint8Array[] = [];
  private small: number[] = [];
  private flush(): void {
    if (this.small.length > 0) this.chunks.push(Uint8Array.from(this.small));
    this.small = [];
  }
  varint(v: number): this {
    if (v < 0) {
      // int64 two's complement: ten bytes.
      let big = BigInt.asUintN(64, BigInt(v));
      while (big >= 0x80n) {
        this.small.push(Number(big & 0x7fn) | 0x80);
        big >>= 7n;
      }
      this.small.push(Number(big));
      return this;
    }
    let x = v;
    while (x >= 0x80) {
      this.small.push((x % 128) | 0x80);
      x = Math.floor(x / 128);
    }
    this.small.push(x);
    return this;
  }
  int(field: number, v: number): this {
    return this.varint(field * 8).varint(v);
  }
  bytes(field: number, b: Uint8Array): this {
    this.varint(field * 8 + 2).varint(b.byteLength);
    this.flush();
    this.chunks.push(b.slice());
    return this;
  }
  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  msg(field: number, m: Proto): this {
    return this.bytes(field, m.finish());
  }
  finish(): Uint8Array {
    this.flush();
    // A plain Uint8Array (a Buffer's slice() is a view, a trap for readers of .buffer).
    return new Uint8Array(Buffer.concat(this.chunks));
  }
}

export interface SyntheticInitializer {
  name: string;
  dims: number[];
  /** 1 = float, 10 = float16 (values rounded by the caller), stored as `storage`. */
  dataType: 1 | 10;
  values: Float32Array | Uint16Array;
  storage: "raw" | "float_data" | "external";
}

export interface SyntheticNode {
  name: string;
  opType: string;
  inputs: string[];
  outputs: string[];
  ints?: Record<string, number | number[]>;
}

/** A ModelProto (opset 17) plus the external data file its "external" initializers point into ("weights.bin"). */
export function buildOnnxModel(spec: {
  nodes: SyntheticNode[];
  initializers: SyntheticInitializer[];
  inputs: { name: string; dims: number[] }[];
  outputs: { name: string; dims: number[] }[];
}): { model: Uint8Array; external: Uint8Array } {
  const graph = new Proto();
  for (const n of spec.nodes) {
    const node = new Proto();
    for (const i of n.inputs) node.str(1, i);
    for (const o of n.outputs) node.str(2, o);
    node.str(3, n.name).str(4, n.opType);
    for (const [name, value] of Object.entries(n.ints ?? {})) {
      const attr = new Proto().str(1, name);
      if (Array.isArray(value)) {
        for (const v of value) attr.int(8, v);
        attr.int(20, 7); // INTS
      } else {
        attr.int(3, value).int(20, 2); // INT
      }
      node.msg(5, attr);
    }
    graph.msg(1, node);
  }
  graph.str(2, "synthetic");
  const external: Uint8Array[] = [];
  let externalLength = 0;
  for (const init of spec.initializers) {
    const t = new Proto();
    for (const d of init.dims) t.int(1, d);
    t.int(2, init.dataType).str(8, init.name);
    const raw = new Uint8Array(init.values.buffer, init.values.byteOffset, init.values.byteLength);
    if (init.storage === "raw") t.bytes(9, raw);
    else if (init.storage === "float_data") t.bytes(4, raw);
    else {
      const offset = externalLength;
      external.push(raw.slice());
      externalLength += raw.byteLength;
      t.msg(13, new Proto().str(1, "location").str(2, "weights.bin"));
      t.msg(13, new Proto().str(1, "offset").str(2, String(offset)));
      t.msg(13, new Proto().str(1, "length").str(2, String(raw.byteLength)));
      t.int(14, 1);
    }
    graph.msg(5, t);
  }
  const valueInfo = (v: { name: string; dims: number[] }) => {
    const shape = new Proto();
    for (const d of v.dims) shape.msg(1, new Proto().int(1, d));
    const tensorType = new Proto().int(1, 1).msg(2, shape);
    return new Proto().str(1, v.name).msg(2, new Proto().msg(1, tensorType));
  };
  for (const i of spec.inputs) graph.msg(11, valueInfo(i));
  for (const o of spec.outputs) graph.msg(12, valueInfo(o));
  const model = new Proto().int(1, 8).str(2, "lora-fixtures").msg(7, graph).msg(8, new Proto().str(1, "").int(2, 17));
  return { model: model.finish(), external: new Uint8Array(Buffer.concat(external)) };
}
