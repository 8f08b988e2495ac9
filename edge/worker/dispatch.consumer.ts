import type { Message, MessageBatch } from "@cloudflare/workers-types";
import type { DispatchSession } from "./dispatch-session.js";
import { openDispatchSession } from "./dispatch-session.js";
import type { WorkerLimits } from "./worker.config.js";
import type { WorkerRuntime } from "./worker.runtime.js";
import type { DispatchMessage, WorkerEnv } from "./worker.env.js";

// The dispatch queue's consumer. A `dispatch` message: claim the next task (the oldest expired lease, else the
// oldest pending task) and hold its event stream from the GPU node (gRPC-web over fetch) for the whole
// generation, writing each event to the row through the Node edge's dispatcher core; the lease is renewed while
// the stream lives, so if this invocation dies the lease lapses and the cron gives the task to another consumer
// (which re-attaches on the same node). A `webhooks` message: deliver the due callbacks. The invocation itself
// holds the stream: nothing is left to waitUntil.

/** Subrequests kept for finishing a held task: the terminal write, a callback and its record, the nudges. */
const FINISH_RESERVE = 12;
const TICK_MS = 1_000;
/** Callbacks due within this are woken by a delayed message; later ones by the minute cron. */
const WEBHOOK_WAKE_WINDOW_MS = 60_000;

export async function consumeDispatchBatch(batch: MessageBatch<DispatchMessage>, env: WorkerEnv, runtime: WorkerRuntime, limits: WorkerLimits): Promise<void> {
  for (const message of batch.messages) {
    try {
      if (message.body.kind === "webhooks") await deliverWebhooks(runtime, env, limits);
      else await holdNextTask(message, runtime, env, limits);
      message.ack();
    } catch (err) {
      // The database or the queue failed us. The message comes back later; the cron is the safety net anyway.
      runtime.logger.error({ err: (err as Error).message, attempt: message.attempts }, "dispatch message failed; retrying it");
      message.retry({ delaySeconds: Math.min(60, 5 * message.attempts) });
    }
  }
}

async function holdNextTask(message: Message<DispatchMessage>, runtime: WorkerRuntime, env: WorkerEnv, limits: WorkerLimits): Promise<void> {
  const { logger, config } = runtime;
  const startedAt = Date.now();
  const session = openDispatchSession(runtime, { claims: 1, subrequests: limits.subrequests });
  try {
    await session.nodes.refresh();
    if (session.nodes.healthyCount() === 0) {
      // The task waits as pending; the cron enqueues it again once a node answers.
      logger.debug({ task_id: message.body.kind === "dispatch" ? message.body.taskId : null }, "no healthy GPU node; nothing claimed");
      return;
    }
    await session.dispatcher.pump();
    const held = session.dispatcher.heldTaskIds();
    if (held.length === 0) return;

    let handedOver: Promise<void> | null = null;
    let lastRenewal = Date.now();
    const renewEveryMs = (config.dispatch.lease_seconds * 1000) / 3;
    const ticker = setInterval(() => {
      if (handedOver) return;
      const now = Date.now();
      if (now - startedAt > limits.consumerWallMs || session.budget.remaining < FINISH_RESERVE) {
        // Before the platform cuts this invocation: give the task back at once and wake another consumer,
        // which re-attaches to the same generation on the same node.
        logger.info({ task_id: held[0], subrequests: session.budget.used, seconds: Math.round((now - startedAt) / 1000) }, "handing the task over to a fresh invocation");
        handedOver = session.dispatcher.stop();
        return;
      }
      if (now - lastRenewal >= renewEveryMs) {
        lastRenewal = now;
        session.dispatcher.renewLeases().catch((err: unknown) => logger.warn({ err: (err as Error).message }, "lease renewal failed"));
      }
    }, TICK_MS);
    try {
      await session.dispatcher.idle();
    } finally {
      clearInterval(ticker);
    }
    if (handedOver) {
      await handedOver;
      await env.DISPATCH_QUEUE.send({ kind: "dispatch", taskId: held[0] }, { contentType: "json" });
      return;
    }
    // The held task ended (finished, or released for another attempt): its slot is free for the next one.
    await env.DISPATCH_QUEUE.send({ kind: "dispatch", taskId: null }, { contentType: "json" });
    if (session.finished > 0) await deliverDue(session, runtime, env);
  } finally {
    session.close();
  }
}

async function deliverWebhooks(runtime: WorkerRuntime, env: WorkerEnv, limits: WorkerLimits): Promise<void> {
  const session = openDispatchSession(runtime, { claims: 0, subrequests: limits.subrequests });
  try {
    await deliverDue(session, runtime, env);
  } finally {
    session.close();
  }
}

/** Delivers what is due (as long as the budget allows), then wakes a consumer for the next retry due soon. */
export async function deliverDue(session: DispatchSession, runtime: WorkerRuntime, env: WorkerEnv): Promise<void> {
  const batch = 8;
  // Each attempt: a claim share, the POST, its record (and DNS lookups when private targets are refused).
  while (session.budget.remaining > FINISH_RESERVE + batch * 5) {
    if ((await session.deliverer.deliverDue(batch)) < batch) break;
  }
  const due = await session.outbox.nextDueAt();
  if (due === null) return;
  const inMs = due.getTime() - runtime.clock.now().getTime();
  if (inMs <= WEBHOOK_WAKE_WINDOW_MS) {
    await env.DISPATCH_QUEUE.send({ kind: "webhooks" }, { contentType: "json", delaySeconds: Math.max(0, Math.ceil(inMs / 1000)) });
  }
}
