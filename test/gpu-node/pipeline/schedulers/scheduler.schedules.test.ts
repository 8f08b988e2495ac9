// Every class's timesteps and sigmas after setTimesteps, for the tiny model's (SD 1.x) scheduler_config, against a
// reference written plainly here in float64 from diffusers' formulas — independent of the port's float32
// emulation — and against literal values known from diffusers (pipeline goldens, SD's well-known sigma range).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createScheduler } from "../../../../gpu-node/pipeline/schedulers/index.js";
import { resolveScheduler } from "../../../../shared/schedulers/scheduler-names.js";
import { N, linspace, sigmaAt, tOfSigma, trainSigma } from "./float64-reference.helpers.js";

const modelConfig = JSON.parse(
  readFileSync(fileURLToPath(new URL("../../../../models/tiny-sd/scheduler/scheduler_config.json", import.meta.url)), "utf8"),
) as Record<string, unknown>;

const linspaceTimesteps = (n: number) => linspace(0, N - 1, n).reverse();
const leading = (n: number) => Array.from({ length: n }, (_, i) => (n - 1 - i) * Math.floor(N / n) + 1);
const repeatAfterFirst = (v: number[]) => [v[0], ...v.slice(1).flatMap((x) => [x, x])];
const roundHalfEven = (x: number) => (Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : Math.round(x));

/** Karras' rho = 7 ramp; the k-diffusion classes take its ends from their interpolated sigmas, DPM++ from training. */
const karras = (n: number, sigmaMin = trainSigma[0], sigmaMax = trainSigma[N - 1]) => {
  const lo = sigmaMin ** (1 / 7);
  const hi = sigmaMax ** (1 / 7);
  return linspace(0, 1, n).map((r) => (hi + r * (lo - hi)) ** 7);
};

interface Expected {
  /** Integer by construction (DDPM-style spacing, rounded Karras): must match exactly. */
  integer?: boolean;
  timesteps: number[];
  sigmas: number[] | null;
}

function kSchedule(n: number, useKarras: boolean, roundT: boolean): { t: number[]; s: number[] } {
  if (!useKarras) {
    const t = linspaceTimesteps(n);
    return { t, s: t.map(sigmaAt) };
  }
  const ends = linspaceTimesteps(n).map(sigmaAt);
  const s = karras(n, ends[n - 1], ends[0]);
  return { t: s.map((x) => (roundT ? Math.round(tOfSigma(x)) : tOfSigma(x))), s };
}

const REFERENCE: Record<string, (n: number) => Expected> = {
  Euler: (n) => {
    const { t, s } = kSchedule(n, false, false);
    return { timesteps: t, sigmas: [...s, 0] };
  },
  "Euler a": (n) => REFERENCE.Euler(n),
  LMS: (n) => REFERENCE.Euler(n),
  "LMS Karras": (n) => {
    const { t, s } = kSchedule(n, true, false);
    return { timesteps: t, sigmas: [...s, 0] };
  },
  Heun: (n) => {
    const { t, s } = kSchedule(n, false, false);
    return { timesteps: repeatAfterFirst(t), sigmas: [...repeatAfterFirst(s), 0] };
  },
  ...Object.fromEntries(
    [false, true].map((k) => [
      k ? "DPM2 Karras" : "DPM2",
      (n: number): Expected => {
        const { t, s } = kSchedule(n, k, true);
        const all = [...s, 0];
        const mid = all.map((x, i) => (i === 0 ? NaN : Math.sqrt(x * all[i - 1])));
        const timesteps = [t[0]];
        for (let i = 1; i < n; i++) timesteps.push(tOfSigma(mid[i]), t[i]);
        return { timesteps, sigmas: [...repeatAfterFirst(all), 0] };
      },
    ]),
  ),
  ...Object.fromEntries(
    [false, true].map((k) => [
      k ? "DPM2 a Karras" : "DPM2 a",
      (n: number): Expected => {
        const { t, s } = kSchedule(n, k, true);
        const all = [...s, 0];
        const down = all.map((x, i) => {
          const next = all[i + 1] ?? 0;
          const up = x === 0 ? 0 : Math.sqrt((next * next * (x * x - next * next)) / (x * x));
          return Math.sqrt(next * next - up * up);
        });
        const timesteps = [t[0]];
        for (let i = 0; i < n - 1; i++) timesteps.push(tOfSigma(Math.sqrt(all[i] * down[i])), t[i + 1]);
        return { timesteps, sigmas: [...repeatAfterFirst(all), 0] };
      },
    ]),
  ),
  DDIM: (n) => ({ integer: true, timesteps: leading(n), sigmas: null }),
  PLMS: (n) => {
    const asc = leading(n).reverse();
    const plms = n === 1 ? asc : [...asc.slice(0, -1), asc[n - 2], asc[n - 1]];
    return { integer: true, timesteps: plms.reverse(), sigmas: null };
  },
  ...Object.fromEntries(
    ["DPM++ 2M", "DPM++ SDE"].flatMap((name) =>
      [false, true].map((k) => [
        k ? `${name} Karras` : name,
        (n: number): Expected => {
          if (k) {
            const s = karras(n);
            return { integer: true, timesteps: s.map((x) => Math.round(tOfSigma(x))), sigmas: [...s, 0] };
          }
          const t = linspace(0, N - 1, n + 1).map(roundHalfEven).reverse().slice(0, -1);
          return { integer: true, timesteps: t, sigmas: [...t.map((x) => trainSigma[x]), 0] };
        },
      ]),
    ),
  ),
};

