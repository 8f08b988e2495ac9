// gpu_node.concurrency > 1: createPipelineRunner's pool of pipeline hosts (a worker and a model copy each) on the
// tiny model. Jobs really overlap, give the single host's bytes, cancel on their own worker, the status and LoRA
// figures aggregate, a restarting host is routed around, and a load failure stops every worker.
import { readdirSync, rmSync, unlinkSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../../shared/config/config.schema.js";
import { ModelLoadError } from "../../../gpu-node/pipeline/model/model-load.error.js";
import { createPipelineRunner, PipelineHost } from "../../../gpu-node/pipeline/pipeline.host.js";
import { PipelinePool } from "../../../gpu-node/pipeline/pipeline.pool.js";
import type { GenerateOutput, GenerateParams } from "../../../gpu-node/pipeline/pipeline.types.js";
import { crashOnFirstStep } from "../../helpers/crash-on-first-step.js";
import { domainError } from "../../helpers/domain-error.js";
import { TINY_SD_DIR } from "../../helpers/goldens.js";
import { generateParams } from "../../helpers/generate-params.js";
import { fixtureRng, loraModule, TINY_MODULES, writeSafetensors } from "../../helpers/lora-fixtures.js";
import { tinyModelCopy } from "../../helpers/tiny-model.js";

// One intra-op thread: onnxruntime's results are then the same run to run (and worker to worker).
const config = (concurrency: number, path = TINY_SD_DIR, lora: Record<string, unknown> = {}) =>
  parseConfig({ sd_model: { path }, onnx: { intra_op_threads: 1 }, gpu_node: { concurrency }, lora });

const params = (overrides: Partial<GenerateParams> = {}) => generateParams({ seed: 31, ...overrides });
const bytes = (output: GenerateOutput) => output.images.map((image) => Buffer.from(image.bytes));

/** OS threads of this process: a worker thread that outlived its host would be one more. */
const threadCount = () => readdirSync("/proc/self/task").length;

let loraDir: string;
let pool: PipelinePool<PipelineHost>;
let single: PipelineHost;

beforeAll(async () => {
  loraDir = await mkdtemp(join(tmpdir(), "pool-loras-"));
  await writeSafetensors(join(loraDir, "ink.safetensors"), loraModule(TINY_MODULES.unet.to_q, { rank: 4, rng: fixtureRng(5) }));
  const lora = { models_dir: loraDir };
  const [two, one] = await Promise.all([
    createPipelineRunner(config(2, TINY_SD_DIR, lora), { faultInjection: true }),
    createPipelineRunner(config(1, TINY_SD_DIR, lora)),
  ]);
  if (!(two instanceof PipelinePool) || !(one instanceof PipelineHost)) throw new Error("unexpected runner types");
  pool = two;
  single = one;
});

afterAll(async () => {
  await Promise.all([pool?.close(), single?.close()]);
  await rm(loraDir, { recursive: true, force: true });
});

describe("createPipelineRunner by gpu_node.concurrency", () => {
  it("gives the single host for 1 and a pool of that many hosts for more", () => {
    expect(single).toBeInstanceOf(PipelineHost);
    expect(pool.hosts).toHaveLength(2);
    for (const host of pool.hosts) expect(host).toBeInstanceOf(PipelineHost);
  });
});

describe("PipelinePool", () => {
  it("runs two jobs at the same time: the second starts before the first resolves", async () => {
    const events: string[] = [];
    // The first job is far longer, so on one worker the second could only start once it had finished.
    const first = pool
      .generate(params({ numInferenceSteps: 40 }), { onStart: () => events.push("first started") })
      .then((out) => (events.push("first done"), out));
    const second = pool
      .generate(params({ seed: 32 }), { onStart: () => events.push("second started") })
      .then((out) => (events.push("second done"), out));
    const [a, b] = await Promise.all([first, second]);
    expect(events.indexOf("second started")).toBeLessThan(events.indexOf("first done"));
    expect([a.stepsRun, b.stepsRun]).toEqual([40, 3]);
  });

  it("gives the same bytes as a single host for the same seeds and parameters", async () => {
    const cases = [params({ seed: 7, numImages: 2 }), params({ seed: 8, scheduler: generateParams().scheduler, guidanceScale: 5 })];
    const pooled = await Promise.all(cases.map((p) => pool.generate(p)));
    const alone: GenerateOutput[] = [];
    for (const p of cases) alone.push(await single.generate(p));
    expect(pooled.map(bytes)).toEqual(alone.map(bytes));
    // Different seeds really differ, so the comparison above could fail.
    expect(bytes(pooled[0])[0].equals(bytes(pooled[1])[0])).toBe(false);
  });

  it("cancels the job whose signal fired, on its worker; the other job completes", async () => {
    const controller = new AbortController();
    const cancelled = pool.generate(params({ numInferenceSteps: 50 }), {
      signal: controller.signal,
      onProgress: (e) => {
        if (e.step === 2) controller.abort();
      },
    });
    const steps: number[] = [];
    const other = pool.generate(params({ numInferenceSteps: 6, seed: 9 }), { onProgress: (e) => steps.push(e.step) });
    expect((await domainError(cancelled)).code).toBe("cancelled");
    const out = await other;
    expect(out.stepsRun).toBe(6);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6]);
    expect(bytes(out)).toEqual(bytes(await single.generate(params({ numInferenceSteps: 6, seed: 9 }))));
  });

  it("reports the first host's model and adapters, and the hosts' LoRA caches summed", async () => {
    expect(pool.status()).toEqual({ modelLoaded: true, modelName: "tiny-sd", nativeWidth: 512, nativeHeight: 512 });
    const limit = single.loras().cache.limitBytes;
    expect(limit).toBeGreaterThan(0);
    expect(pool.loras()).toEqual({ adapters: single.loras().adapters, cache: { entries: 0, bytes: 0, limitBytes: 2 * limit } });
    expect(pool.loras().adapters.map((a) => a.name)).toEqual(["ink"]);
    // Two overlapping adapter jobs: one per host, so each host merges and caches its own sessions.
    const ink = params({ loras: [{ name: "ink", weight: 1 }] });
    await Promise.all([pool.generate(ink), pool.generate(ink)]);
    const [h0, h1] = pool.hosts.map((host) => host.loras().cache);
    expect([h0.entries, h1.entries]).toEqual([1, 1]);
    expect(pool.loras().cache).toEqual({ entries: 2, bytes: h0.bytes + h1.bytes, limitBytes: 2 * limit });
    expect(h0.bytes).toBeGreaterThan(0);
  });

  it("while a host's worker restarts, the pool stays loaded and sends new jobs to the other host", async () => {
    const [h0, h1] = pool.hosts;
    const toSecond = vi.spyOn(h1, "generate");
    const restarts = h0.restarts;
    // Host 0 (the lowest index, both idle) takes this job, and its worker dies on the first step.
    const dying = pool.generate(params({ numInferenceSteps: 200 }), crashOnFirstStep(h0, "exit"));
    // Settled from the worker's exit event, before the replacement worker can have loaded the model.
    expect((await domainError(dying)).message).toMatch(/pipeline worker died while generating/);
    expect(h0.status().modelLoaded).toBe(false);
    expect(pool.status().modelLoaded).toBe(true);
    expect(toSecond).not.toHaveBeenCalled();
    const next = pool.generate(params({ seed: 33 }));
    expect(toSecond).toHaveBeenCalledTimes(1);
    expect((await next).seed).toBe(33);
    toSecond.mockRestore();
    await vi.waitFor(() => expect(h0.status().modelLoaded).toBe(true), { timeout: 60_000, interval: 50 });
    expect(h0.restarts).toBe(restarts + 1);
    expect(bytes(await h0.generate(params()))).toEqual(bytes(await single.generate(params())));
  });
});

