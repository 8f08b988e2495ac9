// diffusers' HeunDiscreteScheduler (Karras et al. 2022, Algorithm 1): each inference step is an Euler step and a
// trapezoidal correction, so the UNet runs twice per step and the timesteps repeat ([t0, t1, t1, t2, t2, …]).
import type { NoiseSource } from "./scheduler.types.js";
import { f32, trainSigmas } from "./noise-schedule.js";
import { checkPredictionType, readConfig, type ResolvedConfig } from "./scheduler.base.js";
import {
  SigmaScheduler,
  addScaled,
  checkSigmaRamps,
  derivative,
  predictOriginalFromSigma,
  repeatAfterFirst,
  sigmaSchedule,
  trainingAlphasCumprod,
} from "./sigma-scheduler.base.js";

export const HEUN_DISCRETE_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  prediction_type: "epsilon",
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  clip_sample: false,
  clip_sample_range: 1.0,
  timestep_spacing: "linspace",
  steps_offset: 0,
};
export type HeunDiscreteConfig = typeof HEUN_DISCRETE_DEFAULTS;

const NAME = "HeunDiscreteScheduler";

export class HeunDiscreteScheduler extends SigmaScheduler<HeunDiscreteConfig> {
  readonly order = 2;
  // Held between the Euler half (first order) and the correction (second order) of one step.
  private prevDerivative: Float32Array | null = null;
  private dt: number | null = null;
  private heldSample: Float32Array | null = null;

  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, HEUN_DISCRETE_DEFAULTS, resolved);
    checkPredictionType(NAME, config.prediction_type, ["epsilon", "v_prediction", "sample"]);
    checkSigmaRamps(NAME, config);
    super(config, trainSigmas(trainingAlphasCumprod(config, true)), resolved);
  }

  private get inFirstOrder(): boolean {
    return this.dt === null;
  }

  setTimesteps(numInferenceSteps: number): void {
    const { timesteps, sigmas } = sigmaSchedule(NAME, this.config, this.trainSigmas, numInferenceSteps, this.configBounds);
    // [σ0, σ1, σ1, …, σ_{n-1}, σ_{n-1}, 0]
    this.sigmas = Float64Array.from([...repeatAfterFirst(Float32Array.from(sigmas)), 0]);
    this.timesteps = Float64Array.from(repeatAfterFirst(Float32Array.from(timesteps)));
    this.prevDerivative = null;
    this.dt = null;
    this.heldSample = null;
    this.cursor.reset();
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise: NoiseSource): Float32Array {
    const i = this.currentStepIndex(timestep);
    const first = this.inFirstOrder;
    const sigma = first ? this.sigmas[i] : this.sigmas[i - 1];
    const sigmaNext = first ? this.sigmas[i + 1] : this.sigmas[i];
    // The correction evaluates the model at the Euler point, i.e. at sigma_next.
    const sigmaInput = first ? sigma : sigmaNext;
    const predOriginal = predictOriginalFromSigma(this.config.prediction_type, modelOutput, sample, sigmaInput);
    if (this.config.clip_sample) {
      const range = f32(this.config.clip_sample_range);
      for (let j = 0; j < predOriginal.length; j++) predOriginal[j] = Math.min(Math.max(predOriginal[j], -range), range);
    }
    let prev: Float32Array;
    if (first) {
      const d = derivative(sample, predOriginal, sigma);
      const dt = f32(sigmaNext - sigma);
      this.prevDerivative = d;
      this.dt = dt;
      this.heldSample = sample.slice();
      prev = addScaled(sample, d, dt);
    } else {
      const d = derivative(sample, predOriginal, sigmaNext);
      const held = this.prevDerivative ?? d;
      const mean = d.map((v, j) => f32(held[j] + v) / 2);
      prev = addScaled(this.heldSample ?? sample, mean, this.dt ?? 0);
      this.prevDerivative = null;
      this.dt = null;
      this.heldSample = null;
    }
    this.cursor.stepIndex = i + 1;
    return prev;
  }
}
