import { createRoute } from "@hono/zod-openapi";
import { HealthResponseSchema } from "../../../shared/api/health.schema.js";
import { apiKeySecurity, jsonContent, unauthorizedResponse } from "../../lib/openapi-responses.js";
import { healthAuth } from "../../middlewares/api-key.middleware.js";

const healthRoute = (path: string) =>
  createRoute({
    method: "get",
    path,
    tags: ["health"],
    summary: "Service status",
    description: "Whether the service is up and a GPU node has its model loaded. Needs a key only when health_check.no_auth is false.",
    middleware: [healthAuth] as const,
    // Replaced per config in openapi.ts (no key needed by default).
    security: apiKeySecurity,
    responses: {
      200: jsonContent(HealthResponseSchema, "Service status"),
      401: unauthorizedResponse,
    },
  });

export const health = healthRoute("/health");
export const apiHealth = healthRoute("/api/health");

export type HealthRoute = typeof health;