const STEPS = [1, 2, 3, 8, 20, 25, 50];

describe.each(Object.keys(REFERENCE))("%s", (name) => {
  const choice = resolveScheduler(name);
  it.each(STEPS)("%i steps", (steps) => {
    expect(choice).not.toBeNull();
    const s = createScheduler(choice!, modelConfig);
    s.setTimesteps(steps);
    const expected = REFERENCE[name](steps);
    const actual = Array.from(s.timesteps);
    expect(actual.length).toBe(expected.timesteps.length);
    // Integer schedules match exactly. Fractional ones (float32 linspace, timesteps mapped back from sigmas) stay
    // within float32 rounding of the float64 value: 0.02 of a training step, where sigma moves by < 1e-4.
    if (expected.integer) expect(actual).toEqual(expected.timesteps);
    else actual.forEach((t, i) => expect(Math.abs(t - expected.timesteps[i])).toBeLessThan(0.02));
    if (expected.sigmas === null) {
      expect(s.sigmas).toBeNull();
      expect(s.initNoiseSigma).toBe(1);
      return;
    }
    const sigmas = Array.from(s.sigmas ?? []);
    expect(sigmas.length).toBe(expected.sigmas.length);
    sigmas.forEach((x, i) => expect(Math.abs(x - expected.sigmas![i])).toBeLessThanOrEqual(1e-4 * Math.max(expected.sigmas![i], 1e-3)));
    const dpm = name.startsWith("DPM++");
    expect(s.initNoiseSigma).toBeCloseTo(dpm ? 1 : Math.max(...expected.sigmas), 4);
  });
});

describe("literal values known from diffusers", () => {
  it("SD's sigma range is 14.6146 … 0.0292 (k-diffusion's sigma_max / sigma_min for SD 1.x)", () => {
    const s = createScheduler(resolveScheduler("Euler")!, modelConfig);
    s.setTimesteps(50);
    expect(s.sigmas![0]).toBeCloseTo(14.6146, 4);
    expect(s.sigmas![49]).toBeCloseTo(0.0292, 4);
    expect(s.initNoiseSigma).toBeCloseTo(14.6146, 4);
  });

  it("DDIM with 50 steps: 981, 961, …, 21, 1", () => {
    const s = createScheduler(resolveScheduler("DDIM")!, modelConfig);
    s.setTimesteps(50);
    expect(Array.from(s.timesteps)).toEqual(Array.from({ length: 50 }, (_, i) => 981 - 20 * i));
  });

  it("PLMS with 50 steps repeats its second timestep: 981, 961, 961, 941, …, 1", () => {
    const s = createScheduler(resolveScheduler("PLMS")!, modelConfig);
    s.setTimesteps(50);
    expect(Array.from(s.timesteps.slice(0, 4))).toEqual([981, 961, 961, 941]);
    expect(s.timesteps.length).toBe(51);
    expect(s.timesteps[50]).toBe(1);
  });

  it("the goldens' 8-step Euler and DDIM schedules", () => {
    const euler = createScheduler(resolveScheduler("Euler")!, modelConfig);
    euler.setTimesteps(8);
    expect(Array.from(euler.timesteps)).toEqual([
      999.0, 856.2857055664062, 713.5714111328125, 570.8571166992188, 428.1428527832031, 285.4285583496094,
      142.7142791748047, 0.0,
    ]);
    expect(Array.from(euler.sigmas!)).toEqual([
      14.614645004272461, 6.678017616271973, 3.522064685821533, 2.060643434524536, 1.2768336534500122,
      0.7912614941596985, 0.4396674931049347, 0.029167532920837402, 0.0,
    ]);
    const ddim = createScheduler(resolveScheduler("DDIM")!, modelConfig);
    ddim.setTimesteps(8);
    expect(Array.from(ddim.timesteps)).toEqual([876, 751, 626, 501, 376, 251, 126, 1]);
  });
});
