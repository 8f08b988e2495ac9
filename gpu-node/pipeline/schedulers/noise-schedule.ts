// The numeric building blocks every scheduler shares: betas, alphas_cumprod, timestep spacing, sigma
// interpolation and the Karras/exponential sigma ramps, computed the way diffusers 0.33 computes them.
// diffusers holds betas/alphas in torch float32 tensors, interpolates sigmas in numpy float64 and casts back to
// float32, so each step below rounds with Math.fround exactly where torch or numpy stores a float32. That keeps a
// port within float32 rounding of diffusers over a whole denoising loop (the goldens check ~1e-3 of |x| ≈ 50).

export const f32 = Math.fround;

export type BetaSchedule = "linear" | "scaled_linear" | "squaredcos_cap_v2" | "exp";
export type TimestepSpacing = "linspace" | "leading" | "trailing";

export interface BetaConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: string;
  trained_betas: number[] | null;
}

/** fma(a, b, c) to float32: the product of two float32 values is exact in float64, so one rounding remains. */
function fmaF32(a: number, b: number, c: number): number {
  return f32(a * b + c);
}

/**
 * torch.linspace(start, end, steps, dtype=float32) on CPU (torch 1.13, AVX2 kernel): the first half counts up
 * from start, the second half down from end; inside a 16-element chunk each 8-lane vector starts from
 * fma(step, idx, start) and adds k*step per lane. Reproducing this keeps betas bit-identical to torch.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 0) return out;
  const s = f32(start);
  const e = f32(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const lanes = 8;
  const base = (idx: number): number => (idx < halfway ? fmaF32(step, idx, s) : fmaF32(-step, steps - idx - 1, e));
  let i = 0;
  for (; i <= steps - 2 * lanes; i += lanes) {
    const b = base(i);
    out[i] = b;
    for (let k = 1; k < lanes; k++) out[i + k] = f32(b + f32(k * step));
  }
  for (; i < steps; i++) out[i] = base(i);
  return out;
}

/** diffusers' betas_for_alpha_bar: computed in float64, stored as float32. */
function betasForAlphaBar(n: number, transform: "cosine" | "exp", maxBeta = 0.999): Float32Array {
  const alphaBar =
    transform === "cosine"
      ? (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2
      : (t: number) => Math.exp(t * -12.0);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), maxBeta);
  }
  return out;
}

/** The training betas; `allowExp` because only Heun accepts the "exp" schedule. */
export function makeBetas(config: BetaConfig, allowExp = false): Float32Array {
  const n = config.num_train_timesteps;
  if (config.trained_betas !== null) return Float32Array.from(config.trained_betas);
  switch (config.beta_schedule) {
    case "linear":
      return torchLinspaceF32(config.beta_start, config.beta_end, n);
    case "scaled_linear": {
      const roots = torchLinspaceF32(Math.sqrt(config.beta_start), Math.sqrt(config.beta_end), n);
      return roots.map((r) => r * r);
    }
    case "squaredcos_cap_v2":
      return betasForAlphaBar(n, "cosine");
    case "exp":
      if (allowExp) return betasForAlphaBar(n, "exp");
      break;
  }
  throw new Error(`beta_schedule "${config.beta_schedule}" is not implemented for this scheduler`);
}

/** torch.cumprod on CPU accumulates float32 inputs in double and rounds each output to float32. */
export function alphasCumprod(betas: Float32Array): Float32Array {
  const out = new Float32Array(betas.length);
  let acc = 1;
  for (let i = 0; i < betas.length; i++) {
    acc *= f32(1 - betas[i]);
    out[i] = acc;
  }
  return out;
}

/** diffusers' rescale_zero_terminal_snr (arXiv 2305.08891, Algorithm 1), in torch float32 ops. */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const sqrtBar = alphasCumprod(betas).map(Math.sqrt);
  const first = sqrtBar[0];
  const last = sqrtBar[sqrtBar.length - 1];
  const scale = f32(first / f32(first - last));
  const bar = sqrtBar.map((v) => {
    const shifted = f32(f32(v - last) * scale);
    return shifted * shifted;
  });
  const out = new Float32Array(betas.length);
  out[0] = f32(1 - bar[0]);
  for (let i = 1; i < bar.length; i++) out[i] = f32(1 - f32(bar[i] / bar[i - 1]));
  return out;
}

/** ((1 - ᾱ) / ᾱ) ** 0.5 per training timestep, as the float32 tensor diffusers builds (index = timestep). */
export function trainSigmas(alphasCumprodF32: Float32Array): Float32Array {
  return alphasCumprodF32.map((a) => Math.sqrt(f32(f32(1 - a) / a)));
}

/** numpy's np.log on a float32 array: float32 results. */
export function logF32(values: ArrayLike<number>): Float32Array {
  return Float32Array.from(values, (v) => Math.log(v));
}

/** np.linspace(start, stop, num) in float64 (numpy's algorithm: i*step + start, last element exactly stop). */
export function numpyLinspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  const div = num - 1;
  const delta = stop - start;
  if (div > 0) {
    const step = delta / div;
    for (let i = 0; i < num; i++) out[i] = (step === 0 ? (i / div) * delta : i * step) + start;
    out[num - 1] = stop;
  } else {
    for (let i = 0; i < num; i++) out[i] = i * delta + start;
  }
  return out;
}

