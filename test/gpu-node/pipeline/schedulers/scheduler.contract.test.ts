// One suite for every scheduler class and alias variant: the port must reproduce diffusers 0.33.1 (the reference
// fixture made with the real classes) in its timesteps, sigmas, init_noise_sigma, the latents after every step
// of a txt2img and an img2img loop, and the number of normals drawn at each step.
import { describe, expect, it } from "vitest";
import { createScheduler, resolveSchedulerConfig } from "../../../../gpu-node/pipeline/schedulers/index.js";
import {
  X_T,
  decodeF32,
  modelConfigFor,
  reference,
  relativeMaxDiff,
  runLoop,
  TapeNoise,
  type ReferenceCase,
} from "./diffusers-reference.helpers.js";

const cases = reference.cases;

const build = (c: ReferenceCase) => createScheduler({ className: c.className, overrides: c.overrides }, modelConfigFor(c));
const label = (c: ReferenceCase) =>
  `${c.name} (${c.className}${Object.keys(c.file).length ? ` file ${JSON.stringify(c.file)}` : ""}) ${c.steps} steps`;

/**
 * Timesteps equal diffusers' exactly, except where diffusers maps a sigma back to a timestep (_sigma_to_t after
 * Karras ramps): numpy takes float32 logs with its SIMD kernel, up to an ulp from the correctly rounded log, which
 * moves such a fractional timestep by ~3e-5; KDPM2's midpoint timesteps, computed in float32, by up to two
 * float32 ulps near t = 1000 (1.2e-4). The UNet's timestep embedding cannot tell.
 */
function expectTimesteps(actual: number[], expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  const worst = Math.max(0, ...actual.map((t, i) => Math.abs(t - expected[i])));
  expect(worst).toBeLessThanOrEqual(2.5e-4);
  if (actual.some((t, i) => t !== expected[i])) expect(actual.every(Number.isInteger)).toBe(false);
}

// Float32 rounding differences (exp/log/pow implementations) stay far below this over a whole loop.
const LOOP_TOLERANCE = 1e-6;

describe("schedulers match diffusers 0.33.1", () => {
  const schedules = cases.filter((c) => !c.loop);
  it.each(schedules.map((c) => [label(c), c] as const))("timesteps and sigmas: %s", (_name, c) => {
    const s = build(c);
    s.setTimesteps(c.steps);
    expectTimesteps(Array.from(s.timesteps), c.timesteps);
    if (c.sigmas === null) expect(s.sigmas).toBeNull();
    else expect(Array.from(s.sigmas ?? [])).toEqual(c.sigmas);
    expect(s.initNoiseSigma).toBe(c.initNoiseSigma);
  });

  it.each(cases.map((c) => [label(c), c] as const))("resolved config: %s", (_name, c) => {
    const resolved = resolveSchedulerConfig({ className: c.className, overrides: c.overrides }, modelConfigFor(c));
    const expected = Object.fromEntries(
      Object.entries(c.config).map(([k, v]) => [k, v === "-inf" ? -Infinity : v === "inf" ? Infinity : v]),
    );
    expect(resolved).toEqual(expected);
  });

  const loops = cases.filter((c) => c.loop);
  it.each(loops.map((c) => [`${c.loop} ${label(c)}`, c] as const))("loop: %s", (_name, c) => {
    const result = runLoop(build(c), c);
    expectTimesteps(result.loopTimesteps, c.loopTimesteps ?? []);
    expect(result.draws).toEqual(c.draws);
    if (c.addNoise) expect(relativeMaxDiff(result.addNoise ?? [], decodeF32(c.addNoise))).toBeLessThanOrEqual(1e-7);
    const expected = (c.trajectory ?? []).map(decodeF32);
    expect(result.trajectory.length).toBe(expected.length);
    const worst = Math.max(...result.trajectory.map((x, i) => relativeMaxDiff(x, expected[i])));
    expect(worst).toBeLessThanOrEqual(LOOP_TOLERANCE);
  });
});

describe("scheduler state", () => {
  const variants = cases.filter((c) => c.loop === "txt2img" && c.steps === 8 && Object.keys(c.file).length === 0);

  it.each(variants.map((c) => [label(c), c] as const))("same noise stream, same result; fresh instances do not share state: %s", (_n, c) => {
    const a = runLoop(build(c), c, new TapeNoise());
    const b = runLoop(build(c), c, new TapeNoise());
    expect(b.trajectory.at(-1)).toEqual(a.trajectory.at(-1));
    // Running again on the same instance after setTimesteps starts over (diffusers resets the step index).
    const s = build(c);
    runLoop(s, c);
    const again = runLoop(s, c);
    expect(relativeMaxDiff(again.trajectory.at(-1) ?? [], a.trajectory.at(-1) ?? [])).toBe(0);
  });

  it.each(variants.filter((c) => (c.draws ?? []).some((d) => d > 0)).map((c) => [label(c), c] as const))(
    "a different noise stream changes a stochastic sampler's result: %s",
    (_n, c) => {
      const shifted = new TapeNoise(Float32Array.from(decodeF32(reference.tape)).reverse());
      const a = runLoop(build(c), c);
      const b = runLoop(build(c), c, shifted);
      expect(relativeMaxDiff(b.trajectory.at(-1) ?? [], a.trajectory.at(-1) ?? [])).toBeGreaterThan(1e-3);
      expect(b.draws.every((d) => d === 0 || d === X_T.length)).toBe(true);
    },
  );
});
