import { and, eq, Param, Placeholder, sql, type SQL } from "drizzle-orm";
import type { InitImage } from "../../shared/api/init-image.js";
import type { StatementCache } from "../ports/statement-cache.port.js";
import type { Database } from "./database.js";
import { InsertCoalescer } from "./insert-coalescer.js";
import { packColumns, type UnpackedRow } from "./packed-select.js";
import { taskInitImages, tasks, type NewTaskRow, type TaskInitImageRow, type TaskRow } from "./schema.js";

// Task records. Queries on the request path are prepared once (drizzle builds their SQL a single time).

/** The columns GET /api/v1/tasks/{id} shows. */
const TASK_VIEW_COLUMNS = {
  id: tasks.id,
  status: tasks.status,
  resultUrls: tasks.resultUrls,
  errorMessage: tasks.errorMessage,
  createdAt: tasks.createdAt,
  updatedAt: tasks.updatedAt,
  seed: tasks.seed,
  width: tasks.width,
  height: tasks.height,
  scheduler: tasks.scheduler,
  numImages: tasks.numImages,
  progressStep: tasks.progressStep,
  progressTotal: tasks.progressTotal,
  queuePosition: tasks.queuePosition,
  prompt: tasks.prompt,
  negativePrompt: tasks.negativePrompt,
  loras: tasks.loras,
};

export type TaskView = UnpackedRow<typeof TASK_VIEW_COLUMNS>;

/** The task was created with this key: a guard for TaskOutcomes.finish (other keys' tasks do not exist for you). */
export function ownedBy(ownerKeyHash: string): SQL {
  return eq(tasks.ownerKeyHash, ownerKeyHash);
}

// Read as one packed value: the hottest query of the API (see packed-select.ts).
const TASK_VIEW = packColumns(TASK_VIEW_COLUMNS);

// A task still in the database queue (no node has reported a place for it) is behind the pending tasks created
// before it. Counted in the same statement as the view: a poll is one query, not two.
// Plain SQL text: drizzle would name the outer columns without their table inside a select field.
const PENDING_AHEAD = sql<number | null>`${sql.raw(`CASE WHEN "tasks"."status" = 'pending' AND "tasks"."queue_position" IS NULL THEN (
  SELECT count(*) FROM "tasks" AS "ahead" WHERE "ahead"."status" = 'pending' AND "ahead"."created_at" < "tasks"."created_at"
) END`)}`;

export class TasksRepo {
  readonly #db: Database;
  readonly #insertTask;
  readonly #inserts: InsertCoalescer<NewTask> | null;
  /** Multi-row inserts by row count, prepared on first use: drizzle builds a statement's SQL per row and column. */
  readonly #insertRowsBySize = new Map<number, { run(params: Record<string, unknown>): Promise<unknown> }>();
  /** The same inserts as SQL text and positional parameters, for kept native statements. */
  readonly #keptInsertsBySize = new Map<number, RowsInsert>();
  readonly #statements: StatementCache | null;
  readonly #selectViewForOwner;
  readonly #viewStatement: ({ cache: StatementCache } & PositionalQuery) | null;
  readonly #selectById;
  readonly #selectInitImage;

  /**
   * coalesceInserts: concurrent creates share commits (insert-coalescer.ts). For a process that owns its
   * database (the Node edge); off by default because on Workers one request must not do I/O for another.
   * statements: where the database has them, the task view is read through a kept native statement.
   */
  constructor(db: Database, options: { coalesceInserts?: boolean; statements?: StatementCache } = {}) {
    this.#db = db;
    this.#statements = options.statements ?? null;
    this.#insertTask = db.insert(tasks).values(newTaskPlaceholders("")).prepare();
    this.#inserts = options.coalesceInserts
      ? new InsertCoalescer<NewTask>({
          insertOne: (row) => (this.#statements ? this.#insertKept([row]) : this.#insertTask.run(row)),
          insertMany: (rows) => (this.#statements ? this.#insertKept(rows) : this.#insertRows(rows)),
        })
      : null;
    const selectView = db
      .select({ packed: TASK_VIEW.expression, pendingAhead: PENDING_AHEAD })
      .from(tasks)
      .where(and(eq(tasks.id, sql.placeholder("id")), eq(tasks.ownerKeyHash, sql.placeholder("owner"))));
    this.#selectViewForOwner = selectView.prepare();
    this.#viewStatement = options.statements ? { cache: options.statements, ...namedParams(positional(selectView.toSQL())) } : null;
    this.#selectById = db.select().from(tasks).where(eq(tasks.id, sql.placeholder("id"))).prepare();
    this.#selectInitImage = db.select().from(taskInitImages).where(eq(taskInitImages.taskId, sql.placeholder("id"))).prepare();
  }

  /**
   * Inserts a new (pending) task, and its img2img input in the same transaction; resolves once committed.
   * With coalesceInserts, concurrent text-to-image inserts share commits.
   */
  async create(row: NewTask, initImage: InitImage | null = null): Promise<void> {
    if (initImage === null) {
      if (this.#inserts) return this.#inserts.insert(row);
      await this.#insertTask.run(row);
      return;
    }
    await this.#db.batch([
      this.#db.insert(tasks).values({ ...row, hasInitImage: true }),
      this.#db.insert(taskInitImages).values({ taskId: row.id, type: initImage.type, bytes: initImage.bytes }),
    ]);
  }

  #insertRows(rows: NewTask[]): Promise<unknown> {
    let insert = this.#insertRowsBySize.get(rows.length);
    if (!insert) {
      insert = this.#db
        .insert(tasks)
        .values(rows.map((_, i) => newTaskPlaceholders(`${i}.`)))
        .prepare();
      this.#insertRowsBySize.set(rows.length, insert);
    }
    const params: Record<string, unknown> = {};
    rows.forEach((row, i) => {
      for (const [field, value] of Object.entries(row)) params[`${i}.${field}`] = value;
    });
    return insert.run(params);
  }

