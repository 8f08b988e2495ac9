// LoRA / LoHA through the real pipeline host and its worker thread, on the tiny model: adapters from the
// configured directory per request, start-up adapters on every request, isolation between requests, the LRU
// cache of merged sessions and start-up errors. Adapter files are written by test/helpers/lora-fixtures.ts
// against the tiny model's real module names.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../../shared/config/config.schema.js";
import { readImage } from "../../../gpu-node/pipeline/image/image.codec.js";
import { createPipelineRunner, type PipelineHost } from "../../../gpu-node/pipeline/pipeline.host.js";
import type { GenerateOutput, GenerateParams, LoraRequest } from "../../../gpu-node/pipeline/pipeline.types.js";
import { domainError } from "../../helpers/domain-error.js";
import { generateParams } from "../../helpers/generate-params.js";
import { encodeSafetensors, fixtureRng, lohaModule, loraModule, TINY_MODULES, writeSafetensors } from "../../helpers/lora-fixtures.js";

const U = TINY_MODULES.unet;
const T = TINY_MODULES.text_encoder;
// What the cache counts for a session: the component's files (unet/ 0.7 MB graph + 4.2 MB weights.pb,
// text_encoder/ 6.2 MB) plus 8 MiB of ORT's own. A set that touches only the UNet costs 12.9 MiB, one that
// touches both 27.1 MiB.
const UNET_ONLY_MIB = 5_110_173 / 2 ** 20 + 8;

let root: string;
let dir: string;
const hosts: PipelineHost[] = [];

function params(loras: LoraRequest[] = [], overrides: Partial<GenerateParams> = {}): GenerateParams {
  return generateParams({ seed: 99, loras, ...overrides });
}

async function host(lora: Record<string, unknown> = {}): Promise<PipelineHost> {
  // One intra-op thread: onnxruntime's results are then the same run to run, so outputs compare exactly.
  const runner = (await createPipelineRunner(parseConfig({ onnx: { intra_op_threads: 1 }, lora }))) as PipelineHost;
  hosts.push(runner);
  return runner;
}

async function pixels(output: GenerateOutput): Promise<Uint8Array> {
  return (await readImage(output.images[0].bytes)).data;
}

async function parameters(output: GenerateOutput): Promise<string> {
  return (await readImage(output.images[0].bytes)).comments.parameters;
}

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "lora-host-"));
  dir = join(root, "loras");
  const rng = fixtureRng(11);
  // LoRA on the UNet (attention MatMul, 3x3 conv LoCon) and the text encoder.
  await writeSafetensors(join(dir, "style.safetensors"), {
    ...loraModule(U.to_q, { rank: 4, alpha: 4, rng }),
    ...loraModule(U.conv1, { rank: 4, rng }),
    ...loraModule(U.ff_proj, { rank: 4, dtype: "F16", rng }),
    ...loraModule(T.q_proj, { rank: 4, rng }),
    ...loraModule(T.fc1, { rank: 4, rng }),
  });
  // LoHA on the UNet only, one module Tucker-factored, stored as BF16. A Hadamard product of two small
  // products is tiny; alpha/rank = 16 gives it an effect the size of the LoRA's.
  await writeSafetensors(join(dir, "texture.safetensors"), {
    ...lohaModule(U.proj_in, { rank: 4, alpha: 64, dtype: "BF16", rng }),
    ...lohaModule(U.up_conv1, { rank: 2, alpha: 32, tucker: true, rng }),
    ...lohaModule(U.attn2_to_k, { rank: 4, alpha: 64, rng }),
  });
  await writeSafetensors(join(dir, "ink.safetensors"), {
    ...loraModule(U.shortcut, { rank: 4, rng }),
    ...loraModule(U.time_emb_proj, { rank: 4, rng }),
  });
  await writeFile(join(dir, "broken.safetensors"), encodeSafetensors(loraModule(U.to_q, { rank: 2, rng })).subarray(0, 90));
  await writeSafetensors(join(dir, "sdxl.safetensors"), loraModule({ ...U.to_q, key: "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q" }, { rank: 2, rng }));
});

