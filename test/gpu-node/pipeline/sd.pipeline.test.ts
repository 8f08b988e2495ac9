// Behaviour of the pipeline beyond the goldens: img2img as diffusers' StableDiffusionImg2ImgPipeline, batches and
// non-square sizes, seeds, memory chunking, CFG on/off, cancellation, output encoding and bad input.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SCHEDULER_NAMES, resolveScheduler } from "../../../shared/schedulers/scheduler-names.js";
import { encodePng, readImage, type RgbImage } from "../../../gpu-node/pipeline/image/image.codec.js";
import type { GenerateOutput, GenerateParams } from "../../../gpu-node/pipeline/pipeline.types.js";
import { TorchGenerator } from "../../../gpu-node/pipeline/rng/torch-generator.js";
import { createSdPipeline, type PipelineSettings } from "../../../gpu-node/pipeline/sd-pipeline.factory.js";
import { img2imgStart, type RunHooks, type SdPipeline } from "../../../gpu-node/pipeline/sd.pipeline.js";
import { domainError } from "../../helpers/domain-error.js";
import { generateParams } from "../../helpers/generate-params.js";
import { TINY_SD_DIR, maxAbs, maxAbsDiff } from "../../helpers/goldens.js";
import { tinyModelCopy } from "../../helpers/tiny-model.js";

const SETTINGS: PipelineSettings = {
  modelPath: TINY_SD_DIR,
  modelName: null,
  device: "cpu",
  intraOpThreads: 1,
  graphOptimizationLevel: "all",
  memoryBudgetMb: 2048,
  jpegQuality: 95,
};

let pipeline: SdPipeline;
/** Same model, a budget below one sample's estimate: every UNet and VAE run takes one sample (and still runs). */
let tight: SdPipeline;
let initPng: Uint8Array;

beforeAll(async () => {
  pipeline = await createSdPipeline(SETTINGS);
  tight = await createSdPipeline({ ...SETTINGS, memoryBudgetMb: 1 });
  initPng = await encodePng(gradient(67, 45), null);
});
afterAll(async () => {
  await pipeline.model.release();
  await tight.model.release();
});

function gradient(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = (x * 255) / (width - 1);
      data[i + 1] = (y * 255) / (height - 1);
      data[i + 2] = 128;
    }
  }
  return { data, width, height };
}

function params(overrides: Partial<GenerateParams> = {}): GenerateParams {
  return generateParams({ prompt: "a lighthouse at dusk", negativePrompt: "blurry", numInferenceSteps: 4, seed: 42, ...overrides });
}

interface Trace {
  output: GenerateOutput;
  embedDims: number[];
  initial: Float32Array;
  initialDims: number[];
  steps: number;
  progress: Array<[number, number]>;
  final: Float32Array;
}

