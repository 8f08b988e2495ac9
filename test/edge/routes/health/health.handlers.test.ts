import { afterEach, describe, expect, it } from "vitest";
import { createTestEdge, type TestEdge } from "../../edge-test-app.js";

let edge: TestEdge | undefined;
afterEach(() => edge?.close());

describe("GET /health and /api/health", () => {
  it("reports model_loaded from the GPU status port, and false when it fails", async () => {
    edge = await createTestEdge({}, { gpuStatus: { modelLoaded: async () => true } });
    expect(await (await edge.request("/health")).json()).toEqual({ status: "ok", model_loaded: true });
    edge.close();
    edge = await createTestEdge({}, { gpuStatus: { modelLoaded: async () => Promise.reject(new Error("unreachable")) } });
    expect(await (await edge.request("/api/health")).json()).toEqual({ status: "ok", model_loaded: false });
  });
});
