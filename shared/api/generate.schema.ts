import { z } from "zod";
import type { Config } from "../config/config.schema.js";
import { SCHEDULER_CLASSES, resolveScheduler } from "../schedulers/scheduler-names.js";
import { API_MESSAGES } from "./api-messages.js";
import { decodeInitImage, type InitImage } from "./init-image.js";
import { pyFloat, pyInt } from "./pydantic-fields.js";

// POST /api/v1/generate: the spec's fields, defaults and limits. Unknown fields are dropped (FastAPI ignores
// them), so additive fields (`loras`) join this object without breaking old clients.

export const OUTPUT_FORMATS = ["png", "jpg", "jpeg"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

// CLIP reads 77 tokens; this only bounds what we store and echo back.
export const MAX_PROMPT_CHARS = 10_000;
export const MAX_CALLBACK_URL_CHARS = 2048;
// Seeds are exchanged as JSON numbers: every integer up to 2^53-1 survives a round trip through any client.
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

export interface GenerateLimits {
  maxPixels: number;
  maxInitImageBytes: number;
  /** The size a request without width/height gets, when the config fixes one (else the GPU tier's native size). */
  defaultWidth: number | null;
  defaultHeight: number | null;
}

// Per-request adapters: a handful is what any UI stacks; each one named costs a merge on the GPU node.
export const MAX_LORAS = 8;
export const MAX_LORA_NAME_CHARS = 200;
// kohya/A1111 users go to ±2, rarely beyond 5; anything larger only burns the image.
export const MAX_LORA_WEIGHT = 10;

export const LoraWeightSchema = z
  .object({
    name: z
      .string()
      .max(MAX_LORA_NAME_CHARS)
      .refine((s) => s.trim().length > 0, "LoRA name must not be blank")
      .meta({ description: "An adapter the GPU nodes offer (GET /api/v1/loras): its file name without .safetensors.", example: "ink" }),
    weight: pyFloat({ ge: -MAX_LORA_WEIGHT, le: MAX_LORA_WEIGHT })
      .default(1)
      .meta({ description: `How strongly it applies (${-MAX_LORA_WEIGHT} to ${MAX_LORA_WEIGHT}; 0 turns it off, negative inverts it).`, example: 0.8 }),
  })
  .meta({ description: "A LoRA / LoHA adapter to merge into the model for this task." });

export type LoraWeight = z.output<typeof LoraWeightSchema>;

const lorasField = z
  .array(LoraWeightSchema)
  .max(MAX_LORAS)
  .superRefine(
    (loras, ctx) => {
      const seen = new Set<string>();
      loras.forEach((lora, i) => {
        if (seen.has(lora.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: `LoRA '${lora.name}' is listed twice` });
        seen.add(lora.name);
      });
    },
    // Like a pydantic validator: only once every entry is valid.
    { when: (payload) => payload.issues.length === 0 },
  )
  .nullable()
  .default(null)
  .meta({
    description:
      `Adapters merged into the model for this task only, on top of the server's start-up adapters (at most ${MAX_LORAS}, ` +
      "each name once; naming a start-up adapter sets its weight, 0 turns it off). Names the GPU nodes do not offer are refused with 422. " +
      "Their trigger words are put in front of the prompt. null: none.",
    example: [{ name: "ink", weight: 0.8 }],
  });

export function generateLimitsFromConfig(config: Config): GenerateLimits {
  return {
    maxPixels: config.api.limits.max_pixels,
    maxInitImageBytes: config.api.limits.max_init_image_bytes,
    defaultWidth: config.generation_defaults.width,
    defaultHeight: config.generation_defaults.height,
  };
}

function isHttpUrlWithHost(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return (url.protocol === "http:" || url.protocol === "https:") && url.hostname.length > 0;
}

const dimension = (axis: string) =>
  pyInt({ ge: 64, le: 2048, multipleOf: 8 })
    .nullable()
    .default(null)
    .meta({ description: `Image ${axis} in pixels (text-to-image only; img2img keeps the input's size). A multiple of 8 from 64 to 2048. null: the model's native size.` });

export function createGenerateRequestSchema(limits: GenerateLimits) {
  return z
    .object({
      prompt: z
        .string()
        .max(MAX_PROMPT_CHARS)
        .refine((s) => s.trim().length > 0, "prompt must not be blank")
        .meta({ description: "What the image should show.", example: "a beautiful landscape with mountains and lakes, sunset, highly detailed, 4k" }),
      init_image: z
        .string()
        .transform((text, ctx): InitImage => {
          const decoded = decodeInitImage(text, limits.maxInitImageBytes);
          if (decoded.ok) return decoded.image;
          ctx.addIssue({ code: "custom", message: decoded.reason });
          return z.NEVER;
        })
        .nullable()
        .default(null)
        .meta({
          description: `A data URL (data:image/png;base64,… or data:image/jpeg;base64,…) of at most ${limits.maxInitImageBytes} bytes. When present the request is image-to-image.`,
        }),
      negative_prompt: z
        .string()
        .max(MAX_PROMPT_CHARS)
        .nullable()
        .default(null)
        .meta({ description: "What the image should not show." }),
      width: dimension("width"),
      height: dimension("height"),
      num_images: pyInt({ ge: 1, le: 10 }).default(1).meta({ description: "How many images to generate (1-10)." }),
      num_inference_steps: pyInt({ ge: 1, le: 150 })
        .nullable()
        .default(null)
        .meta({ description: "Denoising steps (1-150; 20-50 recommended). null: the server's default." }),
      guidance_scale: pyFloat({ ge: 0, le: 50 })
        .nullable()
        .default(null)
        .meta({ description: "Classifier-free guidance scale (0-50; 7-12 recommended). null: the server's default." }),
      strength: pyFloat({ ge: 0, le: 1 })
        .nullable()
        .default(0.75)
        .meta({ description: "How much img2img changes the input image (0-1)." }),
      scheduler: z
        .string()
        .transform((name, ctx) => {
          const resolved = resolveScheduler(name);
          if (resolved) return resolved.name;
          ctx.addIssue({
            code: "custom",
            message: `unknown scheduler '${name}'; use one of ${SCHEDULER_CLASSES.join(", ")} or an A1111 name such as 'Euler a' or 'DPM++ 2M Karras'`,
          });
          return z.NEVER;
        })
        .nullable()
        .default(null)
        .meta({
          description: `Sampler: a diffusers class name (${SCHEDULER_CLASSES.join(", ")}) or an A1111 name (Euler a, DPM++ 2M Karras, …), case-insensitive. null: the server's default.`,
        }),
      seed: pyInt({ ge: 0, le: MAX_SEED })
        .nullable()
        .default(null)
        .meta({ description: "Random seed for reproducible results. null: a random seed, returned with the task." }),
      output_format: z
        .preprocess((v) => (typeof v === "string" ? v.toLowerCase() : v), z.enum(OUTPUT_FORMATS))
        .default("png")
        .meta({ description: "Image file format." }),
      callback_url: z
        .string()
        .max(MAX_CALLBACK_URL_CHARS)
        .refine(isHttpUrlWithHost, "callback_url must be an http or https URL with a host")
        .nullable()
        .default(null)
        .meta({ description: "Receives a POST with the outcome when the task completes or fails." }),
      loras: lorasField,
    })
    .superRefine((req, ctx) => {
      // Only text-to-image sizes are known here; img2img takes the input image's size.
      if (req.init_image !== null) return;
      const width = req.width ?? limits.defaultWidth;
      const height = req.height ?? limits.defaultHeight;
      if (typeof width !== "number" || typeof height !== "number") return;
      if (width * height > limits.maxPixels) {
        ctx.addIssue({
          code: "custom",
          message: `width × height = ${width * height} pixels exceeds the limit of ${limits.maxPixels} pixels (api.limits.max_pixels)`,
        });
      }
    })
    .meta({ description: "A text-to-image or image-to-image request." });
}

export type GenerateRequestSchema = ReturnType<typeof createGenerateRequestSchema>;
export type GenerateRequest = z.output<GenerateRequestSchema>;

export const GenerateResponseSchema = z
  .object({
    task_id: z.uuid().meta({ example: "550e8400-e29b-41d4-a716-446655440000" }),
    status: z.literal("pending"),
    message: z.string().meta({ example: API_MESSAGES.taskCreated }),
  })
  .meta({ description: "The task was created; poll GET /api/v1/tasks/{task_id} or wait for the callback." });

export type GenerateResponse = z.output<typeof GenerateResponseSchema>;
