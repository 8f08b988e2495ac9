// diffusers' EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2 with s_churn = 0, as the SD pipelines call it).
import type { NoiseSource } from "./scheduler.types.js";
import { f32, logF32, torchLinspaceF32, trainSigmas } from "./noise-schedule.js";
import { checkPredictionType, configError, readConfig, type ResolvedConfig } from "./scheduler.base.js";
import {
  SigmaScheduler,
  addScaled,
  checkSigmaRamps,
  derivative,
  finalSigma,
  interpolateSigmas,
  predictOriginalFromSigma,
  rampedSchedule,
  sigmaRampOf,
  spacedTimesteps,
  trainingAlphasCumprod,
  withFinalSigma,
} from "./sigma-scheduler.base.js";

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

export class EulerDiscreteScheduler extends SigmaScheduler<EulerDiscreteConfig> {
  readonly order = 1;

  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, EULER_DISCRETE_DEFAULTS, resolved);
    checkPredictionType(NAME, config.prediction_type, ["epsilon", "v_prediction", "sample", "original_sample"]);
    checkSigmaRamps(NAME, config);
    super(config, trainSigmas(trainingAlphasCumprod(config)), resolved);
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    const spaced = spacedTimesteps(NAME, c, numInferenceSteps);
    let timesteps: ArrayLike<number> = spaced;
    let sigmas: ArrayLike<number>;
    if (c.interpolation_type === "linear") {
      sigmas = interpolateSigmas(spaced, this.trainSigmas);
    } else if (c.interpolation_type === "log_linear") {
      // torch.linspace(log σ_max, log σ_min, n + 1).exp(): one more sigma than steps, as diffusers has it.
      const logs = logF32([this.trainSigmas[this.trainSigmas.length - 1], this.trainSigmas[0]]);
      sigmas = torchLinspaceF32(logs[0], logs[1], numInferenceSteps + 1).map(Math.exp);
    } else {
      throw configError(NAME, `interpolation_type "${c.interpolation_type}" is not implemented`);
    }
    const ramp = sigmaRampOf(c);
    if (ramp) {
      // Euler's own sigma_min / sigma_max keys.
      const bounds = { min: c.sigma_min, max: c.sigma_max };
      ({ sigmas, timesteps } = rampedSchedule(ramp, sigmas, numInferenceSteps, this.trainSigmas, bounds));
    }
    const all = withFinalSigma(sigmas, finalSigma(NAME, c.final_sigmas_type, this.trainSigmas));
    this.sigmas = Float64Array.from(all);
    if (c.timestep_type === "continuous" && c.prediction_type === "v_prediction") {
      this.timesteps = Float64Array.from(all.subarray(0, all.length - 1), (s) => f32(0.25 * f32(Math.log(s))));
    } else {
      this.timesteps = Float64Array.from(Float32Array.from(timesteps));
    }
    this.cursor.reset();
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise: NoiseSource): Float32Array {
    const i = this.currentStepIndex(timestep);
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
}
