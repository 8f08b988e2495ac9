// diffusers' KDPM2DiscreteScheduler (k-diffusion's sample_dpm_2): a midpoint method in log-sigma, so each step
// evaluates the UNet at σ_i and at the geometric midpoint of σ_i and σ_{i+1}; the timesteps interleave
// [t0, t(mid 1), t1, t(mid 2), t2, …].
import type { NoiseSource } from "./scheduler.types.js";
import { f32, logF32, roundHalfEven, sigmaToT, trainSigmas } from "./noise-schedule.js";
import { checkPredictionType, readConfig, type ResolvedConfig } from "./scheduler.base.js";
import {
  SigmaScheduler,
  addScaled,
  checkSigmaRamps,
  derivative,
  divideBySigmaNorm,
  predictOriginalFromSigma,
  repeatAfterFirst,
  sigmaRampOf,
  sigmaSchedule,
  trainingAlphasCumprod,
  withFinalSigma,
} from "./sigma-scheduler.base.js";

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

/** What both KDPM2 classes build in set_timesteps before their own midpoints. */
export interface KdpmSchedule {
  /** Inference timesteps without the midpoints: float32; after a ramp, _sigma_to_t's (rounded for Karras). */
  timesteps: number[];
  /** σ_0 … σ_{n-1}, 0 as float32. */
  sigmas: Float32Array;
  /** log of the training sigmas (float32), for the midpoints' timesteps. */
  logSigmas: Float32Array;
}

/** [t0, mid 1, t1, mid 2, t2, …]: the timesteps the UNet sees, a midpoint before each step after the first. */
export function interleaveMidpoints(timesteps: number[], midTimesteps: number[]): Float64Array {
  const interleaved = [timesteps[0]];
  for (let i = 0; i < midTimesteps.length; i++) interleaved.push(midTimesteps[i], timesteps[i + 1]);
  return Float64Array.from(interleaved);
}

/** The KDPM2 layout of a per-step value: [v0, v1, v1, …, v_n, v_n, v_n] (torch cat of v[:1], repeat_interleave, v[-1:]). */
export function repeatForMidpoints(values: ArrayLike<number>): Float64Array {
  return Float64Array.from([...repeatAfterFirst(values), values[values.length - 1]]);
}

/**
 * What both KDPM2 classes share: the same __init__ (keys, defaults and checks), order 2, the midpoint sigmas, the
 * sample held across a step's two evaluations, and the start of set_timesteps.
 */
export abstract class Kdpm2SchedulerBase extends SigmaScheduler<KDPM2DiscreteConfig> {
  readonly order = 2;
  /** The midpoints, laid out like `sigmas` (each class places them its own way). */
  sigmasInterpol: Float64Array = new Float64Array(0);
  /** The sample at σ_i, held while the midpoint is evaluated (diffusers' self.sample). */
  protected heldSample: Float32Array | null = null;

  protected constructor(
    private readonly className: string,
    resolved: ResolvedConfig,
  ) {
    const config = readConfig(className, KDPM2_DISCRETE_DEFAULTS, resolved);
    checkSigmaRamps(className, config);
    checkPredictionType(className, config.prediction_type, ["epsilon", "v_prediction"]);
    super(config, trainSigmas(trainingAlphasCumprod(config)), resolved);
  }

  protected midpointSchedule(steps: number): KdpmSchedule {
    const { timesteps, sigmas } = sigmaSchedule(this.className, this.config, this.trainSigmas, steps, this.configBounds);
    // Only the Karras branch rounds (diffusers' .round()); the exponential one keeps fractions.
    const round = sigmaRampOf(this.config) === "karras";
    return {
      timesteps: Array.from(timesteps, (t) => (round ? roundHalfEven(t) : t)),
      sigmas: withFinalSigma(sigmas),
      logSigmas: logF32(this.trainSigmas),
    };
  }
}

export class KDPM2DiscreteScheduler extends Kdpm2SchedulerBase {
  constructor(resolved: ResolvedConfig) {
    super(NAME, resolved);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { timesteps, sigmas, logSigmas } = this.midpointSchedule(numInferenceSteps);
    const n = sigmas.length;
    // interpol[i] = sqrt(σ_i σ_{i-1}) with roll(1); index 0 pairs σ_0 with the final 0 and is NaN (never used).
    const interpol = Array.from(sigmas, (s, i) => logMidpoint(s, sigmas[(i - 1 + n) % n]));
    this.sigmas = repeatForMidpoints(sigmas);
    this.sigmasInterpol = repeatForMidpoints(interpol);
    const midTimesteps = interpol.slice(1, -1).map((s) => sigmaToT(s, logSigmas, "torch"));
    this.timesteps = interleaveMidpoints(timesteps, midTimesteps);
    this.heldSample = null;
    this.cursor.reset();
  }

  /** The midpoint evaluation scales by the midpoint sigma. */
  override scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const i = this.currentStepIndex(timestep);
    const sigma = this.heldSample === null ? this.sigmas[i] : this.sigmasInterpol[i];
    return divideBySigmaNorm(sample, sigma);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise: NoiseSource): Float32Array {
    const i = this.currentStepIndex(timestep);
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
}
