import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEdge, type TestEdge } from "../../edge-test-app.js";

let edge: TestEdge;
beforeAll(async () => {
  edge = await createTestEdge({ api: { keys: ["k"], key_header: "X-Team-Key" } });
});
afterAll(() => edge.close());

describe("docs pages", () => {
  it("leaves the assets to the platform when none are given (Workers static assets)", async () => {
    const bare = await createTestEdge();
    try {
      expect((await bare.request("/docs")).status).toBe(200);
      expect((await bare.request("/docs/assets/swagger-ui-bundle.js")).status).toBe(404);
    } finally {
      bare.close();
    }
  });
});

describe("/openapi.json", () => {
  it("lists every route with the API-key security schemes", async () => {
    const res = await edge.request("/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<string, Record<string, { security?: unknown[]; requestBody?: unknown; responses: Record<string, unknown> }>>;
      components: { securitySchemes: Record<string, unknown>; schemas: Record<string, { properties: Record<string, unknown>; required: string[] }> };
    };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths).sort()).toEqual(["/api/health", "/api/v1/generate", "/api/v1/loras", "/api/v1/tasks/{task_id}", "/api/v1/tasks/{task_id}/cancel", "/health"]);
    expect(doc.components.securitySchemes).toEqual({
      ApiKeyHeader: expect.objectContaining({ type: "apiKey", in: "header", name: "X-Team-Key" }),
      BearerAuth: expect.objectContaining({ type: "http", scheme: "bearer" }),
      ApiKeyQuery: expect.objectContaining({ type: "apiKey", in: "query", name: "api_key" }),
    });
    const anyKey = [{ ApiKeyHeader: [] }, { BearerAuth: [] }, { ApiKeyQuery: [] }];
    expect(doc.paths["/api/v1/generate"].post.security).toEqual(anyKey);
    expect(doc.paths["/api/v1/tasks/{task_id}"].get.security).toEqual(anyKey);
    expect(doc.paths["/api/v1/tasks/{task_id}/cancel"].post.security).toEqual(anyKey);
    expect(Object.keys(doc.paths["/api/v1/tasks/{task_id}/cancel"].post.responses).sort()).toEqual(["200", "401", "404", "409"]);
    // health_check.no_auth is true by default.
    expect(doc.paths["/health"].get.security).toEqual([]);
    expect(Object.keys(doc.paths["/api/v1/generate"].post.responses).sort()).toEqual(["200", "401", "413", "422", "429"]);

    const request = doc.components.schemas.GenerateRequest;
    expect(Object.keys(request.properties)).toEqual([
      "prompt", "init_image", "negative_prompt", "width", "height", "num_images", "num_inference_steps",
      "guidance_scale", "strength", "scheduler", "seed", "output_format", "callback_url", "loras",
    ]);
    expect(request.required).toEqual(["prompt"]);
    expect(request.properties.num_images).toMatchObject({ type: "integer", minimum: 1, maximum: 10, default: 1 });
    expect(request.properties.width).toMatchObject({ minimum: 64, maximum: 2048, multipleOf: 8 });
    expect(request.properties.strength).toMatchObject({ default: 0.75 });
    expect(request.properties.output_format).toMatchObject({ enum: ["png", "jpg", "jpeg"], default: "png" });
    expect(request.properties.loras).toMatchObject({
      type: ["array", "null"],
      maxItems: 8,
      items: { properties: { name: { type: "string" }, weight: { type: "number", minimum: -10, maximum: 10, default: 1 } }, required: ["name"] },
    });
    expect(doc.paths["/api/v1/loras"].get.security).toEqual(anyKey);
    expect(Object.keys(doc.paths["/api/v1/loras"].get.responses).sort()).toEqual(["200", "401"]);
    const listed = (doc.paths["/api/v1/loras"].get.responses["200"] as { content: { "application/json": { schema: { properties: Record<string, { items?: { required: string[] } }> } } } })
      .content["application/json"].schema;
    expect(Object.keys(listed.properties)).toEqual(["loras", "nodes_total", "nodes_answered"]);
    expect(listed.properties.loras.items?.required).toEqual([
      "name", "kind", "trigger_words", "default_weight", "matched_modules", "unmatched_keys", "unmatched_key_examples", "unsupported_keys", "size_bytes", "error",
    ]);
    const task = (doc.paths["/api/v1/tasks/{task_id}"].get.responses["200"] as { content: { "application/json": { schema: { properties: Record<string, unknown> } } } })
      .content["application/json"].schema;
    expect(task.properties.loras).toMatchObject({ type: "array" });
  });

});
