// Reads fixtures/diffusers-reference.json (made by make-diffusers-reference.py from the real diffusers 0.33.1
// scheduler classes) and replays its loops through our schedulers: same initial latents, the same stand-in UNet
// repeated op for op in float32, and the same stream of normals for the stochastic samplers.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { SchedulerClass, SchedulerOverrides } from "../../../../shared/schedulers/scheduler-names.js";
import type { NoiseSource, Scheduler } from "../../../../gpu-node/pipeline/schedulers/scheduler.types.js";

export interface ReferenceCase {
  name: string;
  className: SchedulerClass;
  overrides: SchedulerOverrides;
  /** Keys changed in the model's scheduler_config.json for this case. */
  file: Record<string, unknown>;
  steps: number;
  loop?: "txt2img" | "img2img";
  strength?: number;
  config: Record<string, unknown>;
  timesteps: number[];
  sigmas: number[] | null;
  initNoiseSigma: number;
  tStart?: number;
  addNoise?: string;
  loopTimesteps?: number[];
  trajectory?: string[];
  draws?: number[];
}

export interface Reference {
  generatedBy: string;
  modelConfig: Record<string, unknown>;
  shape: number[];
  xT: string;
  x0: string;
  imgNoise: string;
  epsBase: string;
  tape: string;
  cases: ReferenceCase[];
}

export const reference: Reference = JSON.parse(
  readFileSync(fileURLToPath(new URL("./fixtures/diffusers-reference.json", import.meta.url)), "utf8"),
);

export function decodeF32(b64: string): Float32Array {
  const bytes = Buffer.from(b64, "base64");
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

export const X_T = decodeF32(reference.xT);
export const X_0 = decodeF32(reference.x0);
export const IMG_NOISE = decodeF32(reference.imgNoise);
const EPS_BASE = decodeF32(reference.epsBase);
const TAPE = decodeF32(reference.tape);

/** Replays the reference's stream of normals and records how many values each step took. */
export class TapeNoise implements NoiseSource {
  private pos = 0;
  readonly draws: number[] = [];
  constructor(private readonly values: Float32Array = TAPE) {}
  randn(count: number): Float32Array {
    if (this.pos + count > this.values.length) throw new Error("tape exhausted");
    const out = this.values.slice(this.pos, this.pos + count);
    this.pos += count;
    this.draws.push(count);
    return out;
  }
}

/** The stand-in UNet of the reference: x_in * 0.3 + eps_base * (1 + 0.0005 t), in float32. */
export function fakeModel(xIn: Float32Array, t: number): Float32Array {
  const a = Math.fround(0.3);
  const b = Math.fround(1.0 + 0.0005 * t);
  return xIn.map((x, i) => Math.fround(x * a) + Math.fround(EPS_BASE[i] * b));
}

export interface LoopResult {
  loopTimesteps: number[];
  addNoise: Float32Array | null;
  trajectory: Float32Array[];
  draws: number[];
}

/** The StableDiffusion(Img2Img)Pipeline loop around a scheduler, as the reference ran it. */
export function runLoop(scheduler: Scheduler, c: ReferenceCase, noise: TapeNoise = new TapeNoise()): LoopResult {
  scheduler.setTimesteps(c.steps);
  let timesteps = Array.from(scheduler.timesteps);
  let latents: Float32Array;
  let addNoise: Float32Array | null = null;
  if (c.loop === "img2img") {
    const initTimestep = Math.min(Math.floor(c.steps * (c.strength ?? 1)), c.steps);
    const tStart = Math.max(c.steps - initTimestep, 0);
    timesteps = timesteps.slice(tStart * scheduler.order);
    scheduler.setBeginIndex(tStart * scheduler.order);
    latents = scheduler.addNoise(X_0, IMG_NOISE, timesteps[0]);
    addNoise = latents;
  } else {
    const sigma = scheduler.initNoiseSigma;
    latents = X_T.map((x) => x * sigma);
  }
  const trajectory: Float32Array[] = [];
  const draws: number[] = [];
  for (const t of timesteps) {
    const xIn = scheduler.scaleModelInput(latents, t);
    const out = fakeModel(xIn, t);
    const before = noise.draws.length;
    latents = scheduler.step(out, t, latents, noise);
    draws.push(noise.draws.slice(before).reduce((a, b) => a + b, 0));
    trajectory.push(latents);
  }
  return { loopTimesteps: timesteps, addNoise, trajectory, draws };
}

/** max |a - b| / max(1, max |b|): the goldens' "relative to the largest magnitude" measure. */
export function relativeMaxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

export function modelConfigFor(c: ReferenceCase): Record<string, unknown> {
  return { ...reference.modelConfig, ...c.file };
}
