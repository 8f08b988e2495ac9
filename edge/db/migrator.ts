import type { Client } from "@libsql/client";
import { sha256Hex } from "../lib/hex.codec.js";

// Applies drizzle-kit's SQL migrations given as strings, so it runs where files cannot be read (Workers, with
// migrations/index.ts) exactly as on Node (which reads the folder). Applied migrations are recorded by tag in
// their own table; each migration and its record commit together in one batch (a transaction).

export interface Migration {
  /** drizzle-kit's journal tag, e.g. "0000_tasks"; migrations apply in the order given. */
  tag: string;
  sql: string;
}

export const MIGRATIONS_TABLE = "__sd_migrations";

// drizzle-kit separates statements with this marker (libSQL's batch runs one statement per entry).
const BREAKPOINT = "--> statement-breakpoint";

export function splitStatements(sql: string): string[] {
  return sql
    .split(BREAKPOINT)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

async function appliedTags(client: Client): Promise<Set<string>> {
  const result = await client.execute(`SELECT tag FROM ${MIGRATIONS_TABLE}`);
  return new Set(result.rows.map((row) => String(row.tag)));
}

/** Applies the migrations not yet recorded; returns the tags it applied (empty when up to date). */
export async function applyMigrations(client: Client, migrations: readonly Migration[], now: () => Date = () => new Date()): Promise<string[]> {
  await client.execute(
    `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (tag TEXT PRIMARY KEY NOT NULL, hash TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
  );
  let applied = await appliedTags(client);
  const done: string[] = [];
  for (const migration of migrations) {
    if (applied.has(migration.tag)) continue;
    const statements = splitStatements(migration.sql);
    const record = {
      sql: `INSERT INTO ${MIGRATIONS_TABLE} (tag, hash, applied_at) VALUES (?, ?, ?)`,
      args: [migration.tag, await sha256Hex(migration.sql), now().getTime()],
    };
    try {
      await client.batch([...statements, record], "write");
    } catch (err) {
      // Another process (a second edge, `npm run db:migrate`) may have applied it meanwhile.
      applied = await appliedTags(client);
      if (applied.has(migration.tag)) continue;
      throw new Error(`migration ${migration.tag} failed: ${(err as Error).message}`, { cause: err });
    }
    done.push(migration.tag);
  }
  return done;
}
