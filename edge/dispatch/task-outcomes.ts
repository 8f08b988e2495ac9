import { and, eq, inArray, notExists, sql, type SQL } from "drizzle-orm";
import type { Database } from "../db/database.js";
import { taskInitImages, tasks } from "../db/schema.js";
import { webhookOutbox } from "../db/webhooks.schema.js";
import { newWebhookId, webhookPayload, type TerminalOutcome } from "../webhooks/webhook.payload.js";

// Every move of a task into a terminal state goes through here (the dispatcher, the cancel route, the
// reconciler), so the callback is queued in the SAME transaction as the status: one batch holds the guarded
// UPDATE and an INSERT … SELECT that only inserts when the task now has that status and a callback_url.
// webhook_outbox.task_id is unique, so however many edges race, one event per task is queued. The same batch
// deletes an img2img task's input image (up to 10 MB): it is only needed while the task may still run.

export const LIVE_STATUSES = ["pending", "processing"] as const;
export const FINISHED_STATUSES = ["completed", "failed", "cancelled"] as const;

export interface FinishedTask {
  id: string;
  node: string | null;
  callbackUrl: string | null;
  createdAt: Date;
  startedAt: Date | null;
}

export class TaskOutcomes {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  /**
   * Moves a pending/processing task to `outcome` if `guard` (an extra condition, e.g. "this edge holds the
   * lease" or "this key owns it") holds; queues its callback. Returns the task, or null when nothing changed
   * (already finished, or the guard failed).
   */
  async finish(taskId: string, outcome: TerminalOutcome, now: Date, guard?: SQL): Promise<FinishedTask | null> {
    const payload = JSON.stringify(webhookPayload(taskId, outcome));
    const where = and(eq(tasks.id, taskId), inArray(tasks.status, [...LIVE_STATUSES]), guard);
    const [updated] = await this.#db.batch([
      this.#db
        .update(tasks)
        .set({
          status: outcome.status,
          resultUrls: outcome.status === "completed" ? outcome.resultUrls : null,
          errorMessage: outcome.status === "failed" ? outcome.errorMessage : null,
          // A finished task keeps its last progress; a completed one shows every step done.
          progressStep: outcome.status === "completed" ? sql`${tasks.progressTotal}` : sql`${tasks.progressStep}`,
          queuePosition: null,
          leaseOwner: null,
          leaseUntil: null,
          finishedAt: now,
          updatedAt: now,
        })
        .where(where)
        .returning({ id: tasks.id, node: tasks.node, callbackUrl: tasks.callbackUrl, createdAt: tasks.createdAt, startedAt: tasks.startedAt }),
      this.#db
        .insert(webhookOutbox)
        .select(
          this.#db
            .select({
              id: sql<string>`${newWebhookId()}`.as("id"),
              taskId: tasks.id,
              url: sql<string>`${tasks.callbackUrl}`.as("url"),
              payload: sql<string>`${payload}`.as("payload"),
              state: sql<string>`'pending'`.as("state"),
              attempts: sql<number>`0`.as("attempts"),
              nextAttemptAt: sql<number>`${now.getTime()}`.as("next_attempt_at"),
              leaseOwner: sql<null>`NULL`.as("lease_owner"),
              leaseUntil: sql<null>`NULL`.as("lease_until"),
              lastStatusCode: sql<null>`NULL`.as("last_status_code"),
              lastError: sql<null>`NULL`.as("last_error"),
              createdAt: sql<number>`${now.getTime()}`.as("created_at"),
              updatedAt: sql<number>`${now.getTime()}`.as("updated_at"),
              finishedAt: sql<null>`NULL`.as("finished_at"),
            })
            .from(tasks)
            .where(and(eq(tasks.id, taskId), eq(tasks.status, outcome.status), sql`${tasks.callbackUrl} IS NOT NULL`)),
        )
        .onConflictDoNothing(),
      // Only once the task is finished (the guarded update above may have changed nothing).
      this.#db
        .delete(taskInitImages)
        .where(
          and(
            eq(taskInitImages.taskId, taskId),
            notExists(
              this.#db
                .select({ one: sql`1` })
                .from(tasks)
                .where(and(eq(tasks.id, taskId), inArray(tasks.status, [...LIVE_STATUSES]))),
            ),
          ),
        ),
    ]);
    return updated[0] ?? null;
  }
}
