import Libsql from "libsql";
import type { StatementCache } from "../ports/statement-cache.port.js";

// A second connection to the local database file (the driver @libsql/client itself uses). In WAL mode it sees
// every transaction committed before each of its statements starts, so a task created by a POST is there for the
// GET that follows it. It also writes the coalesced task inserts: each is one synchronous autocommit statement,
// so neither connection ever holds the write lock across an await and the two never wait for each other.
// Statements are prepared on first use and kept for the connection's life (SQLite re-prepares one by itself if
// a migration changes the schema).

export interface LibsqlStatementCache extends StatementCache {
  close(): void;
}

/** `pragmas`: the same per-connection settings as the driver's connection (synchronous, checkpoint thresholds). */
export function openLibsqlStatementCache(path: string, pragmas: readonly string[] = []): LibsqlStatementCache {
  const db = new Libsql(path, { timeout: 5000 });
  for (const pragma of pragmas) db.exec(pragma);
  const statements = new Map<string, Libsql.Statement<unknown[]>>();
  // Reads answer rows as arrays (raw mode); a statement that returns no rows cannot be put in raw mode.
  const statement = (sql: string, reads: boolean): Libsql.Statement<unknown[]> => {
    let kept = statements.get(sql);
    if (!kept) {
      kept = db.prepare<unknown[]>(sql);
      if (reads) kept.raw(true);
      statements.set(sql, kept);
    }
    return kept;
  };
  return {
    get(sql, params) {
      return statement(sql, true).get(...params) as unknown[] | undefined;
    },
    run(sql, params) {
      statement(sql, false).run(...params);
    },
    close() {
      statements.clear();
      db.close();
    },
  };
}
