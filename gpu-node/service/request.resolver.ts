// Turns a GenerateRequest into the fully resolved GenerateParams the pipeline takes: defaults filled
// (config.generation_defaults, the model's native size and scheduler, a drawn seed), limits checked. The edge
// validates too; this is the node's own guard, so bad input becomes failed{invalid_argument}, never a crash.
import type { Config } from "../../shared/config/config.schema.js";
import { DomainError } from "../../shared/errors/error-codes.js";
import { OutputFormat, type GenerateRequest } from "../../shared/gen/sd/v1/gpu_pb.js";
import { resolveScheduler, SCHEDULER_NAMES, type ResolvedScheduler } from "../../shared/schedulers/scheduler-names.js";
import { loraRequestProblem, type KnownLora } from "../lora/lora-request.check.js";
import type { GenerateParams } from "../pipeline/pipeline.types.js";

export interface ResolveContext {
  defaults: Config["generation_defaults"];
  limits: Config["api"]["limits"];
  native: { width: number; height: number };
  defaultScheduler: ResolvedScheduler;
  drawSeed: () => number;
  /** The adapters the pipeline can apply, by name: a request naming another fails before it is queued. */
  loras: ReadonlyMap<string, KnownLora>;
}

export type Resolved = { ok: true; params: GenerateParams } | { ok: false; error: DomainError };

const TASK_ID = /^[A-Za-z0-9._-]{1,128}$/;
export const MAX_NUM_IMAGES = 10;
// diffusers accepts at most num_train_timesteps (1000 for every SD 1.x/2.x scheduler config).
export const MAX_STEPS = 1000;
// The latent grid is the image size divided by the VAE's scale factor, 8 for every SD 1.x/2.x VAE.
const SIZE_MULTIPLE = 8;

/** Task ids become part of object keys and log lines: a conservative alphabet, checked before anything else. */
export function isValidTaskId(taskId: string): boolean {
  return TASK_ID.test(taskId) && taskId !== "." && taskId !== "..";
}

/** A seed for a request that has none: 32 bits, like A1111 and the original service's random seeds. */
export function drawSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

function invalid(message: string): Resolved {
  return { ok: false, error: new DomainError("invalid_argument", message) };
}

function isIntIn(value: number, min: number, max: number): boolean {
  return Number.isInteger(value) && value >= min && value <= max;
}

export function resolveGenerateRequest(request: GenerateRequest, ctx: ResolveContext): Resolved {
  const initImage = request.initImage ?? null;
  if (initImage !== null && initImage.byteLength === 0) return invalid("init_image is empty");
  if (initImage !== null && initImage.byteLength > ctx.limits.max_init_image_bytes) {
    return invalid(`init_image is ${initImage.byteLength} bytes; the limit is ${ctx.limits.max_init_image_bytes}`);
  }

  // img2img takes the init image's size; width/height are then only placeholders the pipeline ignores.
  const width = request.width ?? ctx.defaults.width ?? ctx.native.width;
  const height = request.height ?? ctx.defaults.height ?? ctx.native.height;
  if (initImage === null) {
    for (const [name, value] of [["width", width], ["height", height]] as const) {
      if (!isIntIn(value, SIZE_MULTIPLE, 1 << 16) || value % SIZE_MULTIPLE !== 0) {
        return invalid(`${name} must be a positive multiple of ${SIZE_MULTIPLE}, got ${value}`);
      }
    }
    if (width * height > ctx.limits.max_pixels) {
      return invalid(`${width}x${height} is ${width * height} pixels; the limit is ${ctx.limits.max_pixels}`);
    }
  }

  const numImages = request.numImages ?? 1;
  if (!isIntIn(numImages, 1, MAX_NUM_IMAGES)) return invalid(`num_images must be 1..${MAX_NUM_IMAGES}, got ${numImages}`);

  const steps = request.numInferenceSteps ?? ctx.defaults.num_inference_steps;
  if (!isIntIn(steps, 1, MAX_STEPS)) return invalid(`num_inference_steps must be 1..${MAX_STEPS}, got ${steps}`);

  const guidanceScale = request.guidanceScale ?? ctx.defaults.guidance_scale;
  if (!Number.isFinite(guidanceScale) || guidanceScale < 0 || guidanceScale > 50) {
    return invalid(`guidance_scale must be 0..50, got ${guidanceScale}`);
  }

  const strength = request.strength ?? ctx.defaults.strength;
  // img2img with floor(steps * strength) = 0 denoises nothing: the output is the VAE round trip of the input,
  // which is what the API documents for strength 0 ("almost unchanged").
  if (!Number.isFinite(strength) || strength < 0 || strength > 1) return invalid(`strength must be 0..1, got ${strength}`);

  let scheduler = ctx.defaultScheduler;
  if (request.scheduler !== undefined && request.scheduler.trim() !== "") {
    const found = resolveScheduler(request.scheduler);
    if (!found) {
      return invalid(`unknown scheduler "${request.scheduler}"; accepted: ${SCHEDULER_NAMES.join(", ")}`);
    }
    scheduler = found;
  }

  const seed = request.seed ?? ctx.drawSeed();
  if (!isIntIn(seed, 0, Number.MAX_SAFE_INTEGER)) return invalid(`seed must be an integer 0..2^53-1, got ${seed}`);

  const loras = request.loras.map((lora) => ({ name: lora.name, weight: lora.weight }));
  const loraProblem = loraRequestProblem(loras, ctx.loras);
  if (loraProblem) return invalid(loraProblem);

  return {
    ok: true,
    params: {
      prompt: request.prompt,
      negativePrompt: request.negativePrompt ?? null,
      width,
      height,
      numImages,
      numInferenceSteps: steps,
      guidanceScale,
      strength,
      scheduler: { name: scheduler.name, className: scheduler.className, overrides: { ...scheduler.overrides } },
      seed,
      initImage,
      outputFormat: request.outputFormat === OutputFormat.JPEG ? "jpeg" : "png",
      loras,
    },
  };
}
