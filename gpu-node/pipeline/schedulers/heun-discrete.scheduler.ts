// diffusers' HeunDiscreteScheduler (Karras et al. 2022, Algorithm 1): each inference step is an Euler step and a
// trapezoidal correction, so the UNet runs twice per step and the timesteps repeat ([t0, t1, t1, t2, t2, …]).
import type { NoiseSource, Scheduler } from "./scheduler.types.js";
import {
  alphasCumprod,
  convertSigmas,
  f32,
  interpOnIndexGrid,
  logF32,
  makeBetas,
  sigmaSchedulerTimesteps,
  sigmaToT,
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
  optionalNumber,
  predictOriginalFromSigma,
  readConfig,
  type ResolvedConfig,
} from "./scheduler.base.js";

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

/** [x0, x1, x1, x2, x2, …]: every element after the first twice (torch repeat_interleave). */
export function repeatAfterFirst(values: ArrayLike<number>): number[] {
  const out = [values[0]];
  for (let i = 1; i < values.length; i++) out.push(values[i], values[i]);
  return out;
}

export class HeunDiscreteScheduler implements Scheduler {
  readonly order = 2;
  readonly config: HeunDiscreteConfig;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float64Array = new Float64Array(0);
  private readonly trainSigmas: Float32Array;
  private readonly configSigmaMin: number | null;
  private readonly configSigmaMax: number | null;
  private readonly cursor = new StepCursor();
  // Held between the Euler half (first order) and the correction (second order) of one step.
  private prevDerivative: Float32Array | null = null;
  private dt: number | null = null;
  private heldSample: Float32Array | null = null;

  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, HEUN_DISCRETE_DEFAULTS, resolved);
    this.config = config;
    checkPredictionType(NAME, config.prediction_type, ["epsilon", "v_prediction", "sample"]);
    if (config.use_beta_sigmas) throw configError(NAME, "use_beta_sigmas is not implemented");
    if ([config.use_karras_sigmas, config.use_exponential_sigmas].filter(Boolean).length > 1) {
      throw configError(NAME, "only one of use_karras_sigmas and use_exponential_sigmas can be used");
    }
    this.trainSigmas = trainSigmas(alphasCumprod(makeBetas(config, true)));
    this.configSigmaMin = optionalNumber(resolved, "sigma_min");
    this.configSigmaMax = optionalNumber(resolved, "sigma_max");
  }

  get initNoiseSigma(): number {
    return initNoiseSigmaOf(this.sigmas, this.config.timestep_spacing);
  }

  get stepIndex(): number | null {
    return this.cursor.stepIndex;
  }

  private get inFirstOrder(): boolean {
    return this.dt === null;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    checkStepCount(NAME, numInferenceSteps, c.num_train_timesteps);
    const spaced = sigmaSchedulerTimesteps(c.timestep_spacing, c.num_train_timesteps, numInferenceSteps, c.steps_offset);
    let timesteps: ArrayLike<number> = spaced;
    let sigmas: ArrayLike<number> = Float64Array.from(spaced, (t) => interpOnIndexGrid(t, this.trainSigmas));
    const ramp = c.use_karras_sigmas ? "karras" : c.use_exponential_sigmas ? "exponential" : null;
    if (ramp) {
      const logSigmas = logF32(this.trainSigmas);
      sigmas = convertSigmas(ramp, sigmas, numInferenceSteps, this.configSigmaMin, this.configSigmaMax);
      timesteps = Float64Array.from(sigmas, (s) => sigmaToT(s, logSigmas, "numpy"));
    }
    const withZero = new Float32Array(sigmas.length + 1);
    withZero.set(Float32Array.from(sigmas));
    // [σ0, σ1, σ1, …, σ_{n-1}, σ_{n-1}, 0]
    this.sigmas = Float64Array.from([...repeatAfterFirst(withZero.subarray(0, withZero.length - 1)), 0]);
    this.timesteps = Float64Array.from(repeatAfterFirst(Float32Array.from(timesteps)));
    this.prevDerivative = null;
    this.dt = null;
    this.heldSample = null;
    this.cursor.reset();
  }

  setBeginIndex(index: number): void {
    this.cursor.beginIndex = index;
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const i = this.cursor.ensure(timestep, (t) => indexForTimestep(this.timesteps, t));
    return divideBySigmaNorm(sample, this.sigmas[i]);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise: NoiseSource): Float32Array {
    const i = this.cursor.ensure(timestep, (t) => indexForTimestep(this.timesteps, t));
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

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const i = this.cursor.forAddNoise(timestep, (t) => indexForTimestep(this.timesteps, t));
    return addScaledNoise(original, noise, this.sigmas[i]);
  }
}