afterAll(async () => {
  await Promise.all(hosts.map((h) => h.close()));
  await rm(root, { recursive: true, force: true });
});

describe("per-request adapters from lora.models_dir", () => {
  let plain: PipelineHost;
  let runner: PipelineHost;
  let base: GenerateOutput;
  beforeAll(async () => {
    plain = await host();
    runner = await host({ models_dir: dir });
    base = await plain.generate(params());
  });

  it("lists what the directory holds, checked against the model, broken files with their error", () => {
    const { adapters, cache } = runner.loras();
    expect(adapters.map((a) => a.name)).toEqual(["broken", "ink", "sdxl", "style", "texture"]);
    expect(adapters.find((a) => a.name === "style")).toMatchObject({ kind: "lora", matchedModules: 5, unmatchedKeys: [], startupWeight: null, error: null });
    expect(adapters.find((a) => a.name === "texture")).toMatchObject({ kind: "loha", matchedModules: 3, error: null });
    expect(adapters.find((a) => a.name === "broken")?.error).toMatch(/broken\.safetensors: /);
    // The files' node-local paths stay on the node.
    for (const adapter of adapters) expect(adapter).not.toHaveProperty("path");
    expect(adapters.find((a) => a.name === "sdxl")).toMatchObject({
      matchedModules: 0,
      unmatchedKeys: ["lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"],
      error: "no module of this adapter matches a weight of the model",
    });
    expect(cache).toEqual({ entries: 0, bytes: 0, limitBytes: 4096 * 2 ** 20 });
    // No adapter configured: nothing listed.
    expect(plain.loras().adapters).toEqual([]);
  });

  it("applies an adapter first on a fresh worker, then runs the base model exactly for a request without one", async () => {
    // This worker's very first request merges an adapter; the base sessions must stay as they were.
    const withLoha = await runner.generate(params([{ name: "texture", weight: 1 }]));
    expect(withLoha.lora).toMatchObject({ applied: [{ name: "texture", weight: 1 }], cached: false });
    expect(withLoha.lora!.mergeMs).toBeGreaterThan(0);
    const after = await runner.generate(params());
    expect(after.lora).toBeUndefined();
    expect(after.images[0].bytes).toEqual(base.images[0].bytes);
    expect(meanAbsDiff(await pixels(withLoha), await pixels(base))).toBeGreaterThan(0.5);
    // And the adapter's output is the same when it runs again from the cache.
    const again = await runner.generate(params([{ name: "texture", weight: 1 }]));
    expect(again.lora).toMatchObject({ cached: true, mergeMs: 0 });
    expect(await pixels(again)).toEqual(await pixels(withLoha));
  });

  it("never leaks an adapter into a request that did not ask for it (UNet and text encoder), in either order", async () => {
    const before = await runner.generate(params());
    const styled = await runner.generate(params([{ name: "style", weight: 1 }]));
    const between = await runner.generate(params());
    const styledAgain = await runner.generate(params([{ name: "style", weight: 1 }]));
    const last = await runner.generate(params());
    for (const out of [before, between, last]) {
      expect(out.lora).toBeUndefined();
      expect(out.images[0].bytes).toEqual(base.images[0].bytes);
    }
    expect(meanAbsDiff(await pixels(styled), await pixels(base))).toBeGreaterThan(0.5);
    expect(await pixels(styledAgain)).toEqual(await pixels(styled));
    // Another adapter does not carry the first one's weights either: texture alone is what it was.
    const texture = await runner.generate(params([{ name: "texture", weight: 1 }]));
    const both = await runner.generate(params([{ name: "style", weight: 1 }, { name: "texture", weight: 1 }]));
    expect(await pixels(texture)).not.toEqual(await pixels(both));
    expect(await pixels(await runner.generate(params([{ name: "texture", weight: 1 }])))).toEqual(await pixels(texture));
  });

  it("changes the output with the weight and equals the base model at weight 0", async () => {
    const zero = await runner.generate(params([{ name: "style", weight: 0 }]));
    expect(zero.lora).toBeUndefined();
    expect(zero.images[0].bytes).toEqual(base.images[0].bytes);
    const basePixels = await pixels(base);
    const half = await pixels(await runner.generate(params([{ name: "style", weight: 0.5 }])));
    const full = await pixels(await runner.generate(params([{ name: "style", weight: 1 }])));
    const negative = await pixels(await runner.generate(params([{ name: "style", weight: -1 }])));
    const dHalf = meanAbsDiff(half, basePixels);
    const dFull = meanAbsDiff(full, basePixels);
    expect(dHalf).toBeGreaterThan(0.25);
    expect(dFull).toBeGreaterThan(dHalf);
    expect(meanAbsDiff(negative, basePixels)).toBeGreaterThan(0.25);
    expect(meanAbsDiff(negative, full)).toBeGreaterThan(dFull / 2);
  });

  it("names the applied adapters in the PNG parameters (none for a request without)", async () => {
    const out = await runner.generate(params([{ name: "style", weight: 0.5 }, { name: "texture", weight: 1 }]));
    expect(out.lora?.applied).toEqual([
      { name: "style", weight: 0.5 },
      { name: "texture", weight: 1 },
    ]);
    const text = await parameters(out);
    expect(text.split("\n")[0]).toBe("a red bicycle");
    expect(text).toMatch(/, Model: tiny-sd, LoRA: "style: 0\.5, texture: 1"$/);
    expect(await parameters(base)).not.toMatch(/LoRA/);
  });

  it("refuses unknown, unusable and repeated names as invalid_argument, and keeps serving", async () => {
    expect((await domainError(runner.generate(params([{ name: "nope", weight: 1 }])))).message).toBe(
      'unknown LoRA "nope"; available: ink, style, texture',
    );
    const broken = await domainError(runner.generate(params([{ name: "broken", weight: 1 }])));
    expect(broken.code).toBe("invalid_argument");
    expect(broken.message).toMatch(/^LoRA "broken" cannot be used: .*broken\.safetensors/);
    expect((await domainError(runner.generate(params([{ name: "sdxl", weight: 1 }])))).message).toBe(
      'LoRA "sdxl" cannot be used: no module of this adapter matches a weight of the model',
    );
    expect((await domainError(runner.generate(params([{ name: "ink", weight: 1 }, { name: "ink", weight: 1 }])))).code).toBe("invalid_argument");
    expect((await domainError(plain.generate(params([{ name: "style", weight: 1 }])))).message).toBe(
      'unknown LoRA "style": this node has no usable LoRA adapters',
    );
    expect((await runner.generate(params())).images[0].bytes).toEqual(base.images[0].bytes);
  });

  it("cancels a request around its merge (before or just after it, whichever the race gives)", async () => {
    const controller = new AbortController();
    const pending = runner.generate(params([{ name: "ink", weight: 0.3 }]), { signal: controller.signal });
    controller.abort();
    expect((await domainError(pending)).code).toBe("cancelled");
    expect((await runner.generate(params())).images[0].bytes).toEqual(base.images[0].bytes);
  });
});

