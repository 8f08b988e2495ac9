import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { filePathOfUrl, openMigratedDatabase, resolveDatabaseUrl } from "../../../edge/node/open-database.js";
import { parseConfig } from "../../../shared/config/config.schema.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "open-db-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("openMigratedDatabase", () => {
  it("creates the file's directory, uses WAL and synchronous=NORMAL, and applies the migrations", async () => {
    const path = join(dir, "a", "b", "tasks.db");
    const opened = await openMigratedDatabase(parseConfig({ task_db: { path } }));
    try {
      expect(existsSync(path)).toBe(true);
      expect((await opened.client.execute("PRAGMA journal_mode")).rows[0].journal_mode).toBe("wal");
      expect((await opened.client.execute("PRAGMA synchronous")).rows[0].synchronous).toBe(1);
      expect((await opened.client.execute("PRAGMA foreign_keys")).rows[0].foreign_keys).toBe(1);
      expect(opened.applied.length).toBeGreaterThan(0);
    } finally {
      opened.client.close();
    }
    const again = await openMigratedDatabase(parseConfig({ task_db: { path } }));
    again.client.close();
    expect(again.applied).toEqual([]);
  });
});

describe("database URLs", () => {
  it("prefers database.url (DATABASE_URL) over task_db.path", () => {
    expect(resolveDatabaseUrl(parseConfig({}))).toBe("file:data/tasks.db");
    expect(resolveDatabaseUrl(parseConfig({}, { DATABASE_URL: "http://127.0.0.1:8080" }))).toBe("http://127.0.0.1:8080");
  });
  it.each([
    ["file:data/tasks.db", "data/tasks.db"],
    ["file:/abs/tasks.db", "/abs/tasks.db"],
    ["file:///abs/tasks.db", "/abs/tasks.db"],
    ["file://localhost/abs/tasks.db", "/abs/tasks.db"],
    ["file:my%20dir/t.db?mode=rwc", "my dir/t.db"],
    ["file::memory:", null],
  ])("reads the path of %s", (url, path) => {
    expect(filePathOfUrl(url)).toBe(path);
  });
});
