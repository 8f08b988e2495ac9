import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@libsql/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MIGRATIONS_TABLE, applyMigrations, splitStatements } from "../../../edge/db/migrator.js";
import { MIGRATIONS_DIR, readMigrationsFolder, renderMigrationsModule } from "../../../edge/node/migrations.fs.js";
import { migrations as bundled } from "../../../migrations/index.js";

let dir: string;
let client: Client;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "migrator-"));
  client = createClient({ url: `file:${join(dir, "db.sqlite")}` });
});
afterEach(() => {
  client.close();
  rmSync(dir, { recursive: true, force: true });
});

async function tableNames(c: Client): Promise<string[]> {
  const rs = await c.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY name");
  return rs.rows.map((r) => String(r.name));
}

describe("applyMigrations", () => {
  it("builds the schema on a fresh database from the bundled strings (the Workers path)", async () => {
    const applied = await applyMigrations(client, bundled);
    expect(applied).toEqual(bundled.map((m) => m.tag));
    const names = await tableNames(client);
    expect(names).toEqual(expect.arrayContaining([MIGRATIONS_TABLE, "task_init_images", "tasks", "tasks_lease_until_idx", "tasks_status_created_at_idx"]));
    // Created by 0000, dropped by 0003: no query used it, and every POST paid for it.
    expect(names).not.toContain("tasks_owner_created_at_idx");
    const columns = (await client.execute("PRAGMA table_info(tasks)")).rows.map((r) => String(r.name));
    expect(columns).toEqual(
      expect.arrayContaining(["id", "owner_key_hash", "status", "prompt", "seed", "progress_step", "progress_total", "queue_position", "result_urls", "error_message", "callback_url", "attempts", "lease_owner", "lease_until", "node", "created_at", "updated_at"]),
    );
  });

  it("is idempotent: a second run applies nothing and changes nothing", async () => {
    await applyMigrations(client, bundled);
    await client.execute("INSERT INTO tasks (id, owner_key_hash, prompt, created_at, updated_at) VALUES ('t', 'o', 'p', 0, 0)");
    expect(await applyMigrations(client, bundled)).toEqual([]);
    expect((await client.execute("SELECT count(*) AS n FROM tasks")).rows[0].n).toBe(1);
    const recorded = await client.execute(`SELECT tag, hash FROM ${MIGRATIONS_TABLE} ORDER BY tag`);
    expect(recorded.rows.map((r) => r.tag)).toEqual(bundled.map((m) => m.tag));
    expect(String(recorded.rows[0].hash)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("applies only the new migrations, in order", async () => {
    await applyMigrations(client, bundled);
    const later = [
      ...bundled,
      { tag: "9998_test_a", sql: "ALTER TABLE tasks ADD COLUMN extra_a TEXT;" },
      { tag: "9999_test_b", sql: "CREATE INDEX tasks_extra_a_idx ON tasks (extra_a);--> statement-breakpoint\nALTER TABLE tasks ADD COLUMN extra_b INTEGER;" },
    ];
    expect(await applyMigrations(client, later)).toEqual(["9998_test_a", "9999_test_b"]);
    const columns = (await client.execute("PRAGMA table_info(tasks)")).rows.map((r) => String(r.name));
    expect(columns).toEqual(expect.arrayContaining(["extra_a", "extra_b"]));
  });

  it("rolls a failing migration back entirely and does not record it", async () => {
    await applyMigrations(client, bundled);
    const broken = [...bundled, { tag: "9999_broken", sql: "ALTER TABLE tasks ADD COLUMN ok_col TEXT;--> statement-breakpoint\nALTER TABLE nope ADD COLUMN x TEXT;" }];
    await expect(applyMigrations(client, broken)).rejects.toThrow(/9999_broken/);
    const columns = (await client.execute("PRAGMA table_info(tasks)")).rows.map((r) => String(r.name));
    expect(columns).not.toContain("ok_col");
    expect((await client.execute(`SELECT count(*) AS n FROM ${MIGRATIONS_TABLE} WHERE tag = '9999_broken'`)).rows[0].n).toBe(0);
  });

  it("tolerates another process migrating the same file at the same time", async () => {
    const other = createClient({ url: `file:${join(dir, "db.sqlite")}` });
    try {
      const results = await Promise.all([applyMigrations(client, bundled), applyMigrations(other, bundled)]);
      expect(results.flat().sort()).toEqual(bundled.map((m) => m.tag));
    } finally {
      other.close();
    }
  });

  it("splits drizzle-kit's statement breakpoints", () => {
    expect(splitStatements("CREATE TABLE a (x);\n--> statement-breakpoint\nCREATE INDEX i ON a (x);--> statement-breakpoint\n")).toEqual([
      "CREATE TABLE a (x);",
      "CREATE INDEX i ON a (x);",
    ]);
  });
});

describe("migrations/index.ts", () => {
  it("holds exactly the folder's migrations (run `npm run db:generate` after changing the schema)", () => {
    expect(bundled).toEqual(readMigrationsFolder());
    expect(readFileSync(join(MIGRATIONS_DIR, "index.ts"), "utf8")).toBe(renderMigrationsModule(readMigrationsFolder()));
  });
});
