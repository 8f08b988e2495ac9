/**
 * Native statements prepared once and kept, for the hottest reads. @libsql/client prepares every statement anew
 * on each call (parse, plan and four native calls around the step): a fifth of a task poll's CPU on the Node edge.
 * Only a local database file has one (edge/node/statement-cache.libsql.ts); Workers and remote databases use
 * drizzle's path.
 */
export interface StatementCache {
  /** The first row of `sql` with positional `params`, as its column values in order; undefined when none. */
  get(sql: string, params: readonly unknown[]): unknown[] | undefined;
}
