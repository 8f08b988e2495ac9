import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAdapter } from "../../../gpu-node/lora/adapter.js";
import type { LoraAdapter } from "../../../gpu-node/lora/adapter.js";
import { adapterSetKey, LoraMergeError, mergeAdapters, mergeAdapterSet, sessionOptionsFor } from "../../../gpu-node/lora/lora-merge.js";
import type { MergedModel } from "../../../gpu-node/lora/lora-merge.js";
import { parseOnnxModel } from "../../../gpu-node/lora/onnx-graph.js";
import { readSafetensorsFile } from "../../../gpu-node/lora/safetensors.reader.js";
import { buildOnnxModel, fixtureRng, lohaModule, loraModule, referenceDelta, TINY_MODULES, writeSafetensors } from "../../helpers/lora-fixtures.js";
import type { FixtureTensors, ModuleSpec } from "../../helpers/lora-fixtures.js";

const MODEL = join(process.cwd(), "models/tiny-sd");
const UNET = join(MODEL, "unet");
const TE = join(MODEL, "text_encoder");
const U = TINY_MODULES.unet;
const T = TINY_MODULES.text_encoder;

type Target = ModuleSpec & { initializer: string; layout: string };

/** One initializer's values as float32, from a merged model (its bytes, in-memory files, or disk). */
function initializerValues(bytes: Uint8Array, dir: string, name: string, memory: { path: string; data: Uint8Array }[] = []): Promise<Float32Array> {
  const model = parseOnnxModel(bytes, "merged");
  const init = model.initializers.get(name);
  if (!init) throw new Error(`no initializer ${name}`);
  expect(init.dataType).toBe(1);
  const n = init.dims.reduce((a, b) => a * b, 1);
  const toF32 = (b: Uint8Array) => new Float32Array(new Uint8Array(b).buffer);
  const data = init.data;
  if (data.kind === "raw" || data.kind === "float_data") return Promise.resolve(toF32(bytes.subarray(data.start, data.end)));
  if (data.kind !== "external") throw new Error(`${name} has no data`);
  const inMemory = memory.find((f) => f.path === data.location);
  if (inMemory) return Promise.resolve(toF32(inMemory.data.subarray(data.offset, data.offset + n * 4)));
  return readFile(join(dir, data.location)).then((file) => toF32(file.subarray(data.offset, data.offset + n * 4)));
}

async function baseValues(dir: string, name: string): Promise<Float32Array> {
  return initializerValues(await readFile(join(dir, "model.onnx")), dir, name);
}

/** base + Σ ΔW, placed the way the initializer stores W (MatMul: transposed to [in, out]). */
function expectedValues(base: Float32Array, target: Target, deltas: Float64Array[]): Float64Array {
  const out = Float64Array.from(base);
  for (const delta of deltas) {
    for (let o = 0; o < target.out; o++) {
      for (let x = 0; x < target.in * target.kh * target.kw; x++) {
        const d = delta[o * target.in * target.kh * target.kw + x];
        if (target.layout === "in_out") out[x * target.out + o] += d;
        else out[o * target.in * target.kh * target.kw + x] += d;
      }
    }
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

async function sha256(path: string): Promise<string> {
  return createHash("sha256").update(await readFile(path)).digest("hex");
}

async function hashTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await readdir(dir)) out[name] = await sha256(join(dir, name));
  return out;
}

// Fixed UNet inputs: one 8x8 latent, one timestep, 77 tokens of 32-wide text states.
const unetFeeds = () => ({
  sample: new ort.Tensor("float32", Float32Array.from({ length: 4 * 8 * 8 }, (_, i) => Math.sin(i * 0.37)), [1, 4, 8, 8]),
  timestep: new ort.Tensor("float32", Float32Array.of(501), [1]),
  encoder_hidden_states: new ort.Tensor("float32", Float32Array.from({ length: 77 * 32 }, (_, i) => Math.cos(i * 0.11)), [1, 77, 32]),
});

async function runUnet(session: ort.InferenceSession): Promise<Float32Array> {
  const out = await session.run(unetFeeds());
  return out[session.outputNames[0]].data as Float32Array;
}

async function unetSession(merged: MergedModel): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(merged.modelBytes, { logSeverityLevel: 3, ...sessionOptionsFor(merged) });
}

