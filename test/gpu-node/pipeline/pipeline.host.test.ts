// The worker-thread host with the real pipeline inside: progress, cancellation, typed errors, and recovery when
// the worker dies.
import { renameSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../../shared/config/config.schema.js";
import { readImage } from "../../../gpu-node/pipeline/image/image.codec.js";
import { ModelLoadError } from "../../../gpu-node/pipeline/model/model-load.error.js";
import { createPipelineRunner, type PipelineHost } from "../../../gpu-node/pipeline/pipeline.host.js";
import type { ProgressEvent, StartEvent } from "../../../gpu-node/pipeline/pipeline.types.js";
import { TINY_SD_DIR } from "../../helpers/goldens.js";
import { crashOnFirstStep } from "../../helpers/crash-on-first-step.js";
import { domainError } from "../../helpers/domain-error.js";
import { generateParams } from "../../helpers/generate-params.js";
import { tinyModelCopy } from "../../helpers/tiny-model.js";

const config = (path = TINY_SD_DIR) => parseConfig({ sd_model: { path }, onnx: { intra_op_threads: 1 } });

let runner: PipelineHost;
beforeAll(async () => {
  // Concurrency 1 (the default) gives the single host (pipeline.pool.test.ts checks that).
  runner = (await createPipelineRunner(config(), { faultInjection: true })) as PipelineHost;
});
afterAll(() => runner.close());

describe("createPipelineRunner", () => {
  it("loads the model once in the worker and reports it", () => {
    expect(runner.status()).toEqual({ modelLoaded: true, modelName: "tiny-sd", nativeWidth: 512, nativeHeight: 512 });
  });

  it("generates with a start report, progress per step and transferred image bytes", async () => {
    const progress: ProgressEvent[] = [];
    const starts: StartEvent[] = [];
    const out = await runner.generate(generateParams({ numImages: 2 }), {
      onStart: (e) => starts.push(e),
      onProgress: (e) => {
        // The start report arrives before the first step.
        expect(starts).toHaveLength(1);
        progress.push(e);
      },
    });
    expect(starts).toEqual([{ totalSteps: 3, width: generateParams().width, height: generateParams().height }]);
    expect(progress).toEqual([
      { step: 1, total: 3 },
      { step: 2, total: 3 },
      { step: 3, total: 3 },
    ]);
    expect(out.seed).toBe(2024);
    expect(out.stepsRun).toBe(3);
    expect(out.images).toHaveLength(2);
    expect(out.images[0].bytes).toBeInstanceOf(Uint8Array);
    const read = await readImage(out.images[1].bytes);
    expect([read.format, read.width, read.height]).toEqual(["png", 64, 64]);
    expect(read.comments.parameters).toMatch(/Seed: 2024, Size: 64x64, Model: tiny-sd/);
    expect(out.timings.ortMs).toBeGreaterThan(0);
  });

  it("reports every step once and in order even when steps are faster than progress messages", async () => {
    const steps: number[] = [];
    await runner.generate(generateParams({ numInferenceSteps: 25 }), { onProgress: (e) => steps.push(e.step) });
    expect(steps).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  });

  it("gives the same bytes as an in-order second request with the same seed", async () => {
    const [a, b] = await Promise.all([runner.generate(generateParams()), runner.generate(generateParams())]);
    expect(Buffer.from(a.images[0].bytes).equals(Buffer.from(b.images[0].bytes))).toBe(true);
  });

  it("cancels between steps and keeps serving", async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const err = await domainError(
      runner.generate(generateParams({ numInferenceSteps: 50 }), {
        signal: controller.signal,
        onProgress: (e) => {
          seen.push(e.step);
          if (e.step === 2) controller.abort();
        },
      }),
    );
    expect(err.code).toBe("cancelled");
    expect(seen.length).toBeLessThan(50);
    const already = new AbortController();
    already.abort();
    expect((await domainError(runner.generate(generateParams(), { signal: already.signal }))).code).toBe("cancelled");
    expect((await runner.generate(generateParams())).images).toHaveLength(1);
  });

  it("maps bad input to typed errors and the worker survives", async () => {
    const image = await domainError(runner.generate(generateParams({ initImage: new TextEncoder().encode("garbage") })));
    expect(image.code).toBe("invalid_argument");
    expect(image.message).toMatch(/init_image is not a decodable PNG or JPEG image/);
    const scheduler = await domainError(
      runner.generate(generateParams({ scheduler: { name: "Bogus", className: "BogusScheduler" as never, overrides: {} } })),
    );
    expect(scheduler.code).toBe("invalid_argument");
    expect(scheduler.message).toMatch(/unknown scheduler "Bogus"/);
    const big = await domainError(runner.generate(generateParams({ width: 4096, height: 4096 })));
    expect(big.code).toBe("out_of_memory");
    expect((await runner.generate(generateParams())).images).toHaveLength(1);
    expect(runner.restarts).toBe(0);
  });

  it.each(["exit", "throw"] as const)(
    "when the worker dies (%s) the running job fails clearly, the worker restarts and queued jobs run",
    async (how) => {
      const before = runner.restarts;
      const running = runner.generate(generateParams({ numInferenceSteps: 200 }), crashOnFirstStep(runner, how));
      const queued = runner.generate(generateParams({ seed: 77 }));
      const err = await domainError(running);
      expect(err.code).toBe("internal");
      expect(err.message).toMatch(/pipeline worker died while generating .*restarted/);
      const out = await queued;
      expect(out.seed).toBe(77);
      expect(runner.restarts).toBe(before + 1);
      expect(runner.status().modelLoaded).toBe(true);
    },
  );
});

