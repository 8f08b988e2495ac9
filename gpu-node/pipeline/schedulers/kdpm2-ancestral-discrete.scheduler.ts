// diffusers' KDPM2AncestralDiscreteScheduler (k-diffusion's sample_dpm_2_ancestral): the DPM2 midpoint step
// aimed at σ_down, then fresh noise of size σ_up. Noise is drawn on the second (midpoint) evaluation of each step.
import type { NoiseSource, Scheduler } from "./scheduler.types.js";
import { alphasCumprod, f32, makeBetas, sigmaToT, trainSigmas } from "./noise-schedule.js";
import {
  StepCursor,
  addScaled,
  addScaledNoise,
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
import {
  KDPM2_DISCRETE_DEFAULTS,
  checkKdpmConfig,
  kdpmSchedule,
  logMidpoint,
  type KDPM2DiscreteConfig,
} from "./kdpm2-discrete.scheduler.js";

/** Same __init__ keys and defaults as KDPM2DiscreteScheduler. */
export const KDPM2_ANCESTRAL_DISCRETE_DEFAULTS = { ...KDPM2_DISCRETE_DEFAULTS };
export type KDPM2AncestralDiscreteConfig = KDPM2DiscreteConfig;

const NAME = "KDPM2AncestralDiscreteScheduler";

export class KDPM2AncestralDiscreteScheduler implements Scheduler {
  readonly order = 2;
  readonly config: KDPM2AncestralDiscreteConfig;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float64Array = new Float64Array(0);
  sigmasInterpol: Float64Array = new Float64Array(0);
  sigmasUp: Float64Array = new Float64Array(0);
  sigmasDown: Float64Array = new Float64Array(0);
  private readonly trainSigmas: Float32Array;
  private readonly configSigmaMin: number | null;
  private readonly configSigmaMax: number | null;
  private readonly cursor = new StepCursor();
  private heldSample: Float32Array | null = null;

  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, KDPM2_ANCESTRAL_DISCRETE_DEFAULTS, resolved);
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
    const interleave = (v: ArrayLike<number>) => Float64Array.from([...repeatAfterFirst(v), v[v.length - 1]]);
    this.sigmas = interleave(sigmas);
    this.sigmasInterpol = interleave(interpol);
    this.sigmasUp = interleave(up);
    this.sigmasDown = interleave(down);
    const midTimesteps = interpol.slice(0, -2).map((s) => sigmaToT(s, logSigmas, "torch"));
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
    const sigma = this.heldSample === null ? this.sigmas[i] : this.sigmasInterpol[i - 1];
    return divideBySigmaNorm(sample, sigma);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise: NoiseSource): Float32Array {
    const i = this.cursor.ensure(timestep, (t) => indexForTimestep(this.timesteps, t));
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

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const i = this.cursor.forAddNoise(timestep, (t) => indexForTimestep(this.timesteps, t));
    return addScaledNoise(original, noise, this.sigmas[i]);
  }
}
