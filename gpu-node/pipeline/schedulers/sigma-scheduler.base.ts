// What the k-diffusion style schedulers (Euler, Euler a, Heun, LMS, KDPM2, KDPM2 a, DPM++) share: training sigmas,
// the common part of set_timesteps (spacing, interpolation, Karras / exponential ramps), diffusers' step_index /
// begin_index bookkeeping, scale_model_input, add_noise, and the float32 elementwise maths of their steps.
// Each class file keeps its step() and whatever its diffusers class does differently.
import type { NoiseSource, Scheduler } from "./scheduler.types.js";
import { DomainError } from "../../../shared/errors/error-codes.js";
import {
  alphasCumprod,
  convertSigmas,
  f32,
  interpOnIndexGrid,
  logF32,
  makeBetas,
  rescaleZeroTerminalSnr,
  sigmaSchedulerTimesteps,
  sigmaToT,
  type BetaConfig,
} from "./noise-schedule.js";
import { checkSameLength, checkStepCount, configError, optionalNumber, type ResolvedConfig } from "./scheduler.base.js";

/** The config keys every sigma scheduler has. */
export interface SigmaConfig extends BetaConfig {
  prediction_type: string;
  timestep_spacing: string;
  steps_offset: number;
}

/** The keys of the classes that offer Karras / exponential sigma ramps. */
export interface SigmaRampConfig {
  use_karras_sigmas: boolean;
  use_exponential_sigmas: boolean;
  use_beta_sigmas: boolean;
}

export type SigmaRamp = "karras" | "exponential";

/** The sigma_min / sigma_max a ramp runs between; null takes that end from the sigmas it replaces. */
export interface SigmaBounds {
  min: number | null;
  max: number | null;
}

export function sigmaRampOf(config: SigmaRampConfig): SigmaRamp | null {
  return config.use_karras_sigmas ? "karras" : config.use_exponential_sigmas ? "exponential" : null;
}

export function checkSigmaRamps(className: string, config: SigmaRampConfig): void {
  if (config.use_beta_sigmas) throw configError(className, "use_beta_sigmas is not implemented");
  if ([config.use_karras_sigmas, config.use_exponential_sigmas].filter(Boolean).length > 1) {
    throw configError(className, "only one of use_karras_sigmas and use_exponential_sigmas can be used");
  }
}

/**
 * The training ᾱ of a sigma scheduler. Zero terminal SNR (rescale_betas_zero_snr, a key only Euler, Euler a and
 * DPM++ have) would make the last sigma infinite; diffusers pins ᾱ_T to 2^-24 instead.
 * `allowExp` because only Heun accepts the "exp" beta schedule.
 */
