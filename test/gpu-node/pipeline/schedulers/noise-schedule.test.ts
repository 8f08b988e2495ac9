// The shared numerics against plain float64 formulas and values numpy / torch give.
import { describe, expect, it } from "vitest";
import {
  alphasCumprod,
  interpOnIndexGrid,
  karrasSigmas,
  logF32,
  makeBetas,
  numpyArange,
  numpyLinspace,
  rescaleZeroTerminalSnr,
  roundHalfEven,
  sigmaSchedulerTimesteps,
  sigmaToT,
  torchLinspaceF32,
  trainSigmas,
} from "../../../../gpu-node/pipeline/schedulers/noise-schedule.js";
import { alphaBar, linspace, trainSigma } from "./float64-reference.helpers.js";

const SD = { num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: "scaled_linear", trained_betas: null };
const ulp32 = (x: number) => 2 ** (Math.floor(Math.log2(Math.abs(x))) - 23);

describe("betas and ᾱ", () => {
  it("torch.linspace in float32 stays within two ulps of the exact line and hits both ends", () => {
    for (const [a, b, n] of [[0.0001, 0.02, 1000], [Math.sqrt(0.00085), Math.sqrt(0.012), 1000], [0.3, 7.1, 17]] as const) {
      const got = torchLinspaceF32(a, b, n);
      const exact = linspace(a, b, n);
      got.forEach((v, i) => expect(Math.abs(v - exact[i])).toBeLessThanOrEqual(2 * ulp32(exact[i])));
      expect(got[0]).toBe(Math.fround(a));
      expect(got[n - 1]).toBe(Math.fround(b));
    }
  });

  it("scaled_linear betas, ᾱ and training sigmas match the float64 schedule to float32 precision", () => {
    const cumprod = alphasCumprod(makeBetas(SD));
    cumprod.forEach((a, t) => expect(Math.abs(a - alphaBar[t]) / alphaBar[t]).toBeLessThan(2e-6));
    const sigmas = trainSigmas(cumprod);
    sigmas.forEach((s, t) => expect(Math.abs(s - trainSigma[t]) / trainSigma[t]).toBeLessThan(1e-4));
    expect(sigmas[999]).toBeCloseTo(14.6146, 4);
    expect(sigmas[0]).toBeCloseTo(0.0292, 4);
  });

  it("squaredcos_cap_v2 follows the cosine ᾱ(t) = cos²((t + 0.008)/1.008 · π/2), capped at 0.999", () => {
    const betas = makeBetas({ ...SD, beta_schedule: "squaredcos_cap_v2" });
    const f = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    expect(betas[0]).toBeCloseTo(1 - f(0.001) / f(0), 7);
    expect(betas[999]).toBeCloseTo(0.999, 6);
  });

  it("trained_betas are used as given; unknown schedules are refused", () => {
    expect(Array.from(makeBetas({ ...SD, trained_betas: [0.25, 0.5] }))).toEqual([0.25, 0.5]);
    expect(() => makeBetas({ ...SD, beta_schedule: "exp" })).toThrow(/exp/);
    expect(makeBetas({ ...SD, beta_schedule: "exp" }, true)[0]).toBeCloseTo(1 - Math.exp(-0.012), 6);
    expect(() => makeBetas({ ...SD, beta_schedule: "quadratic" })).toThrow(/quadratic/);
  });

  it("rescale_betas_zero_snr ends at ᾱ_T = 0 and keeps ᾱ_0", () => {
    const betas = makeBetas(SD);
    const rescaled = alphasCumprod(rescaleZeroTerminalSnr(betas));
    expect(rescaled[999]).toBe(0);
    expect(rescaled[0]).toBeCloseTo(alphasCumprod(betas)[0], 6);
  });
});

describe("numpy behaviours the schedules depend on", () => {
  it("np.linspace: i*step + start with the exact end", () => {
    expect(Array.from(numpyLinspace(0, 999, 8))).toEqual(Array.from({ length: 8 }, (_, i) => (i === 7 ? 999 : i * (999 / 7))));
    expect(Array.from(numpyLinspace(0, 999, 1))).toEqual([0]);
  });

  it("np.arange with a float step has ceil((stop-start)/step) elements (62 for 1000/61, ending at ~0)", () => {
    const a = numpyArange(1000, 0, -1000 / 61);
    expect(a.length).toBe(62);
    expect(Math.abs(a[61])).toBeLessThan(1e-9);
    expect(numpyArange(1000, 0, -1000 / 7).length).toBe(7);
  });

  it("np.round rounds half to even", () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 3.49999, 499.5, 449.55].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, 3, 500, 450]);
  });

  it("np.interp on the index grid: linear inside, clamped outside, exact on the grid", () => {
    const fp = [10, 20, 40];
    expect(interpOnIndexGrid(0.25, fp)).toBe(12.5);
    expect(interpOnIndexGrid(1.5, fp)).toBe(30);
    expect(interpOnIndexGrid(1, fp)).toBe(20);
    expect(interpOnIndexGrid(-3, fp)).toBe(10);
    expect(interpOnIndexGrid(7, fp)).toBe(40);
  });
});

describe("sigma ↔ timestep", () => {
  const sigmas = trainSigmas(alphasCumprod(makeBetas(SD)));
  const logs = logF32(sigmas);

  it("_sigma_to_t inverts the training sigmas and interpolates in log-sigma between them", () => {
    for (const t of [0, 1, 250, 500, 998]) {
      expect(sigmaToT(sigmas[t], logs, "numpy")).toBeCloseTo(t, 3);
      expect(sigmaToT(sigmas[t], logs, "torch")).toBeCloseTo(t, 3);
    }
    const mid = Math.sqrt(sigmas[400] * sigmas[401]);
    expect(sigmaToT(mid, logs, "numpy")).toBeCloseTo(400.5, 3);
    // Outside the training range it clamps to the ends.
    expect(sigmaToT(1e-6, logs, "numpy")).toBe(0);
    expect(sigmaToT(100, logs, "numpy")).toBe(999);
  });

  it("Karras' rho = 7 ramp: ends at sigma_max and sigma_min, uniform in sigma^(1/7)", () => {
    const k = karrasSigmas(0.0292, 14.6146, 5);
    expect(k[0]).toBeCloseTo(14.6146, 10);
    expect(k[4]).toBeCloseTo(0.0292, 10);
    const roots = Array.from(k, (s) => s ** (1 / 7));
    for (let i = 1; i < 4; i++) expect(roots[i] - roots[i - 1]).toBeCloseTo(roots[1] - roots[0], 10);
  });

  it("sigma schedulers space timesteps linspace / leading / trailing as diffusers", () => {
    expect(Array.from(sigmaSchedulerTimesteps("leading", 1000, 4, 1))).toEqual([751, 501, 251, 1]);
    expect(Array.from(sigmaSchedulerTimesteps("trailing", 1000, 4, 1))).toEqual([999, 749, 499, 249]);
    expect(Array.from(sigmaSchedulerTimesteps("linspace", 1000, 3, 1))).toEqual([999, 499.5, 0]);
    expect(() => sigmaSchedulerTimesteps("uniform", 1000, 3, 0)).toThrow(/uniform/);
  });
});
