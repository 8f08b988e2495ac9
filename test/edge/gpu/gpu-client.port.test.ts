import { describe, expect, it } from "vitest";
import { gpuCallError } from "../../../edge/gpu/gpu-client.port.js";

describe("gpuCallError", () => {
  it("takes the domain code from the node's x-error-code trailer when there is one", () => {
    // RESOURCE_EXHAUSTED alone would read as rate_limited (the table's first entry with that status).
    expect(gpuCallError(8, "full", "queue_full")).toMatchObject({ code: "queue_full", grpcCode: 8, retryable: true, http: 503 });
    expect(gpuCallError(8, "full", null)).toMatchObject({ code: "rate_limited" });
    expect(gpuCallError(14, "down", "nonsense")).toMatchObject({ code: "unavailable", grpcCode: 14 });
    expect(gpuCallError(2, "??", undefined)).toMatchObject({ code: "internal", grpcCode: 2 });
  });
});
