// diffusers' DPMSolverMultistepScheduler: DPM-Solver++ (Lu et al. 2022) in data-prediction form, second order by
// default (midpoint), first order on the first and the final step. "sde-dpmsolver++" (A1111's "DPM++ 2M SDE")
// adds fresh noise every step, drawn from the request's generator before the update, as diffusers does.
// Works in the VP parameterisation: α_t = 1/sqrt(σ²+1), σ_t = σ α_t, λ = log α_t - log σ_t.
import type { NoiseSource } from "./scheduler.types.js";
import { f32, numpyArange, numpyLinspace, roundHalfEven, trainSigmas } from "./noise-schedule.js";
import { checkPredictionType, checkSameLength, checkStepCount, configError, readConfig, type ResolvedConfig } from "./scheduler.base.js";
import {
  SigmaScheduler,
  finalSigma,
  interpolateSigmas,
  rampedSchedule,
  sigmaRampOf,
  trainingAlphasCumprod,
  withFinalSigma,
} from "./sigma-scheduler.base.js";

export const DPM_SOLVER_MULTISTEP_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  solver_order: 2,
  prediction_type: "epsilon",
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  algorithm_type: "dpmsolver++",
  solver_type: "midpoint",
  lower_order_final: true,
  euler_at_final: false,
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  use_lu_lambdas: false,
  use_flow_sigmas: false,
  flow_shift: 1.0,
  final_sigmas_type: "zero",
  lambda_min_clipped: -Infinity,
  variance_type: null as string | null,
  timestep_spacing: "linspace",
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};
export type DPMSolverMultistepConfig = typeof DPM_SOLVER_MULTISTEP_DEFAULTS;

const NAME = "DPMSolverMultistepScheduler";
const ALGORITHMS = ["dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++"];

/** α_t, σ_t of a sigma (float32 0-d tensor maths: 1 / x is torch's reciprocal). */
function alphaSigma(sigma: number): { alpha: number; sigmaT: number; lambda: number } {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  const sigmaT = f32(sigma * alpha);
  const lambda = f32(f32(Math.log(alpha)) - f32(Math.log(sigmaT)));
  return { alpha, sigmaT, lambda };
}

const exp32 = (x: number) => f32(Math.exp(x));

/** Σ c_k · x_k, left to right, every product and partial sum in float32. */
function linearCombination(terms: Array<[number, Float32Array]>): Float32Array {
  const n = terms[0][1].length;
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let acc = f32(terms[0][0] * terms[0][1][j]);
    for (let k = 1; k < terms.length; k++) acc = f32(acc + f32(terms[k][0] * terms[k][1][j]));
    out[j] = acc;
  }
  return out;
}

/** (1/r) * (a - b) */
function scaledDifference(a: Float32Array, b: Float32Array, r: number): Float32Array {
  const inv = f32(1 / r);
  return a.map((v, j) => inv * f32(v - b[j]));
}