describe("LoRA / LoHA merge into the tiny model", () => {
  let dir: string;
  let loraTensors: FixtureTensors;
  let lohaTensors: FixtureTensors;
  let lora: LoraAdapter;
  let loha: LoraAdapter;
  let baseHashes: Record<string, Record<string, string>>;
  let baseSession: ort.InferenceSession;
  let baseOut: Float32Array;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lora-merge-"));
    baseHashes = { unet: await hashTree(UNET), text_encoder: await hashTree(TE) };
    const rng = fixtureRng(42);
    loraTensors = {
      ...loraModule(U.to_q, { rank: 4, alpha: 2, rng }),
      ...loraModule(U.attn2_to_k, { rank: 4, rng }),
      ...loraModule(U.ff_proj, { rank: 2, alpha: 1, dtype: "F16", rng }),
      ...loraModule(U.proj_in, { rank: 4, alpha: 4, conv: true, rng }),
      ...loraModule(U.conv1, { rank: 4, alpha: 2, rng }),
      ...loraModule(U.time_emb_proj, { rank: 4, alpha: 4, dtype: "BF16", rng }),
      ...loraModule(T.q_proj, { rank: 4, alpha: 4, rng }),
      ...loraModule(T.fc1, { rank: 2, rng }),
      ...loraModule({ key: "lora_unet_down_blocks_9_attentions_0_proj_in", out: 32, in: 32, kh: 1, kw: 1 }, { rank: 2, rng }),
      ...loraModule({ key: "lora_te_text_model_encoder_layers_7_mlp_fc2", out: 32, in: 64, kh: 1, kw: 1 }, { rank: 2, rng }),
    };
    lohaTensors = {
      ...lohaModule(U.to_q, { rank: 4, alpha: 2, rng }),
      ...lohaModule(U.up_conv1, { rank: 2, alpha: 1, dtype: "F16", rng }),
      ...lohaModule(U.conv1, { rank: 3, alpha: 3, tucker: true, rng }),
      ...lohaModule(U.shortcut, { rank: 2, alpha: 2, tucker: true, dtype: "BF16", rng }),
    };
    lora = openAdapter("style", await readSafetensorsFile(await writeSafetensors(join(dir, "style.safetensors"), loraTensors)));
    loha = openAdapter("texture", await readSafetensorsFile(await writeSafetensors(join(dir, "texture.safetensors"), lohaTensors)));
    baseSession = await ort.InferenceSession.create(join(UNET, "model.onnx"), { logSeverityLevel: 3 });
    baseOut = await runUnet(baseSession);
  });

  afterAll(async () => {
    await baseSession?.release();
    await rm(dir, { recursive: true, force: true });
  });

  for (const strategy of ["inline", "copy"] as const) {
    it(`merges W + weight·ΔW into the UNet (${strategy}), MatMul weights transposed`, async () => {
      const weights = { lora: 0.8, loha: -0.6 };
      const merged = await mergeAdapters(
        UNET,
        [
          { adapter: lora, weight: weights.lora },
          { adapter: loha, weight: weights.loha },
        ],
        strategy === "copy" ? { inlineLimitBytes: 0 } : {},
      );
      expect(merged.strategy).toBe(strategy);
      expect(merged.component).toBe("unet");
      const targets: [Target, [FixtureTensors, number][]][] = [
        [U.to_q, [[loraTensors, weights.lora], [lohaTensors, weights.loha]]],
        [U.attn2_to_k, [[loraTensors, weights.lora]]],
        [U.ff_proj, [[loraTensors, weights.lora]]],
        [U.proj_in, [[loraTensors, weights.lora]]],
        [U.conv1, [[loraTensors, weights.lora], [lohaTensors, weights.loha]]],
        [U.time_emb_proj, [[loraTensors, weights.lora]]],
        [U.up_conv1, [[lohaTensors, weights.loha]]],
        [U.shortcut, [[lohaTensors, weights.loha]]],
      ];
      expect([...merged.patchedInitializers].sort()).toEqual(targets.map(([t]) => t.initializer).sort());
      for (const [target, sources] of targets) {
        const base = await baseValues(UNET, target.initializer);
        const expected = expectedValues(base, target, sources.map(([tensors, w]) => referenceDelta(tensors, target, w)));
        const actual = await initializerValues(merged.modelBytes, UNET, target.initializer, merged.externalData);
        const scale = Math.max(...Array.from(expected, Math.abs));
        expect(maxAbsDiff(actual, expected), target.initializer).toBeLessThan(scale * 1e-5);
        expect(maxAbsDiff(actual, base), `${target.initializer} changed`).toBeGreaterThan(1e-5);
      }
      // An untouched weight is still the base one.
      const untouched = "down_blocks.0.resnets.0.conv1.weight";
      expect(maxAbsDiff(await initializerValues(merged.modelBytes, UNET, untouched, merged.externalData), await baseValues(UNET, untouched))).toBe(0);
      if (strategy === "inline") {
        expect(merged.externalData).toEqual([]);
        expect(merged.externalDataDir).toBe(UNET);
        // Only the patched tensors are held: the model bytes grew by their size (± tensor headers), not by weights.pb.
        const patched = targets.reduce((n, [t]) => n + t.out * t.in * t.kh * t.kw * 4, 0);
        const graph = (await readFile(join(UNET, "model.onnx"))).byteLength;
        expect(Math.abs(merged.heldBytes - (graph + patched))).toBeLessThan(4096);
      } else {
        expect(merged.externalData.map((f) => f.path)).toEqual(["weights.pb"]);
        expect(merged.externalDataDir).toBeNull();
      }
    });
  }

  it("reports unmatched keys per component and leaves the other component's keys alone", async () => {
    const unet = await mergeAdapters(UNET, [{ adapter: lora, weight: 1 }]);
    expect(unet.adapters).toEqual([{ adapter: "style", applied: 6, unmatched: ["lora_unet_down_blocks_9_attentions_0_proj_in"], skipped: [] }]);
    const te = await mergeAdapters(TE, [{ adapter: lora, weight: 1 }]);
    expect(te.adapters).toEqual([{ adapter: "style", applied: 2, unmatched: ["lora_te_text_model_encoder_layers_7_mlp_fc2"], skipped: [] }]);
  });

  it("merges into the text encoder's embedded weights", async () => {
    const merged = await mergeAdapters(TE, [{ adapter: lora, weight: 1.5 }]);
    expect(merged.strategy).toBe("inline");
    expect(merged.externalDataDir).toBeNull();
    for (const target of [T.q_proj, T.fc1]) {
      const base = await baseValues(TE, target.initializer);
      const expected = expectedValues(base, target, [referenceDelta(loraTensors, target, 1.5)]);
      const actual = await initializerValues(merged.modelBytes, TE, target.initializer);
      expect(maxAbsDiff(actual, expected)).toBeLessThan(Math.max(...Array.from(expected, Math.abs)) * 1e-5);
    }
    const copy = await mergeAdapters(TE, [{ adapter: lora, weight: 1.5 }], { inlineLimitBytes: 0 });
    expect(copy.strategy).toBe("copy");
    expect(copy.externalData).toEqual([]);
    expect(await initializerValues(copy.modelBytes, TE, T.q_proj.initializer)).toEqual(await initializerValues(merged.modelBytes, TE, T.q_proj.initializer));

    // The merged text encoder runs and its output moves away from the base model's.
    const ids = new ort.Tensor("int32", Int32Array.from({ length: 77 }, (_, i) => (i === 0 ? 0 : i < 6 ? 300 + i : 2)), [1, 77]);
    const run = async (s: ort.InferenceSession) => {
      const name = s.inputNames[0];
      const meta = s.inputMetadata[0] as { type?: string };
      const feed = meta.type === "int64" ? new ort.Tensor("int64", BigInt64Array.from(ids.data as Int32Array, BigInt), [1, 77]) : ids;
      return (await s.run({ [name]: feed }))[s.outputNames[0]].data as Float32Array;
    };
    const base = await ort.InferenceSession.create(join(TE, "model.onnx"), { logSeverityLevel: 3 });
    const mergedSession = await ort.InferenceSession.create(merged.modelBytes, { logSeverityLevel: 3, ...sessionOptionsFor(merged) });
    expect(maxAbsDiff(await run(base), await run(mergedSession))).toBeGreaterThan(1e-3);
    await Promise.all([base.release(), mergedSession.release()]);
  });

  it("runs the merged UNet: output equals the base at weight 0 and moves with the weight", async () => {
    const outputs = new Map<number, Float32Array>();
    for (const weight of [0, 0.5, 1]) {
      const merged = await mergeAdapters(UNET, [
        { adapter: lora, weight },
        { adapter: loha, weight },
      ]);
      const session = await unetSession(merged);
      outputs.set(weight, await runUnet(session));
      await session.release();
    }
    expect(maxAbsDiff(outputs.get(0)!, baseOut)).toBe(0);
    const half = maxAbsDiff(outputs.get(0.5)!, baseOut);
    const full = maxAbsDiff(outputs.get(1)!, baseOut);
    expect(half).toBeGreaterThan(1e-4);
    expect(full).toBeGreaterThan(half);
    expect(maxAbsDiff(outputs.get(0.5)!, outputs.get(1)!)).toBeGreaterThan(1e-4);
  });

  it("gives the same UNet output from the inline and the copy strategy", async () => {
    const uses = [{ adapter: loha, weight: 0.9 }];
    const inline = await unetSession(await mergeAdapters(UNET, uses));
    const copy = await unetSession(await mergeAdapters(UNET, uses, { inlineLimitBytes: 0 }));
    const a = await runUnet(inline);
    const b = await runUnet(copy);
    expect(maxAbsDiff(a, b)).toBe(0);
    expect(maxAbsDiff(a, baseOut)).toBeGreaterThan(1e-4);
    await Promise.all([inline.release(), copy.release()]);
  });

  it("returns the model unchanged when nothing matches", async () => {
    const merged = await mergeAdapters(UNET, []);
    expect(merged.strategy).toBe("unchanged");
    expect(merged.patchedInitializers).toEqual([]);
    const session = await unetSession(merged);
    expect(maxAbsDiff(await runUnet(session), baseOut)).toBe(0);
    await session.release();
  });

  it("refuses an adapter whose shapes do not fit the model", async () => {
    const wrong = { ...U.to_q, in: 48 };
    const file = await writeSafetensors(join(dir, "other-base.safetensors"), loraModule(wrong, { rank: 2, rng: fixtureRng(3) }));
    const adapter = openAdapter("other-base", await readSafetensorsFile(file));
    const attempt = mergeAdapters(UNET, [{ adapter, weight: 1 }]);
    await expect(attempt).rejects.toThrow(LoraMergeError);
    await expect(mergeAdapters(UNET, [{ adapter, weight: 1 }])).rejects.toThrow(
      /other-base: module lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q has ΔW \[32, 48, kernel 1x1\] but .*to_q\/MatMul reads onnx::MatMul_3661 as \[out 32, in 32, 1x1\] \(shape mismatch/,
    );
    await expect(mergeAdapters(UNET, [{ adapter: lora, weight: Number.NaN }])).rejects.toThrow(/weight NaN is not a finite number/);
  });

  it("never writes to the base model files", async () => {
    await mergeAdapters(UNET, [{ adapter: lora, weight: 1 }], { inlineLimitBytes: 0 });
    await mergeAdapters(TE, [{ adapter: lora, weight: 1 }], { inlineLimitBytes: 0 });
    expect({ unet: await hashTree(UNET), text_encoder: await hashTree(TE) }).toEqual(baseHashes);
  });

  it("merges a whole set into both components from the adapter files", async () => {
    const set = [
      { name: "style", path: join(dir, "style.safetensors"), weight: 0.8 },
      { name: "texture", path: join(dir, "texture.safetensors"), weight: 0 },
    ];
    const merged = await mergeAdapterSet(MODEL, set);
    expect(merged.key).toBe(await adapterSetKey(set));
    expect(merged.unet.patchedInitializers).toHaveLength(6);
    expect(merged.textEncoder.patchedInitializers.sort()).toEqual([T.q_proj.initializer, T.fc1.initializer].sort());
    expect(merged.unet.adapters.map((a) => a.adapter)).toEqual(["style"]);
    expect(merged.heldBytes).toBe(merged.unet.heldBytes + merged.textEncoder.heldBytes);
    const direct = await mergeAdapters(UNET, [{ adapter: lora, weight: 0.8 }]);
    expect(maxAbsDiff(await initializerValues(merged.unet.modelBytes, UNET, U.to_q.initializer), await initializerValues(direct.modelBytes, UNET, U.to_q.initializer))).toBe(0);
  });

  it("keys adapter sets by names, weights and file versions, not by order", async () => {
    const a = { name: "style", path: join(dir, "style.safetensors"), weight: 0.8 };
    const b = { name: "texture", path: join(dir, "texture.safetensors"), weight: 0.5 };
    const k1 = await adapterSetKey([a, b]);
    expect(await adapterSetKey([b, a])).toBe(k1);
    expect(await adapterSetKey([a, { ...b, weight: 0.6 }])).not.toBe(k1);
    expect(await adapterSetKey([a, { ...b, weight: 0 }])).toBe(await adapterSetKey([a]));
    expect(await adapterSetKey([])).toBe("base");
    const later = new Date(Date.now() + 5000);
    await utimes(b.path, later, later);
    expect(await adapterSetKey([a, b])).not.toBe(k1);
  });
});

