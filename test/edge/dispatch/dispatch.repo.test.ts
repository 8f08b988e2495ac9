import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { taskInitImages, tasks } from "../../../edge/db/schema.js";
import { webhookAttempts, webhookOutbox } from "../../../edge/db/webhooks.schema.js";
import { DispatchRepo } from "../../../edge/dispatch/dispatch.repo.js";
import { openTestDb, type TestDb } from "./test-db.js";

let db: TestDb;
beforeEach(async () => {
  db = await openTestDb();
});
afterEach(() => db.close());

describe("DispatchRepo.claimableCount", () => {
  it("counts exactly what claim() would take: unleased pending tasks and expired leases, with attempts left", async () => {
    const repo = new DispatchRepo(db.db);
    const now = new Date(Date.UTC(2024, 0, 1, 13));
    const past = new Date(now.getTime() - 1000);
    const future = new Date(now.getTime() + 1000);
    await db.insertTask();
    await db.insertTask({ status: "processing", leaseOwner: "gone", leaseUntil: past, attempts: 1 });
    // Not claimable: a live lease, no attempt left, finished.
    await db.insertTask({ status: "processing", leaseOwner: "edge", leaseUntil: future, attempts: 1 });
    await db.insertTask({ attempts: 3 });
    await db.insertTask({ status: "processing", leaseOwner: "gone", leaseUntil: past, attempts: 3 });
    await db.insertTask({ status: "completed", leaseUntil: past });
    expect(await repo.claimableCount(now, 3)).toBe(2);

    const target = { candidate: "n", healthy: [] };
    let claimed = 0;
    while (await repo.claim("edge-b", now, future, 3, target)) claimed++;
    expect(claimed).toBe(2);
    expect(await repo.claimableCount(now, 3)).toBe(0);
  });
});

describe("DispatchRepo.pruneFinished", () => {
  const before = new Date(Date.UTC(2024, 1, 1));
  const old = new Date(Date.UTC(2024, 0, 1));

  async function outbox(taskId: string, state: "pending" | "delivered" | "failed"): Promise<string> {
    const id = `msg_${taskId}`;
    await db.db.insert(webhookOutbox).values({
      id,
      taskId,
      url: "http://hook.example/x",
      payload: "{}",
      state,
      attempts: 1,
      nextAttemptAt: old,
      createdAt: old,
      updatedAt: old,
    });
    await db.db.insert(webhookAttempts).values({ outboxId: id, attempt: 1, attemptedAt: old, statusCode: 200, outcome: "delivered", durationMs: 5 });
    return id;
  }

  it("deletes old finished tasks with their callback records and input image; keeps live, recent and undelivered ones", async () => {
    const repo = new DispatchRepo(db.db);
    const done = await db.insertTask({ status: "completed", createdAt: old, hasInitImage: true });
    await db.db.insert(taskInitImages).values({ taskId: done, type: "png", bytes: new Uint8Array([1, 2, 3]) });
    const doneOutbox = await outbox(done, "delivered");
    await db.insertTask({ status: "cancelled", createdAt: old });
    const undelivered = await db.insertTask({ status: "failed", createdAt: old });
    await outbox(undelivered, "pending");
    const live = await db.insertTask({ status: "processing", createdAt: old });
    const recent = await db.insertTask({ status: "completed", createdAt: new Date(before.getTime() + 1) });

    expect(await repo.pruneFinished(before)).toBe(2);
    const left = (await db.db.select({ id: tasks.id }).from(tasks)).map((r) => r.id).sort();
    expect(left).toEqual([undelivered, live, recent].sort());
    expect(await db.db.select().from(taskInitImages)).toEqual([]);
    expect(await db.db.select().from(webhookOutbox).where(eq(webhookOutbox.id, doneOutbox))).toEqual([]);
    expect(await db.db.select().from(webhookAttempts).where(eq(webhookAttempts.outboxId, doneOutbox))).toEqual([]);
    // Nothing left to do.
    expect(await repo.pruneFinished(before)).toBe(0);
  });

  it("deletes at most `limit` tasks per call", async () => {
    const repo = new DispatchRepo(db.db);
    for (let i = 0; i < 5; i++) await db.insertTask({ status: "completed", createdAt: old });
    expect(await repo.pruneFinished(before, 3)).toBe(3);
    expect(await repo.pruneFinished(before, 3)).toBe(2);
  });
});
