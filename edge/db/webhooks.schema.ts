import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { tasks } from "./schema.js";

// The webhook outbox (DESIGN.md, "Webhooks"). A row is written in the same transaction as the task's terminal
// status (completed, failed, cancelled), so a callback is never lost nor sent for a state that did not commit;
// a background loop delivers it. Its id is the Standard Webhooks `webhook-id`: stable across every retry.

export const WEBHOOK_STATES = ["pending", "delivered", "failed"] as const;
export type WebhookState = (typeof WEBHOOK_STATES)[number];

export const webhookOutbox = sqliteTable(
  "webhook_outbox",
  {
    // "msg_" + 32 hex digits.
    id: text("id").primaryKey(),
    // Unique: one terminal event per task, however many edges race to record it.
    taskId: text("task_id")
      .notNull()
      .unique()
      .references(() => tasks.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    // The exact JSON body, fixed once: every retry sends the same bytes.
    payload: text("payload").notNull(),
    state: text("state", { enum: WEBHOOK_STATES }).notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: integer("next_attempt_at", { mode: "timestamp_ms" }).notNull(),
    // A delivering edge holds a lease, so two edges never send the same attempt at once.
    leaseOwner: text("lease_owner"),
    leaseUntil: integer("lease_until", { mode: "timestamp_ms" }),
    lastStatusCode: integer("last_status_code"),
    lastError: text("last_error"),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
    finishedAt: integer("finished_at", { mode: "timestamp_ms" }),
  },
  (t) => [
    // The delivery loop's "due now" scan; partial, so delivered rows leave it.
    index("webhook_outbox_due_idx")
      .on(t.nextAttemptAt)
      .where(sql`${t.state} = 'pending'`),
  ],
);

export const WEBHOOK_ATTEMPT_OUTCOMES = ["delivered", "retry", "gone", "refused", "gave_up"] as const;
export type WebhookAttemptOutcome = (typeof WEBHOOK_ATTEMPT_OUTCOMES)[number];

/** Every delivery attempt: when, what came back (status code or error) and how long it took. */
export const webhookAttempts = sqliteTable(
  "webhook_attempts",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    outboxId: text("outbox_id")
      .notNull()
      .references(() => webhookOutbox.id, { onDelete: "cascade" }),
    // 1-based.
    attempt: integer("attempt").notNull(),
    attemptedAt: integer("attempted_at", { mode: "timestamp_ms" }).notNull(),
    statusCode: integer("status_code"),
    error: text("error"),
    durationMs: integer("duration_ms").notNull(),
    outcome: text("outcome", { enum: WEBHOOK_ATTEMPT_OUTCOMES }).notNull(),
  },
  (t) => [index("webhook_attempts_outbox_idx").on(t.outboxId, t.attempt)],
);

export type WebhookOutboxRow = typeof webhookOutbox.$inferSelect;
export type WebhookAttemptRow = typeof webhookAttempts.$inferSelect;
