// diffusers' EulerAncestralDiscreteScheduler ("Euler a"): an Euler step down to sigma_down, then fresh noise of
// size sigma_up, drawn from the request's generator at every step (the last one too, where sigma_up is 0).
import type { NoiseSource } from "./scheduler.types.js";
import { f32, trainSigmas } from "./noise-schedule.js";
import { checkPredictionType, readConfig, type ResolvedConfig } from "./scheduler.base.js";
import {
  SigmaScheduler,
  addScaled,
  derivative,
  interpolateSigmas,
  predictOriginalFromSigma,
  spacedTimesteps,
  trainingAlphasCumprod,
  withFinalSigma,
} from "./sigma-scheduler.base.js";

export const EULER_ANCESTRAL_DISCRETE_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  prediction_type: "epsilon",
  timestep_spacing: "linspace",
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};
export type EulerAncestralDiscreteConfig = typeof EULER_ANCESTRAL_DISCRETE_DEFAULTS;

const NAME = "EulerAncestralDiscreteScheduler";

export class EulerAncestralDiscreteScheduler extends SigmaScheduler<EulerAncestralDiscreteConfig> {
  readonly order = 1;

  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, EULER_ANCESTRAL_DISCRETE_DEFAULTS, resolved);
    checkPredictionType(NAME, config.prediction_type, ["epsilon", "v_prediction"]);
    super(config, trainSigmas(trainingAlphasCumprod(config)), resolved);
  }

  setTimesteps(numInferenceSteps: number): void {
    // No Karras / exponential ramps in this class.
    const timesteps = spacedTimesteps(NAME, this.config, numInferenceSteps);
    this.sigmas = Float64Array.from(withFinalSigma(interpolateSigmas(timesteps, this.trainSigmas)));
    this.timesteps = Float64Array.from(timesteps);
    this.cursor.reset();
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise: NoiseSource): Float32Array {
    const i = this.currentStepIndex(timestep);
    const sigma = this.sigmas[i];
    const predOriginal = predictOriginalFromSigma(this.config.prediction_type, modelOutput, sample, sigma);
    const sigmaTo = this.sigmas[i + 1];
    const sigmaToSq = f32(sigmaTo * sigmaTo);
    const sigmaSq = f32(sigma * sigma);
    const sigmaUp = f32(Math.sqrt(f32(f32(sigmaToSq * f32(sigmaSq - sigmaToSq)) / sigmaSq)));
    const sigmaDown = f32(Math.sqrt(f32(sigmaToSq - f32(sigmaUp * sigmaUp))));
    const prev = addScaled(sample, derivative(sample, predOriginal, sigma), f32(sigmaDown - sigma));
    const eps = noise.randn(modelOutput.length);
    const out = addScaled(prev, eps, sigmaUp);
    this.cursor.stepIndex = i + 1;
    return out;
  }
}