export function trainingAlphasCumprod(config: BetaConfig & { rescale_betas_zero_snr?: boolean }, allowExp = false): Float32Array {
  let betas = makeBetas(config, allowExp);
  if (config.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
  const cumprod = alphasCumprod(betas);
  if (config.rescale_betas_zero_snr) cumprod[cumprod.length - 1] = 2 ** -24;
  return cumprod;
}

/** The inference timesteps for `steps` (float32, descending), after checking the count. */
export function spacedTimesteps(className: string, config: SigmaConfig, steps: number): Float32Array {
  checkStepCount(className, steps, config.num_train_timesteps);
  return sigmaSchedulerTimesteps(config.timestep_spacing, config.num_train_timesteps, steps, config.steps_offset);
}

/** The training sigmas at (fractional) timesteps: np.interp, float64. */
export function interpolateSigmas(timesteps: ArrayLike<number>, trainSigmasF32: Float32Array): Float64Array {
  return Float64Array.from(timesteps, (t) => interpOnIndexGrid(t, trainSigmasF32));
}

/** A Karras / exponential ramp in place of `sigmas`, with the fractional timesteps _sigma_to_t finds for it. */
export function rampedSchedule(
  ramp: SigmaRamp,
  sigmas: ArrayLike<number>,
  steps: number,
  trainSigmasF32: Float32Array,
  bounds: SigmaBounds,
): { sigmas: Float64Array; timesteps: Float64Array } {
  const logSigmas = logF32(trainSigmasF32);
  const ramped = convertSigmas(ramp, sigmas, steps, bounds.min, bounds.max);
  return { sigmas: ramped, timesteps: Float64Array.from(ramped, (s) => sigmaToT(s, logSigmas, "numpy")) };
}

/**
 * The start of set_timesteps in Heun, LMS and KDPM2 (and Euler's linear interpolation): spaced timesteps, the
 * training sigmas interpolated at them, then the ramp the config asks for, if any.
 */
export function sigmaSchedule(
  className: string,
  config: SigmaConfig & SigmaRampConfig,
  trainSigmasF32: Float32Array,
  steps: number,
  bounds: SigmaBounds,
): { timesteps: ArrayLike<number>; sigmas: ArrayLike<number> } {
  const timesteps = spacedTimesteps(className, config, steps);
  const sigmas = interpolateSigmas(timesteps, trainSigmasF32);
  const ramp = sigmaRampOf(config);
  return ramp ? rampedSchedule(ramp, sigmas, steps, trainSigmasF32, bounds) : { timesteps, sigmas };
}

/** The sigmas as float32 with the one after the last step appended. */
export function withFinalSigma(sigmas: ArrayLike<number>, last = 0): Float32Array {
  const all = new Float32Array(sigmas.length + 1);
  all.set(Float32Array.from(sigmas));
  all[sigmas.length] = last;
  return all;
}

/** The sigma appended after the last step: 0, or the smallest training sigma ("sigma_min"). */
export function finalSigma(className: string, kind: string, trainSigmasF32: Float32Array): number {
  if (kind === "zero") return 0;
  if (kind === "sigma_min") return trainSigmasF32[0];
  throw configError(className, `final_sigmas_type must be "zero" or "sigma_min", got "${kind}"`);
}

/** [x0, x1, x1, x2, x2, …]: every element after the first twice (torch repeat_interleave, 2nd-order schedules). */
export function repeatAfterFirst(values: ArrayLike<number>): number[] {
  const out = [values[0]];
  for (let i = 1; i < values.length; i++) out.push(values[i], values[i]);
  return out;
}

/** initial noise scale of the sigma schedulers: max sigma, or sqrt(max² + 1) for leading spacing. */
export function initNoiseSigmaOf(sigmas: ArrayLike<number>, spacing: string): number {
  let max = -Infinity;
  for (let i = 0; i < sigmas.length; i++) max = Math.max(max, sigmas[i]);
  if (spacing === "linspace" || spacing === "trailing") return max;
  return f32(Math.sqrt(f32(f32(max * max) + 1)));
}

/**
 * diffusers' index_for_timestep for the k-diffusion style schedulers: the first match, or the second when the
 * timestep repeats (so a run started part-way, as img2img does, does not skip a sigma).
 */
export function indexForTimestep(timesteps: ArrayLike<number>, timestep: number): number {
  const matches: number[] = [];
  for (let i = 0; i < timesteps.length && matches.length < 2; i++) if (timesteps[i] === timestep) matches.push(i);
  if (matches.length === 0) throw new DomainError("internal", `timestep ${timestep} is not in the scheduler's timesteps`);
  return matches.length > 1 ? matches[1] : matches[0];
}

/** The step_index / begin_index pair of diffusers' sigma schedulers. */
export class StepCursor {
  stepIndex: number | null = null;
  beginIndex: number | null = null;

  reset(): void {
    this.stepIndex = null;
    this.beginIndex = null;
  }

  /** _init_step_index when the loop starts: begin_index if the pipeline set one, else found from the timestep. */
  ensure(timestep: number, find: (timestep: number) => number): number {
    if (this.stepIndex === null) this.stepIndex = this.beginIndex ?? find(timestep);
    return this.stepIndex;
  }

  /** The index add_noise uses: the timestep's own when no begin index, else the current or beginning one. */
  forAddNoise(timestep: number, find: (timestep: number) => number): number {
    if (this.beginIndex === null) return find(timestep);
    return this.stepIndex ?? this.beginIndex;
  }
}

/**
 * The Scheduler surface the sigma classes have in common. Subclasses build `timesteps` / `sigmas` in
 * setTimesteps (resetting the cursor), compute their step, and override what their diffusers class does its own
 * way (DPM++: index_for_timestep, scale_model_input, add_noise, init_noise_sigma; KDPM2: scale_model_input).
 */
export abstract class SigmaScheduler<C extends SigmaConfig> implements Scheduler {
  abstract readonly order: number;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float64Array = new Float64Array(0);
  protected readonly cursor = new StepCursor();
  /**
   * The config's sigma_min / sigma_max. They are only Euler's keys, but a model file may carry them and diffusers'
   * ramps in the other classes see them too (through hasattr(self.config, ...)).
   */
  protected readonly configBounds: SigmaBounds;

  protected constructor(
    readonly config: C,
    protected readonly trainSigmas: Float32Array,
    resolved: ResolvedConfig,
  ) {
    this.configBounds = { min: optionalNumber(resolved, "sigma_min"), max: optionalNumber(resolved, "sigma_max") };
  }

  abstract setTimesteps(numInferenceSteps: number): void;
  abstract step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise: NoiseSource): Float32Array;

  get initNoiseSigma(): number {
    return initNoiseSigmaOf(this.sigmas, this.config.timestep_spacing);
  }

  get stepIndex(): number | null {
    return this.cursor.stepIndex;
  }

  setBeginIndex(index: number): void {
    this.cursor.beginIndex = index;
  }

  protected indexForTimestep(timestep: number): number {
    return indexForTimestep(this.timesteps, timestep);
  }

  /** The step index for this call: found (or taken from begin_index) on the loop's first call. */
  protected currentStepIndex(timestep: number): number {
    return this.cursor.ensure(timestep, (t) => this.indexForTimestep(t));
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    return divideBySigmaNorm(sample, this.sigmas[this.currentStepIndex(timestep)]);
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const i = this.cursor.forAddNoise(timestep, (t) => this.indexForTimestep(t));
    return addScaledNoise(original, noise, this.sigmas[i]);
  }
}

