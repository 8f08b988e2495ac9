import type { Clock } from "../ports/clock.port.js";

// Per-key token buckets for POST /api/v1/generate. State lives in this process's memory: on Node that is the
// whole edge; on Workers it is one isolate, so the effective limit there is per isolate, not global.
// Only authenticated keys reach the limiter, so the map is bounded by the number of configured keys.

export interface TokenBucketOptions {
  capacity: number;
  refillPerSecond: number;
}

export type TakeResult = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export class TokenBucketLimiter {
  readonly #options: TokenBucketOptions;
  readonly #clock: Clock;
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: TokenBucketOptions, clock: Clock) {
    this.#options = options;
    this.#clock = clock;
  }

  take(key: string): TakeResult {
    const { capacity, refillPerSecond } = this.#options;
    const nowMs = this.#clock.now().getTime();
    const bucket = this.#buckets.get(key) ?? { tokens: capacity, updatedMs: nowMs };
    const elapsedSeconds = Math.max(0, nowMs - bucket.updatedMs) / 1000;
    bucket.tokens = Math.min(capacity, bucket.tokens + elapsedSeconds * refillPerSecond);
    bucket.updatedMs = nowMs;
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    // Retry-After is in whole seconds; round up so a client that waits that long finds a token.
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / refillPerSecond)) };
  }
}
