import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../edge/adapters/silent.logger.js";
import { openMigratedDatabase, type OpenDatabase } from "../../../edge/node/open-database.js";
import { startWalCheckpointer } from "../../../edge/node/wal-checkpointer.js";
import { parseConfig } from "../../../shared/config/config.schema.js";

let dir: string;
let path: string;
let opened: OpenDatabase;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "wal-"));
  path = join(dir, "tasks.db");
  opened = await openMigratedDatabase(parseConfig({ task_db: { path } }));
});
afterEach(() => {
  opened.client.close();
  rmSync(dir, { recursive: true, force: true });
});

const size = (p: string) => statSync(p).size;

async function insertRows(n: number, from = 0) {
  for (let i = from; i < from + n; i++) {
    await opened.client.execute({
      sql: "INSERT INTO tasks (id, owner_key_hash, prompt, created_at, updated_at) VALUES (?, 'o', ?, 0, 0)",
      args: [`t${i}`, "x".repeat(500)],
    });
  }
}

describe("startWalCheckpointer", () => {
  it("checkpoints in a worker thread, and truncates the WAL on stop", async () => {
    const checkpointer = await startWalCheckpointer(opened.client, path, silentLogger, 50);
    // The request connection only tops up, past a larger threshold than SQLite's 1000 pages.
    expect((await opened.client.execute("PRAGMA wal_autocheckpoint")).rows[0].wal_autocheckpoint).toBe(4000);
    const dbBefore = size(path);
    await insertRows(2000);
    // The main file only grows when a checkpoint copies pages into it.
    for (let i = 0; i < 100 && size(path) === dbBefore; i++) await new Promise((r) => setTimeout(r, 50));
    expect(size(path)).toBeGreaterThan(dbBefore);

    await checkpointer.stop();
    expect(size(`${path}-wal`)).toBe(0);
    expect((await opened.client.execute("SELECT count(*) AS n FROM tasks")).rows[0].n).toBe(2000);
  });

  it("keeps the WAL bounded however far the worker falls behind (the request connection tops up)", async () => {
    // A worker that never gets to run: the request connection alone must keep the WAL rewinding.
    const checkpointer = await startWalCheckpointer(opened.client, path, silentLogger, 3_600_000);
    let largest = 0;
    for (let batch = 0; batch < 100; batch++) {
      const values = Array.from({ length: 200 }, (_, i) => `('b${batch}-${i}', 'o', '${"y".repeat(1000)}', 0, 0)`).join(", ");
      await opened.client.execute(`INSERT INTO tasks (id, owner_key_hash, prompt, created_at, updated_at) VALUES ${values}`);
      largest = Math.max(largest, size(`${path}-wal`));
    }
    await checkpointer.stop();
    // 20,000 rows of ~1 KB went through; the WAL stayed near the 4000-page (16 MiB) threshold.
    expect(largest).toBeLessThan(24 * 1024 * 1024);
    expect((await opened.client.execute("SELECT count(*) AS n FROM tasks")).rows[0].n).toBe(20_000);
  });

  it("without it the request connection would checkpoint on its own (the default it restores)", async () => {
    expect((await opened.client.execute("PRAGMA wal_autocheckpoint")).rows[0].wal_autocheckpoint).toBe(1000);
  });
});
