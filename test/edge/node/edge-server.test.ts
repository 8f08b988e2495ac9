import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../../edge/adapters/silent.logger.js";
import { startEdgeServer, type EdgeServer } from "../../../edge/node/edge-server.js";
import { parseConfig } from "../../../shared/config/config.schema.js";

// A real HTTP server on 127.0.0.1: what app.request() cannot show (sockets, keep-alive, close()).

let dir: string;
let server: EdgeServer;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "edge-server-"));
  const config = parseConfig({ api: { keys: ["k1"] }, server: { host: "127.0.0.1", port: 0 }, task_db: { path: join(dir, "t.db") } });
  server = await startEdgeServer(config, { logger: silentLogger });
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("startEdgeServer", () => {
  it("serves every route over HTTP", async () => {
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    expect((await fetch(`${server.url}/api/health`)).status).toBe(200);
    const created = await fetch(`${server.url}/api/v1/generate`, {
      method: "POST",
      headers: { Authorization: "Bearer k1", "content-type": "application/json" },
      body: JSON.stringify({ prompt: "p", num_images: 2 }),
    });
    const { task_id } = (await created.json()) as { task_id: string };
    expect((await fetch(`${server.url}/api/v1/tasks/${task_id}`, { headers: { "X-API-Key": "k1" } })).status).toBe(200);
    expect((await fetch(`${server.url}/docs`)).status).toBe(200);
    expect((await fetch(`${server.url}/redoc`)).status).toBe(200);
    expect((await fetch(`${server.url}/docs/assets/swagger-ui-bundle.js`)).status).toBe(200);
    expect((await fetch(`${server.url}/openapi.json`)).status).toBe(200);
  });

  it("answers a body sent without Content-Length (chunked) and refuses an oversized one", async () => {
    const chunks = (text: string) =>
      new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(text));
          controller.close();
        },
      });
    const ok = await fetch(`${server.url}/api/v1/generate`, {
      method: "POST",
      headers: { "X-API-Key": "k1", "content-type": "application/json" },
      body: chunks('{"prompt":"streamed"}'),
      duplex: "half",
    } as RequestInit);
    expect(ok.status).toBe(200);
    const big = await fetch(`${server.url}/api/v1/generate`, {
      method: "POST",
      headers: { "X-API-Key": "k1", "content-type": "application/json" },
      body: chunks(`{"prompt":"${"x".repeat(16 * 1024 * 1024)}"}`),
      duplex: "half",
    } as RequestInit);
    expect(big.status).toBe(413);
  });
});
