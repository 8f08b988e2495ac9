import type { MessageSendRequest } from "@cloudflare/workers-types";
import type { NoHealthySince } from "../dispatch/dispatcher.js";
import { deliverDue } from "./dispatch.consumer.js";
import { openDispatchSession } from "./dispatch-session.js";
import type { WorkerLimits } from "./worker.config.js";
import type { WorkerRuntime } from "./worker.runtime.js";
import type { DispatchMessage, WorkerEnv } from "./worker.env.js";

// The cron trigger (every minute): the Node edge's periodic pass. Fresh node status; fail what can no longer
// succeed (expired leases with no attempt left, tasks pending too long with no healthy node) and delete finished
// tasks past task_db.retention_days; wake consumers for
// the tasks that can be claimed (unleased pending ones, and ones whose consumer died: their lease expired);
// deliver the callbacks that are due.

/** Queues take at most 100 messages per sendBatch. */
const MAX_NUDGES = 100;

/**
 * Since when this isolate has seen no healthy node. The Node edge keeps this in its long-lived dispatcher; a
 * Worker has only its isolate, so the pending timeout counts from the first cron pass of this isolate that found
 * no node: it may fire later than on Node (after an isolate is recycled), never earlier.
 */
const noHealthySince: NoHealthySince = { at: null };

export async function runCron(runtime: WorkerRuntime, env: WorkerEnv, limits: WorkerLimits): Promise<void> {
  const { config, clock, logger } = runtime;
  const session = openDispatchSession(runtime, { claims: 0, subrequests: limits.subrequests, noHealthySince });
  try {
    await session.nodes.refresh(true);
    await session.dispatcher.reconcile();
    const healthy = session.nodes.views().filter((n) => n.up);
    if (healthy.length > 0) {
      const claimable = await session.repo.claimableCount(clock.now(), config.dispatch.max_attempts);
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
