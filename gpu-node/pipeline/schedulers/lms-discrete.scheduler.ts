// diffusers' LMSDiscreteScheduler: linear multistep (order 4) on the ODE derivatives, with coefficients that
// integrate the Lagrange basis polynomials over [σ_i, σ_{i+1}]. diffusers integrates with scipy's quad; the
// integrand is a polynomial of degree ≤ 3, so 5-point Gauss-Legendre (exact to degree 9) gives the exact value.
import type { NoiseSource } from "./scheduler.types.js";
import { f32, trainSigmas } from "./noise-schedule.js";
import { checkPredictionType, readConfig, type ResolvedConfig } from "./scheduler.base.js";
import {
  SigmaScheduler,
  checkSigmaRamps,
  derivative,
  predictOriginalFromSigma,
  sigmaRampOf,
  sigmaSchedule,
  trainingAlphasCumprod,
  withFinalSigma,
} from "./sigma-scheduler.base.js";

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

export class LMSDiscreteScheduler extends SigmaScheduler<LMSDiscreteConfig> {
  readonly order = 1;
  /** The last (up to four) derivatives, oldest first. */
  private derivatives: Float32Array[] = [];

  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, LMS_DISCRETE_DEFAULTS, resolved);
    checkPredictionType(NAME, config.prediction_type, ["epsilon", "v_prediction", "sample"]);
    checkSigmaRamps(NAME, config);
    super(config, trainSigmas(trainingAlphasCumprod(config)), resolved);
  }

  setTimesteps(numInferenceSteps: number): void {
    // LMS's Karras ramp ignores any sigma_min/sigma_max in the config (its _convert_to_karras does not read them).
    const bounds = sigmaRampOf(this.config) === "karras" ? { min: null, max: null } : this.configBounds;
    const { timesteps, sigmas } = sigmaSchedule(NAME, this.config, this.trainSigmas, numInferenceSteps, bounds);
    this.sigmas = Float64Array.from(withFinalSigma(sigmas));
    this.timesteps = Float64Array.from(Float32Array.from(timesteps));
    this.cursor.reset();
    this.derivatives = [];
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
    const i = this.currentStepIndex(timestep);
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
}
