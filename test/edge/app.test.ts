import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "../../edge/ports/logger.port.js";
import { KEY_1, createTestEdge, type TestEdge } from "./edge-test-app.js";

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

  it("restricts origins to api.cors_origins when configured", async () => {
    edge = await createTestEdge({ api: { keys: [KEY_1], cors_origins: "https://a.example, https://b.example" } });
    const allowed = await edge.request("/health", { headers: { Origin: "https://b.example" } });
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://b.example");
    const other = await edge.request("/health", { headers: { Origin: "https://evil.example" } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("unknown routes", () => {
  it("answer FastAPI's 404 body", async () => {
    edge = await createTestEdge();
    for (const [method, path] of [["GET", "/nope"], ["GET", "/api/v1/generate"], ["DELETE", "/health"], ["GET", "/api/v1/tasks/"]]) {
      const res = await edge.request(path, { method });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(await res.text()).toBe('{"detail":"Not Found"}');
    }
  });
});

describe("logs", () => {
  it("never contain the API key, whichever way it came", async () => {
    const lines: string[] = [];
    const capture = (level: string) => (obj: unknown, msg?: string) => void lines.push(`${level} ${JSON.stringify(obj)} ${msg ?? ""}`);
    const logger: Logger = { error: capture("error"), warn: capture("warn"), info: capture("info"), debug: capture("debug") };
    edge = await createTestEdge({}, { logger, taskEvents: { onTaskCreated: async () => Promise.reject(new Error("hook down")) } });
    await edge.generate({ prompt: "p" });
    await edge.request(`/api/v1/tasks/x?api_key=${KEY_1}`);
    await edge.request("/api/v1/tasks/x", { headers: { Authorization: `Bearer ${KEY_1}` } });
    await edge.request(`/nope?api_key=${KEY_1}`);
    expect(lines.length).toBeGreaterThan(3);
    expect(lines.join("\n")).not.toContain(KEY_1);
  });
});
