// diffusers' DDIMScheduler with eta = 0 (the StableDiffusion pipelines' default): deterministic, integer timesteps.
import type { NoiseSource } from "./scheduler.types.js";
import { alphasCumprod, f32, makeBetas, rescaleZeroTerminalSnr } from "./noise-schedule.js";
import { checkPredictionType, configError, readConfig, type ResolvedConfig } from "./scheduler.base.js";
import { AlphaScheduler } from "./alpha-scheduler.base.js";

export const DDIM_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  clip_sample: true,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: "epsilon",
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  clip_sample_range: 1.0,
  sample_max_value: 1.0,
  timestep_spacing: "leading",
  rescale_betas_zero_snr: false,
};
export type DDIMConfig = typeof DDIM_DEFAULTS;

const NAME = "DDIMScheduler";

export class DDIMScheduler extends AlphaScheduler<DDIMConfig> {
  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, DDIM_DEFAULTS, resolved);
    checkPredictionType(NAME, config.prediction_type, ["epsilon", "sample", "v_prediction"]);
    // Dynamic thresholding needs the batch layout (a per-image quantile); SD configs never enable it.
    if (config.thresholding) throw configError(NAME, "thresholding is not implemented");
    let betas = makeBetas(config);
    if (config.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
    super(NAME, config, alphasCumprod(betas));
  }

  setTimesteps(numInferenceSteps: number): void {
    this.timesteps = Float64Array.from(this.spacedTimesteps(numInferenceSteps));
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise: NoiseSource): Float32Array {
    this.checkStep(modelOutput, sample);
    const c = this.config;
    const prevTimestep = timestep - this.stepRatio;
    const alphaProd = this.alphaAt(timestep);
    const alphaProdPrev = this.alphaBefore(prevTimestep);
    const betaProd = f32(1 - alphaProd);
    const sqrtAlpha = f32(Math.sqrt(alphaProd));
    const sqrtBeta = f32(Math.sqrt(betaProd));

    const n = sample.length;
    const predOriginal = new Float32Array(n);
    const predEpsilon = new Float32Array(n);
    switch (c.prediction_type) {
      case "epsilon":
        for (let i = 0; i < n; i++) predOriginal[i] = f32(sample[i] - f32(sqrtBeta * modelOutput[i])) / sqrtAlpha;
        predEpsilon.set(modelOutput);
        break;
      case "sample":
        predOriginal.set(modelOutput);
        for (let i = 0; i < n; i++) predEpsilon[i] = f32(sample[i] - f32(sqrtAlpha * modelOutput[i])) / sqrtBeta;
        break;
      case "v_prediction":
        for (let i = 0; i < n; i++) {
          predOriginal[i] = f32(sqrtAlpha * sample[i]) - f32(sqrtBeta * modelOutput[i]);
          predEpsilon[i] = f32(sqrtAlpha * modelOutput[i]) + f32(sqrtBeta * sample[i]);
        }
        break;
      default:
        throw configError(NAME, `prediction_type "${c.prediction_type}" must be epsilon, sample or v_prediction`);
    }
    if (c.clip_sample) {
      const range = f32(c.clip_sample_range);
      for (let i = 0; i < n; i++) predOriginal[i] = Math.min(Math.max(predOriginal[i], -range), range);
    }
    // eta = 0: std_dev_t = 0, so the direction keeps all of sqrt(1 - ᾱ_prev) and no noise is drawn.
    const directionScale = f32(Math.sqrt(f32(1 - alphaProdPrev)));
    const sqrtAlphaPrev = f32(Math.sqrt(alphaProdPrev));
    const prev = new Float32Array(n);
    for (let i = 0; i < n; i++) prev[i] = f32(sqrtAlphaPrev * predOriginal[i]) + f32(directionScale * predEpsilon[i]);
    return prev;
  }
}
