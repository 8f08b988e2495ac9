// The public API's contract at the HTTP level: ONE suite, run unchanged against every edge (the Node edge in
// node-edge.contract.test.ts, the Workers edge under wrangler/workerd in test/worker/worker.contract.test.ts).
// It speaks to a base URL only, so it checks what clients see: routes, auth variants, 401/404/405/413/422/429
// bodies byte for byte, CORS, the docs pages and the OpenAPI document. Not a test file itself.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

export const KEY_1 = "contract-key-1";
export const KEY_2 = "contract-key-2";

export interface ContractEdge {
  /** http://host:port, no trailing slash. */
  baseUrl: string;
  close(): Promise<void>;
}

/**
 * Starts an edge with this raw config (config.yaml's keys, as parseConfig takes them) plus whatever the target
 * itself needs (its database, a port). The GPU nodes configured here are unreachable: no model is loaded.
 */
export type StartEdge = (rawConfig: Record<string, unknown>) => Promise<ContractEdge>;

/** A GPU node address nothing listens on (port 1 is never served on loopback here). */
export const UNREACHABLE_GPU_NODES = [{ grpc: "127.0.0.1:1", web: "http://127.0.0.1:1" }];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const NAIVE_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/;
const MISSING = '{"detail":"缺少API Key"}';
const INVALID = '{"detail":"无效的API Key"}';
const NOT_FOUND = '{"detail":"Not Found"}';
const TASK_NOT_FOUND = '{"detail":"任务不存在"}';
// A 1x1 PNG.
const PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

interface PydanticGolden {
  input: unknown;
  errors: unknown[];
}
// Written by real pydantic for the spec's model (test/shared/api/fixtures/pydantic_goldens.py), with wide limits.
const PYDANTIC = JSON.parse(readFileSync(new URL("../shared/api/fixtures/pydantic-goldens.json", import.meta.url), "utf8")) as {
  cases: PydanticGolden[];
};

