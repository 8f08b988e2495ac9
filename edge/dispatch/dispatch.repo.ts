import { and, asc, eq, gte, inArray, isNotNull, isNull, lt, lte, notExists, or, sql, type SQL } from "drizzle-orm";
import type { Database } from "../db/database.js";
import { taskInitImages, tasks, type TaskRow } from "../db/schema.js";
import { webhookAttempts, webhookOutbox } from "../db/webhooks.schema.js";
import { FINISHED_STATUSES, LIVE_STATUSES } from "./task-outcomes.js";

// The dispatcher's SQL: the tasks table is the queue. Every write after a claim is guarded by
// `lease_owner = <this edge>` and a live status, so an edge that lost a task (its lease expired and another
// edge took it, or the task was cancelled) changes nothing and learns it from the zero-row result.

/** Where a claimed task goes: its recorded node if that is healthy, else the candidate. */
export interface NodeTarget {
  candidate: string;
  healthy: readonly string[];
}

export interface StartedFields {
  seed: number;
  totalSteps: number;
  /** null: keep the row's (img2img: the node reports placeholders; the first image gives the real size). */
  width: number | null;
  height: number | null;
  scheduler: string;
}

/** No edge holds the task: its lease expired, or it has none. */
export function unheld(now: Date): SQL | undefined {
  return or(isNull(tasks.leaseUntil), lte(tasks.leaseUntil, now));
}

/** `owner` holds the task: its lease, on a task still live. */
export function heldBy(owner: string): SQL | undefined {
  return and(eq(tasks.leaseOwner, owner), inArray(tasks.status, [...LIVE_STATUSES]));
}

/** Waiting in the database queue: pending, and no edge ever took it (or one gave it back). */
export function unleasedPending(): SQL | undefined {
  return and(eq(tasks.status, "pending"), isNull(tasks.leaseUntil));
}

/** A live task whose holder's lease ran out (the edge or its node died holding it). */
function leaseExpired(now: Date): SQL | undefined {
  return and(isNotNull(tasks.leaseUntil), lte(tasks.leaseUntil, now), inArray(tasks.status, [...LIVE_STATUSES]));
}

export class DispatchRepo {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  /**
   * Claims, in one atomic UPDATE … RETURNING, the task whose lease expired longest ago (an edge or node died
   * holding it); else the oldest unleased pending task. Only tasks with attempts left are claimed. The same
   * statement records the node: the one already on the row when it is among `target.healthy` (so the task
   * re-attaches where it runs), else `target.candidate`.
   */
  async claim(owner: string, now: Date, leaseUntil: Date, maxAttempts: number, target: NodeTarget): Promise<TaskRow | undefined> {
    return (await this.#claimExpired(owner, now, leaseUntil, maxAttempts, target)) ?? (await this.#claimPending(owner, leaseUntil, maxAttempts, target));
  }

  #node(target: NodeTarget) {
    return target.healthy.length === 0
      ? sql`${target.candidate}`
      : sql`CASE WHEN ${inArray(tasks.node, [...target.healthy])} THEN ${tasks.node} ELSE ${target.candidate} END`;
  }

