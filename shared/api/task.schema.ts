import { z } from "zod";

// GET /api/v1/tasks/{task_id}: the spec's fields in the spec's order, then our additive ones.

export const TASK_STATUSES = ["pending", "processing", "completed", "failed", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

const isoTimestamp = z
  .string()
  .meta({ description: "ISO 8601 in UTC without a zone suffix, as the original service wrote it.", example: "2024-01-01T12:00:00" });

export const TaskResponseSchema = z
  .object({
    task_id: z.string().meta({ example: "550e8400-e29b-41d4-a716-446655440000" }),
    status: z.enum(TASK_STATUSES),
    result_url: z.string().nullable().meta({ description: "The image URL when the task produced exactly one image." }),
    result_urls: z.array(z.string()).nullable().meta({ description: "The image URLs when the task produced several." }),
    error_message: z.string().nullable(),
    created_at: isoTimestamp,
    updated_at: isoTimestamp,
    seed: z.number().int().nullable().meta({ description: "The seed used (drawn by the server when the request had none)." }),
    width: z.number().int().nullable(),
    height: z.number().int().nullable(),
    scheduler: z.string().nullable(),
    num_images: z.number().int(),
    progress: z
      .object({ step: z.number().int(), total: z.number().int() })
      .nullable()
      .meta({ description: "Denoising progress while processing." }),
    queue_position: z.number().int().nullable().meta({ description: "Tasks ahead of this one while it waits." }),
    prompt: z.string(),
    negative_prompt: z.string().nullable(),
    loras: z
      .array(z.object({ name: z.string(), weight: z.number() }))
      .meta({ description: "The adapters the request named, with their weights (empty when none)." }),
  })
  .meta({ description: "A generation task." });

export type TaskResponse = z.output<typeof TaskResponseSchema>;

export const TaskIdParamsSchema = z.object({
  task_id: z.string().meta({ description: "The task ID returned by POST /api/v1/generate.", example: "550e8400-e29b-41d4-a716-446655440000" }),
});
