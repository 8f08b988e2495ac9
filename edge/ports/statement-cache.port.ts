/**
 * Native statements prepared once and kept, for the hottest queries. @libsql/client prepares every statement anew
 * on each call (parse, plan and four native calls around the step, plus a caught exception for each write): a
 * fifth of a task poll's CPU on the Node edge, and more for the many-row inserts of coalesced POSTs. Only a local
 * database file has one (edge/node/statement-cache.libsql.ts); Workers and remote databases use drizzle's path.
 */
export interface StatementCache {
  /** The first row of `sql` with positional `params`, as its column values in order; undefined when none. */
  get(sql: string, params: readonly unknown[]): unknown[] | undefined;
  /** Runs a statement that returns no rows (an autocommit write). */
  run(sql: string, params: readonly unknown[]): void;
}
