import type { Config } from "../../shared/config/config.schema.js";

// When to try a callback again. The delay before attempt n+1 (after n failed attempts) is drawn uniformly from
// [retry_interval, min(max_backoff, growth * 2^n)] ("full jitter" above the floor): callback.retry_interval
// keeps its original meaning as the least time between two attempts, and receivers that failed together do
// not all come back at once. Delivery gives up after max_attempts, or when the next attempt would fall outside
// the retry window, but never before retry_times retries have been made.

export interface RetryPolicy {
  /** The floor of every delay (callback.retry_interval). */
  minDelayMs: number;
  /** The delays' upper bound doubles from this (the floor, or 1 s when the floor is smaller). */
  growthBaseMs: number;
  maxDelayMs: number;
  /** Total attempts allowed (the first one included). */
  maxAttempts: number;
  /** Retries always made, whatever the window says (callback.retry_times). */
  guaranteedRetries: number;
  windowMs: number;
}

export function retryPolicyFromConfig(callback: Config["callback"]): RetryPolicy {
  const minDelayMs = callback.retry_interval * 1000;
  return {
    minDelayMs,
    growthBaseMs: Math.max(minDelayMs, 1000),
    maxDelayMs: Math.max(minDelayMs, callback.max_backoff_seconds * 1000),
    maxAttempts: Math.max(callback.max_attempts, callback.retry_times + 1),
    guaranteedRetries: callback.retry_times,
    windowMs: callback.max_retry_window_seconds * 1000,
  };
}

/** The delay after `failedAttempts` (>= 1) attempts failed; `random` in [0, 1). */
export function backoffDelayMs(failedAttempts: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.growthBaseMs * 2 ** Math.min(failedAttempts, 40));
  return policy.minDelayMs + random() * Math.max(0, ceiling - policy.minDelayMs);
}

/** When to make the next attempt, or null to give up. Times in epoch milliseconds. */
export function nextAttemptAt(
  failedAttempts: number,
  createdAtMs: number,
  nowMs: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number | null {
  if (failedAttempts >= policy.maxAttempts) return null;
  const at = nowMs + backoffDelayMs(failedAttempts, policy, random);
  const retriesMade = failedAttempts - 1;
  if (retriesMade >= policy.guaranteedRetries && at - createdAtMs > policy.windowMs) return null;
  return at;
}
