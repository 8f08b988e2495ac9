import { z } from "zod";

// GET /api/v1/loras: the adapters a request's `loras` may name, as the GPU nodes checked them against their model.

export const LoraInfoSchema = z
  .object({
    name: z.string().meta({ description: "What a request's loras[].name gives: the file name without .safetensors.", example: "ink" }),
    kind: z.string().meta({ description: "lora (kohya LoRA / LoCon), loha (LyCORIS LoHA), mixed (both in one file) or none.", example: "lora" }),
    trigger_words: z.array(z.string()).meta({ description: "Put in front of the prompt of every task that applies it." }),
    default_weight: z
      .number()
      .nullable()
      .meta({ description: "The weight a start-up adapter (lora.models) applies to every task; null for one that applies only when named." }),
    matched_modules: z.number().int().meta({ description: "Modules of the file that land on a weight of the model." }),
    unmatched_keys: z.number().int().meta({ description: "Module keys that match no weight of the model (e.g. keys of another architecture)." }),
    unmatched_key_examples: z.array(z.string()).meta({ description: "The first few of them." }),
    unsupported_keys: z.number().int().meta({ description: "Keys of algorithms the server does not apply (LoKr, DoRA, …)." }),
    size_bytes: z.number().int(),
    error: z.string().nullable().meta({ description: "Why it cannot be used (malformed file, another base model); null when it can." }),
  })
  .meta({ description: "A LoRA / LoHA adapter." });

export const LorasResponseSchema = z
  .object({
    loras: z.array(LoraInfoSchema).meta({ description: "By name; the union over the GPU nodes that answered." }),
    nodes_total: z.number().int().meta({ description: "GPU nodes configured." }),
    nodes_answered: z
      .number()
      .int()
      .meta({ description: "GPU nodes that answered. 0: none could be asked, so the list is empty and names are not checked before a task runs." }),
  })
  .meta({ description: "The adapters requests may name." });

export type LoraInfo = z.output<typeof LoraInfoSchema>;
export type LorasResponse = z.output<typeof LorasResponseSchema>;
