import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EdgeServer } from "../../../edge/node/edge-server.js";
import { startTestEdgeServer, type TestEdgeServer } from "../edge-test-app.js";

// A real HTTP server on 127.0.0.1: what app.request() cannot show (sockets, keep-alive, close()).

let edge: TestEdgeServer;
let server: EdgeServer;
beforeAll(async () => {
  edge = await startTestEdgeServer("edge-server-");
  server = edge.server;
});
afterAll(() => edge.close());

describe("startEdgeServer", () => {
  it("creates every task of a burst of concurrent requests (inserts share commits here)", async () => {
    const responses = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        fetch(`${server.url}/api/v1/generate`, {
          method: "POST",
          headers: { "X-API-Key": "k1", "content-type": "application/json" },
          body: JSON.stringify({ prompt: `burst ${i}`, seed: i }),
        }),
      ),
    );
    const ids = await Promise.all(responses.map(async (r) => ((await r.json()) as { task_id: string }).task_id));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    const tasks = await Promise.all(ids.map(async (id) => (await fetch(`${server.url}/api/v1/tasks/${id}?api_key=k1`)).json()));
    expect(tasks.map((t) => (t as { seed: number }).seed)).toEqual(ids.map((_, i) => i));
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
