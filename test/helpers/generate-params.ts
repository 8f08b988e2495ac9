// A complete GenerateParams (what the gpu-node hands its pipeline): a small Euler text-to-image run on the tiny
// model. Tests and benches override what they vary.
import type { GenerateParams } from "../../gpu-node/pipeline/pipeline.types.js";
import { resolveScheduler } from "../../shared/schedulers/scheduler-names.js";

export function generateParams(overrides: Partial<GenerateParams> = {}): GenerateParams {
  return {
    prompt: "a red bicycle",
    negativePrompt: null,
    width: 64,
    height: 64,
    numImages: 1,
    numInferenceSteps: 3,
    guidanceScale: 7.5,
    strength: 0.75,
    scheduler: resolveScheduler("Euler")!,
    seed: 2024,
    initImage: null,
    outputFormat: "png",
    loras: [],
    ...overrides,
  };
}