describe("memory bound", () => {
  // The one large case: unsplit, 8 images at 512x512 need ~17 GB in the tiny model's attention alone (2.1 GB
  // per image, measured); split one image per run it stays near one image's working set.
  it("8 images at 512x512 run split and leave the process up", { timeout: 600_000 }, async () => {
    const out = await runner.generate(
      generateParams({ width: 512, height: 512, numImages: 8, numInferenceSteps: 1, guidanceScale: 1 }),
    );
    expect(out.images.map((i) => [i.width, i.height])).toEqual(Array.from({ length: 8 }, () => [512, 512]));
    const peakMb = process.resourceUsage().maxRSS / 1024;
    expect(peakMb).toBeLessThan(6 * 1024);
    expect(runner.restarts).toBe(2); // only the two injected crashes above
  });
});

describe("start-up failures", () => {
  it("a missing model file fails createPipelineRunner with a message naming it", async () => {
    const dir = tinyModelCopy((d) => unlinkSync(join(d, "vae_decoder", "model.onnx")));
    try {
      const err = await createPipelineRunner(config(dir)).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ModelLoadError);
      expect((err as Error).message).toMatch(/vae_decoder\/model\.onnx is missing/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("recovery", () => {
  async function until(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it("replaces an idle worker once the process's RSS passes gpu_node.recycle_rss_mb, staying loaded, same bytes after", async () => {
    // 1 MiB: every job leaves the process above it, so every job is followed by a replacement.
    const host = (await createPipelineRunner(parseConfig({ sd_model: { path: TINY_SD_DIR }, onnx: { intra_op_threads: 1 }, gpu_node: { recycle_rss_mb: 1 } }))) as PipelineHost;
    try {
      const first = await host.generate(generateParams({ seed: 9 }));
      expect(host.recycles).toBe(1);
      // Still counted as loaded while the new worker loads (the next job only waits for it), and says so.
      expect(host.status()).toMatchObject({ modelLoaded: true, reloading: true });
      const second = await host.generate(generateParams({ seed: 9 }));
      expect(second.images[0].bytes).toEqual(first.images[0].bytes);
      expect(host.recycles).toBe(2);
      // A planned replacement is neither a crash nor a failed load.
      expect([host.restarts, host.loadFailures]).toEqual([0, 0]);
    } finally {
      await host.close();
    }
  });

  it("keeps its worker while the process's RSS stays under the limit", async () => {
    const host = (await createPipelineRunner(config(), { recycleRssBytes: Number.MAX_SAFE_INTEGER })) as PipelineHost;
    try {
      await host.generate(generateParams({ seed: 3 }));
      await host.generate(generateParams({ seed: 4 }));
      expect(host.recycles).toBe(0);
    } finally {
      await host.close();
    }
  });

  it("keeps loading the model again after a failed restart, with no request to prompt it, and then serves", async () => {
    const dir = tinyModelCopy();
    const decoder = join(dir, "vae_decoder", "model.onnx");
    const host = (await createPipelineRunner(config(dir), { faultInjection: true, restartBackoffMs: 100 })) as PipelineHost;
    try {
      // The worker dies while a file of the model is away: its replacement cannot load the model.
      renameSync(decoder, `${decoder}.away`);
      host.injectCrash("exit");
      await until("two failed loads", () => host.loadFailures >= 2);
      expect(host.status().modelLoaded).toBe(false);
      renameSync(`${decoder}.away`, decoder);
      await until("the model loaded again", () => host.status().modelLoaded);
      expect(host.restarts).toBe(1);
      expect((await host.generate(generateParams({ seed: 5 }))).seed).toBe(5);
    } finally {
      await host.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
