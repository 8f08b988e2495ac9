// diffusers' EulerAncestralDiscreteScheduler ("Euler a"): an Euler step down to sigma_down, then fresh noise of
// size sigma_up, drawn from the request's generator at every step (the last one too, where sigma_up is 0).
import type { NoiseSource, Scheduler } from "./scheduler.types.js";
import {
  alphasCumprod,
  f32,
  interpOnIndexGrid,
  makeBetas,
  rescaleZeroTerminalSnr,
  sigmaSchedulerTimesteps,
  trainSigmas,
} from "./noise-schedule.js";
import {
  StepCursor,
  addScaled,
  addScaledNoise,
  checkPredictionType,
  checkStepCount,
  configError,
  derivative,
  divideBySigmaNorm,
  indexForTimestep,
  initNoiseSigmaOf,
  predictOriginalFromSigma,
  readConfig,
  type ResolvedConfig,
} from "./scheduler.base.js";

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

export class EulerAncestralDiscreteScheduler implements Scheduler {
  readonly order = 1;
  readonly config: EulerAncestralDiscreteConfig;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float64Array = new Float64Array(0);
  private readonly trainSigmas: Float32Array;
  private readonly cursor = new StepCursor();

  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, EULER_ANCESTRAL_DISCRETE_DEFAULTS, resolved);
    this.config = config;
    checkPredictionType(NAME, config.prediction_type, ["epsilon", "v_prediction"]);
    let betas = makeBetas(config);
    if (config.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
    const cumprod = alphasCumprod(betas);
    if (config.rescale_betas_zero_snr) cumprod[cumprod.length - 1] = 2 ** -24;
    this.trainSigmas = trainSigmas(cumprod);
  }

  get initNoiseSigma(): number {
    return initNoiseSigmaOf(this.sigmas, this.config.timestep_spacing);
  }

  get stepIndex(): number | null {
    return this.cursor.stepIndex;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    checkStepCount(NAME, numInferenceSteps, c.num_train_timesteps);
    const timesteps = sigmaSchedulerTimesteps(c.timestep_spacing, c.num_train_timesteps, numInferenceSteps, c.steps_offset);
    const sigmas = new Float32Array(timesteps.length + 1);
    timesteps.forEach((t, i) => (sigmas[i] = interpOnIndexGrid(t, this.trainSigmas)));
    this.sigmas = Float64Array.from(sigmas);
    this.timesteps = Float64Array.from(timesteps);
    this.cursor.reset();
  }

  setBeginIndex(index: number): void {
    this.cursor.beginIndex = index;
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const i = this.cursor.ensure(timestep, (t) => indexForTimestep(this.timesteps, t));
    return divideBySigmaNorm(sample, this.sigmas[i]);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise: NoiseSource): Float32Array {
    const i = this.cursor.ensure(timestep, (t) => indexForTimestep(this.timesteps, t));
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

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const i = this.cursor.forAddNoise(timestep, (t) => indexForTimestep(this.timesteps, t));
    return addScaledNoise(original, noise, this.sigmas[i]);
  }
}
