import { createRoute } from "@hono/zod-openapi";
import { LorasResponseSchema } from "../../../shared/api/loras.schema.js";
import { apiKeySecurity, jsonContent, unauthorizedResponse } from "../../lib/openapi-responses.js";
import { requireApiKey } from "../../middlewares/api-key.middleware.js";

export const listLoras = createRoute({
  method: "get",
  path: "/api/v1/loras",
  tags: ["loras"],
  summary: "List the LoRA / LoHA adapters requests may name",
  description:
    "The adapters the GPU nodes offer for POST /api/v1/generate's `loras` (their lora.models_dir and start-up " +
    "adapters), as each node checked them against its model at start-up. Answered from a copy at most a few " +
    "seconds old. When no GPU node answers, the list is empty and nodes_answered is 0.",
  middleware: [requireApiKey] as const,
  security: apiKeySecurity,
  responses: {
    200: jsonContent(LorasResponseSchema, "The adapters"),
    401: unauthorizedResponse,
  },
});

export type ListLorasRoute = typeof listLoras;
