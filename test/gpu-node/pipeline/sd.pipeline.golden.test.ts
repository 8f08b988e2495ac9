// diffusers' StableDiffusionPipeline (0.33.1, torch CPU) on models/tiny-sd, compared stage by stage so a
// mismatch names its stage and step. Tolerances from the goldens README.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readImage } from "../../../gpu-node/pipeline/image/image.codec.js";
import type { GenerateParams } from "../../../gpu-node/pipeline/pipeline.types.js";
import { createSdPipeline } from "../../../gpu-node/pipeline/sd-pipeline.factory.js";
import type { SdPipeline } from "../../../gpu-node/pipeline/sd.pipeline.js";
import { resolveScheduler } from "../../../shared/schedulers/scheduler-names.js";
import { TINY_SD_DIR, loadGolden, maxAbs, maxAbsDiff, type GoldenCase } from "../../helpers/goldens.js";

let pipeline: SdPipeline;
beforeAll(async () => {
  pipeline = await createSdPipeline({
    modelPath: TINY_SD_DIR,
    modelName: null,
    device: "cpu",
    intraOpThreads: 1,
    graphOptimizationLevel: "all",
    memoryBudgetMb: 2048,
    jpegQuality: 95,
  });
});
afterAll(() => pipeline.model.release());

const CASES: Array<[GoldenCase, string]> = [
  ["txt2img_euler", "EulerDiscreteScheduler"],
  ["txt2img_ddim", "DDIMScheduler"],
];

describe.each(CASES)("golden %s", (name, schedulerClass) => {
  const golden = loadGolden(name);
  const p = golden.params;
  const captured = {
    embeds: null as Float32Array | null,
    initial: null as Float32Array | null,
    steps: [] as Array<{ t: number; latents: Float32Array }>,
    final: null as Float32Array | null,
    image: null as Float32Array | null,
    png: null as Uint8Array | null,
    stepsRun: 0,
    progress: [] as number[],
  };

  beforeAll(async () => {
    const scheduler = resolveScheduler(schedulerClass)!;
    const params: GenerateParams = {
      prompt: p.prompt,
      negativePrompt: p.negative_prompt,
      width: p.width,
      height: p.height,
      numImages: 1,
      numInferenceSteps: p.num_inference_steps,
      guidanceScale: p.guidance_scale,
      strength: 0.75,
      scheduler,
      seed: p.seed,
      initImage: null,
      outputFormat: "png",
      loras: [],
    };
    const output = await pipeline.generate(params, {
      onProgress: (e) => captured.progress.push(e.step),
      inspect: {
        promptEmbeds: (data) => (captured.embeds = data.slice()),
        initialLatents: (data) => (captured.initial = data.slice()),
        step: (_i, t, latents) => captured.steps.push({ t, latents: latents.slice() }),
        finalLatents: (data) => (captured.final = data.slice()),
        image: (data) => (captured.image = data.slice()),
      },
    });
    captured.png = output.images[0].bytes;
    captured.stepsRun = output.stepsRun;
  });

  it("prompt embeddings equal prompt_embeds.bin ([negative, positive])", () => {
    const expected = golden.tensor("prompt_embeds").data;
    expect(maxAbsDiff(captured.embeds!, expected)).toBeLessThan(1e-4 * Math.max(1, maxAbs(expected)));
  });

  it("initial latents equal noise x init_noise_sigma", () => {
    const expected = golden.tensor("initial_latents").data;
    expect(maxAbsDiff(captured.initial!, expected)).toBeLessThanOrEqual(1e-6 * maxAbs(expected));
  });

  it("runs the golden timesteps with progress per step", () => {
    expect(captured.steps.map((s) => s.t)).toEqual(p.timesteps_used.map((t) => Math.fround(t)));
    expect(captured.stepsRun).toBe(p.num_inference_steps);
    expect(captured.progress).toEqual(p.timesteps_used.map((_, i) => i + 1));
  });

  it("latents after every step match step_latents.bin", () => {
    const all = golden.tensor("step_latents");
    const perStep = all.data.length / all.shape[0];
    for (let i = 0; i < all.shape[0]; i++) {
      const expected = all.data.subarray(i * perStep, (i + 1) * perStep);
      const diff = maxAbsDiff(captured.steps[i].latents, expected);
      expect(diff, `step ${i} (t=${p.timesteps_used[i]}): max |diff| ${diff} vs max |x| ${maxAbs(expected)}`).toBeLessThan(
        1e-3 * maxAbs(expected),
      );
    }
  });

  it("final latents match within 1e-3 of their largest magnitude", () => {
    const expected = golden.tensor("final_latents").data;
    expect(maxAbsDiff(captured.final!, expected)).toBeLessThan(1e-3 * maxAbs(expected));
  });

  it("the decoded image matches image.bin within 2e-3 and the PNG within one level", async () => {
    const expected = golden.tensor("image"); // NHWC
    const [, h, w] = expected.shape;
    const nhwc = new Float32Array(expected.data.length);
    for (let c = 0; c < 3; c++) for (let q = 0; q < h * w; q++) nhwc[q * 3 + c] = captured.image![c * h * w + q];
    expect(maxAbsDiff(nhwc, expected.data)).toBeLessThan(2e-3);
    const ours = await readImage(captured.png!);
    const theirs = await readImage(golden.png());
    expect([ours.width, ours.height]).toEqual([w, h]);
    expect(maxAbsDiff(ours.data, theirs.data)).toBeLessThanOrEqual(1);
  });
});