describe("start-up adapters (lora.models / models_list)", () => {
  let plain: PipelineHost;
  let perRequest: PipelineHost;
  let runner: PipelineHost;
  beforeAll(async () => {
    plain = await host();
    perRequest = await host({ models_dir: dir });
    runner = await host({
      models_dir: dir,
      models: [{ path: join(dir, "ink.safetensors"), weight: 0.8, trigger_words: "inkwash, sumi-e" }],
    });
  });

  it("are listed with their weight and trigger words, merged once at start-up", () => {
    const { adapters, cache } = runner.loras();
    expect(adapters.find((a) => a.name === "ink")).toMatchObject({ startupWeight: 0.8, triggerWords: ["inkwash", "sumi-e"], error: null });
    expect(cache.entries).toBe(1);
    expect(cache.bytes).toBeCloseTo(UNET_ONLY_MIB * 2 ** 20, -1);
  });

  it("apply to every request, trigger words in front of the prompt (and in the PNG parameters)", async () => {
    const out = await runner.generate(params());
    expect(out.lora).toEqual({ applied: [{ name: "ink", weight: 0.8 }], cached: true, mergeMs: 0 });
    expect((await parameters(out)).split("\n")[0]).toBe("inkwash, sumi-e, a red bicycle");
    const base = await plain.generate(params());
    expect(meanAbsDiff(await pixels(out), await pixels(base))).toBeGreaterThan(0.25);
    // The same as asking another node for the adapter by name with the trigger words written out.
    const same = await perRequest.generate(params([{ name: "ink", weight: 0.8 }], { prompt: "inkwash, sumi-e, a red bicycle" }));
    expect(await pixels(same)).toEqual(await pixels(out));
  });

  it("combine with per-request adapters; naming one sets its weight, weight 0 turns it off", async () => {
    const combined = await runner.generate(params([{ name: "texture", weight: 1 }]));
    expect(combined.lora?.applied).toEqual([
      { name: "ink", weight: 0.8 },
      { name: "texture", weight: 1 },
    ]);
    expect((await parameters(combined)).split("\n")[0]).toBe("inkwash, sumi-e, a red bicycle");
    const off = await runner.generate(params([{ name: "ink", weight: 0 }]));
    expect(off.lora).toBeUndefined();
    // Base model, no trigger words: byte for byte what a node without adapters makes.
    expect(off.images[0].bytes).toEqual((await plain.generate(params())).images[0].bytes);
    // The start-up set is still there afterwards.
    expect((await runner.generate(params())).lora).toMatchObject({ cached: true });
  });
});