/** sample / ((sigma**2 + 1) ** 0.5), each operation rounded to float32 as torch does. */
export function divideBySigmaNorm(sample: Float32Array, sigma: number): Float32Array {
  const norm = f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
  return sample.map((x) => x / norm);
}

/** original + noise * sigma (k-diffusion add_noise). */
export function addScaledNoise(original: Float32Array, noise: Float32Array, sigma: number): Float32Array {
  checkSameLength(original, noise);
  const out = new Float32Array(original.length);
  for (let i = 0; i < out.length; i++) out[i] = original[i] + f32(noise[i] * sigma);
  return out;
}

/** The x0 estimate of a sigma (k-diffusion) scheduler for epsilon / v_prediction / sample models. */
export function predictOriginalFromSigma(
  predictionType: string,
  modelOutput: Float32Array,
  sample: Float32Array,
  sigma: number,
): Float32Array {
  checkSameLength(modelOutput, sample);
  const out = new Float32Array(sample.length);
  switch (predictionType) {
    case "epsilon":
      for (let i = 0; i < out.length; i++) out[i] = sample[i] - f32(sigma * modelOutput[i]);
      return out;
    case "v_prediction": {
      const c2 = f32(f32(sigma * sigma) + 1);
      const c1 = f32(-sigma / f32(Math.sqrt(c2)));
      for (let i = 0; i < out.length; i++) out[i] = f32(modelOutput[i] * c1) + f32(sample[i] / c2);
      return out;
    }
    case "sample":
      out.set(modelOutput);
      return out;
  }
  throw new DomainError("internal", `prediction_type "${predictionType}" is not supported`);
}

/** (sample - x0) / sigma: the ODE derivative of the k-diffusion samplers. */
export function derivative(sample: Float32Array, predOriginal: Float32Array, sigma: number): Float32Array {
  const out = new Float32Array(sample.length);
  for (let i = 0; i < out.length; i++) out[i] = f32(sample[i] - predOriginal[i]) / sigma;
  return out;
}

/** base + direction * scale (the Euler-type update). */
export function addScaled(base: Float32Array, direction: Float32Array, scale: number): Float32Array {
  const out = new Float32Array(base.length);
  for (let i = 0; i < out.length; i++) out[i] = base[i] + f32(direction[i] * scale);
  return out;
}
