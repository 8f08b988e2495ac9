// diffusers' KDPM2AncestralDiscreteScheduler (k-diffusion's sample_dpm_2_ancestral): the DPM2 midpoint step
// aimed at σ_down, then fresh noise of size σ_up. Noise is drawn on the second (midpoint) evaluation of each step.
import type { NoiseSource } from "./scheduler.types.js";
import { f32, sigmaToT } from "./noise-schedule.js";
import type { ResolvedConfig } from "./scheduler.base.js";
import { addScaled, derivative, divideBySigmaNorm, predictOriginalFromSigma } from "./sigma-scheduler.base.js";
import {
  KDPM2_DISCRETE_DEFAULTS,
  Kdpm2SchedulerBase,
  interleaveMidpoints,
  logMidpoint,
  repeatForMidpoints,
  type KDPM2DiscreteConfig,
} from "./kdpm2-discrete.scheduler.js";

/** Same __init__ keys and defaults as KDPM2DiscreteScheduler. */
export const KDPM2_ANCESTRAL_DISCRETE_DEFAULTS = { ...KDPM2_DISCRETE_DEFAULTS };
export type KDPM2AncestralDiscreteConfig = KDPM2DiscreteConfig;

const NAME = "KDPM2AncestralDiscreteScheduler";

export class KDPM2AncestralDiscreteScheduler extends Kdpm2SchedulerBase {
  sigmasUp: Float64Array = new Float64Array(0);
  sigmasDown: Float64Array = new Float64Array(0);

  constructor(resolved: ResolvedConfig) {
    super(NAME, resolved);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { timesteps, sigmas, logSigmas } = this.midpointSchedule(numInferenceSteps);
    const n = sigmas.length;
    // σ_up = sqrt(σ_next² (σ² - σ_next²) / σ²), σ_down = sqrt(σ_next² - σ_up²), in float32 tensors.
    const up = new Float32Array(n);
    const down = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const next = i + 1 < n ? sigmas[i + 1] : 0;
      const nextSq = f32(next * next);
      const sq = f32(sigmas[i] * sigmas[i]);
      up[i] = Math.sqrt(f32(f32(nextSq * f32(sq - nextSq)) / sq));
      down[i] = Math.sqrt(f32(nextSq - f32(up[i] * up[i])));
    }
    down[n - 1] = 0;
    const interpol = Array.from(sigmas, (s, i) => logMidpoint(s, down[i]));
    interpol[n - 2] = 0;
    interpol[n - 1] = 0;
    this.sigmas = repeatForMidpoints(sigmas);
    this.sigmasInterpol = repeatForMidpoints(interpol);
    this.sigmasUp = repeatForMidpoints(up);
    this.sigmasDown = repeatForMidpoints(down);
    // Unlike KDPM2, the midpoints sit one place earlier (interpol[i] lies between σ_i and σ_down,i).
    const midTimesteps = interpol.slice(0, -2).map((s) => sigmaToT(s, logSigmas, "torch"));
    this.timesteps = interleaveMidpoints(timesteps, midTimesteps);
    this.heldSample = null;
    this.cursor.reset();
  }

  /** The midpoint evaluation scales by the midpoint sigma (stored one place earlier than in KDPM2). */
  override scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const i = this.currentStepIndex(timestep);
    const sigma = this.heldSample === null ? this.sigmas[i] : this.sigmasInterpol[i - 1];
    return divideBySigmaNorm(sample, sigma);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise: NoiseSource): Float32Array {
    const i = this.currentStepIndex(timestep);
    const first = this.heldSample === null;
    const sigma = first ? this.sigmas[i] : this.sigmas[i - 1];
    const sigmaInterpol = first ? this.sigmasInterpol[i] : this.sigmasInterpol[i - 1];
    const predOriginal = predictOriginalFromSigma(this.config.prediction_type, modelOutput, sample, first ? sigma : sigmaInterpol);
    let prev: Float32Array;
    if (first) {
      this.heldSample = sample.slice();
      prev = addScaled(sample, derivative(sample, predOriginal, sigma), f32(sigmaInterpol - sigma));
    } else {
      const dt = f32(this.sigmasDown[i - 1] - sigma);
      const moved = addScaled(this.heldSample ?? sample, derivative(sample, predOriginal, sigmaInterpol), dt);
      this.heldSample = null;
      prev = addScaled(moved, noise.randn(modelOutput.length), this.sigmasUp[i - 1]);
    }
    this.cursor.stepIndex = i + 1;
    return prev;
  }
}
