import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { createClient, type Client } from "@libsql/client";
import { drizzle } from "drizzle-orm/libsql";
import type { Config } from "../../shared/config/config.schema.js";
import type { Database } from "../db/database.js";
import { applyMigrations, type Migration } from "../db/migrator.js";
import * as schema from "../db/schema.js";
import { readMigrationsFolder } from "./migrations.fs.js";

export interface OpenDatabase {
  url: string;
  client: Client;
  db: Database;
}

/** database.url (DATABASE_URL) when set, else a local file at task_db.path (relative to the working directory). */
export function resolveDatabaseUrl(config: Config): string {
  return config.database.url ?? `file:${config.task_db.path}`;
}

/** The filesystem path of a file: URL ("file:data/x.db", "file:/abs/x.db", "file:///abs/x.db"); null for :memory:. */
export function filePathOfUrl(url: string): string | null {
  let rest = url.slice("file:".length).split("?", 1)[0];
  if (rest.startsWith("//")) rest = rest.slice(rest.indexOf("/", 2));
  rest = decodeURIComponent(rest);
  return rest === ":memory:" || rest === "" ? null : rest;
}

/** Per-connection settings of every connection the edge opens to a local database file (see below). */
export const FILE_CONNECTION_PRAGMAS = ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"] as const;

/**
 * Opens the task database. For a local file: creates its directory, WAL mode (readers never wait for the
 * writer), synchronous=NORMAL (in WAL mode a commit is still atomic and the file never corrupts; only the last
 * commits before a power cut may be lost, and commits get ~10x cheaper), and a busy timeout. These pragmas apply
 * to the client's first connection, which serves every statement; @libsql/client opens another only for an
 * interactive transaction, which then runs with SQLite's defaults (synchronous=FULL: slower, never less safe).
 */
export async function openNodeDatabase(config: Config): Promise<OpenDatabase> {
  const url = resolveDatabaseUrl(config);
  const isFile = url.startsWith("file:");
  if (isFile) {
    const path = filePathOfUrl(url);
    if (path !== null) mkdirSync(dirname(resolve(path)), { recursive: true });
  }
  const client = createClient({
    url,
    authToken: config.database.auth_token ?? undefined,
    ...(isFile ? { timeout: 5000 } : {}),
  });
  if (isFile) for (const pragma of FILE_CONNECTION_PRAGMAS) await client.execute(pragma);
  return { url, client, db: drizzle(client, { schema }) };
}

/** Opens the database and applies the migrations folder; returns the tags applied now. */
export async function openMigratedDatabase(
  config: Config,
  migrations: readonly Migration[] = readMigrationsFolder(),
): Promise<OpenDatabase & { applied: string[] }> {
  const opened = await openNodeDatabase(config);
  try {
    const applied = await applyMigrations(opened.client, migrations);
    return { ...opened, applied };
  } catch (err) {
    opened.client.close();
    throw err;
  }
}
