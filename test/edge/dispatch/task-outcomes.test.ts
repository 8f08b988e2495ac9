// TaskOutcomes.finish: the one way a task ends. The status, its queued callback and the removal of its img2img
// input happen in one batch, and only when the guarded update really finished the task.
import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { taskInitImages, tasks } from "../../../edge/db/schema.js";
import { webhookOutbox } from "../../../edge/db/webhooks.schema.js";
import { TaskOutcomes } from "../../../edge/dispatch/task-outcomes.js";
import { openTestDb, type TestDb } from "./test-db.js";

let db: TestDb;
beforeEach(async () => {
  db = await openTestDb();
});
afterEach(() => db.close());

const now = new Date(Date.UTC(2024, 0, 2));

async function withInitImage(fields: Parameters<TestDb["insertTask"]>[0] = {}): Promise<string> {
  const id = await db.insertTask({ hasInitImage: true, callbackUrl: "http://hook.example/done", ...fields });
  await db.db.insert(taskInitImages).values({ taskId: id, type: "jpeg", bytes: new Uint8Array([0xff, 0xd8, 0xff, 9]) });
  return id;
}
const initImage = async (id: string) => (await db.db.select().from(taskInitImages).where(eq(taskInitImages.taskId, id)))[0];

describe("TaskOutcomes.finish", () => {
  it("finishes the task, queues its callback and deletes its input image, in one batch", async () => {
    const id = await withInitImage({ status: "processing" });
    const finished = await new TaskOutcomes(db.db).finish(id, { status: "completed", resultUrls: ["http://s/0.png"] }, now);
    expect(finished).toMatchObject({ id });
    expect((await db.db.select().from(tasks).where(eq(tasks.id, id)))[0]).toMatchObject({ status: "completed", resultUrls: ["http://s/0.png"] });
    expect(await db.db.select({ taskId: webhookOutbox.taskId }).from(webhookOutbox)).toEqual([{ taskId: id }]);
    expect(await initImage(id)).toBeUndefined();
  });

  it("keeps the input image of a task it did not finish (the guard failed): it may still run", async () => {
    const id = await withInitImage({ status: "processing", leaseOwner: "edge-b" });
    const outcomes = new TaskOutcomes(db.db);
    expect(await outcomes.finish(id, { status: "cancelled" }, now, eq(tasks.leaseOwner, "edge-a"))).toBeNull();
    expect(await initImage(id)).toBeDefined();
    // The holder finishes it: now it goes.
    expect(await outcomes.finish(id, { status: "failed", errorMessage: "x" }, now, eq(tasks.leaseOwner, "edge-b"))).not.toBeNull();
    expect(await initImage(id)).toBeUndefined();
  });
});