/** np.arange(start, stop, step) for floats: length ceil((stop-start)/step), values start + i*((start+step)-start). */
export function numpyArange(start: number, stop: number, step: number): Float64Array {
  const length = Math.max(0, Math.ceil((stop - start) / step));
  const out = new Float64Array(length);
  if (length === 0) return out;
  out[0] = start;
  if (length === 1) return out;
  const delta = start + step - start;
  for (let i = 1; i < length; i++) out[i] = start + i * delta;
  return out;
}

/** numpy's round(): half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** np.interp(x, arange(len(fp)), fp) in float64 (numpy's formula: slope*(x - xp[j]) + fp[j]). */
export function interpOnIndexGrid(x: number, fp: ArrayLike<number>): number {
  const last = fp.length - 1;
  if (Number.isNaN(x)) return x;
  if (x <= 0) return fp[0];
  if (x >= last) return fp[last];
  const j = Math.floor(x);
  if (j === x) return fp[j];
  const slope = fp[j + 1] - fp[j];
  return slope * (x - j) + fp[j];
}

/**
 * diffusers' _sigma_to_t: the (fractional) training timestep whose log-sigma matches, interpolated linearly
 * between neighbours. "numpy" is the call with a float64 sigma and numpy float32 log_sigmas (numpy 1.x casts the
 * scalar to float32 for the differences, and the final blend runs in float64); "torch" is the KDPM2 call on
 * float32 tensors, where every operation stays float32.
 */
export function sigmaToT(sigma: number, logSigmas: Float32Array, flavour: "numpy" | "torch"): number {
  // np.maximum(sigma, 1e-10) then np.log; either way the value enters the float32 arithmetic below as a float32.
  const floor = flavour === "torch" ? f32(1e-10) : 1e-10;
  const logSigma = f32(Math.log(Math.max(flavour === "torch" ? f32(sigma) : sigma, floor)));
  // cumsum(dists >= 0).argmax(): the last index whose log-sigma is <= log_sigma (0 when there is none).
  let lowIdx = 0;
  for (let i = 0; i < logSigmas.length; i++) if (f32(logSigma - logSigmas[i]) >= 0) lowIdx = i;
  lowIdx = Math.min(lowIdx, logSigmas.length - 2);
  const highIdx = lowIdx + 1;
  const low = logSigmas[lowIdx];
  const high = logSigmas[highIdx];
  let w = f32(f32(low - logSigma) / f32(low - high));
  w = Math.min(Math.max(w, 0), 1);
  const oneMinusW = f32(1 - w);
  if (flavour === "torch") return f32(f32(oneMinusW * lowIdx) + f32(w * highIdx));
  return oneMinusW * lowIdx + w * highIdx;
}

/** Karras et al. (2022) rho=7 ramp between sigma_max and sigma_min, float64 as numpy computes it. */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number): Float64Array {
  const rho = 7.0;
  const ramp = numpyLinspace(0, 1, n);
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  return ramp.map((r) => (maxInvRho + r * (minInvRho - maxInvRho)) ** rho);
}

/** exp(linspace(log sigma_max, log sigma_min, n)), float64. */
export function exponentialSigmas(sigmaMin: number, sigmaMax: number, n: number): Float64Array {
  return numpyLinspace(Math.log(sigmaMax), Math.log(sigmaMin), n).map(Math.exp);
}

/**
 * The inference timesteps of the sigma schedulers (Euler, LMS, Heun, KDPM2): float32 values, descending.
 * linspace keeps fractions (999, 856.2857…); leading is DDIM-style multiples plus steps_offset; trailing counts
 * down from num_train_timesteps.
 */
export function sigmaSchedulerTimesteps(
  spacing: string,
  numTrain: number,
  steps: number,
  stepsOffset: number,
): Float32Array {
  switch (spacing) {
    case "linspace":
      return Float32Array.from(numpyLinspace(0, numTrain - 1, steps)).reverse();
    case "leading": {
      const ratio = Math.floor(numTrain / steps);
      const out = new Float32Array(steps);
      for (let i = 0; i < steps; i++) out[i] = f32((steps - 1 - i) * ratio + stepsOffset);
      return out;
    }
    case "trailing":
      return Float32Array.from(numpyArange(numTrain, 0, -numTrain / steps), (v) => f32(roundHalfEven(v)) - 1);
  }
  throw new Error(`timestep_spacing "${spacing}" is not supported; choose one of linspace, leading or trailing`);
}

/** The sigma ramp a config asks for after interpolation (Karras / exponential), as float64. */
export function convertSigmas(
  kind: "karras" | "exponential",
  interpolated: ArrayLike<number>,
  steps: number,
  configMin: number | null,
  configMax: number | null,
): Float64Array {
  const sigmaMin = configMin ?? interpolated[interpolated.length - 1];
  const sigmaMax = configMax ?? interpolated[0];
  return kind === "karras" ? karrasSigmas(sigmaMin, sigmaMax, steps) : exponentialSigmas(sigmaMin, sigmaMax, steps);
}
