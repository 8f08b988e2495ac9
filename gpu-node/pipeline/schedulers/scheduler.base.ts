// What the scheduler classes share beyond the noise schedule: reading their config, diffusers' step_index /
// begin_index bookkeeping, and the float32 elementwise operations torch performs on latents.
import { DomainError } from "../../../shared/errors/error-codes.js";
import { f32 } from "./noise-schedule.js";

/** A scheduler's config after from_config resolution: its own keys plus the model file's other keys. */
export type ResolvedConfig = Record<string, unknown>;

/**
 * Reads a class's own keys from the resolved config: a value must have its default's JSON type (null defaults
 * accept null, a number, a string or an array). Keys the class does not own are not read here; the classes that
 * need them (a `sigma_min` carried over from another class, which diffusers' `hasattr` sees) use optionalNumber.
 */
export function readConfig<T extends Record<string, unknown>>(className: string, defaults: T, resolved: ResolvedConfig): T {
  const out: Record<string, unknown> = {};
  for (const [key, fallback] of Object.entries(defaults)) {
    const value = Object.hasOwn(resolved, key) ? resolved[key] : fallback;
    if (fallback !== null && value !== null && typeof value !== typeof fallback) {
      throw configError(className, `${key} must be a ${typeof fallback}, got ${JSON.stringify(value)}`);
    }
    if (fallback === null && value !== null && typeof value !== "number" && typeof value !== "string" && !Array.isArray(value)) {
      throw configError(className, `${key} has an unexpected value ${JSON.stringify(value)}`);
    }
    out[key] = value;
  }
  return out as T;
}

/** A config value diffusers would reject (or one this port does not implement): the model's setup is at fault. */
export function configError(className: string, message: string): DomainError {
  return new DomainError("internal", `${className}: ${message}`);
}

/** Fails at construction (not mid-generation) for a prediction_type the class does not handle. */
export function checkPredictionType(className: string, type: string, allowed: readonly string[]): void {
  if (!allowed.includes(type)) {
    throw configError(className, `prediction_type "${type}" is not supported; expected one of ${allowed.join(", ")}`);
  }
}

/** A number the resolved config carries under `key` (its own or another class's), else null. */
export function optionalNumber(resolved: ResolvedConfig, key: string): number | null {
  const value = resolved[key];
  return typeof value === "number" ? value : null;
}

export function checkStepCount(className: string, steps: number, numTrain: number): void {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new DomainError("invalid_argument", `${className}: num_inference_steps must be a positive integer, got ${steps}`);
  }
  if (steps > numTrain) {
    throw new DomainError(
      "invalid_argument",
      `${className}: num_inference_steps (${steps}) cannot be larger than num_train_timesteps (${numTrain})`,
    );
  }
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

/** sqrt(ᾱ)·x0 + sqrt(1-ᾱ)·noise (DDPM-family add_noise). */
export function addNoiseAlphaCumprod(original: Float32Array, noise: Float32Array, alphaCumprod: number): Float32Array {
  checkSameLength(original, noise);
  const a = f32(Math.sqrt(alphaCumprod));
  const b = f32(Math.sqrt(f32(1 - alphaCumprod)));
  const out = new Float32Array(original.length);
  for (let i = 0; i < out.length; i++) out[i] = f32(a * original[i]) + f32(b * noise[i]);
  return out;
}

export function checkSameLength(a: Float32Array, b: Float32Array): void {
  if (a.length !== b.length) throw new DomainError("internal", `tensor sizes differ: ${a.length} vs ${b.length}`);
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

/** initial noise scale of the sigma schedulers: max sigma, or sqrt(max² + 1) for leading spacing. */
export function initNoiseSigmaOf(sigmas: ArrayLike<number>, spacing: string): number {
  let max = -Infinity;
  for (let i = 0; i < sigmas.length; i++) max = Math.max(max, sigmas[i]);
  if (spacing === "linspace" || spacing === "trailing") return max;
  return f32(Math.sqrt(f32(f32(max * max) + 1)));
}

/** The sigma appended after the last step: 0, or the smallest training sigma ("sigma_min"). */
export function finalSigma(className: string, kind: string, trainSigmasF32: Float32Array): number {
  if (kind === "zero") return 0;
  if (kind === "sigma_min") return trainSigmasF32[0];
  throw configError(className, `final_sigmas_type must be "zero" or "sigma_min", got "${kind}"`);
}
