import { createClient, type Client } from "@libsql/client/web";
import { drizzle } from "drizzle-orm/libsql/web";
import { migrations as bundledMigrations } from "../../migrations/index.js";
import type { Config } from "../../shared/config/config.schema.js";
import type { Database } from "../db/database.js";
import { applyMigrations, type Migration } from "../db/migrator.js";
import * as schema from "../db/schema.js";

// libSQL over HTTP (sqld locally, Turso in production) from inside workerd.
//
// One client per isolate is safe because the HTTP client holds no connection: every statement (or batch) is
// one fetch made in the calling request's context. Two details keep it so: the client's default concurrency cap
// (20) would start a queued statement from ANOTHER request's continuation (workerd cancels I/O whose request
// has ended), so it is lifted; and the protocol stays the default v2 (v3 would probe the server once and share
// that promise across requests).

export interface WorkerDatabase {
  client: Client;
  db: Database;
  /** Applies the pending migrations once per isolate; later calls cost nothing. */
  ensureMigrated(): Promise<void>;
}

/** A client over config.database.url with its drizzle database; `fetch` lets an invocation count its subrequests. */
export function connectLibsqlWeb(config: Config, fetch?: typeof globalThis.fetch): { client: Client; db: Database } {
  const client = createClient({
    url: config.database.url!,
    authToken: config.database.auth_token ?? undefined,
    fetch,
    concurrency: Number.POSITIVE_INFINITY,
  });
  return { client, db: drizzle(client, { schema }) };
}

export function openWorkerDatabase(config: Config, migrations: readonly Migration[] = bundledMigrations): WorkerDatabase {
  const { client, db } = connectLibsqlWeb(config);
  let migrated = false;
  return {
    client,
    db,
    async ensureMigrated() {
      if (migrated) return;
      // Not a shared promise: concurrent first events each check (two cheap statements; applyMigrations tolerates
      // a race), so no request ever waits on I/O another request started.
      await applyMigrations(client, migrations);
      migrated = true;
    },
  };
}
