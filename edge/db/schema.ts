import { sql } from "drizzle-orm";
import { customType, index, integer, real, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { OUTPUT_FORMATS, type LoraWeight } from "../../shared/api/generate.schema.js";
import type { InitImageType } from "../../shared/api/init-image.js";
import { TASK_STATUSES } from "../../shared/api/task.schema.js";

// The task records. The row is the truth about a task (DESIGN.md): the edge answers GET /api/v1/tasks/{id}
// from it alone, and the dispatcher claims, leases and updates rows. Timestamps are UTC epoch milliseconds.
// After editing, run `npm run db:generate` (drizzle-kit, then migrations/index.ts for the Workers edge).

// drizzle's own blob "buffer" mode needs Node's Buffer; this one runs on Workers too.
const bytes = customType<{ data: Uint8Array; driverData: ArrayBuffer | Uint8Array }>({
  dataType: () => "blob",
  toDriver: (value) => value,
  // Drivers hand back an ArrayBuffer or a Buffer; callers get a plain Uint8Array either way.
  fromDriver: (value) => (value instanceof Uint8Array ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : new Uint8Array(value)),
});

export const tasks = sqliteTable(
  "tasks",
  {
    id: text("id").primaryKey(),
    // SHA-256 (hex) of the API key that created the task; the key itself is never stored.
    ownerKeyHash: text("owner_key_hash").notNull(),
    status: text("status", { enum: TASK_STATUSES }).notNull().default("pending"),

    // The request. Nullable parameters stay null: the GPU tier applies config.generation_defaults.
    prompt: text("prompt").notNull(),
    negativePrompt: text("negative_prompt"),
    width: integer("width"),
    height: integer("height"),
    numImages: integer("num_images").notNull().default(1),
    numInferenceSteps: integer("num_inference_steps"),
    guidanceScale: real("guidance_scale"),
    strength: real("strength"),
    // Canonical spelling from shared/schedulers/scheduler-names.ts.
    scheduler: text("scheduler"),
    seed: integer("seed"),
    outputFormat: text("output_format", { enum: OUTPUT_FORMATS }).notNull().default("png"),
    callbackUrl: text("callback_url"),
    // The request's adapters as [{name, weight}]; null when it named none.
    loras: text("loras", { mode: "json" }).$type<LoraWeight[]>(),
    // Whether the request had an input image (img2img); task_init_images holds it until the task finishes.
    hasInitImage: integer("has_init_image", { mode: "boolean" }).notNull().default(false),

    // Progress and outcome, written by the dispatcher.
    progressStep: integer("progress_step"),
    progressTotal: integer("progress_total"),
    queuePosition: integer("queue_position"),
    resultUrls: text("result_urls", { mode: "json" }).$type<string[]>(),
    errorMessage: text("error_message"),
    // Why the last attempt did not finish (a stream cut, a retryable node failure); the final error_message quotes it.
    lastError: text("last_error"),

    // Dispatch bookkeeping: a claim holds a lease; an expired lease makes the task claimable again.
    attempts: integer("attempts").notNull().default(0),
    leaseOwner: text("lease_owner"),
    leaseUntil: integer("lease_until", { mode: "timestamp_ms" }),
    node: text("node"),

    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
    startedAt: integer("started_at", { mode: "timestamp_ms" }),
    finishedAt: integer("finished_at", { mode: "timestamp_ms" }),
  },
  (t) => [
    // The dispatcher's "oldest pending first" scan and the queue-position count.
    index("tasks_status_created_at_idx").on(t.status, t.createdAt),
    // Finding expired leases. Partial: only leased tasks are in it, so creating a task does not write to it.
    index("tasks_lease_until_idx")
      .on(t.leaseUntil)
      .where(sql`${t.leaseUntil} IS NOT NULL`),
    // No index on the owner: every lookup is by id (the owner is a guard on that row), and each index is one more
    // B-tree every POST writes (migration 0003 dropped the one a task listing would have used).
  ],
);

// img2img inputs live apart from the task rows: up to 10 MB each, and SQLite would otherwise walk their
// overflow pages to reach any column added to `tasks` later.
export const taskInitImages = sqliteTable("task_init_images", {
  taskId: text("task_id")
    .primaryKey()
    .references(() => tasks.id, { onDelete: "cascade" }),
  type: text("type").$type<InitImageType>().notNull(),
  bytes: bytes("bytes").notNull(),
});

export type TaskRow = typeof tasks.$inferSelect;
export type NewTaskRow = typeof tasks.$inferInsert;
export type TaskInitImageRow = typeof taskInitImages.$inferSelect;
