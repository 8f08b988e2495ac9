import { and, asc, eq, inArray, isNull, lte, or, sql } from "drizzle-orm";
import type { Database } from "../db/database.js";
import { webhookAttempts, webhookOutbox, type WebhookAttemptOutcome, type WebhookAttemptRow, type WebhookOutboxRow, type WebhookState } from "../db/webhooks.schema.js";

// The outbox's SQL. Rows are written by TaskOutcomes (with the terminal status); here they are leased for a
// delivery attempt and the attempt recorded. Recording is guarded by the lease, so an edge whose lease lapsed
// (and whose row another edge now delivers) records nothing.

export interface AttemptRecord {
  attempt: number;
  attemptedAt: Date;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  outcome: WebhookAttemptOutcome;
}

export interface NextState {
  state: WebhookState;
  /** When still pending: the next attempt's time. */
  nextAttemptAt: Date | null;
}

export class OutboxRepo {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  /** Leases up to `limit` rows due now (pending, next attempt reached, no live lease), the most overdue first. */
  async claimDue(owner: string, now: Date, leaseUntil: Date, limit: number): Promise<WebhookOutboxRow[]> {
    const due = this.#db
      .select({ id: webhookOutbox.id })
      .from(webhookOutbox)
      .where(
        and(
          eq(webhookOutbox.state, "pending"),
          lte(webhookOutbox.nextAttemptAt, now),
          or(isNull(webhookOutbox.leaseUntil), lte(webhookOutbox.leaseUntil, now)),
        ),
      )
      .orderBy(asc(webhookOutbox.nextAttemptAt))
      .limit(limit);
    return this.#db
      .update(webhookOutbox)
      .set({ leaseOwner: owner, leaseUntil })
      .where(
        and(
          inArray(webhookOutbox.id, due),
          eq(webhookOutbox.state, "pending"),
          or(isNull(webhookOutbox.leaseUntil), lte(webhookOutbox.leaseUntil, now)),
        ),
      )
      .returning();
  }

  /** Records one attempt and the row's next state in one transaction, if `owner` still holds the lease. */
  async record(row: WebhookOutboxRow, owner: string, attempt: AttemptRecord, next: NextState, now: Date): Promise<boolean> {
    const held = and(eq(webhookOutbox.id, row.id), eq(webhookOutbox.leaseOwner, owner), eq(webhookOutbox.state, "pending"));
    const [, updated] = await this.#db.batch([
      this.#db.insert(webhookAttempts).select(
        this.#db
          .select({
            id: sql<null>`NULL`.as("id"),
            outboxId: webhookOutbox.id,
            attempt: sql<number>`${attempt.attempt}`.as("attempt"),
            attemptedAt: sql<number>`${attempt.attemptedAt.getTime()}`.as("attempted_at"),
            statusCode: sql<number | null>`${attempt.statusCode}`.as("status_code"),
            error: sql<string | null>`${attempt.error}`.as("error"),
            durationMs: sql<number>`${Math.round(attempt.durationMs)}`.as("duration_ms"),
            outcome: sql<string>`${attempt.outcome}`.as("outcome"),
          })
          .from(webhookOutbox)
          .where(held),
      ),
      this.#db
        .update(webhookOutbox)
        .set({
          state: next.state,
          attempts: attempt.attempt,
          nextAttemptAt: next.nextAttemptAt ?? sql`${webhookOutbox.nextAttemptAt}`,
          leaseOwner: null,
          leaseUntil: null,
          lastStatusCode: attempt.statusCode,
          lastError: attempt.error,
          updatedAt: now,
          finishedAt: next.state === "pending" ? null : now,
        })
        .where(held)
        .returning({ id: webhookOutbox.id }),
    ]);
    return updated.length > 0;
  }

  /** The soonest time a pending row becomes deliverable (its next attempt, or its lease's end), so a loop can sleep until then. */
  async nextDueAt(): Promise<Date | null> {
    const [row] = await this.#db
      .select({ at: sql<number | null>`min(max(${webhookOutbox.nextAttemptAt}, coalesce(${webhookOutbox.leaseUntil}, 0)))` })
      .from(webhookOutbox)
      .where(eq(webhookOutbox.state, "pending"));
    return row?.at == null ? null : new Date(Number(row.at));
  }

  async byTask(taskId: string): Promise<WebhookOutboxRow | undefined> {
    const [row] = await this.#db.select().from(webhookOutbox).where(eq(webhookOutbox.taskId, taskId));
    return row;
  }

  async attempts(outboxId: string): Promise<WebhookAttemptRow[]> {
    return this.#db.select().from(webhookAttempts).where(eq(webhookAttempts.outboxId, outboxId)).orderBy(asc(webhookAttempts.attempt));
  }
}
