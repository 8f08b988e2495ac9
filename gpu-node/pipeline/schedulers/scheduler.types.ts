// The shape every scheduler file implements; mirrors diffusers' SchedulerMixin surface that the
// StableDiffusion pipelines use. All arrays are flat float32 in the latents' NCHW order.

/** A source of standard normal draws (the torch CPU generator port), shared by one request. */
export interface NoiseSource {
  randn(count: number): Float32Array;
}

export interface Scheduler {
  /** Timesteps the UNet sees, in loop order, after setTimesteps (may repeat for 2nd-order schedulers). */
  readonly timesteps: Float64Array;
  /** Sigmas when the scheduler is sigma-based, else null (for tests and metadata). */
  readonly sigmas: Float64Array | null;
  readonly initNoiseSigma: number;
  /** diffusers' `order`: timesteps per "inference step" (2 for Heun/KDPM2), used by img2img's get_timesteps. */
  readonly order: number;
  setTimesteps(numInferenceSteps: number): void;
  /** img2img starts part-way; diffusers' set_begin_index. */
  setBeginIndex(index: number): void;
  scaleModelInput(sample: Float32Array, timestep: number): Float32Array;
  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, noise: NoiseSource): Float32Array;
  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array;
}