describe("the merged-session cache", () => {
  it("keeps the most recently used sets within lora.cache_mb, counting each set's session size", async () => {
    // 26 MiB: two UNet-only sets (12.9 MiB each) fit, a third does not; style (UNet + text encoder, 27.1 MiB)
    // never fits and is merged for its request only.
    const runner = await host({ models_dir: dir, cache_mb: 26 });
    const run = async (loras: LoraRequest[]) => (await runner.generate(params(loras))).lora!;
    expect((await run([{ name: "texture", weight: 1 }])).cached).toBe(false);
    expect((await run([{ name: "ink", weight: 1 }])).cached).toBe(false);
    expect(runner.loras().cache).toMatchObject({ entries: 2, limitBytes: 26 * 2 ** 20 });
    expect(runner.loras().cache.bytes).toBeCloseTo(2 * UNET_ONLY_MIB * 2 ** 20, -1);
    // texture becomes the most recently used; a third set then evicts ink, the least recently used.
    expect((await run([{ name: "texture", weight: 1 }])).cached).toBe(true);
    expect((await run([{ name: "texture", weight: 0.5 }])).cached).toBe(false);
    expect(runner.loras().cache.entries).toBe(2);
    expect((await run([{ name: "texture", weight: 1 }])).cached).toBe(true);
    expect((await run([{ name: "ink", weight: 1 }])).cached).toBe(false);
    // Too large for the cache: merged each time, the cached sets stay.
    expect((await run([{ name: "style", weight: 1 }])).cached).toBe(false);
    expect((await run([{ name: "style", weight: 1 }])).cached).toBe(false);
    expect(runner.loras().cache.entries).toBe(2);
    expect((await run([{ name: "ink", weight: 1 }])).cached).toBe(true);
  });
});

describe("start-up errors", () => {
  it("a broken or missing start-up adapter stops the pipeline from starting, naming the config key", async () => {
    const start = (lora: Record<string, unknown>) =>
      createPipelineRunner(parseConfig({ onnx: { intra_op_threads: 1 }, lora })).then(
        (runner) => {
          hosts.push(runner as PipelineHost);
          return null;
        },
        (err: unknown) => err as Error,
      );
    const broken = await start({ models: [{ path: join(dir, "broken.safetensors") }] });
    expect(broken?.message).toMatch(/^LoRA: lora\.models\[0\]\.path: .*broken\.safetensors: /);
    const missing = await start({ models_dir: dir, models_list: [{ path: "missing.safetensors" }] });
    expect(missing?.message).toMatch(/^LoRA: lora\.models_list\[0\]\.path: no adapter file at .*missing\.safetensors/);
    const noDir = await start({ models_dir: join(root, "nowhere") });
    expect(noDir?.message).toMatch(/^LoRA: lora\.models_dir: cannot read /);
  });
});
