import { afterEach, describe, expect, it } from "vitest";
import { KEY_1, KEY_2, createTestEdge, type TestEdge } from "../edge-test-app.js";

// Error bodies byte for byte as the original service's (and the spec's).
const MISSING = '{"detail":"缺少API Key"}';
const INVALID = '{"detail":"无效的API Key"}';

let edge: TestEdge | undefined;
afterEach(() => edge?.close());

async function status(path: string, init: RequestInit = {}) {
  const res = await edge!.request(path, init);
  return { status: res.status, body: await res.text() };
}

describe("API key auth", () => {
  it.each([
    ["the X-API-Key header", { headers: { "X-API-Key": KEY_1 } }, ""],
    ["the header in any case", { headers: { "x-api-key": KEY_2 } }, ""],
    ["Authorization: Bearer", { headers: { Authorization: `Bearer ${KEY_1}` } }, ""],
    ["a lowercase bearer scheme", { headers: { authorization: `bearer ${KEY_2}` } }, ""],
    ["?api_key=", {}, `?api_key=${KEY_1}`],
  ])("accepts the key from %s", async (_, init, query) => {
    edge = await createTestEdge();
    const res = await edge.request(`/api/v1/generate${query}`, {
      method: "POST",
      body: JSON.stringify({ prompt: "p" }),
      ...init,
      headers: { "content-type": "application/json", ...(init as { headers?: Record<string, string> }).headers },
    });
    expect(res.status).toBe(200);
  });

  it("answers 401 缺少API Key without a key, and 401 无效的API Key for a wrong one, on every protected route", async () => {
    edge = await createTestEdge();
    for (const [method, path] of [
      ["POST", "/api/v1/generate"],
      ["GET", "/api/v1/tasks/550e8400-e29b-41d4-a716-446655440000"],
    ]) {
      const init = { method, ...(method === "POST" ? { body: '{"prompt":"p"}', headers: { "content-type": "application/json" } } : {}) };
      expect(await status(path, init)).toEqual({ status: 401, body: MISSING });
      expect(await status(path, { ...init, headers: { ...init.headers, "X-API-Key": "" } })).toEqual({ status: 401, body: MISSING });
      expect(await status(path, { ...init, headers: { ...init.headers, "X-API-Key": "wrong" } })).toEqual({ status: 401, body: INVALID });
      expect(await status(path, { ...init, headers: { ...init.headers, Authorization: "Bearer wrong" } })).toEqual({ status: 401, body: INVALID });
      expect(await status(`${path}?api_key=wrong`, init)).toEqual({ status: 401, body: INVALID });
      // A prefix or a case variant of a real key is not that key.
      expect(await status(path, { ...init, headers: { ...init.headers, "X-API-Key": KEY_1.slice(0, -1) } })).toEqual({ status: 401, body: INVALID });
      expect(await status(path, { ...init, headers: { ...init.headers, "X-API-Key": KEY_1.toUpperCase() } })).toEqual({ status: 401, body: INVALID });
    }
  });

  it("checks the key before reading the body", async () => {
    edge = await createTestEdge();
    expect(await status("/api/v1/generate", { method: "POST", body: "{not json", headers: { "content-type": "application/json" } })).toEqual({
      status: 401,
      body: MISSING,
    });
  });

  it("uses the header name from api.key_header", async () => {
    edge = await createTestEdge({ api: { keys: "k-one, k-two", key_header: "X-Custom-Key" } });
    expect((await status("/api/v1/tasks/x", { headers: { "X-Custom-Key": "k-two" } })).status).toBe(404);
    // The default header name is then just another header.
    expect(await status("/api/v1/tasks/x", { headers: { "X-API-Key": "k-two" } })).toEqual({ status: 401, body: MISSING });
    // Bearer and the query parameter still work.
    expect((await status("/api/v1/tasks/x", { headers: { Authorization: "Bearer k-one" } })).status).toBe(404);
    expect((await status("/api/v1/tasks/x?api_key=k-one")).status).toBe(404);
  });

  it("refuses every key when none is configured", async () => {
    edge = await createTestEdge({ api: { keys: [] } });
    expect(await status("/api/v1/tasks/x", { headers: { "X-API-Key": "anything" } })).toEqual({ status: 401, body: INVALID });
  });
});
