import type { GpuClient } from "../gpu/gpu-client.port.js";
import type { Clock } from "../ports/clock.port.js";
import type { GpuStatus } from "../ports/gpu-status.port.js";

// GET /health's model_loaded on Workers: true when any configured node reports its model loaded (GetStatus over
// gRPC-web). The answer is kept for a few seconds so health checks do not become a GetStatus storm; only the
// value is kept, never a pending call, so no request waits on another request's fetch (workerd forbids that).

export interface GpuNodesStatusOptions {
  ttlMs?: number;
  /** A node that does not answer within this counts as not loaded. */
  timeoutMs?: number;
}

export function createGpuNodesStatus(clients: readonly GpuClient[], clock: Clock, options: GpuNodesStatusOptions = {}): GpuStatus {
  const ttlMs = options.ttlMs ?? 5_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  let cached: { value: boolean; at: number } | undefined;
  return {
    async modelLoaded() {
      const now = clock.now().getTime();
      if (cached && now - cached.at < ttlMs) return cached.value;
      const answers = await Promise.allSettled(clients.map((client) => client.status(AbortSignal.timeout(timeoutMs))));
      const value = answers.some((a) => a.status === "fulfilled" && a.value.modelLoaded);
      cached = { value, at: clock.now().getTime() };
      return value;
    },
  };
}
