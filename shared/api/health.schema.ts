import { z } from "zod";

export const HealthResponseSchema = z
  .object({
    status: z.literal("ok"),
    model_loaded: z.boolean().meta({ description: "Whether a GPU node reports a loaded model." }),
  })
  .meta({ description: "Service status." });

export type HealthResponse = z.output<typeof HealthResponseSchema>;
