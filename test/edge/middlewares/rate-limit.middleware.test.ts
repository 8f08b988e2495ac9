import { afterEach, describe, expect, it } from "vitest";
import { KEY_1, KEY_2, createTestEdge, type TestEdge } from "../edge-test-app.js";

let edge: TestEdge | undefined;
afterEach(() => edge?.close());

describe("rate limit on POST /api/v1/generate", () => {
  it("is off by default", async () => {
    edge = await createTestEdge();
    for (let i = 0; i < 30; i++) expect((await edge.generate({ prompt: "p" })).status).toBe(200);
  });

  it("answers 429 with Retry-After and a detail once a key's bucket is empty, per key, refilling over time", async () => {
    edge = await createTestEdge({ api: { keys: [KEY_1, KEY_2], rate_limit: { enabled: true, capacity: 2, refill_per_second: 0.5 } } });
    expect((await edge.generate({ prompt: "p" })).status).toBe(200);
    expect((await edge.generate({ prompt: "p" })).status).toBe(200);
    const limited = await edge.generate({ prompt: "p" });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("2");
    expect(await limited.json()).toEqual({ detail: "请求过于频繁，请稍后重试" });

    // Another key has its own bucket.
    expect((await edge.generate({ prompt: "p" }, { "x-api-key": KEY_2 })).status).toBe(200);
    // Reads are not limited.
    expect((await edge.request("/api/v1/tasks/x", { headers: { "x-api-key": KEY_1 } })).status).toBe(404);

    edge.clock.advance(1000);
    expect((await edge.generate({ prompt: "p" })).headers.get("retry-after")).toBe("1");
    edge.clock.advance(1000);
    expect((await edge.generate({ prompt: "p" })).status).toBe(200);
  });

  it("counts only authenticated requests", async () => {
    edge = await createTestEdge({ api: { keys: [KEY_1], rate_limit: { enabled: true, capacity: 1, refill_per_second: 0.001 } } });
    for (let i = 0; i < 5; i++) expect((await edge.generate({ prompt: "p" }, { "x-api-key": "wrong" })).status).toBe(401);
    expect((await edge.generate({ prompt: "p" })).status).toBe(200);
  });
});
