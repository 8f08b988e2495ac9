import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TasksRepo, type NewTask } from "../../../edge/db/tasks.repo.js";
import { openLibsqlStatementCache, type LibsqlStatementCache } from "../../../edge/node/statement-cache.libsql.js";
import { newTask } from "../../helpers/new-task.js";
import { createTestEdge, type TestEdge } from "../edge-test-app.js";

let edge: TestEdge;
let cache: LibsqlStatementCache;
beforeEach(async () => {
  edge = await createTestEdge();
  cache = openLibsqlStatementCache(edge.database.url.slice("file:".length));
});
afterEach(() => {
  cache.close();
  edge.close();
});

const row = (id: string, createdAtSecond: number, ownerKeyHash = "owner-a"): NewTask =>
  newTask(id, {
    ownerKeyHash,
    prompt: `prompt of ${id}`,
    seed: Number.MAX_SAFE_INTEGER,
    loras: [{ name: "ink", weight: 0.5 }],
    createdAt: new Date(Date.UTC(2024, 0, 1, 0, 0, createdAtSecond)),
    updatedAt: new Date(Date.UTC(2024, 0, 1, 0, 0, createdAtSecond)),
  });

describe("openLibsqlStatementCache", () => {
  it("answers a row as its column values, undefined when there is none, reusing one statement per SQL text", () => {
    const sql = "SELECT ? + 1, 'x' || ?";
    expect(cache.get(sql, [1, "y"])).toEqual([2, "xy"]);
    expect(cache.get(sql, [41, "z"])).toEqual([42, "xz"]);
    expect(cache.get("SELECT 1 WHERE 0", [])).toBeUndefined();
  });

  it("runs writes the app's own connection then sees, and applies the connection settings it is given", async () => {
    cache.run("UPDATE tasks SET status = ? WHERE id = ?", ["failed", "nothing"]);
    const repo = new TasksRepo(edge.database.db);
    await repo.create(row("w1", 1));
    cache.run("UPDATE tasks SET status = ?, error_message = ? WHERE id = ?", ["failed", "from the second connection", "w1"]);
    expect(await repo.getById("w1")).toMatchObject({ status: "failed", errorMessage: "from the second connection" });
    // SQLite's default is FULL (2); the edge opens this connection with NORMAL (1), as its driver connection.
    expect(cache.get("PRAGMA synchronous", [])).toEqual([2]);
    const tuned = openLibsqlStatementCache(edge.database.url.slice("file:".length), ["PRAGMA synchronous=NORMAL", "PRAGMA wal_autocheckpoint=4000"]);
    try {
      expect(tuned.get("PRAGMA synchronous", [])).toEqual([1]);
      expect(tuned.get("PRAGMA wal_autocheckpoint", [])).toEqual([4000]);
    } finally {
      tuned.close();
    }
  });

  it("sees rows committed by the app's own connection before each read (a GET right after its POST)", async () => {
    const repo = new TasksRepo(edge.database.db, { statements: cache });
    expect(await repo.getViewForOwner("t1", "owner-a")).toBeUndefined();
    await repo.create(row("t1", 1));
    expect(await repo.getViewForOwner("t1", "owner-a")).toMatchObject({ id: "t1", status: "pending", queuePosition: 0 });
    await edge.database.client.execute("UPDATE tasks SET status = 'processing', progress_step = 3, progress_total = 20 WHERE id = 't1'");
    expect(await repo.getViewForOwner("t1", "owner-a")).toMatchObject({ status: "processing", progressStep: 3, progressTotal: 20 });
  });
});

describe("TasksRepo over kept statements", () => {
  it("reads the same task views as drizzle's path: every field, queue positions, other owners' tasks absent", async () => {
    const plain = new TasksRepo(edge.database.db);
    const kept = new TasksRepo(edge.database.db, { statements: cache });
    for (const [id, second] of [["a", 1], ["b", 2], ["c", 3]] as const) await plain.create(row(id, second));
    await plain.create(row("other", 4, "owner-b"));
    await edge.database.client.execute("UPDATE tasks SET status = 'completed', result_urls = '[\"http://s/a.png\"]' WHERE id = 'a'");
    await edge.database.client.execute("UPDATE tasks SET queue_position = 7 WHERE id = 'c'");
    for (const [id, owner] of [["a", "owner-a"], ["b", "owner-a"], ["c", "owner-a"], ["other", "owner-b"], ["other", "owner-a"], ["none", "owner-a"]]) {
      expect(await kept.getViewForOwner(id, owner)).toEqual(await plain.getViewForOwner(id, owner));
    }
    // b waits behind nothing pending (a finished); c has a place reported by its node.
    expect(await kept.getViewForOwner("b", "owner-a")).toMatchObject({ queuePosition: 0, seed: Number.MAX_SAFE_INTEGER, loras: [{ name: "ink", weight: 0.5 }] });
    expect(await kept.getViewForOwner("c", "owner-a")).toMatchObject({ queuePosition: 7 });
    expect(await kept.getViewForOwner("other", "owner-a")).toBeUndefined();
  });
});
