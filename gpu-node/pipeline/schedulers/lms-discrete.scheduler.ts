// diffusers' LMSDiscreteScheduler: linear multistep (order 4) on the ODE derivatives, with coefficients that
// integrate the Lagrange basis polynomials over [σ_i, σ_{i+1}]. diffusers integrates with scipy's quad; the
// integrand is a polynomial of degree ≤ 3, so 5-point Gauss-Legendre (exact to degree 9) gives the exact value.
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

export const LMS_DISCRETE_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  prediction_type: "epsilon",
  timestep_spacing: "linspace",
  steps_offset: 0,
};
export type LMSDiscreteConfig = typeof LMS_DISCRETE_DEFAULTS;

const NAME = "LMSDiscreteScheduler";
/** diffusers' step() default order; the pipelines never pass another. */
const LMS_ORDER = 4;

// 5-point Gauss-Legendre nodes and weights on [-1, 1].
const GL_NODES = [
  0, -0.5384693101056831, 0.5384693101056831, -0.9061798459386640, 0.9061798459386640,
];
const GL_WEIGHTS = [
  0.5688888888888889, 0.4786286704993665, 0.4786286704993665, 0.2369268850561891, 0.2369268850561891,
];

/** ∫_a^b f(τ) dτ, exact for polynomials of degree ≤ 9. */
export function integratePolynomial(f: (tau: number) => number, a: number, b: number): number {
  const half = (b - a) / 2;
  const mid = (a + b) / 2;
  let sum = 0;
  for (let k = 0; k < GL_NODES.length; k++) sum += GL_WEIGHTS[k] * f(mid + half * GL_NODES[k]);
  return sum * half;
}

export class LMSDiscreteScheduler implements Scheduler {
  readonly order = 1;
  readonly config: LMSDiscreteConfig;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float64Array = new Float64Array(0);
  private readonly trainSigmas: Float32Array;
  private readonly cursor = new StepCursor();
  /** The last (up to four) derivatives, oldest first. */
  private derivatives: Float32Array[] = [];
  // sigma_min / sigma_max are not LMS keys, but a model file may carry them and diffusers' exponential ramp sees them.
  private readonly configSigmaMin: number | null;
  private readonly configSigmaMax: number | null;

  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, LMS_DISCRETE_DEFAULTS, resolved);
    this.config = config;
    checkPredictionType(NAME, config.prediction_type, ["epsilon", "v_prediction", "sample"]);
    if (config.use_beta_sigmas) throw configError(NAME, "use_beta_sigmas is not implemented");
    if ([config.use_karras_sigmas, config.use_exponential_sigmas].filter(Boolean).length > 1) {
      throw configError(NAME, "only one of use_karras_sigmas and use_exponential_sigmas can be used");
    }
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
    const c = this.config;
    checkStepCount(NAME, numInferenceSteps, c.num_train_timesteps);
    const spaced = sigmaSchedulerTimesteps(c.timestep_spacing, c.num_train_timesteps, numInferenceSteps, c.steps_offset);
    let timesteps: ArrayLike<number> = spaced;
    let sigmas: ArrayLike<number> = Float64Array.from(spaced, (t) => interpOnIndexGrid(t, this.trainSigmas));
    const ramp = c.use_karras_sigmas ? "karras" : c.use_exponential_sigmas ? "exponential" : null;
    if (ramp) {
      // LMS's Karras ramp ignores any sigma_min/sigma_max in the config (its _convert_to_karras does not read them).
      const configMin = ramp === "karras" ? null : this.configSigmaMin;
      const configMax = ramp === "karras" ? null : this.configSigmaMax;
      const logSigmas = logF32(this.trainSigmas);
      sigmas = convertSigmas(ramp, sigmas, numInferenceSteps, configMin, configMax);
      timesteps = Float64Array.from(sigmas, (s) => sigmaToT(s, logSigmas, "numpy"));
    }
    const all = new Float32Array(sigmas.length + 1);
    all.set(Float32Array.from(sigmas));
    this.sigmas = Float64Array.from(all);
    this.timesteps = Float64Array.from(Float32Array.from(timesteps));
    this.cursor.reset();
    this.derivatives = [];
  }

  setBeginIndex(index: number): void {
    this.cursor.beginIndex = index;
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const i = this.cursor.ensure(timestep, (t) => indexForTimestep(this.timesteps, t));
    return divideBySigmaNorm(sample, this.sigmas[i]);
  }

  /** The coefficient of the derivative `currentOrder` steps back: ∫ Π_{k≠current} (τ-σ_{t-k})/(σ_{t-current}-σ_{t-k}). */
  lmsCoefficient(order: number, t: number, currentOrder: number): number {
    const s = this.sigmas;
    const basis = (tau: number) => {
      let prod = 1;
      for (let k = 0; k < order; k++) {
        if (k === currentOrder) continue;
        prod *= (tau - s[t - k]) / (s[t - currentOrder] - s[t - k]);
      }
      return prod;
    };
    return integratePolynomial(basis, s[t], s[t + 1]);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise: NoiseSource): Float32Array {
    const i = this.cursor.ensure(timestep, (t) => indexForTimestep(this.timesteps, t));
    const sigma = this.sigmas[i];
    const predOriginal = predictOriginalFromSigma(this.config.prediction_type, modelOutput, sample, sigma);
    this.derivatives.push(derivative(sample, predOriginal, sigma));
    if (this.derivatives.length > LMS_ORDER) this.derivatives.shift();
    const order = Math.min(i + 1, LMS_ORDER);
    // sum(coeff * derivative) over the newest derivative first, each product and partial sum in float32.
    // zip() in diffusers stops at the shorter list: an img2img run that begins part-way has fewer derivatives
    // than `order` for its first steps and uses only their (higher-order) coefficients.
    const terms = Math.min(order, this.derivatives.length);
    const sum = new Float32Array(sample.length);
    for (let k = 0; k < terms; k++) {
      const coeff = f32(this.lmsCoefficient(order, i, k));
      const d = this.derivatives[this.derivatives.length - 1 - k];
      for (let j = 0; j < sum.length; j++) sum[j] = k === 0 ? f32(coeff * d[j]) : sum[j] + f32(coeff * d[j]);
    }
    const prev = sample.map((x, j) => x + sum[j]);
    this.cursor.stepIndex = i + 1;
    return prev;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const i = this.cursor.forAddNoise(timestep, (t) => indexForTimestep(this.timesteps, t));
    return addScaledNoise(original, noise, this.sigmas[i]);
  }
}
