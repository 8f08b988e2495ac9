import { z } from "zod";
import type { Config } from "../config/config.schema.js";
import { SCHEDULER_CLASSES, resolveScheduler } from "../schedulers/scheduler-names.js";
import { API_MESSAGES } from "./api-messages.js";
import { decodeInitImage, type InitImage } from "./init-image.js";
import { pyFloat, pyInt } from "./pydantic-fields.js";

// POST /api/v1/generate: the spec's fields, defaults and limits. Unknown fields are dropped (FastAPI ignores
// them), so later additive fields (e.g. `loras`, issue 7) can join this object without breaking old clients.

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