export class DPMSolverMultistepScheduler extends SigmaScheduler<DPMSolverMultistepConfig> {
  readonly order = 1;
  private readonly lambdas: Float32Array;
  /** Converted model outputs (x0 predictions for ++), newest last, `solver_order` long. */
  private modelOutputs: Array<Float32Array | null> = [];
  private lowerOrderNums = 0;

  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, DPM_SOLVER_MULTISTEP_DEFAULTS, resolved);
    // diffusers maps the retired "deis" algorithm and the "logrho"/"bh1"/"bh2" solver types onto its own.
    if (config.algorithm_type === "deis") config.algorithm_type = "dpmsolver++";
    if (["logrho", "bh1", "bh2"].includes(config.solver_type)) config.solver_type = "midpoint";
    checkPredictionType(NAME, config.prediction_type, ["epsilon", "sample", "v_prediction"]);
    if (!ALGORITHMS.includes(config.algorithm_type)) throw configError(NAME, `algorithm_type "${config.algorithm_type}" is not implemented`);
    if (config.solver_type !== "midpoint" && config.solver_type !== "heun") {
      throw configError(NAME, `solver_type "${config.solver_type}" is not implemented`);
    }
    if (!config.algorithm_type.endsWith("++") && config.final_sigmas_type === "zero") {
      throw configError(NAME, `final_sigmas_type "zero" is not supported for algorithm_type "${config.algorithm_type}"`);
    }
    if (![1, 2, 3].includes(config.solver_order)) throw configError(NAME, `solver_order ${config.solver_order} is not supported`);
    for (const key of ["thresholding", "use_lu_lambdas", "use_flow_sigmas", "use_beta_sigmas"] as const) {
      if (config[key]) throw configError(NAME, `${key} is not implemented`);
    }
    if (config.variance_type !== null) throw configError(NAME, `variance_type "${config.variance_type}" is not implemented`);
    if ([config.use_karras_sigmas, config.use_exponential_sigmas].filter(Boolean).length > 1) {
      throw configError(NAME, "only one of use_karras_sigmas and use_exponential_sigmas can be used");
    }
    const cumprod = trainingAlphasCumprod(config);
    super(config, trainSigmas(cumprod), resolved);
    this.lambdas = cumprod.map((a) => f32(Math.log(f32(Math.sqrt(a)))) - f32(Math.log(f32(Math.sqrt(f32(1 - a))))));
  }

  /** VP parameterisation: x_t = α_t·x0 + σ_t·ε has unit scale, so the initial noise is not scaled. */
  override get initNoiseSigma(): number {
    return 1.0;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    checkStepCount(NAME, numInferenceSteps, c.num_train_timesteps);
    // lambda_min_clipped cuts the schedule where λ falls below it (searchsorted on the ascending, flipped λ).
    const clipped = this.lambdas.filter((l) => l < c.lambda_min_clipped).length;
    const lastTimestep = c.num_train_timesteps - clipped;
    let timesteps: number[];
    switch (c.timestep_spacing) {
      case "linspace":
        timesteps = Array.from(numpyLinspace(0, lastTimestep - 1, numInferenceSteps + 1), roundHalfEven).reverse().slice(0, -1);
        break;
      case "leading": {
        const ratio = Math.floor(lastTimestep / (numInferenceSteps + 1));
        timesteps = Array.from({ length: numInferenceSteps }, (_, i) => (numInferenceSteps - i) * ratio + c.steps_offset);
        break;
      }
      case "trailing":
        timesteps = Array.from(numpyArange(lastTimestep, 0, -c.num_train_timesteps / numInferenceSteps), (v) => roundHalfEven(v) - 1);
        break;
      default:
        throw configError(NAME, `timestep_spacing "${c.timestep_spacing}" is not supported`);
    }
    let sigmas: ArrayLike<number>;
    const ramp = sigmaRampOf(c);
    if (ramp) {
      // The ramp spans the whole training range (not the interpolated schedule's ends, as in the other classes).
      const descending = Float32Array.from(this.trainSigmas).reverse();
      const ramped = rampedSchedule(ramp, descending, numInferenceSteps, this.trainSigmas, this.configBounds);
      sigmas = ramped.sigmas;
      const round = ramp === "karras" && c.beta_schedule !== "squaredcos_cap_v2";
      // astype(int64) truncates what was not rounded.
      timesteps = Array.from(ramped.timesteps, (t) => (round ? roundHalfEven(t) : Math.trunc(t)));
    } else {
      sigmas = interpolateSigmas(timesteps, this.trainSigmas);
    }
    this.sigmas = Float64Array.from(withFinalSigma(sigmas, finalSigma(NAME, c.final_sigmas_type, this.trainSigmas)));
    this.timesteps = Float64Array.from(timesteps);
    this.modelOutputs = new Array(c.solver_order).fill(null);
    this.lowerOrderNums = 0;
    this.cursor.reset();
  }

  /** DPM-Solver's index_for_timestep: an unknown timestep means the last step; a repeated one its second place. */
  protected override indexForTimestep(timestep: number): number {
    const matches: number[] = [];
    this.timesteps.forEach((t, i) => t === timestep && matches.push(i));
    if (matches.length === 0) return this.timesteps.length - 1;
    return matches.length > 1 ? matches[1] : matches[0];
  }

  /** No input scaling (and, unlike the other sigma classes, no step_index set here). */
  override scaleModelInput(sample: Float32Array, _timestep: number): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise: NoiseSource): Float32Array {
    checkSameLength(modelOutput, sample);
    const c = this.config;
    const i = this.currentStepIndex(timestep);
    const count = this.timesteps.length;
    const lowerOrderFinal =
      i === count - 1 && (c.euler_at_final || (c.lower_order_final && count < 15) || c.final_sigmas_type === "zero");
    const lowerOrderSecond = i === count - 2 && c.lower_order_final && count < 15;

    const converted = this.convertModelOutput(modelOutput, sample, i);
    this.modelOutputs.shift();
    this.modelOutputs.push(converted);

    const eps = c.algorithm_type.startsWith("sde-") ? noise.randn(modelOutput.length) : null;
    let prev: Float32Array;
    if (c.solver_order === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) {
      prev = this.firstOrderUpdate(converted, sample, eps, i);
    } else if (c.solver_order === 2 || this.lowerOrderNums < 2 || lowerOrderSecond) {
      prev = this.secondOrderUpdate(sample, eps, i);
    } else {
      prev = this.thirdOrderUpdate(sample, eps, i);
    }
    if (this.lowerOrderNums < c.solver_order) this.lowerOrderNums += 1;
    this.cursor.stepIndex = i + 1;
    return prev;
  }

  /** x0 prediction (dpmsolver++) or noise prediction (dpmsolver) from the model output. */
  private convertModelOutput(modelOutput: Float32Array, sample: Float32Array, i: number): Float32Array {
    const { alpha, sigmaT } = alphaSigma(this.sigmas[i]);
    const type = this.config.prediction_type;
    const dataPrediction = this.config.algorithm_type.endsWith("++");
    if (dataPrediction) {
      if (type === "epsilon") return modelOutput.map((m, j) => f32(sample[j] - f32(sigmaT * m)) / alpha);
      if (type === "sample") return modelOutput.slice();
      if (type === "v_prediction") return modelOutput.map((m, j) => f32(alpha * sample[j]) - f32(sigmaT * m));
    } else {
      if (type === "epsilon") return modelOutput.slice();
      if (type === "sample") return modelOutput.map((m, j) => f32(sample[j] - f32(alpha * m)) / sigmaT);
      if (type === "v_prediction") return modelOutput.map((m, j) => f32(alpha * m) + f32(sigmaT * sample[j]));
    }
    throw configError(NAME, `prediction_type "${type}" is not supported`);
  }

  private firstOrderUpdate(m0: Float32Array, sample: Float32Array, eps: Float32Array | null, i: number): Float32Array {
    const t = alphaSigma(this.sigmas[i + 1]);
    const s = alphaSigma(this.sigmas[i]);
    const h = f32(t.lambda - s.lambda);
    const ratio = f32(t.sigmaT / s.sigmaT);
    switch (this.config.algorithm_type) {
      case "dpmsolver++":
        return linearCombination([
          [ratio, sample],
          [-f32(t.alpha * f32(exp32(-h) - 1)), m0],
        ]);
      case "dpmsolver":
        return linearCombination([
          [f32(t.alpha / s.alpha), sample],
          [-f32(t.sigmaT * f32(exp32(h) - 1)), m0],
        ]);
      case "sde-dpmsolver++": {
        const e2 = exp32(f32(-2 * h));
        return linearCombination([
          [f32(ratio * exp32(-h)), sample],
          [f32(t.alpha * f32(1 - e2)), m0],
          [f32(t.sigmaT * f32(Math.sqrt(f32(1 - e2)))), eps as Float32Array],
        ]);
      }
      default: {
        const e2 = exp32(f32(2 * h));
        return linearCombination([
          [f32(t.alpha / s.alpha), sample],
          [-f32(2 * f32(t.sigmaT * f32(exp32(h) - 1))), m0],
          [f32(t.sigmaT * f32(Math.sqrt(f32(e2 - 1)))), eps as Float32Array],
        ]);
      }
    }
  }

  private secondOrderUpdate(sample: Float32Array, eps: Float32Array | null, i: number): Float32Array {
    const [m1, m0] = this.modelOutputs.slice(-2) as Float32Array[];
    const t = alphaSigma(this.sigmas[i + 1]);
    const s0 = alphaSigma(this.sigmas[i]);
    const s1 = alphaSigma(this.sigmas[i - 1]);
    const h = f32(t.lambda - s0.lambda);
    const h0 = f32(s0.lambda - s1.lambda);
    const r0 = f32(h0 / h);
    const d1 = scaledDifference(m0, m1, r0);
    const midpoint = this.config.solver_type === "midpoint";
    switch (this.config.algorithm_type) {
      case "dpmsolver++": {
        const a = f32(t.alpha * f32(exp32(-h) - 1));
        const d1Coeff = midpoint ? -f32(0.5 * a) : f32(t.alpha * f32(f32(f32(exp32(-h) - 1) / h) + 1));
        return linearCombination([
          [f32(t.sigmaT / s0.sigmaT), sample],
          [-a, m0],
          [d1Coeff, d1],
        ]);
      }
      case "dpmsolver": {
        const a = f32(t.sigmaT * f32(exp32(h) - 1));
        const d1Coeff = midpoint ? -f32(0.5 * a) : -f32(t.sigmaT * f32(f32(f32(exp32(h) - 1) / h) - 1));
        return linearCombination([
          [f32(t.alpha / s0.alpha), sample],
          [-a, m0],
          [d1Coeff, d1],
        ]);
      }
      case "sde-dpmsolver++": {
        const e2 = exp32(f32(-2 * h));
        const b = f32(t.alpha * f32(1 - e2));
        const d1Coeff = midpoint ? f32(0.5 * b) : f32(t.alpha * f32(f32(f32(1 - e2) / f32(-2 * h)) + 1));
        return linearCombination([
          [f32(f32(t.sigmaT / s0.sigmaT) * exp32(-h)), sample],
          [b, m0],
          [d1Coeff, d1],
          [f32(t.sigmaT * f32(Math.sqrt(f32(1 - e2)))), eps as Float32Array],
        ]);
      }
      default: {
        const a = f32(t.sigmaT * f32(exp32(h) - 1));
        const d1Coeff = midpoint ? -a : -f32(2 * f32(t.sigmaT * f32(f32(f32(exp32(h) - 1) / h) - 1)));
        return linearCombination([
          [f32(t.alpha / s0.alpha), sample],
          [-f32(2 * a), m0],
          [d1Coeff, d1],
          [f32(t.sigmaT * f32(Math.sqrt(f32(exp32(f32(2 * h)) - 1)))), eps as Float32Array],
        ]);
      }
    }
  }

  private thirdOrderUpdate(sample: Float32Array, eps: Float32Array | null, i: number): Float32Array {
    const [m2, m1, m0] = this.modelOutputs.slice(-3) as Float32Array[];
    const t = alphaSigma(this.sigmas[i + 1]);
    const s0 = alphaSigma(this.sigmas[i]);
    const s1 = alphaSigma(this.sigmas[i - 1]);
    const s2 = alphaSigma(this.sigmas[i - 2]);
    const h = f32(t.lambda - s0.lambda);
    const h0 = f32(s0.lambda - s1.lambda);
    const h1 = f32(s1.lambda - s2.lambda);
    const r0 = f32(h0 / h);
    const r1 = f32(h1 / h);
    const d10 = scaledDifference(m0, m1, r0);
    const d11 = scaledDifference(m1, m2, r1);
    const r01 = f32(r0 + r1);
    const diff = d10.map((v, j) => v - d11[j]);
    const k1 = f32(r0 / r01);
    const d1 = d10.map((v, j) => v + f32(k1 * diff[j]));
    const d2 = diff.map((v) => f32(1 / r01) * v);
    const hSq = f32(h * h);
    switch (this.config.algorithm_type) {
      case "dpmsolver++": {
        const e = f32(exp32(-h) - 1);
        return linearCombination([
          [f32(t.sigmaT / s0.sigmaT), sample],
          [-f32(t.alpha * e), m0],
          [f32(t.alpha * f32(f32(e / h) + 1)), d1],
          [-f32(t.alpha * f32(f32(f32(e + h) / hSq) - 0.5)), d2],
        ]);
      }
      case "dpmsolver": {
        const e = f32(exp32(h) - 1);
        return linearCombination([
          [f32(t.alpha / s0.alpha), sample],
          [-f32(t.sigmaT * e), m0],
          [-f32(t.sigmaT * f32(f32(e / h) - 1)), d1],
          [-f32(t.sigmaT * f32(f32(f32(e - h) / hSq) - 0.5)), d2],
        ]);
      }
      case "sde-dpmsolver++": {
        const e2 = exp32(f32(-2 * h));
        const oneMinus = f32(1 - e2);
        const twoH = f32(2 * h);
        return linearCombination([
          [f32(f32(t.sigmaT / s0.sigmaT) * exp32(-h)), sample],
          [f32(t.alpha * oneMinus), m0],
          [f32(t.alpha * f32(f32(oneMinus / f32(-2 * h)) + 1)), d1],
          [f32(t.alpha * f32(f32(f32(oneMinus - twoH) / f32(twoH * twoH)) - 0.5)), d2],
          [f32(t.sigmaT * f32(Math.sqrt(oneMinus))), eps as Float32Array],
        ]);
      }
      default:
        // diffusers has no third-order sde-dpmsolver update (its function returns None there).
        throw configError(NAME, "solver_order 3 is not available for sde-dpmsolver");
    }
  }

  /** VP add_noise: α_t·x0 + σ_t·noise. */
  override addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    checkSameLength(original, noise);
    const i = this.cursor.forAddNoise(timestep, (t) => this.indexForTimestep(t));
    const { alpha, sigmaT } = alphaSigma(this.sigmas[i]);
    return original.map((x, j) => f32(alpha * x) + f32(sigmaT * noise[j]));
  }
}
