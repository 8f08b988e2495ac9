// What DDIM and PNDM share (diffusers' DDPM-family schedulers): integer timesteps on the training grid, ᾱ looked up
// by timestep, no input scaling, a unit initial noise, and sqrt(ᾱ)·x0 + sqrt(1-ᾱ)·ε for add_noise.
import type { NoiseSource, Scheduler } from "./scheduler.types.js";
import { f32, numpyArange, numpyLinspace, roundHalfEven, type BetaConfig } from "./noise-schedule.js";
import { checkSameLength, checkStepCount, configError } from "./scheduler.base.js";

export interface AlphaConfig extends BetaConfig {
  prediction_type: string;
  timestep_spacing: string;
  steps_offset: number;
  set_alpha_to_one: boolean;
}

export abstract class AlphaScheduler<C extends AlphaConfig> implements Scheduler {
  readonly order = 1;
  readonly sigmas = null;
  readonly initNoiseSigma = 1.0;
  timesteps: Float64Array = new Float64Array(0);
  /** Set by setTimesteps; step() derives the spacing between timesteps from it. */
  protected numInferenceSteps: number | null = null;
  /** The ᾱ of the step past t = 0: 1 (set_alpha_to_one) or ᾱ_0, as SD's config asks (false). */
  protected readonly finalAlphaCumprod: number;

  protected constructor(
    protected readonly className: string,
    readonly config: C,
    protected readonly alphasCumprod: Float32Array,
  ) {
    this.finalAlphaCumprod = config.set_alpha_to_one ? 1 : alphasCumprod[0];
  }

  abstract setTimesteps(numInferenceSteps: number): void;
  abstract step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise: NoiseSource): Float32Array;

  /** Neither DDIMScheduler nor PNDMScheduler has set_begin_index: img2img relies on the timesteps alone. */
  setBeginIndex(_index: number): void {}

  scaleModelInput(sample: Float32Array, _timestep: number): Float32Array {
    return sample;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const alphaCumprod = this.alphaAt(timestep);
    checkSameLength(original, noise);
    const a = f32(Math.sqrt(alphaCumprod));
    const b = f32(Math.sqrt(f32(1 - alphaCumprod)));
    const out = new Float32Array(original.length);
    for (let i = 0; i < out.length; i++) out[i] = f32(a * original[i]) + f32(b * noise[i]);
    return out;
  }

  /**
   * The start of set_timesteps in both classes: checks the count, records it for step(), and spaces the integer
   * timesteps (descending): linspace rounds half to even as numpy does, leading adds steps_offset (SD: 1 → 981,
   * 961, …, 1 for 50 steps), trailing ends at num_train_timesteps - 1.
   */
  protected spacedTimesteps(steps: number): number[] {
    const { timestep_spacing: spacing, num_train_timesteps: numTrain, steps_offset: stepsOffset } = this.config;
    checkStepCount(this.className, steps, numTrain);
    this.numInferenceSteps = steps;
    switch (spacing) {
      case "linspace":
        return Array.from(numpyLinspace(0, numTrain - 1, steps), roundHalfEven).reverse();
      case "leading": {
        const ratio = Math.floor(numTrain / steps);
        return Array.from({ length: steps }, (_, i) => (steps - 1 - i) * ratio + stepsOffset);
      }
      case "trailing":
        return Array.from(numpyArange(numTrain, 0, -numTrain / steps), (v) => roundHalfEven(v) - 1);
    }
    throw configError(this.className, `timestep_spacing "${spacing}" is not supported; choose one of linspace, leading or trailing`);
  }

  /** num_train_timesteps // num_inference_steps: how far one step moves. */
  protected get stepRatio(): number {
    return Math.floor(this.config.num_train_timesteps / (this.numInferenceSteps ?? 1));
  }

  /** The checks every step() starts with. */
  protected checkStep(modelOutput: Float32Array, sample: Float32Array): void {
    if (this.numInferenceSteps === null) throw configError(this.className, "setTimesteps must run before step");
    checkSameLength(modelOutput, sample);
  }

  protected alphaAt(timestep: number): number {
    if (!Number.isInteger(timestep) || timestep < 0 || timestep >= this.alphasCumprod.length) {
      throw configError(this.className, `timestep ${timestep} is outside 0..${this.alphasCumprod.length - 1}`);
    }
    return this.alphasCumprod[timestep];
  }

  /** ᾱ at the timestep a step goes to; past t = 0 that is the final ᾱ. */
  protected alphaBefore(prevTimestep: number): number {
    return prevTimestep >= 0 ? this.alphaAt(prevTimestep) : this.finalAlphaCumprod;
  }
}
