import { afterEach, describe, expect, it } from "vitest";
import { KEY_1, createTestEdge, type TestEdge } from "../edge-test-app.js";

let edge: TestEdge | undefined;
afterEach(() => edge?.close());

describe("CORS", () => {
  it("allows every origin by default, preflight included", async () => {
    edge = await createTestEdge();
    const simple = await edge.request("/health", { headers: { Origin: "https://app.example" } });
    expect(simple.headers.get("access-control-allow-origin")).toBe("*");

    const preflight = await edge.request("/api/v1/generate", {
      method: "OPTIONS",
      headers: { Origin: "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key, content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
    expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
    expect(preflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("x-api-key");

    // Error responses carry the header too, so browsers can read them.
    const unauthorized = await edge.request("/api/v1/tasks/x", { headers: { Origin: "https://app.example" } });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("adds nothing to requests without an Origin (not cross-origin)", async () => {
    edge = await createTestEdge();
    const res = await edge.request("/health");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("restricts origins to api.cors_origins when configured", async () => {
    edge = await createTestEdge({ api: { keys: [KEY_1], cors_origins: "https://a.example, https://b.example" } });
    const allowed = await edge.request("/health", { headers: { Origin: "https://b.example" } });
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://b.example");
    expect(allowed.headers.get("vary")).toContain("Origin");
    const other = await edge.request("/health", { headers: { Origin: "https://evil.example" } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    const preflight = await edge.request("/api/v1/generate", {
      method: "OPTIONS",
      headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" },
    });
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
  });
});
