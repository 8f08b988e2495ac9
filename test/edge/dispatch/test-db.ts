// A migrated libSQL file in a temp directory and a helper to insert tasks, for the dispatch and webhook suites.
// Not a test file itself.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openMigratedDatabase, type OpenDatabase } from "../../../edge/node/open-database.js";
import { tasks, type NewTaskRow } from "../../../edge/db/schema.js";
import { parseConfig } from "../../../shared/config/config.schema.js";

export interface TestDb extends OpenDatabase {
  dir: string;
  /** Inserts a pending task (fields overridable); returns its id. */
  insertTask(fields?: Partial<NewTaskRow>): Promise<string>;
  close(): void;
}

let counter = 0;

export async function openTestDb(): Promise<TestDb> {
  const dir = mkdtempSync(join(tmpdir(), "dispatch-test-"));
  const database = await openMigratedDatabase(parseConfig({ task_db: { path: join(dir, "tasks.db") } }));
  return {
    ...database,
    dir,
    async insertTask(fields = {}) {
      const id = fields.id ?? crypto.randomUUID();
      const createdAt = fields.createdAt ?? new Date(Date.UTC(2024, 0, 1, 12, 0, 0) + counter++);
      await database.db.insert(tasks).values({
        ownerKeyHash: "owner",
        prompt: "a lighthouse",
        seed: 42,
        numImages: 1,
        updatedAt: createdAt,
        ...fields,
        id,
        createdAt,
      });
      return id;
    },
    close() {
      database.client.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