  async #claimExpired(owner: string, now: Date, leaseUntil: Date, maxAttempts: number, target: NodeTarget): Promise<TaskRow | undefined> {
    const expired = this.#db
      .select({ id: tasks.id })
      .from(tasks)
      .where(and(leaseExpired(now), lt(tasks.attempts, maxAttempts)))
      .orderBy(asc(tasks.leaseUntil))
      .limit(1);
    const [row] = await this.#db
      .update(tasks)
      .set({ leaseOwner: owner, leaseUntil, attempts: sql`${tasks.attempts} + 1`, node: this.#node(target) })
      .where(and(eq(tasks.id, expired), lte(tasks.leaseUntil, now)))
      .returning();
    return row;
  }

  async #claimPending(owner: string, leaseUntil: Date, maxAttempts: number, target: NodeTarget): Promise<TaskRow | undefined> {
    const oldest = this.#db
      .select({ id: tasks.id })
      .from(tasks)
      .where(and(unleasedPending(), lt(tasks.attempts, maxAttempts)))
      .orderBy(asc(tasks.createdAt), sql`rowid`)
      .limit(1);
    const [row] = await this.#db
      .update(tasks)
      .set({ leaseOwner: owner, leaseUntil, attempts: sql`${tasks.attempts} + 1`, node: this.#node(target) })
      .where(and(eq(tasks.id, oldest), isNull(tasks.leaseUntil)))
      .returning();
    return row;
  }

  /** How many tasks claim() could take now (both of its cases). */
  async claimableCount(now: Date, maxAttempts: number): Promise<number> {
    const [row] = await this.#db
      .select({ n: sql<number>`count(*)` })
      .from(tasks)
      .where(and(lt(tasks.attempts, maxAttempts), or(unleasedPending(), leaseExpired(now))));
    return Number(row?.n ?? 0);
  }

  async initImage(taskId: string): Promise<Uint8Array | undefined> {
    const [row] = await this.#db.select({ bytes: taskInitImages.bytes }).from(taskInitImages).where(eq(taskInitImages.taskId, taskId));
    return row?.bytes;
  }

  /** Extends the leases of the tasks this edge still holds; returns the ids it still holds. */
  async renew(owner: string, ids: readonly string[], leaseUntil: Date): Promise<Set<string>> {
    const held = new Set<string>();
    // Bounded statements: SQLite limits bound parameters per statement.
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await this.#db
        .update(tasks)
        .set({ leaseUntil })
        .where(and(inArray(tasks.id, ids.slice(i, i + 500)), heldBy(owner)))
        .returning({ id: tasks.id });
      for (const row of rows) held.add(row.id);
    }
    return held;
  }

  /** Waiting in the node's queue: queue_position is the number of tasks ahead (the node counts from 1). */
  async queued(taskId: string, owner: string, position: number, now: Date): Promise<boolean> {
    // A re-claimed task can still be `processing` (its last holder died mid-generation) when a node that no longer
    // has it queues it afresh: it is still held, and its position shows once `started` is not yet known.
    const result = await this.#db
      .update(tasks)
      .set({
        queuePosition: sql`CASE WHEN ${tasks.status} = 'pending' THEN ${Math.max(0, position - 1)} ELSE ${tasks.queuePosition} END`,
        updatedAt: now,
      })
      .where(and(eq(tasks.id, taskId), heldBy(owner)));
    return result.rowsAffected > 0;
  }

  /** processing, with what the node actually runs; started_at keeps the first start. Returns the row's previous started_at. */
  async started(taskId: string, owner: string, fields: StartedFields, now: Date): Promise<{ firstStart: boolean } | null> {
    const [row] = await this.#db
      .update(tasks)
      .set({
        status: "processing",
        seed: fields.seed,
        width: fields.width ?? sql`${tasks.width}`,
        height: fields.height ?? sql`${tasks.height}`,
        // The request's own spelling wins; the node's resolved name fills a request that named none.
        scheduler: sql`coalesce(${tasks.scheduler}, ${fields.scheduler})`,
        progressStep: sql`CASE WHEN ${tasks.progressTotal} = ${fields.totalSteps} THEN coalesce(${tasks.progressStep}, 0) ELSE 0 END`,
        progressTotal: fields.totalSteps,
        queuePosition: null,
        startedAt: sql`coalesce(${tasks.startedAt}, ${now.getTime()})`,
        updatedAt: now,
      })
      .where(and(eq(tasks.id, taskId), heldBy(owner)))
      .returning({ startedAt: tasks.startedAt });
    if (!row) return null;
    return { firstStart: row.startedAt?.getTime() === now.getTime() };
  }

  /** The size of the images produced (img2img: the init image's), once the first one is stored. */
  async imageSize(taskId: string, owner: string, width: number, height: number, now: Date): Promise<boolean> {
    const result = await this.#db
      .update(tasks)
      .set({ width, height, updatedAt: now })
      .where(and(eq(tasks.id, taskId), heldBy(owner)));
    return result.rowsAffected > 0;
  }

  async progress(taskId: string, owner: string, step: number, total: number, now: Date): Promise<boolean> {
    const result = await this.#db
      .update(tasks)
      .set({ progressStep: step, progressTotal: total, updatedAt: now })
      .where(and(eq(tasks.id, taskId), heldBy(owner), eq(tasks.status, "processing")));
    return result.rowsAffected > 0;
  }

  /**
   * Gives a held task back for another attempt: pending, unleased, its error remembered. `refund` does not count
   * the attempt (the node refused the call before doing anything); `forgetNode` lets any node take it.
   */
  async release(
    taskId: string,
    owner: string,
    options: { lastError: string | null; refund: boolean; forgetNode: boolean },
    now: Date,
  ): Promise<boolean> {
    const result = await this.#db
      .update(tasks)
      .set({
        status: "pending",
        leaseOwner: null,
        leaseUntil: null,
        lastError: options.lastError === null ? sql`${tasks.lastError}` : options.lastError,
        attempts: options.refund ? sql`max(${tasks.attempts} - 1, 0)` : sql`${tasks.attempts}`,
        node: options.forgetNode ? null : sql`${tasks.node}`,
        progressStep: null,
        progressTotal: null,
        queuePosition: null,
        updatedAt: now,
      })
      .where(and(eq(tasks.id, taskId), heldBy(owner)));
    return result.rowsAffected > 0;
  }

  /** On shutdown: hands held tasks over at once (lease expired now, attempt refunded); their node is kept. */
  async handOver(owner: string, ids: readonly string[], now: Date): Promise<number> {
    let n = 0;
    for (let i = 0; i < ids.length; i += 500) {
      const result = await this.#db
        .update(tasks)
        .set({ leaseUntil: now, attempts: sql`max(${tasks.attempts} - 1, 0)` })
        .where(and(inArray(tasks.id, ids.slice(i, i + 500)), heldBy(owner)));
      n += result.rowsAffected;
    }
    return n;
  }

  /**
   * Live tasks no edge holds (lease expired, or none) with no attempt left: the reconciler fails them. (Unleased
   * ones only exist when dispatch.max_attempts was lowered since they were last tried.)
   */
  async exhausted(now: Date, maxAttempts: number, limit = 100): Promise<Pick<TaskRow, "id" | "attempts" | "lastError">[]> {
    return this.#db
      .select({ id: tasks.id, attempts: tasks.attempts, lastError: tasks.lastError })
      .from(tasks)
      .where(and(unheld(now), inArray(tasks.status, [...LIVE_STATUSES]), gte(tasks.attempts, maxAttempts)))
      .limit(limit);
  }

  /** Unleased pending tasks created before `before` (the pending timeout when no node is healthy). */
  async waitingSince(before: Date, limit = 100): Promise<Pick<TaskRow, "id" | "attempts" | "lastError">[]> {
    return this.#db
      .select({ id: tasks.id, attempts: tasks.attempts, lastError: tasks.lastError })
      .from(tasks)
      .where(and(unleasedPending(), lt(tasks.createdAt, before)))
      .orderBy(asc(tasks.createdAt))
      .limit(limit);
  }

  async statusOf(taskId: string): Promise<TaskRow["status"] | undefined> {
    const [row] = await this.#db.select({ status: tasks.status }).from(tasks).where(eq(tasks.id, taskId));
    return row?.status;
  }

  /**
   * Deletes up to `limit` finished tasks created before `before`, with their callback records and any input image;
   * a task whose callback is still pending is kept. Returns how many went. Explicit deletes, child rows first:
   * not every libSQL server enforces the foreign keys' ON DELETE CASCADE.
   */
  async pruneFinished(before: Date, limit = 500): Promise<number> {
    const rows = await this.#db
      .select({ id: tasks.id })
      .from(tasks)
      .where(
        and(
          inArray(tasks.status, [...FINISHED_STATUSES]),
          lt(tasks.createdAt, before),
          notExists(
            this.#db
              .select({ one: sql`1` })
              .from(webhookOutbox)
              .where(and(eq(webhookOutbox.taskId, tasks.id), eq(webhookOutbox.state, "pending"))),
          ),
        ),
      )
      .limit(limit);
    if (rows.length === 0) return 0;
    const ids = rows.map((r) => r.id);
    const outboxOfTasks = this.#db.select({ id: webhookOutbox.id }).from(webhookOutbox).where(inArray(webhookOutbox.taskId, ids));
    await this.#db.batch([
      this.#db.delete(webhookAttempts).where(inArray(webhookAttempts.outboxId, outboxOfTasks)),
      this.#db.delete(webhookOutbox).where(inArray(webhookOutbox.taskId, ids)),
      this.#db.delete(taskInitImages).where(inArray(taskInitImages.taskId, ids)),
      this.#db.delete(tasks).where(and(inArray(tasks.id, ids), inArray(tasks.status, [...FINISHED_STATUSES]))),
    ]);
    return ids.length;
  }

  /** Tasks per status, for the metrics gauge. */
  async countByStatus(): Promise<Record<string, number>> {
    const rows = await this.#db
      .select({ status: tasks.status, n: sql<number>`count(*)` })
      .from(tasks)
      .groupBy(tasks.status);
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }
}
