import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../shared/config/config.schema.js";
import { backoffDelayMs, nextAttemptAt, retryPolicyFromConfig } from "../../../edge/webhooks/webhook.backoff.js";

const policy = retryPolicyFromConfig(parseConfig({}).callback);

describe("webhook backoff", () => {
  it("defaults: at least retry_times + 1 attempts, retry_interval as the floor, ceilings doubling to the cap", () => {
    expect(policy).toEqual({ minDelayMs: 5000, growthBaseMs: 5000, maxDelayMs: 600_000, maxAttempts: 20, guaranteedRetries: 3, windowMs: 3_600_000 });
    // random = 0 gives the floor, random -> 1 the ceiling.
    expect(backoffDelayMs(1, policy, () => 0)).toBe(5000);
    expect(backoffDelayMs(1, policy, () => 0.999999)).toBeCloseTo(10_000, -1);
    expect(backoffDelayMs(3, policy, () => 0.999999)).toBeCloseTo(40_000, -1);
    expect(backoffDelayMs(12, policy, () => 0.999999)).toBeCloseTo(600_000, -1);
  });

  it("draws delays across the whole window (full jitter), never below the floor", () => {
    const draws = Array.from({ length: 2000 }, () => backoffDelayMs(4, policy));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(5000);
    expect(Math.max(...draws)).toBeLessThanOrEqual(80_000);
    // Spread over the window, not clustered at one end.
    expect(draws.filter((d) => d < 20_000).length).toBeGreaterThan(200);
    expect(draws.filter((d) => d > 60_000).length).toBeGreaterThan(200);
  });

  it("even with the shortest draws, the default retries outlast a receiver that is down for a minute", () => {
    let t = 0;
    let failed = 1;
    for (;;) {
      const at = nextAttemptAt(failed, 0, t, policy, () => 0);
      if (at === null) break;
      t = at;
      failed++;
    }
    expect(failed).toBe(20);
    expect(t).toBeGreaterThan(60_000);
  });

  it("stops at max_attempts, or past the window once retry_times retries were made", () => {
    expect(nextAttemptAt(20, 0, 0, policy, () => 0)).toBeNull();
    expect(nextAttemptAt(19, 0, 0, policy, () => 0)).toBe(5000);
    // Past the window: no more attempts...
    expect(nextAttemptAt(5, 0, 3_599_000, policy, () => 0)).toBeNull();
    // ...unless retry_times retries have not been made yet (attempts 1..3 are retries 0..2).
    expect(nextAttemptAt(3, 0, 3_599_000, policy, () => 0)).toBe(3_604_000);
    expect(nextAttemptAt(4, 0, 3_599_000, policy, () => 0)).toBeNull();
  });

  it("a config with more retry_times than max_attempts still makes them all", () => {
    const p = retryPolicyFromConfig(parseConfig({ callback: { retry_times: 30, max_attempts: 5 } }).callback);
    expect(p.maxAttempts).toBe(31);
  });

  it("a zero retry_interval still spaces attempts by growing ceilings (from 1 s)", () => {
    const p = retryPolicyFromConfig(parseConfig({ callback: { retry_interval: 0 } }).callback);
    expect(backoffDelayMs(1, p, () => 0)).toBe(0);
    expect(backoffDelayMs(3, p, () => 0.5)).toBe(4000);
  });
});
