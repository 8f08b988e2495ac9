import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TasksRepo } from "../../../edge/db/tasks.repo.js";
import type { NewTaskRow } from "../../../edge/db/schema.js";
import { createTestEdge, type TestEdge } from "../edge-test-app.js";

let edge: TestEdge;
let repo: TasksRepo;
beforeEach(async () => {
  edge = await createTestEdge();
  repo = new TasksRepo(edge.database.db);
});
afterEach(() => edge.close());

const row = (id: string, owner = "owner-a"): NewTaskRow => ({
  id,
  ownerKeyHash: owner,
  prompt: "p",
  createdAt: new Date(Date.UTC(2024, 0, 1)),
  updatedAt: new Date(Date.UTC(2024, 0, 1)),
});

describe("TasksRepo", () => {
  it("creates and reads tasks, scoped to their owner", async () => {
    await repo.create({ ...row("t1"), resultUrls: ["u1", "u2"], seed: Number.MAX_SAFE_INTEGER });
    expect(await repo.getForOwner("t1", "owner-a")).toMatchObject({ id: "t1", status: "pending", resultUrls: ["u1", "u2"], seed: Number.MAX_SAFE_INTEGER });
    expect(await repo.getForOwner("t1", "owner-b")).toBeUndefined();
    expect(await repo.getForOwner("t2", "owner-a")).toBeUndefined();
    expect((await repo.getById("t1"))?.createdAt).toEqual(new Date(Date.UTC(2024, 0, 1)));
  });

  it("refuses a duplicate id", async () => {
    await repo.create(row("dup"));
    await expect(repo.create(row("dup"))).rejects.toThrow();
  });

  it("stores the init image in the same transaction, and nothing when that fails", async () => {
    const bytes = new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3]);
    await repo.create(row("img"), { type: "jpeg", bytes });
    expect(await repo.getInitImage("img")).toEqual({ taskId: "img", type: "jpeg", bytes });
    expect((await repo.getById("img"))?.hasInitImage).toBe(true);

    // The task insert fails (duplicate id): the image must not be left behind either.
    await repo.create(row("t-ok"));
    await expect(repo.create({ ...row("t-ok") }, { type: "png", bytes })).rejects.toThrow();
    expect(await repo.getInitImage("t-ok")).toBeUndefined();
  });
});