describe("merge into layouts the tiny model lacks", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lora-synthetic-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const rng = fixtureRng(9);
  const values = (n: number) => Float32Array.from({ length: n }, () => rng() * 4);

  it("handles a Transpose-fed MatMul (float_data), a Gemm with transB=0 (external) and skips a shared weight", async () => {
    const w1 = values(12); // [out 3, in 4], transposed in the graph
    const w2 = values(15); // [in 3, out 5]
    const b2 = values(5);
    const w3 = values(10); // [in 5, out 2], read by two MatMuls
    const { model, external } = buildOnnxModel({
      nodes: [
        { name: "/blk/lin_t/Transpose", opType: "Transpose", inputs: ["blk.lin_t.weight"], outputs: ["wt"], ints: { perm: [1, 0] } },
        { name: "/blk/lin_t/MatMul", opType: "MatMul", inputs: ["x", "wt"], outputs: ["h1"] },
        { name: "/blk/gemm/Gemm", opType: "Gemm", inputs: ["h1", "onnx::Gemm_9", "blk.gemm.bias"], outputs: ["h2"], ints: { transB: 0 } },
        { name: "Identity_1", opType: "Identity", inputs: ["onnx::MatMul_7"], outputs: ["shared_copy"] },
        { name: "/blk/a/MatMul", opType: "MatMul", inputs: ["h2", "shared_copy"], outputs: ["y1"] },
        { name: "/blk/b/MatMul", opType: "MatMul", inputs: ["h2", "onnx::MatMul_7"], outputs: ["y2"] },
      ],
      initializers: [
        { name: "blk.lin_t.weight", dims: [3, 4], dataType: 1, values: w1, storage: "float_data" },
        { name: "onnx::Gemm_9", dims: [3, 5], dataType: 1, values: w2, storage: "external" },
        { name: "blk.gemm.bias", dims: [5], dataType: 1, values: b2, storage: "raw" },
        { name: "onnx::MatMul_7", dims: [5, 2], dataType: 1, values: w3, storage: "raw" },
      ],
      inputs: [{ name: "x", dims: [1, 4] }],
      outputs: [
        { name: "y1", dims: [1, 2] },
        { name: "y2", dims: [1, 2] },
      ],
    });
    const unet = join(dir, "unet");
    await mkdir(unet, { recursive: true });
    await writeFile(join(unet, "model.onnx"), model);
    await writeFile(join(unet, "weights.bin"), external);
    const lin = { key: "lora_unet_blk_lin_t", out: 3, in: 4, kh: 1, kw: 1 };
    const gemm = { key: "lora_unet_blk_gemm", out: 5, in: 3, kh: 1, kw: 1 };
    const shared = { key: "lora_unet_blk_a", out: 2, in: 5, kh: 1, kw: 1 };
    const frng = fixtureRng(10);
    const tensors = { ...loraModule(lin, { rank: 2, alpha: 1, rng: frng }), ...lohaModule(gemm, { rank: 2, rng: frng }), ...loraModule(shared, { rank: 1, rng: frng }) };
    const adapter = openAdapter("synthetic", await readSafetensorsFile(await writeSafetensors(join(dir, "s.safetensors"), tensors)));
    const weight = 0.75;
    const d1 = referenceDelta(tensors, lin, weight);
    const d2 = referenceDelta(tensors, gemm, weight);

    const x = Float32Array.of(0.5, -1, 2, 0.25);
    const expected = () => {
      const h1 = [0, 1, 2].map((o) => [0, 1, 2, 3].reduce((acc, i) => acc + x[i] * (w1[o * 4 + i] + d1[o * 4 + i]), 0));
      const h2 = [0, 1, 2, 3, 4].map((o) => b2[o] + [0, 1, 2].reduce((acc, i) => acc + h1[i] * (w2[i * 5 + o] + d2[o * 3 + i]), 0));
      return [0, 1].map((o) => [0, 1, 2, 3, 4].reduce((acc, i) => acc + h2[i] * w3[i * 2 + o], 0));
    };
    for (const options of [{}, { inlineLimitBytes: 0 }]) {
      const merged = await mergeAdapters(unet, [{ adapter, weight }], options);
      expect(merged.adapters[0]).toEqual({ adapter: "synthetic", applied: 2, unmatched: [], skipped: [{ key: "lora_unet_blk_a", reason: "onnx::MatMul_7 is shared by 2 nodes" }] });
      const session = await ort.InferenceSession.create(merged.modelBytes, { logSeverityLevel: 3, ...sessionOptionsFor(merged) });
      const out = await session.run({ x: new ort.Tensor("float32", x, [1, 4]) });
      const want = expected();
      for (const name of ["y1", "y2"]) {
        const got = out[name].data as Float32Array;
        for (let i = 0; i < 2; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-4 * Math.max(1, Math.abs(want[i])));
      }
      await session.release();
    }
  });

  it("merges into float16 weights, rounding once", async () => {
    // Base values k/1024 are exact in float16.
    const base = values(24); // [in 4, out 6]
    const halves = Uint16Array.from(base, (v) => {
      const f = new Float32Array([v]);
      const u = new Uint32Array(f.buffer)[0];
      if (v === 0) return 0;
      const exp = ((u >>> 23) & 0xff) - 127 + 15;
      return ((u >>> 16) & 0x8000) | (exp << 10) | ((u >>> 13) & 0x3ff);
    });
    const { model } = buildOnnxModel({
      nodes: [{ name: "/f/lin/MatMul", opType: "MatMul", inputs: ["x", "onnx::MatMul_1"], outputs: ["y"] }],
      initializers: [{ name: "onnx::MatMul_1", dims: [4, 6], dataType: 10, values: halves, storage: "raw" }],
      inputs: [{ name: "x", dims: [1, 4] }],
      outputs: [{ name: "y", dims: [1, 6] }],
    });
    const te = join(dir, "text_encoder");
    await mkdir(te, { recursive: true });
    await writeFile(join(te, "model.onnx"), model);
    const spec = { key: "lora_te_f_lin", out: 6, in: 4, kh: 1, kw: 1 };
    const tensors = loraModule(spec, { rank: 2, alpha: 1, rng: fixtureRng(11) });
    const adapter = openAdapter("half", await readSafetensorsFile(await writeSafetensors(join(dir, "h.safetensors"), tensors)));
    const merged = await mergeAdapters(te, [{ adapter, weight: 1 }]);
    const parsed = parseOnnxModel(merged.modelBytes, "merged");
    const init = parsed.initializers.get("onnx::MatMul_1")!;
    expect(init.dataType).toBe(10);
    if (init.data.kind !== "raw") throw new Error("expected raw");
    const got = new Uint16Array(new Uint8Array(merged.modelBytes.subarray(init.data.start, init.data.end)).buffer);
    const delta = referenceDelta(tensors, spec, 1);
    const decode = (h: number) => (h & 0x8000 ? -1 : 1) * (((h >> 10) & 0x1f) === 0 ? (h & 0x3ff) * 2 ** -24 : (1 + (h & 0x3ff) / 1024) * 2 ** (((h >> 10) & 0x1f) - 15));
    let changed = 0;
    for (let i = 0; i < 4; i++)
      for (let o = 0; o < 6; o++) {
        const want = base[i * 6 + o] + delta[o * 4 + i];
        const have = decode(got[i * 6 + o]);
        // One float16 rounding: within half an ulp (2^-11 relative), plus subnormal spacing.
        expect(Math.abs(have - want)).toBeLessThanOrEqual(Math.abs(want) * 2 ** -11 + 2 ** -25);
        if (have !== base[i * 6 + o]) changed++;
      }
    expect(changed).toBeGreaterThan(12);
  });
});
