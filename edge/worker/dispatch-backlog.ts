import { and, eq, inArray, isNotNull, isNull, lt, lte, or, sql } from "drizzle-orm";
import type { Database } from "../db/database.js";
import { tasks } from "../db/schema.js";

/**
 * How many tasks a consumer could claim now (DispatchRepo.claim's two cases: unleased pending tasks, and live
 * tasks whose lease expired, with attempts left). The cron enqueues that many nudges, up to the nodes' room.
 */
export async function claimableCount(db: Database, now: Date, maxAttempts: number): Promise<number> {
  const [row] = await db
    .select({ n: sql<number>`count(*)` })
    .from(tasks)
    .where(
      and(
        lt(tasks.attempts, maxAttempts),
        or(
          and(eq(tasks.status, "pending"), isNull(tasks.leaseUntil)),
          and(inArray(tasks.status, ["pending", "processing"]), isNotNull(tasks.leaseUntil), lte(tasks.leaseUntil, now)),
        ),
      ),
    );
  return Number(row?.n ?? 0);
}