  /**
   * Through a kept statement: no statement to build, prepare and finalize per commit, and no parameter object with
   * a key per row and column (17 per task; drizzle looks each one up by name).
   */
  async #insertKept(rows: NewTask[]): Promise<void> {
    let insert = this.#keptInsertsBySize.get(rows.length);
    if (!insert) {
      insert = rowsInsert(this.#db.insert(tasks).values(rows.map((_, i) => newTaskPlaceholders(`${i}.`))).toSQL());
      this.#keptInsertsBySize.set(rows.length, insert);
    }
    this.#statements!.run(insert.sql, insert.params(rows));
  }

  /** What GET shows of a task, if it exists and was created with this key (other keys' tasks do not exist for you). */
  async getViewForOwner(id: string, ownerKeyHash: string): Promise<TaskView | undefined> {
    const found = this.#viewStatement ? this.#viewFromCache(id, ownerKeyHash) : await this.#selectViewForOwner.get({ id, owner: ownerKeyHash });
    if (!found) return undefined;
    const view = TASK_VIEW.unpack(found.packed);
    if (found.pendingAhead !== null) view.queuePosition = Number(found.pendingAhead);
    return view;
  }

  #viewFromCache(id: string, owner: string): { packed: string; pendingAhead: number | null } | undefined {
    const { cache, sql: text, params } = this.#viewStatement!;
    const row = cache.get(text, params({ id, owner }));
    return row && { packed: row[0] as string, pendingAhead: row[1] as number | null };
  }

  async getById(id: string): Promise<TaskRow | undefined> {
    return this.#selectById.get({ id });
  }

  async getInitImage(taskId: string): Promise<TaskInitImageRow | undefined> {
    return this.#selectInitImage.get({ id: taskId });
  }
}

/** A parameter of a built statement: a placeholder's name and how drizzle encodes its value, or a fixed value. */
type Slot = { name: string; encode: (value: unknown) => unknown } | { value: unknown };

/** A drizzle query's SQL text and its parameters in SQL order, encoded as drizzle's own execution would. */
function positional(query: { sql: string; params: unknown[] }): { sql: string; slots: Slot[] } {
  const slots = query.params.map((p): Slot => {
    if (p instanceof Placeholder) return { name: p.name as string, encode: (value) => value };
    // An insert's value binds its placeholder to the column, whose encoder maps it (JSON text, epoch ms).
    if (p instanceof Param && p.value instanceof Placeholder) {
      const { encoder } = p;
      return { name: p.value.name as string, encode: (value) => encoder.mapToDriverValue(value) };
    }
    return { value: p };
  });
  return { sql: query.sql, slots };
}

interface PositionalQuery {
  sql: string;
  /** The statement's positional parameters from named values (drizzle's placeholders, in SQL order). */
  params: (values: Record<string, unknown>) => unknown[];
}

function namedParams({ sql, slots }: { sql: string; slots: Slot[] }): PositionalQuery {
  return { sql, params: (values) => slots.map((slot) => ("name" in slot ? slot.encode(values[slot.name]) : slot.value)) };
}

interface RowsInsert {
  sql: string;
  params: (rows: NewTask[]) => unknown[];
}

/** A many-row insert whose placeholders are named `<row>.<field>` (newTaskPlaceholders), bound from the rows. */
function rowsInsert(query: { sql: string; params: unknown[] }): RowsInsert {
  const { sql, slots } = positional(query);
  const bind = slots.map((slot): ((rows: NewTask[]) => unknown) => {
    if (!("name" in slot)) return () => slot.value;
    const dot = slot.name.indexOf(".");
    const row = Number(slot.name.slice(0, dot));
    const field = slot.name.slice(dot + 1) as keyof NewTask;
    return (rows) => slot.encode(rows[row][field]);
  });
  return { sql, params: (rows) => bind.map((value) => value(rows)) };
}

// Every field of NewTask, checked by the compiler both ways (none missing, none extra).
const NEW_TASK_FIELDS = Object.keys({
  id: 1, ownerKeyHash: 1, prompt: 1, negativePrompt: 1, width: 1, height: 1, numImages: 1, numInferenceSteps: 1,
  guidanceScale: 1, strength: 1, scheduler: 1, seed: 1, outputFormat: 1, callbackUrl: 1, loras: 1, createdAt: 1,
  updatedAt: 1,
} satisfies Record<keyof NewTask, 1>) as (keyof NewTask)[];

/** A row of placeholders named `<prefix><field>` for every field of NewTask. */
function newTaskPlaceholders(prefix: string): Record<keyof NewTask, ReturnType<typeof sql.placeholder>> {
  return Object.fromEntries(NEW_TASK_FIELDS.map((field) => [field, sql.placeholder(`${prefix}${field}`)])) as Record<
    keyof NewTask,
    ReturnType<typeof sql.placeholder>
  >;
}

/** The request's part of a task row; status, progress and dispatch columns start at their defaults. */
export type NewTask = Required<
  Pick<
    NewTaskRow,
    | "id"
    | "ownerKeyHash"
    | "prompt"
    | "negativePrompt"
    | "width"
    | "height"
    | "numImages"
    | "numInferenceSteps"
    | "guidanceScale"
    | "strength"
    | "scheduler"
    | "seed"
    | "outputFormat"
    | "callbackUrl"
    | "loras"
    | "createdAt"
    | "updatedAt"
  >
>;
