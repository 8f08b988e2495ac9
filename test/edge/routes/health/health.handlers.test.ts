import { afterEach, describe, expect, it } from "vitest";
import { KEY_1, createTestEdge, type TestEdge } from "../../edge-test-app.js";

let edge: TestEdge | undefined;
afterEach(() => edge?.close());

describe("GET /health and /api/health", () => {
  it.each(["/health", "/api/health", "/health/"])("%s answers the spec's shape without a key", async (path) => {
    edge = await createTestEdge();
    const res = await edge.request(path);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('{"status":"ok","model_loaded":false}');
  });

  it("reports model_loaded from the GPU status port, and false when it fails", async () => {
    edge = await createTestEdge({}, { gpuStatus: { modelLoaded: async () => true } });
    expect(await (await edge.request("/health")).json()).toEqual({ status: "ok", model_loaded: true });
    edge.close();
    edge = await createTestEdge({}, { gpuStatus: { modelLoaded: async () => Promise.reject(new Error("unreachable")) } });
    expect(await (await edge.request("/api/health")).json()).toEqual({ status: "ok", model_loaded: false });
  });

  it("needs a key when health_check.no_auth is false", async () => {
    edge = await createTestEdge({ health_check: { no_auth: false } });
    for (const path of ["/health", "/api/health"]) {
      const missing = await edge.request(path);
      expect(missing.status).toBe(401);
      expect(await missing.text()).toBe('{"detail":"缺少API Key"}');
      const wrong = await edge.request(path, { headers: { "X-API-Key": "nope" } });
      expect(await wrong.text()).toBe('{"detail":"无效的API Key"}');
      expect((await edge.request(path, { headers: { "X-API-Key": KEY_1 } })).status).toBe(200);
      expect((await edge.request(`${path}?api_key=${KEY_1}`)).status).toBe(200);
    }
  });
});
