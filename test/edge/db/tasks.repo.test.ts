import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TasksRepo } from "../../../edge/db/tasks.repo.js";
import type { NewTask } from "../../../edge/db/tasks.repo.js";
import { FILE_CONNECTION_PRAGMAS } from "../../../edge/node/open-database.js";
import { openLibsqlStatementCache, type LibsqlStatementCache } from "../../../edge/node/statement-cache.libsql.js";
import { newTask } from "../../helpers/new-task.js";
import { createTestEdge, type TestEdge } from "../edge-test-app.js";

let edge: TestEdge;
let repo: TasksRepo;
beforeEach(async () => {
  edge = await createTestEdge();
  repo = new TasksRepo(edge.database.db);
});
afterEach(() => edge.close());

const row = (id: string, ownerKeyHash = "owner-a"): NewTask => newTask(id, { ownerKeyHash });

describe("TasksRepo", () => {
  it("creates tasks and reads their view, scoped to their owner", async () => {
    await repo.create({ ...row("t1"), seed: Number.MAX_SAFE_INTEGER, prompt: "一只猫 🐱 \" \\ \u0000" });
    expect(await repo.getViewForOwner("t1", "owner-a")).toEqual({
      id: "t1",
      status: "pending",
      resultUrls: null,
      errorMessage: null,
      createdAt: new Date(Date.UTC(2024, 0, 1)),
      updatedAt: new Date(Date.UTC(2024, 0, 1, 0, 0, 5)),
      seed: Number.MAX_SAFE_INTEGER,
      width: 512,
      height: null,
      scheduler: "DDIMScheduler",
      numImages: 2,
      progressStep: null,
      progressTotal: null,
      // Waiting in the database with no pending task created before it.
      queuePosition: 0,
      prompt: "一只猫 🐱 \" \\ \u0000",
      negativePrompt: null,
      loras: null,
    });
    expect(await repo.getViewForOwner("t1", "owner-b")).toBeUndefined();
    expect(await repo.getViewForOwner("t2", "owner-a")).toBeUndefined();
    expect(await repo.getById("t1")).toMatchObject({ id: "t1", status: "pending", attempts: 0, hasInitImage: false, guidanceScale: 7.5 });
  });

  it("unpacks JSON and real columns of the view", async () => {
    await repo.create(row("t3"));
    await edge.database.client.execute("UPDATE tasks SET result_urls = '[\"http://s/a.png\",\"http://s/b.png\"]', progress_step = 3, progress_total = 30, queue_position = 0 WHERE id = 't3'");
    expect(await repo.getViewForOwner("t3", "owner-a")).toMatchObject({ resultUrls: ["http://s/a.png", "http://s/b.png"], progressStep: 3, progressTotal: 30, queuePosition: 0 });
  });

  it("stores a request's adapters as JSON and reads them back", async () => {
    const loras = [
      { name: "ink", weight: 0.8 },
      { name: "晕染 \"x\"", weight: -1.5 },
    ];
    await repo.create({ ...row("l1"), loras });
    expect((await edge.database.client.execute("SELECT loras FROM tasks WHERE id = 'l1'")).rows[0].loras).toBe(JSON.stringify(loras));
    expect(await repo.getViewForOwner("l1", "owner-a")).toMatchObject({ loras });
    expect(await repo.getById("l1")).toMatchObject({ loras });
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
    await expect(repo.create(row("t-ok"), { type: "png", bytes })).rejects.toThrow();
    expect(await repo.getInitImage("t-ok")).toBeUndefined();
  });
});

// The Node edge coalesces concurrent creates; with a local file it writes them through kept native statements.
describe.each([
  ["drizzle's statements", false],
  ["kept native statements", true],
] as const)("TasksRepo with coalesceInserts, through %s", (_, kept) => {
  let statements: LibsqlStatementCache | null = null;
  afterEach(() => statements?.close());
  const coalescing = (): TasksRepo => {
    if (kept) statements = openLibsqlStatementCache(edge.database.url.slice("file:".length), FILE_CONNECTION_PRAGMAS);
    return new TasksRepo(edge.database.db, { coalesceInserts: true, statements: statements ?? undefined });
  };
  const storedColumns = async (id: string) => {
    const { rows, columns } = await edge.database.client.execute({ sql: "SELECT * FROM tasks WHERE id = ?", args: [id] });
    return Object.fromEntries(columns.filter((c) => c !== "id").map((c) => [c, rows[0][c]]));
  };

  it("stores a request's adapters as JSON and reads them back", async () => {
    repo = coalescing();
    await Promise.all([repo.create({ ...row("l2"), loras: [{ name: "a", weight: 1 }] }), repo.create(row("l3"))]);
    expect(await repo.getViewForOwner("l2", "owner-a")).toMatchObject({ loras: [{ name: "a", weight: 1 }] });
    expect(await repo.getViewForOwner("l3", "owner-a")).toMatchObject({ loras: null });
    expect((await edge.database.client.execute("SELECT loras FROM tasks WHERE id = 'l2'")).rows[0].loras).toBe('[{"name":"a","weight":1}]');
  });

  it("commits concurrent creates together, failing only a duplicate among them", async () => {
    repo = coalescing();
    await repo.create(row("taken"));
    const ids = ["c1", "c2", "taken", "c3"];
    const results = await Promise.allSettled(ids.map((id) => repo.create(row(id))));
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    for (const id of ["c1", "c2", "c3"]) expect(await repo.getViewForOwner(id, "owner-a")).toMatchObject({ id, status: "pending" });
    expect((await edge.database.client.execute("SELECT count(*) AS n FROM tasks")).rows[0].n).toBe(4);
  });

  it("stores every field of every row of a batch as a lone insert does (bursts of one size reuse a statement)", async () => {
    const distinct = (id: string, i: number): NewTask => ({
      ...row(id),
      prompt: `prompt ${i}`,
      negativePrompt: i % 2 ? `neg ${i}` : null,
      width: 64 * (i + 1),
      height: i % 2 ? 64 : null,
      numImages: i + 1,
      numInferenceSteps: i % 2 ? null : 10 + i,
      guidanceScale: 1.5 + i,
      strength: i / 10,
      scheduler: i % 2 ? null : "EulerDiscreteScheduler",
      seed: 1000 + i,
      outputFormat: i % 2 ? "jpg" : "png",
      callbackUrl: i % 2 ? `http://hook.example/${i}` : null,
      loras: i % 2 ? [{ name: `l${i}`, weight: i }] : null,
      createdAt: new Date(Date.UTC(2024, 0, 1, 0, 0, i)),
      updatedAt: new Date(Date.UTC(2024, 0, 2, 0, 0, i)),
    });
    for (let i = 0; i < 3; i++) await repo.create(distinct(`lone${i}`, i));
    repo = coalescing();
    for (const burst of ["a", "b"]) {
      await Promise.all([0, 1, 2].map((i) => repo.create(distinct(`${burst}${i}`, i))));
    }
    for (let i = 0; i < 3; i++) {
      const { id: _lone, ...lone } = (await repo.getById(`lone${i}`))!;
      for (const burst of ["a", "b"]) {
        const { id, ...stored } = (await repo.getById(`${burst}${i}`))!;
        expect(id).toBe(`${burst}${i}`);
        expect(stored).toEqual(lone);
        // As stored, too: decoding could hide a difference (JSON "null" against NULL, a real against an integer).
        expect(await storedColumns(`${burst}${i}`)).toEqual(await storedColumns(`lone${i}`));
      }
    }
  });

});
