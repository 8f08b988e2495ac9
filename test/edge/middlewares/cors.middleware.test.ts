import { afterEach, describe, expect, it } from "vitest";
import { createTestEdge, type TestEdge } from "../edge-test-app.js";

let edge: TestEdge | undefined;
afterEach(() => edge?.close());

describe("CORS", () => {
  it("adds nothing to requests without an Origin (not cross-origin)", async () => {
    edge = await createTestEdge();
    const res = await edge.request("/health");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});
