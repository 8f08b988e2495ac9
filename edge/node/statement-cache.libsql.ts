import Libsql from "libsql";
import type { StatementCache } from "../ports/statement-cache.port.js";

// A second connection to the local database file (the driver @libsql/client itself uses), for reads only: in WAL
// mode it sees every transaction committed before each of its statements starts, so a task created by a POST is
// there for the GET that follows it. Statements are prepared on first use and kept for the connection's life
// (SQLite re-prepares one by itself if a migration changes the schema).

export interface LibsqlStatementCache extends StatementCache {
  close(): void;
}

export function openLibsqlStatementCache(path: string): LibsqlStatementCache {
  const db = new Libsql(path, { timeout: 5000 });
  const statements = new Map<string, Libsql.Statement<unknown[]>>();
  return {
    get(sql, params) {
      let statement = statements.get(sql);
      if (!statement) {
        statement = db.prepare<unknown[]>(sql).raw(true);
        statements.set(sql, statement);
      }
      return statement.get(...params) as unknown[] | undefined;
    },
    close() {
      statements.clear();
      db.close();
    },
  };
}
