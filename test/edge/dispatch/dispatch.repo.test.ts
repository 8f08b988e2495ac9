import { afterEach, beforeEach, describe, expect, it } from "vitest";
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
