import { z } from "zod";

// Error bodies in FastAPI's shapes: {"detail": "<message>"} and the 422 list of pydantic errors.

export const DetailErrorSchema = z.object({ detail: z.string() }).meta({ description: "An error with a message." });

export const ValidationErrorSchema = z
  .object({
    detail: z.array(
      z.object({
        type: z.string().meta({ example: "missing" }),
        loc: z.array(z.union([z.string(), z.number()])).meta({ example: ["body", "prompt"] }),
        msg: z.string().meta({ example: "Field required" }),
        input: z.unknown(),
        ctx: z.record(z.string(), z.unknown()).optional(),
      }),
    ),
  })
  .meta({ description: "Validation errors, in pydantic v2's format." });
