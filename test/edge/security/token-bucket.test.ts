import { describe, expect, it } from "vitest";
import { TokenBucketLimiter } from "../../../edge/security/token-bucket.js";
import { ManualClock } from "../edge-test-app.js";

describe("TokenBucketLimiter", () => {
  it("allows a burst of `capacity`, then refills at the configured rate", () => {
    const clock = new ManualClock(0);
    const limiter = new TokenBucketLimiter({ capacity: 3, refillPerSecond: 2 }, clock);
    expect([limiter.take("k"), limiter.take("k"), limiter.take("k")].every((r) => r.allowed)).toBe(true);
    expect(limiter.take("k")).toEqual({ allowed: false, retryAfterSeconds: 1 });
    clock.advance(500);
    expect(limiter.take("k").allowed).toBe(true);
    expect(limiter.take("k").allowed).toBe(false);
    // Never more than capacity, however long the key was idle.
    clock.advance(60_000);
    expect([1, 2, 3].map(() => limiter.take("k").allowed)).toEqual([true, true, true]);
    expect(limiter.take("k").allowed).toBe(false);
  });

  it("rounds Retry-After up to whole seconds", () => {
    const clock = new ManualClock(0);
    const limiter = new TokenBucketLimiter({ capacity: 1, refillPerSecond: 0.1 }, clock);
    limiter.take("k");
    expect(limiter.take("k")).toEqual({ allowed: false, retryAfterSeconds: 10 });
    clock.advance(9_500);
    expect(limiter.take("k")).toEqual({ allowed: false, retryAfterSeconds: 1 });
  });
});
