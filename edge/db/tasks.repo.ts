import { and, eq, sql } from "drizzle-orm";
import type { InitImage } from "../../shared/api/init-image.js";
import type { Database } from "./database.js";
import { taskInitImages, tasks, type NewTaskRow, type TaskInitImageRow, type TaskRow } from "./schema.js";

// Task records. Reads on the request path are prepared once (drizzle builds their SQL a single time).

export class TasksRepo {
  readonly #db: Database;
  readonly #selectForOwner;
  readonly #selectById;
  readonly #selectInitImage;

  constructor(db: Database) {
    this.#db = db;
    this.#selectForOwner = db
      .select()
      .from(tasks)
      .where(and(eq(tasks.id, sql.placeholder("id")), eq(tasks.ownerKeyHash, sql.placeholder("owner"))))
      .prepare();
    this.#selectById = db.select().from(tasks).where(eq(tasks.id, sql.placeholder("id"))).prepare();
    this.#selectInitImage = db.select().from(taskInitImages).where(eq(taskInitImages.taskId, sql.placeholder("id"))).prepare();
  }

  /** Inserts a task (and its img2img input, in the same transaction). */
  async create(row: NewTaskRow, initImage: InitImage | null = null): Promise<void> {
    if (initImage === null) {
      await this.#db.insert(tasks).values(row);
      return;
    }
    await this.#db.batch([
      this.#db.insert(tasks).values({ ...row, hasInitImage: true }),
      this.#db.insert(taskInitImages).values({ taskId: row.id, type: initImage.type, bytes: initImage.bytes }),
    ]);
  }

  /** The task if it exists and was created with this key (else undefined: other keys' tasks do not exist for you). */
  async getForOwner(id: string, ownerKeyHash: string): Promise<TaskRow | undefined> {
    return this.#selectForOwner.get({ id, owner: ownerKeyHash });
  }

  async getById(id: string): Promise<TaskRow | undefined> {
    return this.#selectById.get({ id });
  }

  async getInitImage(taskId: string): Promise<TaskInitImageRow | undefined> {
    return this.#selectInitImage.get({ id: taskId });
  }
}
