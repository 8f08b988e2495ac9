// diffusers' EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2 with s_churn = 0, as the SD pipelines call it).
import type { NoiseSource, Scheduler } from "./scheduler.types.js";
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
  torchLinspaceF32,
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
  finalSigma,
  indexForTimestep,
  initNoiseSigmaOf,
  predictOriginalFromSigma,
  readConfig,
  type ResolvedConfig,
} from "./scheduler.base.js";

export const EULER_DISCRETE_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  prediction_type: "epsilon",
  interpolation_type: "linear",
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  sigma_min: null as number | null,
  sigma_max: null as number | null,
  timestep_spacing: "linspace",
  timestep_type: "discrete",
  steps_offset: 0,
  rescale_betas_zero_snr: false,
  final_sigmas_type: "zero",
};
export type EulerDiscreteConfig = typeof EULER_DISCRETE_DEFAULTS;

const NAME = "EulerDiscreteScheduler";

export class EulerDiscreteScheduler implements Scheduler {
  readonly order = 1;
  readonly config: EulerDiscreteConfig;
  timesteps: Float64Array = new Float64Array(0);
  sigmas: Float64Array = new Float64Array(0);
  private readonly trainSigmas: Float32Array;
  private readonly cursor = new StepCursor();

  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, EULER_DISCRETE_DEFAULTS, resolved);
    this.config = config;
    checkPredictionType(NAME, config.prediction_type, ["epsilon", "v_prediction", "sample", "original_sample"]);
    if (config.use_beta_sigmas) throw configError(NAME, "use_beta_sigmas is not implemented");
    if ([config.use_karras_sigmas, config.use_exponential_sigmas].filter(Boolean).length > 1) {
      throw configError(NAME, "only one of use_karras_sigmas and use_exponential_sigmas can be used");
    }
    let betas = makeBetas(config);
    if (config.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
    const cumprod = alphasCumprod(betas);
    // Zero terminal SNR would make the last sigma infinite; diffusers pins ᾱ_T to 2^-24 instead.
    if (config.rescale_betas_zero_snr) cumprod[cumprod.length - 1] = 2 ** -24;
    this.trainSigmas = trainSigmas(cumprod);
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
    let sigmas: ArrayLike<number>;
    if (c.interpolation_type === "linear") {
      sigmas = Float64Array.from(spaced, (t) => interpOnIndexGrid(t, this.trainSigmas));
    } else if (c.interpolation_type === "log_linear") {
      // torch.linspace(log σ_max, log σ_min, n + 1).exp(): one more sigma than steps, as diffusers has it.
      const logs = logF32([this.trainSigmas[this.trainSigmas.length - 1], this.trainSigmas[0]]);
      sigmas = torchLinspaceF32(logs[0], logs[1], numInferenceSteps + 1).map(Math.exp);
    } else {
      throw configError(NAME, `interpolation_type "${c.interpolation_type}" is not implemented`);
    }
    const ramp = c.use_karras_sigmas ? "karras" : c.use_exponential_sigmas ? "exponential" : null;
    if (ramp) {
      const logSigmas = logF32(this.trainSigmas);
      sigmas = convertSigmas(ramp, sigmas, numInferenceSteps, c.sigma_min, c.sigma_max);
      timesteps = Float64Array.from(sigmas, (s) => sigmaToT(s, logSigmas, "numpy"));
    }
    const last = finalSigma(NAME, c.final_sigmas_type, this.trainSigmas);
    const all = new Float32Array(sigmas.length + 1);
    all.set(Float32Array.from(sigmas));
    all[sigmas.length] = last;
    this.sigmas = Float64Array.from(all);
    if (c.timestep_type === "continuous" && c.prediction_type === "v_prediction") {
      this.timesteps = Float64Array.from(all.subarray(0, all.length - 1), (s) => f32(0.25 * f32(Math.log(s))));
    } else {
      this.timesteps = Float64Array.from(Float32Array.from(timesteps));
    }
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
    // s_churn = 0 in the pipelines, so gamma = 0, sigma_hat = sigma and no noise is drawn.
    const sigma = this.sigmas[i];
    // Euler alone also accepts "original_sample" as a spelling of "sample".
    const type = this.config.prediction_type === "original_sample" ? "sample" : this.config.prediction_type;
    const predOriginal = predictOriginalFromSigma(type, modelOutput, sample, sigma);
    const dt = f32(this.sigmas[i + 1] - sigma);
    const prev = addScaled(sample, derivative(sample, predOriginal, sigma), dt);
    this.cursor.stepIndex = i + 1;
    return prev;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const i = this.cursor.forAddNoise(timestep, (t) => indexForTimestep(this.timesteps, t));
    return addScaledNoise(original, noise, this.sigmas[i]);
  }
}
