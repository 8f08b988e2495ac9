// Loads the diffusers reference numbers (copied from shared/goldens/tiny-sd so a fresh clone has them).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const GOLDENS_DIR = fileURLToPath(new URL("../gpu-node/pipeline/fixtures/goldens/", import.meta.url));
export const TINY_SD_DIR = fileURLToPath(new URL("../../models/tiny-sd/", import.meta.url));

export type GoldenCase = "txt2img_euler" | "txt2img_ddim";

export interface GoldenParams {
  prompt: string;
  negative_prompt: string;
  num_inference_steps: number;
  guidance_scale: number;
  seed: number;
  height: number;
  width: number;
  scheduler: string;
  scheduler_class: string;
  scheduler_config: Record<string, unknown>;
  init_noise_sigma: number;
  timesteps_used: number[];
  prompt_input_ids: number[];
  negative_prompt_input_ids: number[];
  vae_scaling_factor: number;
  vae_scale_factor: number;
  latent_shape: number[];
  files: Record<string, { file: string; shape: number[] } | string[]>;
}

export interface GoldenTensor {
  data: Float32Array;
  shape: number[];
}

export interface Golden {
  params: GoldenParams;
  tensor(name: "noise" | "initial_latents" | "prompt_embeds" | "step_latents" | "final_latents" | "image"): GoldenTensor;
  png(): Uint8Array;
}

export function loadGolden(name: GoldenCase): Golden {
  const dir = new URL(`../gpu-node/pipeline/fixtures/goldens/${name}/`, import.meta.url);
  const params = JSON.parse(readFileSync(new URL("params.json", dir), "utf8")) as GoldenParams;
  return {
    params,
    tensor(key) {
      const bytes = readFileSync(new URL(`${key}.bin`, dir));
      const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      const spec = params.files[key];
      // noise.bin has no entry of its own: it is the initial latents' shape.
      const shape = spec && !Array.isArray(spec) ? spec.shape : params.latent_shape;
      return { data, shape };
    },
    png() {
      return new Uint8Array(readFileSync(new URL("image_0.png", dir)));
    },
  };
}

/** Largest absolute difference between two arrays of the same length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

export function maxAbs(a: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]));
  return max;
}