async function trace(p: GenerateParams, on: SdPipeline = pipeline, hooks: RunHooks = {}): Promise<Trace> {
  const t: Partial<Trace> & { progress: Array<[number, number]>; steps: number } = { progress: [], steps: 0 };
  t.output = await on.generate(p, {
    ...hooks,
    onProgress: (e) => t.progress.push([e.step, e.total]),
    inspect: {
      promptEmbeds: (_d, dims) => (t.embedDims = dims),
      initialLatents: (d, dims) => {
        t.initial = d.slice();
        t.initialDims = dims;
      },
      step: () => t.steps++,
      finalLatents: (d) => (t.final = d.slice()),
    },
  });
  return t as Trace;
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

describe("img2img", () => {
  it("runs int(steps x strength) steps, starting where diffusers' get_timesteps says", async () => {
    for (const [steps, strength, expected] of [
      [10, 0.75, 7],
      [10, 0.5, 5],
      [4, 1, 4],
      [7, 0.3, 2],
    ] as const) {
      for (const name of ["Euler", "DDIM"]) {
        const t = await trace(params({ initImage: initPng, numInferenceSteps: steps, strength, scheduler: resolveScheduler(name)! }));
        expect(t.output.stepsRun, `${name} steps=${steps} strength=${strength}`).toBe(expected);
        expect(t.steps).toBe(expected);
        expect(t.progress.at(-1)).toEqual([expected, expected]);
      }
    }
    // A second-order scheduler (order 2) starts at t_start * 2 of its doubled timestep list.
    expect(img2imgStart(10, 0.75, 2)).toBe(6);
    expect(img2imgStart(10, 0.5, 1)).toBe(5);
    expect(img2imgStart(10, 0, 1)).toBe(10);
  });

  it("with a second-order scheduler starts at t_start x order of its doubled timesteps", async () => {
    // Heun's timesteps are [t0, t1, t1, t2, t2, ...] (2 x steps - 1 entries); 10 steps at strength 0.5 start
    // at index 5 x 2 = 10 and run the remaining 9 UNet calls, as diffusers' loop does.
    const t = await trace(params({ initImage: initPng, numInferenceSteps: 10, strength: 0.5, scheduler: resolveScheduler("Heun")! }));
    expect(t.output.stepsRun).toBe(9);
    expect(t.progress.at(-1)).toEqual([9, 9]);
  });

  it("returns the input's size rounded down to multiples of 8, ignoring width/height", async () => {
    const t = await trace(params({ initImage: initPng, width: 512, height: 512 }));
    expect(t.initialDims).toEqual([1, 4, 5, 8]);
    const image = t.output.images[0];
    expect([image.width, image.height]).toEqual([64, 40]);
    const read = await readImage(image.bytes);
    expect([read.width, read.height]).toEqual([64, 40]);
  });

  it("strength 0 runs no step and returns the VAE round trip of the posterior sample", async () => {
    const seed = 7;
    const t = await trace(params({ initImage: initPng, strength: 0, seed }));
    expect(t.output.stepsRun).toBe(0);
    expect(t.steps).toBe(0);
    expect(t.progress).toEqual([]);
    // Expected: scaling_factor x (mean + std x eps), eps the generator's first draw.
    const encoder = pipeline.model.vaeEncoder!;
    const decoded = await readImage(await encodePng(gradient(67, 45), null));
    expect(decoded.width).toBe(67);
    const { decodeInitImage } = await import("../../../gpu-node/pipeline/image/image.codec.js");
    const rgb = await decodeInitImage(initPng, 8);
    const x = new Float32Array(3 * rgb.width * rgb.height);
    const plane = rgb.width * rgb.height;
    for (let q = 0; q < plane; q++) for (let c = 0; c < 3; c++) x[c * plane + q] = Math.fround(Math.fround(2 * Math.fround(rgb.data[q * 3 + c] / 255)) - 1);
    const posterior = await encoder.encode(x, [3, rgb.height, rgb.width], 1, 1);
    if (posterior.kind !== "gaussian") throw new Error("expected a gaussian posterior");
    const eps = new TorchGenerator(seed).randn(posterior.mean.length);
    const sf = Math.fround(pipeline.model.vae.scalingFactor);
    const expected = posterior.mean.map((m, i) => Math.fround(sf * Math.fround(m + Math.fround(posterior.std[i] * eps[i]))));
    expect(maxAbsDiff(t.initial, expected)).toBeLessThan(1e-6 * maxAbs(expected));
    expect(same(new Uint8Array(t.final.buffer), new Uint8Array(t.initial.buffer))).toBe(true);
    // The round trip of a smooth gradient through even this random-weight VAE keeps the size.
    expect([t.output.images[0].width, t.output.images[0].height]).toEqual([64, 40]);
  });

  it("batches N > 1 with a non-square input: the posterior drawn once, repeated, then N noises", async () => {
    const t = await trace(params({ initImage: initPng, numImages: 2, strength: 0 }));
    expect(t.initialDims).toEqual([2, 4, 5, 8]);
    const half = t.initial.length / 2;
    expect(same(new Uint8Array(t.initial.buffer, 0, half * 4), new Uint8Array(t.initial.buffer, half * 4))).toBe(true);
    const noisy = await trace(params({ initImage: initPng, numImages: 2, strength: 0.5 }));
    expect(noisy.output.images.map((i) => [i.width, i.height])).toEqual([
      [64, 40],
      [64, 40],
    ]);
    expect(same(noisy.output.images[0].bytes, noisy.output.images[1].bytes)).toBe(false);
  });

  it("is reproducible: same seed, same bytes", async () => {
    const a = await pipeline.generate(params({ initImage: initPng, seed: 99 }));
    const b = await pipeline.generate(params({ initImage: initPng, seed: 99 }));
    expect(same(a.images[0].bytes, b.images[0].bytes)).toBe(true);
  });

  it("refuses an undecodable init image and a model without vae_encoder", async () => {
    const bad = await domainError(pipeline.generate(params({ initImage: new TextEncoder().encode("GIF89a garbage") })));
    expect(bad.code).toBe("invalid_argument");
    expect(bad.message).toMatch(/init_image/);
    const dir = tinyModelCopy((d) => rmSync(join(d, "vae_encoder"), { recursive: true }));
    const noEncoder = await createSdPipeline({ ...SETTINGS, modelPath: dir });
    try {
      const err = await domainError(noEncoder.generate(params({ initImage: initPng })));
      expect(err.code).toBe("invalid_argument");
      expect(err.message).toMatch(/image-to-image is unavailable: the model tiny-sd-\w+ has no vae_encoder/);
      expect((await noEncoder.generate(params())).images).toHaveLength(1);
    } finally {
      await noEncoder.model.release();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("txt2img", () => {
  it("batches non-square: latents [N, 4, H/8, W/8] (height first), N images of W x H", async () => {
    const t = await trace(params({ width: 96, height: 64, numImages: 3 }));
    expect(t.initialDims).toEqual([3, 4, 8, 12]);
    expect(t.embedDims).toEqual([6, 77, 32]);
    expect(t.output.images.map((i) => [i.index, i.width, i.height])).toEqual([
      [0, 96, 64],
      [1, 96, 64],
      [2, 96, 64],
    ]);
    for (const image of t.output.images) {
      const read = await readImage(image.bytes);
      expect([read.width, read.height]).toEqual([96, 64]);
    }
  });

  it("takes sizes whose latent the export cannot divide (72 x 40 → latent 5 x 9)", async () => {
    const t = await trace(params({ width: 72, height: 40 }));
    expect(t.initialDims).toEqual([1, 4, 5, 9]);
    const read = await readImage(t.output.images[0].bytes);
    expect([read.width, read.height]).toEqual([72, 40]);
  });

  it("same seed → same bytes; another seed → other bytes", async () => {
    const a = await pipeline.generate(params({ seed: 1234 }));
    const b = await pipeline.generate(params({ seed: 1234 }));
    const c = await pipeline.generate(params({ seed: 1235 }));
    expect(a.seed).toBe(1234);
    expect(same(a.images[0].bytes, b.images[0].bytes)).toBe(true);
    expect(same(a.images[0].bytes, c.images[0].bytes)).toBe(false);
  });

  it("a chunked run (one sample per UNet/VAE call) equals an unsplit one", async () => {
    const p = params({ width: 64, height: 48, numImages: 3, seed: 5 });
    const whole = await trace(p);
    const split = await trace(p, tight);
    expect(maxAbsDiff(split.final, whole.final)).toBeLessThanOrEqual(1e-6 * maxAbs(whole.final));
    for (let i = 0; i < 3; i++) {
      const [x, y] = await Promise.all([readImage(whole.output.images[i].bytes), readImage(split.output.images[i].bytes)]);
      expect(maxAbsDiff(x.data, y.data)).toBeLessThanOrEqual(1);
    }
  });

  it("guidance_scale <= 1 runs the conditional branch alone (the negative prompt plays no part)", async () => {
    const a = await trace(params({ guidanceScale: 1, negativePrompt: "blurry" }));
    const b = await trace(params({ guidanceScale: 1, negativePrompt: "something else entirely" }));
    expect(a.embedDims).toEqual([1, 77, 32]);
    // (The PNG bytes differ: their parameters chunk names the negative prompt.)
    expect(same(new Uint8Array(a.final.buffer), new Uint8Array(b.final.buffer))).toBe(true);
    const guided = await trace(params({ guidanceScale: 7.5 }));
    expect(guided.embedDims).toEqual([2, 77, 32]);
    expect(maxAbsDiff(guided.final, a.final)).toBeGreaterThan(0);
  });

  it("reports a prompt cut at 77 tokens", async () => {
    const long = await pipeline.generate(params({ prompt: "red ".repeat(100), numInferenceSteps: 1 }));
    expect(long.promptTruncated).toBe(true);
    const short = await pipeline.generate(params({ numInferenceSteps: 1 }));
    expect(short.promptTruncated).toBe(false);
  });

  it("stops between steps when cancelled", async () => {
    let seen = 0;
    const err = await domainError(
      pipeline.generate(params({ numInferenceSteps: 6 }), {
        onProgress: () => seen++,
        isCancelled: () => seen >= 2,
      }),
    );
    expect(err.code).toBe("cancelled");
    expect(seen).toBe(2);
  });

  it("measures time inside onnxruntime and the whole run", async () => {
    const out = await pipeline.generate(params());
    expect(out.timings.ortMs).toBeGreaterThan(0);
    expect(out.timings.totalMs).toBeGreaterThanOrEqual(out.timings.ortMs);
    expect(out.timings.encodeMs).toBeGreaterThan(0);
  });
});

describe("every scheduler name", () => {
  it.each(SCHEDULER_NAMES)("%s runs txt2img and is reproducible by seed", async (name) => {
    const p = params({ scheduler: resolveScheduler(name)!, numInferenceSteps: 3, numImages: 2, seed: 8 });
    const a = await trace(p);
    const b = await trace(p);
    expect(a.output.images).toHaveLength(2);
    expect(a.final.every(Number.isFinite)).toBe(true);
    expect(same(new Uint8Array(a.final.buffer), new Uint8Array(b.final.buffer))).toBe(true);
    expect(a.progress.at(-1)![0]).toBe(a.output.stepsRun);
  });
});

describe("output", () => {
  it("PNG carries the A1111 parameters chunk", async () => {
    const out = await pipeline.generate(
      params({ scheduler: resolveScheduler("ddim")!, seed: 31337, width: 64, height: 48, guidanceScale: 6 }),
    );
    const image = out.images[0];
    expect([image.contentType, image.ext]).toEqual(["image/png", "png"]);
    const read = await readImage(image.bytes);
    expect(read.comments.parameters).toBe(
      "a lighthouse at dusk\nNegative prompt: blurry\n" +
        "Steps: 4, Sampler: DDIM, CFG scale: 6, Seed: 31337, Size: 64x48, Model: tiny-sd",
    );
    const img2img = await pipeline.generate(params({ negativePrompt: null, initImage: initPng, numImages: 2 }));
    const second = await readImage(img2img.images[1].bytes);
    expect(second.comments.parameters).toBe(
      "a lighthouse at dusk\n" +
        "Steps: 4, Sampler: Euler, CFG scale: 7.5, Seed: 42, Size: 64x40, Model: tiny-sd, " +
        "Denoising strength: 0.75, Batch size: 2, Batch pos: 1",
    );
  });

  it("JPEG output decodes", async () => {
    const out = await pipeline.generate(params({ outputFormat: "jpeg", numImages: 2 }));
    for (const image of out.images) {
      expect([image.contentType, image.ext]).toEqual(["image/jpeg", "jpg"]);
      const read = await readImage(image.bytes);
      expect([read.format, read.width, read.height]).toEqual(["jpeg", 64, 64]);
    }
  });
});

describe("bad input", () => {
  it("an unknown scheduler", async () => {
    const err = await domainError(
      pipeline.generate(params({ scheduler: { name: "Nope", className: "NopeScheduler" as never, overrides: {} } })),
    );
    expect(err.code).toBe("invalid_argument");
    expect(err.message).toMatch(/unknown scheduler "Nope"/);
  });

  it("sizes that are not multiples of 8, out-of-range counts, LoRA requests", async () => {
    expect((await domainError(pipeline.generate(params({ width: 60 })))).message).toMatch(/width must be a positive multiple of 8/);
    expect((await domainError(pipeline.generate(params({ numImages: 11 })))).code).toBe("invalid_argument");
    expect((await domainError(pipeline.generate(params({ numInferenceSteps: 0 })))).code).toBe("invalid_argument");
    expect((await domainError(pipeline.generate(params({ seed: -1 })))).code).toBe("invalid_argument");
    const lora = await domainError(pipeline.generate(params({ loras: [{ name: "style", weight: 1 }] })));
    expect(lora.message).toMatch(/LoRA/);
  });

  it("a size whose single image cannot fit in the machine's memory is refused before any work", async () => {
    const err = await domainError(pipeline.generate(params({ width: 2048, height: 2048 })));
    expect(err.code).toBe("out_of_memory");
    expect(err.message).toMatch(/^2048x2048 needs about \d+ MB per image in the UNet, more than the \d+ MB/);
  });
});