class Client {
  constructor(readonly baseUrl: string) {}
  request(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.baseUrl}${path}`, { redirect: "manual", ...init });
  }
  async text(path: string, init: RequestInit = {}): Promise<{ status: number; body: string; headers: Headers }> {
    const res = await this.request(path, init);
    return { status: res.status, body: await res.text(), headers: res.headers };
  }
  generate(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return this.request("/api/v1/generate", {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": KEY_1, ...headers },
      body: typeof body === "string" || body instanceof Uint8Array ? (body as RequestInit["body"]) : JSON.stringify(body),
    });
  }
  async createTask(body: unknown = { prompt: "a cat" }, key = KEY_1): Promise<string> {
    const res = await this.generate(body, { "x-api-key": key });
    expect(res.status).toBe(200);
    return ((await res.json()) as { task_id: string }).task_id;
  }
}

/** Runs `body` with an edge started for `rawConfig`, shared by the block's tests. */
function withEdge(start: StartEdge, rawConfig: Record<string, unknown>, body: (client: () => Client) => void): void {
  let edge: ContractEdge | undefined;
  let client: Client | undefined;
  beforeAll(async () => {
    edge = await start(rawConfig);
    client = new Client(edge.baseUrl);
  });
  afterAll(async () => {
    await edge?.close();
  });
  body(() => client!);
}

export function describePublicApiContract(target: string, start: StartEdge): void {
  describe(`public API contract: ${target}`, () => {
    describe("default keys and limits", () => {
      withEdge(
        start,
        {
          api: { keys: [KEY_1, KEY_2], limits: { max_pixels: 2048 * 2048, max_init_image_bytes: 1024 } },
          gpu_nodes: UNREACHABLE_GPU_NODES,
        },
        (client) => {
          it("GET /health, /api/health and /health/ answer the spec's shape without a key", async () => {
            for (const path of ["/health", "/api/health", "/health/"]) {
              const res = await client().text(path);
              expect(res.status, path).toBe(200);
              expect(res.headers.get("content-type"), path).toMatch(/^application\/json/);
              expect(res.body, path).toBe('{"status":"ok","model_loaded":false}');
            }
          });

          it("answers FastAPI's 404 body for unknown routes", async () => {
            for (const path of ["/nope", "/api/v1/tasks/", "/api/v1/tasks/a/b", "/api/v2/generate", "/healthz"]) {
              expect(await client().text(path), path).toMatchObject({ status: 404, body: NOT_FOUND });
            }
          });

          it("answers FastAPI's 405 body with Allow for a known path and another method", async () => {
            for (const [method, path, allow] of [
              ["GET", "/api/v1/generate", "POST"],
              ["DELETE", "/health", "GET, HEAD"],
              ["PUT", "/api/v1/tasks/550e8400-e29b-41d4-a716-446655440000", "GET, HEAD"],
              ["POST", "/docs", "GET, HEAD"],
            ]) {
              const res = await client().text(path, { method });
              expect(res.status, `${method} ${path}`).toBe(405);
              expect(res.headers.get("allow"), `${method} ${path}`).toBe(allow);
              expect(res.body).toBe('{"detail":"Method Not Allowed"}');
            }
          });

          it.each([
            ["the X-API-Key header", { "X-API-Key": KEY_1 }, ""],
            ["the header in any case", { "x-api-key": KEY_2 }, ""],
            ["Authorization: Bearer", { Authorization: `Bearer ${KEY_1}` }, ""],
            ["a lowercase bearer scheme", { authorization: `bearer ${KEY_2}` }, ""],
            ["?api_key=", {}, `?api_key=${KEY_1}`],
          ])("accepts the key from %s", async (_, headers: Record<string, string>, query) => {
            const res = await client().request(`/api/v1/generate${query}`, {
              method: "POST",
              headers: { "content-type": "application/json", ...headers },
              body: '{"prompt":"p"}',
            });
            expect(res.status).toBe(200);
          });

          it("answers 401 缺少API Key without a key and 401 无效的API Key for a wrong one, on every protected route", async () => {
            for (const [method, path] of [
              ["POST", "/api/v1/generate"],
              ["GET", "/api/v1/tasks/550e8400-e29b-41d4-a716-446655440000"],
              ["GET", "/api/v1/loras"],
            ]) {
              const base: { method: string; body?: string; headers: Record<string, string> } =
                method === "POST" ? { method, body: '{"prompt":"p"}', headers: { "content-type": "application/json" } } : { method, headers: {} };
              const call = (headers: Record<string, string>, query = "") => client().text(`${path}${query}`, { ...base, headers: { ...base.headers, ...headers } });
              expect(await call({}), path).toMatchObject({ status: 401, body: MISSING });
              expect(await call({ "X-API-Key": "" }), path).toMatchObject({ status: 401, body: MISSING });
              expect(await call({ "X-API-Key": "wrong" }), path).toMatchObject({ status: 401, body: INVALID });
              expect(await call({ Authorization: "Bearer wrong" }), path).toMatchObject({ status: 401, body: INVALID });
              expect(await call({}, "?api_key=wrong"), path).toMatchObject({ status: 401, body: INVALID });
              // A prefix or a case variant of a real key is not that key.
              expect(await call({ "X-API-Key": KEY_1.slice(0, -1) }), path).toMatchObject({ status: 401, body: INVALID });
              expect(await call({ "X-API-Key": KEY_1.toUpperCase() }), path).toMatchObject({ status: 401, body: INVALID });
            }
          });

          it("checks the key before reading the body", async () => {
            const res = await client().text("/api/v1/generate", { method: "POST", body: "{not json", headers: { "content-type": "application/json" } });
            expect(res).toMatchObject({ status: 401, body: MISSING });
          });

          it("POST /api/v1/generate creates a pending task and answers exactly as the spec", async () => {
            const res = await client().generate({ prompt: "a beautiful landscape", width: 512, height: 512 });
            expect(res.status).toBe(200);
            expect(res.headers.get("content-type")).toMatch(/^application\/json/);
            const body = (await res.json()) as Record<string, unknown>;
            expect(Object.keys(body)).toEqual(["task_id", "status", "message"]);
            expect(body.task_id).toMatch(UUID);
            expect(body.status).toBe("pending");
            expect(body.message).toBe("任务已创建，正在处理中");
          });

          it("GET /api/v1/tasks/{id} answers the spec's fields in the spec's order, then the additive ones", async () => {
            const id = await client().createTask({ prompt: "a cat", negative_prompt: "blurry", width: 512, height: 640, seed: 7, scheduler: "Euler a", num_images: 2 });
            const res = await client().request(`/api/v1/tasks/${id}`, { headers: { "x-api-key": KEY_1 } });
            expect(res.status).toBe(200);
            const body = (await res.json()) as Record<string, unknown>;
            expect(Object.keys(body).slice(0, 7)).toEqual(["task_id", "status", "result_url", "result_urls", "error_message", "created_at", "updated_at"]);
            expect(body).toMatchObject({
              task_id: id,
              // No GPU node is reachable: the task waits.
              status: "pending",
              result_url: null,
              result_urls: null,
              error_message: null,
              seed: 7,
              width: 512,
              height: 640,
              scheduler: "Euler a",
              num_images: 2,
              progress: null,
              prompt: "a cat",
              negative_prompt: "blurry",
              loras: [],
            });
            expect(body.created_at).toMatch(NAIVE_UTC);
            expect(body.updated_at).toMatch(NAIVE_UTC);
          });

          it("GET /api/v1/loras answers the list's shape: empty, and no node answered", async () => {
            const res = await client().text("/api/v1/loras", { headers: { "x-api-key": KEY_1 } });
            expect(res.status).toBe(200);
            expect(res.headers.get("content-type")).toMatch(/^application\/json/);
            expect(res.body).toBe('{"loras":[],"nodes_total":1,"nodes_answered":0}');
          });

          it("accepts loras while no GPU node can be asked, and echoes them on the task", async () => {
            const id = await client().createTask({ prompt: "p", loras: [{ name: "ink", weight: "0.6" }, { name: "style" }] });
            const task = (await (await client().request(`/api/v1/tasks/${id}`, { headers: { "x-api-key": KEY_1 } })).json()) as { loras: unknown };
            expect(task.loras).toEqual([
              { name: "ink", weight: 0.6 },
              { name: "style", weight: 1 },
            ]);
            const repeated = await client().generate({ prompt: "p", loras: [{ name: "ink" }, { name: "ink", weight: 2 }] });
            expect(repeated.status).toBe(422);
            expect(await repeated.json()).toEqual({
              detail: [{ type: "value_error", loc: ["body", "loras", 1, "name"], msg: "Value error, LoRA 'ink' is listed twice", input: "ink", ctx: { error: {} } }],
            });
          });

          it("GET answers 404 任务不存在 for unknown ids, non-UUIDs and other keys' tasks", async () => {
            const id = await client().createTask({ prompt: "mine" }, KEY_1);
            for (const [path, key] of [
              [`/api/v1/tasks/${id}`, KEY_2],
              ["/api/v1/tasks/550e8400-e29b-41d4-a716-446655440000", KEY_1],
              ["/api/v1/tasks/not-a-uuid", KEY_1],
              [`/api/v1/tasks/${id.toUpperCase()}`, KEY_1],
              ["/api/v1/tasks/%27%20OR%201%3D1%20--", KEY_1],
            ] as const) {
              expect(await client().text(path, { headers: { "x-api-key": key } }), path).toMatchObject({ status: 404, body: TASK_NOT_FOUND });
            }
            expect((await client().request(`/api/v1/tasks/${id}`, { headers: { "x-api-key": KEY_1 } })).status).toBe(200);
          });

          it("accepts an img2img request with a data-URL init_image", async () => {
            const id = await client().createTask({ prompt: "p", init_image: `data:image/png;base64,${PNG_1PX}`, strength: 0.7 });
            expect(id).toMatch(UUID);
          });

          it("answers 422 details exactly as pydantic does, field by field", async () => {
            expect(PYDANTIC.cases.length).toBeGreaterThan(50);
            for (const golden of PYDANTIC.cases) {
              const res = await client().generate(JSON.stringify(golden.input));
              const label = JSON.stringify(golden.input).slice(0, 80);
              if (golden.errors.length === 0) {
                expect(res.status, label).toBe(200);
                await res.body?.cancel();
              } else {
                expect(res.status, label).toBe(422);
                expect(await res.json(), label).toEqual({ detail: golden.errors });
              }
            }
          });

          it("reads the body by FastAPI's rules: missing, malformed, not an object, not UTF-8, other content types", async () => {
            expect(await client().text("/api/v1/generate", { method: "POST", headers: { "x-api-key": KEY_1, "content-type": "application/json" } })).toMatchObject({
              status: 422,
              body: '{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}',
            });
            expect(await client().text("/api/v1/generate", { method: "POST", headers: { "x-api-key": KEY_1, "content-type": "application/json" }, body: '{"prompt": "x",}' })).toMatchObject({
              status: 422,
              body: '{"detail":[{"type":"json_invalid","loc":["body",15],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting property name enclosed in double quotes"}}]}',
            });
            const notObject = await client().generate("[]");
            expect(notObject.status).toBe(422);
            expect(await notObject.json()).toEqual({
              detail: [{ type: "model_attributes_type", loc: ["body"], msg: "Input should be a valid dictionary or object to extract fields from", input: [] }],
            });
            const notUtf8 = await client().generate(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
            expect(notUtf8.status).toBe(400);
            expect(await notUtf8.json()).toEqual({ detail: "There was an error parsing the body" });
            const form = await client().generate('{"prompt":"p"}', { "content-type": "text/plain" });
            expect(form.status).toBe(422);
            expect(((await form.json()) as { detail: Array<{ type: string; input: unknown }> }).detail[0]).toMatchObject({ type: "model_attributes_type", input: '{"prompt":"p"}' });
            // A body without Content-Type is read as JSON.
            const bare = await client().request("/api/v1/generate", { method: "POST", headers: { "x-api-key": KEY_1 }, body: new TextEncoder().encode('{"prompt":"p"}') });
            expect(bare.status).toBe(200);
          });

          it("answers 413 请求体过大 for a body over the limit, and 422 on init_image for an image over its own limit", async () => {
            const huge = JSON.stringify({ prompt: "p", init_image: "data:image/png;base64," + "A".repeat(2 * 1024 * 1024) });
            const tooLarge = await client().generate(huge);
            expect(tooLarge.status).toBe(413);
            expect(await tooLarge.json()).toEqual({ detail: "请求体过大" });
            const bigImage = await client().generate({ prompt: "p", init_image: "data:image/png;base64," + "A".repeat(8000) });
            expect(bigImage.status).toBe(422);
            expect(((await bigImage.json()) as { detail: Array<{ loc: unknown[]; type: string }> }).detail[0]).toMatchObject({ type: "value_error", loc: ["body", "init_image"] });
          });

          it("allows every origin by default, preflight included, error responses too", async () => {
            const simple = await client().request("/health", { headers: { Origin: "https://app.example" } });
            expect(simple.headers.get("access-control-allow-origin")).toBe("*");
            const preflight = await client().request("/api/v1/generate", {
              method: "OPTIONS",
              headers: { Origin: "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key, content-type" },
            });
            expect(preflight.status).toBe(204);
            expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
            expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
            expect(preflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("x-api-key");
            const unauthorized = await client().request("/api/v1/tasks/x", { headers: { Origin: "https://app.example" } });
            expect(unauthorized.status).toBe(401);
            expect(unauthorized.headers.get("access-control-allow-origin")).toBe("*");
          });

          it.each(["/docs", "/redoc"])("%s loads only same-origin assets, and each of them is served", async (path) => {
            const res = await client().text(path);
            expect(res.status).toBe(200);
            expect(res.headers.get("content-type")).toMatch(/^text\/html/);
            expect(res.body).not.toMatch(/https?:\/\//);
            expect(res.body).not.toMatch(/\/\/[a-z0-9.-]+\.[a-z]{2,}/i);
            const urls = [...res.body.matchAll(/(?:src|href|spec-url|url:)\s*=?\s*"([^"]+)"/g)].map((m) => m[1]);
            expect(urls.length).toBeGreaterThanOrEqual(2);
            for (const url of urls) {
              expect(url.startsWith("/"), url).toBe(true);
              const asset = await client().text(url);
              expect(asset.status, url).toBe(200);
              expect(asset.body.length, url).toBeGreaterThan(100);
            }
          });

          it("serves the real Swagger UI and ReDoc bundles", async () => {
            expect((await client().text("/docs/assets/swagger-ui-bundle.js")).body).toContain("SwaggerUIBundle");
            expect((await client().text("/redoc/assets/redoc.standalone.js")).body).toContain("Redoc");
            expect((await client().request("/docs/assets/swagger-ui.css")).headers.get("content-type")).toMatch(/^text\/css/);
          });

          it("/openapi.json lists the routes with the API-key security schemes and the request schema", async () => {
            const res = await client().request("/openapi.json");
            expect(res.status).toBe(200);
            const doc = (await res.json()) as {
              openapi: string;
              paths: Record<string, Record<string, { security?: unknown[] }>>;
              components: { securitySchemes: Record<string, unknown>; schemas: Record<string, { properties: Record<string, unknown>; required: string[] }> };
            };
            expect(doc.openapi).toBe("3.1.0");
            expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/api/health", "/api/v1/generate", "/api/v1/loras", "/api/v1/tasks/{task_id}", "/health"]));
            expect(doc.components.securitySchemes).toEqual({
              ApiKeyHeader: expect.objectContaining({ type: "apiKey", in: "header", name: "X-API-Key" }),
              BearerAuth: expect.objectContaining({ type: "http", scheme: "bearer" }),
              ApiKeyQuery: expect.objectContaining({ type: "apiKey", in: "query", name: "api_key" }),
            });
            const anyKey = [{ ApiKeyHeader: [] }, { BearerAuth: [] }, { ApiKeyQuery: [] }];
            expect(doc.paths["/api/v1/generate"].post.security).toEqual(anyKey);
            expect(doc.paths["/api/v1/tasks/{task_id}"].get.security).toEqual(anyKey);
            expect(doc.paths["/api/v1/loras"].get.security).toEqual(anyKey);
            expect(doc.paths["/health"].get.security).toEqual([]);
            const request = doc.components.schemas.GenerateRequest;
            expect(Object.keys(request.properties).slice(0, 13)).toEqual([
              "prompt", "init_image", "negative_prompt", "width", "height", "num_images", "num_inference_steps",
              "guidance_scale", "strength", "scheduler", "seed", "output_format", "callback_url",
            ]);
            expect(request.required).toEqual(["prompt"]);
          });
        },
      );
    });

    describe("a custom key header, keyed health, restricted CORS, a rate limit", () => {
      withEdge(
        start,
        {
          api: {
            keys: "k-one, k-two",
            key_header: "X-Custom-Key",
            cors_origins: "https://a.example, https://b.example",
            rate_limit: { enabled: true, capacity: 2, refill_per_second: 0.001 },
          },
          health_check: { no_auth: false },
          gpu_nodes: UNREACHABLE_GPU_NODES,
        },
        (client) => {
          it("takes the key from api.key_header; Bearer and ?api_key= still work", async () => {
            expect((await client().text("/api/v1/tasks/x", { headers: { "X-Custom-Key": "k-two" } })).status).toBe(404);
            expect(await client().text("/api/v1/tasks/x", { headers: { "X-API-Key": "k-two" } })).toMatchObject({ status: 401, body: MISSING });
            expect((await client().text("/api/v1/tasks/x", { headers: { Authorization: "Bearer k-one" } })).status).toBe(404);
            expect((await client().text("/api/v1/tasks/x?api_key=k-one")).status).toBe(404);
          });

          it("needs a key for /health and /api/health when health_check.no_auth is false", async () => {
            for (const path of ["/health", "/api/health"]) {
              expect(await client().text(path), path).toMatchObject({ status: 401, body: MISSING });
              expect(await client().text(path, { headers: { "X-Custom-Key": "nope" } }), path).toMatchObject({ status: 401, body: INVALID });
              expect(await client().text(path, { headers: { "X-Custom-Key": "k-one" } }), path).toMatchObject({ status: 200, body: '{"status":"ok","model_loaded":false}' });
              expect((await client().text(`${path}?api_key=k-two`)).status, path).toBe(200);
            }
            const doc = (await (await client().request("/openapi.json")).json()) as { paths: Record<string, { get: { security: unknown[] } }>; components: { securitySchemes: { ApiKeyHeader: { name: string } } } };
            expect(doc.paths["/health"].get.security).toHaveLength(3);
            expect(doc.components.securitySchemes.ApiKeyHeader.name).toBe("X-Custom-Key");
          });

          it("restricts origins to api.cors_origins", async () => {
            const allowed = await client().request("/health", { headers: { Origin: "https://b.example" } });
            expect(allowed.headers.get("access-control-allow-origin")).toBe("https://b.example");
            expect(allowed.headers.get("vary")).toContain("Origin");
            const other = await client().request("/health", { headers: { Origin: "https://evil.example" } });
            expect(other.headers.get("access-control-allow-origin")).toBeNull();
            const preflight = await client().request("/api/v1/generate", {
              method: "OPTIONS",
              headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" },
            });
            expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
          });

          it("answers 429 with Retry-After once a key's bucket is empty; other keys and reads are not limited", async () => {
            const post = (key: string) => client().generate({ prompt: "p" }, { "X-Custom-Key": key });
            expect((await post("k-one")).status).toBe(200);
            expect((await post("k-one")).status).toBe(200);
            const limited = await post("k-one");
            expect(limited.status).toBe(429);
            expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
            expect(await limited.json()).toEqual({ detail: "请求过于频繁，请稍后重试" });
            expect((await post("k-two")).status).toBe(200);
            expect((await client().text("/api/v1/tasks/x", { headers: { "X-Custom-Key": "k-one" } })).status).toBe(404);
          });
        },
      );
    });

    describe("no keys configured", () => {
      withEdge(start, { api: { keys: [] }, gpu_nodes: UNREACHABLE_GPU_NODES }, (client) => {
        it("refuses every key", async () => {
          expect(await client().text("/api/v1/tasks/x", { headers: { "X-API-Key": "anything" } })).toMatchObject({ status: 401, body: INVALID });
          expect(await client().text("/api/v1/generate", { method: "POST", headers: { "X-API-Key": "anything" }, body: '{"prompt":"p"}' })).toMatchObject({ status: 401, body: INVALID });
        });
      });
    });
  });
}
