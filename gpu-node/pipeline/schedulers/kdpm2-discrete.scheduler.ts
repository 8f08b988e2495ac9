// diffusers' KDPM2DiscreteScheduler (k-diffusion's sample_dpm_2): a midpoint method in log-sigma, so each step
// evaluates the UNet at σ_i and at the geometric midpoint of σ_i and σ_{i+1}; the timesteps interleave
// [t0, t(mid 1), t1, t(mid 2), t2, …].
import type { NoiseSource, Scheduler } from "./scheduler.types.js";
import {
  alphasCumprod,
  convertSigmas,
  f32,
  interpOnIndexGrid,
  logF32,
  makeBetas,
  roundHalfEven,
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
import { repeatAfterFirst } from "./heun-discrete.scheduler.js";

export const KDPM2_DISCRETE_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  prediction_type: "epsilon",
  timestep_spacing: "linspace",
  steps_offset: 0,
};
export type KDPM2DiscreteConfig = typeof KDPM2_DISCRETE_DEFAULTS;

const NAME = "KDPM2DiscreteScheduler";

/** torch: a.log().lerp(b.log(), 0.5).exp() in float32 (lerp with weight 0.5 is end - (end - self) * 0.5). */
export function logMidpoint(a: number, b: number): number {
  const la = f32(Math.log(a));
  const lb = f32(Math.log(b));
  return f32(Math.exp(f32(lb - f32(f32(lb - la) * 0.5))));
}

/** What both KDPM2 classes build in set_timesteps before their own interpolation. */
export interface KdpmSchedule {
  /** Inference timesteps (float32, or rounded float64 after a Karras/exponential ramp), without the midpoints. */
  timesteps: number[];
  /** σ_0 … σ_{n-1}, 0 as float32. */
  sigmas: Float32Array;
  /** log of the training sigmas (float32), for the midpoints' timesteps. */
  logSigmas: Float32Array;
}

export function kdpmSchedule(
  className: string,
  config: KDPM2DiscreteConfig,
  trainSigmasF32: Float32Array,
  steps: number,
  configMin: number | null,
  configMax: number | null,
): KdpmSchedule {
  checkStepCount(className, steps, config.num_train_timesteps);
  const spaced = sigmaSchedulerTimesteps(config.timestep_spacing, config.num_train_timesteps, steps, config.steps_offset);
  let timesteps: number[] = Array.from(spaced);
  let sigmas: ArrayLike<number> = Float64Array.from(spaced, (t) => interpOnIndexGrid(t, trainSigmasF32));
  const logSigmas = logF32(trainSigmasF32);
  const ramp = config.use_karras_sigmas ? "karras" : config.use_exponential_sigmas ? "exponential" : null;
  if (ramp) {
    sigmas = convertSigmas(ramp, sigmas, steps, configMin, configMax);
    timesteps = Array.from(sigmas, (s) => sigmaToT(s, logSigmas, "numpy"));
    // Only the Karras branch rounds (diffusers' .round()); the exponential one keeps fractions.
    if (ramp === "karras") timesteps = timesteps.map(roundHalfEven);
  }
  const withZero = new Float32Array(sigmas.length + 1);
  withZero.set(Float32Array.from(sigmas));
  return { timesteps, sigmas: withZero, logSigmas };
}

export function checkKdpmConfig(className: string, config: KDPM2DiscreteConfig): void {
  if (config.use_beta_sigmas) throw configError(className, "use_beta_sigmas is not implemented");
  if ([config.use_karras_sigmas, config.use_exponential_sigmas].filter(Boolean).length > 1) {
    throw configError(className, "only one of use_karras_sigmas and use_exponential_sigmas can be used");
  }
  checkPredictionType(className, config.prediction_type, ["epsilon", "v_prediction"]);
}

export class KDPM2DiscreteScheduler implements Scheduler {
  readonly order = 2;
  readonly config: KDPM2DiscreteConfig;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float64Array = new Float64Array(0);
  /** The midpoints, laid out like `sigmas` ([NaN, m1, m1, m2, m2, …, 0, 0, 0]). */
  sigmasInterpol: Float64Array = new Float64Array(0);
  private readonly trainSigmas: Float32Array;
  private readonly configSigmaMin: number | null;
  private readonly configSigmaMax: number | null;
  private readonly cursor = new StepCursor();
  /** The sample at σ_i, held while the midpoint is evaluated (diffusers' self.sample). */
  private heldSample: Float32Array | null = null;

  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, KDPM2_DISCRETE_DEFAULTS, resolved);
    this.config = config;
    checkKdpmConfig(NAME, config);
    this.trainSigmas = trainSigmas(alphasCumprod(makeBetas(config)));
    this.configSigmaMin = optionalNumber(resolved, "sigma_min");
    this.configSigmaMax = optionalNumber(resolved, "sigma_max");
  }

  get initNoiseSigma(): number {
    return initNoiseSigmaOf(this.sigmas, this.config.timestep_spacing);
  }

  get stepIndex(): number | null {
    return this.cursor.stepIndex;
  }

  setTimesteps(numInferenceSteps: number): void {
    const { timesteps, sigmas, logSigmas } = kdpmSchedule(
      NAME,
      this.config,
      this.trainSigmas,
      numInferenceSteps,
      this.configSigmaMin,
      this.configSigmaMax,
    );
    const n = sigmas.length;
    // interpol[i] = sqrt(σ_i σ_{i-1}) with roll(1); index 0 pairs σ_0 with the final 0 and is NaN (never used).
    const interpol = Array.from(sigmas, (s, i) => logMidpoint(s, sigmas[(i - 1 + n) % n]));
    this.sigmas = Float64Array.from([...repeatAfterFirst(sigmas), sigmas[n - 1]]);
    this.sigmasInterpol = Float64Array.from([...repeatAfterFirst(interpol), interpol[n - 1]]);
    const midTimesteps = interpol.slice(1, -1).map((s) => sigmaToT(s, logSigmas, "torch"));
    const interleaved = [timesteps[0]];
    for (let i = 0; i < midTimesteps.length; i++) interleaved.push(midTimesteps[i], timesteps[i + 1]);
    this.timesteps = Float64Array.from(interleaved);
    this.heldSample = null;
    this.cursor.reset();
  }

  setBeginIndex(index: number): void {
    this.cursor.beginIndex = index;
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const i = this.cursor.ensure(timestep, (t) => indexForTimestep(this.timesteps, t));
    const sigma = this.heldSample === null ? this.sigmas[i] : this.sigmasInterpol[i];
    return divideBySigmaNorm(sample, sigma);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise: NoiseSource): Float32Array {
    const i = this.cursor.ensure(timestep, (t) => indexForTimestep(this.timesteps, t));
    const first = this.heldSample === null;
    const sigma = first ? this.sigmas[i] : this.sigmas[i - 1];
    const sigmaInterpol = first ? this.sigmasInterpol[i + 1] : this.sigmasInterpol[i];
    const sigmaNext = first ? this.sigmas[i + 1] : this.sigmas[i];
    const predOriginal = predictOriginalFromSigma(this.config.prediction_type, modelOutput, sample, first ? sigma : sigmaInterpol);
    let prev: Float32Array;
    if (first) {
      // Euler half step to the midpoint.
      this.heldSample = sample.slice();
      prev = addScaled(sample, derivative(sample, predOriginal, sigma), f32(sigmaInterpol - sigma));
    } else {
      // The full step from σ_i with the midpoint's derivative.
      prev = addScaled(this.heldSample ?? sample, derivative(sample, predOriginal, sigmaInterpol), f32(sigmaNext - sigma));
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
