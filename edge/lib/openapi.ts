import type { Config } from "../../shared/config/config.schema.js";
import type { GenerateRequestSchema } from "../../shared/api/generate.schema.js";
import type { AppOpenAPI } from "../app.types.js";

// The OpenAPI document: built once, after every route is mounted, with the security schemes the config
// implies (the key header's name; whether health checks need a key).

const HEALTH_PATHS = ["/health", "/api/health"];

export function registerComponents(app: AppOpenAPI, config: Config, generateRequestSchema: GenerateRequestSchema): void {
  app.openAPIRegistry.register("GenerateRequest", generateRequestSchema);
  app.openAPIRegistry.registerComponent("securitySchemes", "ApiKeyHeader", {
    type: "apiKey",
    in: "header",
    name: config.api.key_header,
    description: "An API key from api.keys.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "BearerAuth", {
    type: "http",
    scheme: "bearer",
    description: "The same API key as `Authorization: Bearer <key>`.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "ApiKeyQuery", {
    type: "apiKey",
    in: "query",
    name: "api_key",
    description: "The same API key as the `api_key` query parameter.",
  });
}

export function buildOpenApiJson(app: AppOpenAPI, config: Config): string {
  const document = app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "SD Image API",
      version: "1.0.0",
      description:
        "Stable Diffusion image generation: create a task with POST /api/v1/generate, then poll " +
        "GET /api/v1/tasks/{task_id} or receive a callback. Timestamps are UTC, ISO 8601 without a zone suffix.",
    },
  });
  if (config.health_check.no_auth) {
    for (const path of HEALTH_PATHS) {
      const get = document.paths?.[path]?.get;
      if (get) {
        get.security = [];
        delete get.responses?.["401"];
      }
    }
  }
  return JSON.stringify(document);
}
