import type { MessageSendRequest } from "@cloudflare/workers-types";
import { and, eq, isNull } from "drizzle-orm";
import { tasks } from "../db/schema.js";
import { claimableCount } from "./dispatch-backlog.js";
import { deliverDue } from "./dispatch.consumer.js";
import { openDispatchSession, type DispatchSession } from "./dispatch-session.js";
import type { WorkerLimits } from "./worker.config.js";
import type { WorkerRuntime } from "./worker.runtime.js";
import type { DispatchMessage, WorkerEnv } from "./worker.env.js";

// The cron trigger (every minute): the Node edge's periodic pass. Fresh node status; fail what can no longer
// succeed (expired leases with no attempt left, tasks pending too long with no healthy node); wake consumers for
// the tasks that can be claimed (unleased pending ones, and ones whose consumer died: their lease expired);
// deliver the callbacks that are due.

/** Queues take at most 100 messages per sendBatch. */
const MAX_NUDGES = 100;

/**
 * Since when this isolate has seen no healthy node (null while one is). The Node edge keeps this in its long-lived
 * dispatcher; a Worker has only its isolate, so the pending timeout counts from the first cron pass of this
 * isolate that found no node: it may fire later than on Node (after an isolate is recycled), never earlier.
 */
let noHealthySince: number | null = null;

export async function runCron(runtime: WorkerRuntime, env: WorkerEnv, limits: WorkerLimits): Promise<void> {
  const { config, clock, logger } = runtime;
  const session = openDispatchSession(runtime, { claims: 0, subrequests: limits.subrequests });
  try {
    await session.nodes.refresh(true);
    // Expired leases with no attempt left fail here (the dispatcher's own pass).
    await session.dispatcher.reconcile();
    const healthy = session.nodes.views().filter((n) => n.up);
    await failLongWaiting(runtime, session, healthy.length > 0);
    if (healthy.length > 0) {
      const claimable = await claimableCount(session.db, clock.now(), config.dispatch.max_attempts);
      // Room on the nodes: each takes its concurrency plus the prefetch at once; more would only wait there.
      const room = healthy.reduce((sum, node) => sum + node.limit, 0);
      const nudges = Math.min(claimable, room, MAX_NUDGES);
      if (nudges > 0) {
        const messages: MessageSendRequest<DispatchMessage>[] = Array.from({ length: nudges }, () => ({ body: { kind: "dispatch", taskId: null }, contentType: "json" }));
        await env.DISPATCH_QUEUE.sendBatch(messages);
        logger.info({ claimable, nudges }, "cron: consumers woken for waiting tasks");
      }
    }
    await deliverDue(session, runtime, env);
  } finally {
    session.close();
  }
}

/** Fails pending tasks that waited past dispatch.pending_timeout_seconds while no GPU node was healthy. */
async function failLongWaiting(runtime: WorkerRuntime, session: DispatchSession, anyHealthy: boolean): Promise<void> {
  const { config, clock, logger } = runtime;
  const now = clock.now();
  if (anyHealthy) {
    noHealthySince = null;
    return;
  }
  noHealthySince ??= now.getTime();
  const timeoutMs = config.dispatch.pending_timeout_seconds * 1000;
  if (now.getTime() - noHealthySince < timeoutMs) return;
  for (const row of await session.repo.waitingSince(new Date(now.getTime() - timeoutMs))) {
    const message =
      `no GPU node was available for ${config.dispatch.pending_timeout_seconds} s; the task was not started` +
      (row.lastError ? ` (last error: ${row.lastError})` : "");
    const finished = await session.outcomes.finish(row.id, { status: "failed", errorMessage: message }, now, and(eq(tasks.status, "pending"), isNull(tasks.leaseUntil)));
    if (finished) logger.warn({ task_id: row.id }, message);
  }
}