describe("memory recycling", () => {
  it("sends the next job to the other worker while one reloads after a recycle, not to the reloading one", async () => {
    // 1 MiB: every job is followed by a replacement of the worker that ran it.
    const recycling = (await createPipelineRunner(
      parseConfig({ sd_model: { path: TINY_SD_DIR }, onnx: { intra_op_threads: 1 }, gpu_node: { concurrency: 2, recycle_rss_mb: 1 } }),
    )) as PipelinePool<PipelineHost>;
    try {
      const [h0, h1] = recycling.hosts;
      // Both idle: host 0 (the lowest index) takes the first job, then reloads.
      await recycling.generate(params());
      expect([h0.recycles, h1.recycles]).toEqual([1, 0]);
      expect(h0.status()).toMatchObject({ modelLoaded: true, reloading: true });
      // Equal load (none in flight): the ready host wins over the reloading one.
      await recycling.generate(params({ seed: 32 }));
      expect([h0.recycles, h1.recycles]).toEqual([1, 1]);
      // The pool reports no reloading flag of its own.
      expect(recycling.status()).toEqual({ modelLoaded: true, modelName: "tiny-sd", nativeWidth: 512, nativeHeight: 512 });
    } finally {
      await recycling.close();
    }
  });
});

describe("start-up failures", () => {
  it("a broken model fails a pool of 2 with the load error naming the file, and no worker is left", async () => {
    const dir = tinyModelCopy((d) => unlinkSync(join(d, "vae_decoder", "model.onnx")));
    try {
      const threads = threadCount();
      const err = await createPipelineRunner(config(2, dir)).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ModelLoadError);
      expect((err as Error).message).toMatch(/vae_decoder\/model\.onnx is missing/);
      // Both workers were spawned and are gone once the call has rejected.
      expect(threadCount()).toBeLessThanOrEqual(threads);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
