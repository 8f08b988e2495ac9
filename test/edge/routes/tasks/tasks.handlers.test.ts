import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { tasks } from "../../../../edge/db/schema.js";
import { TasksRepo } from "../../../../edge/db/tasks.repo.js";
import { createGpuNodesLoraCatalog } from "../../../../edge/gpu/gpu-nodes.lora-catalog.js";
import { KEY_1, KEY_2, ManualClock, createTestEdge, type TestEdge } from "../../edge-test-app.js";
import { LoraNode } from "../../gpu/lora-node.double.js";

// A 1x1 PNG.
const PNG_1PX =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

let edge: TestEdge;
beforeEach(async () => {
  edge = await createTestEdge();
});
afterEach(() => edge.close());

async function createTask(body: unknown = { prompt: "a cat" }, key = KEY_1): Promise<string> {
  const res = await edge.generate(body, { "x-api-key": key });
  expect(res.status).toBe(200);
  return ((await res.json()) as { task_id: string }).task_id;
}

describe("POST /api/v1/generate", () => {
  it("stores every field with the spec's defaults and the canonical scheduler name", async () => {
    const id = await createTask({ prompt: "p" });
    const row = await edge.database.db.select().from(tasks).where(eq(tasks.id, id)).get();
    expect(row).toMatchObject({
      status: "pending",
      prompt: "p",
      negativePrompt: null,
      width: null,
      height: null,
      numImages: 1,
      numInferenceSteps: null,
      guidanceScale: null,
      strength: 0.75,
      scheduler: null,
      outputFormat: "png",
      callbackUrl: null,
      hasInitImage: false,
      attempts: 0,
      resultUrls: null,
      createdAt: new Date(Date.UTC(2024, 0, 1, 12)),
      updatedAt: new Date(Date.UTC(2024, 0, 1, 12)),
    });
    // No seed in the request: one is drawn at the edge (32-bit) and stored.
    expect(Number.isInteger(row!.seed)).toBe(true);
    expect(row!.seed).toBeGreaterThanOrEqual(0);
    expect(row!.seed).toBeLessThan(2 ** 32);

    const id2 = await createTask({
      prompt: "p",
      negative_prompt: "n",
      width: "768",
      height: 512,
      num_images: 3,
      num_inference_steps: 30,
      guidance_scale: 0,
      strength: 0.3,
      scheduler: "dpm++ 2m karras",
      seed: 12345,
      output_format: "JPEG",
      callback_url: "https://example.com/hook",
      unknown_field: "ignored",
    });
    const row2 = await edge.database.db.select().from(tasks).where(eq(tasks.id, id2)).get();
    expect(row2).toMatchObject({
      negativePrompt: "n",
      width: 768,
      height: 512,
      numImages: 3,
      numInferenceSteps: 30,
      // 0 is a real value (the original service dropped it; we keep it).
      guidanceScale: 0,
      strength: 0.3,
      scheduler: "DPM++ 2M Karras",
      seed: 12345,
      outputFormat: "jpeg",
      callbackUrl: "https://example.com/hook",
    });
  });

  it("keeps an explicit null strength null (the GPU tier applies generation_defaults)", async () => {
    const id = await createTask({ prompt: "p", strength: null });
    const row = await edge.database.db.select().from(tasks).where(eq(tasks.id, id)).get();
    expect(row!.strength).toBeNull();
  });

  it("stores an img2img input image apart from the task row", async () => {
    const id = await createTask({ prompt: "p", init_image: `data:image/png;base64,${PNG_1PX}`, strength: 0.7 });
    const repo = new TasksRepo(edge.database.db);
    const task = await repo.getById(id);
    expect(task!.hasInitImage).toBe(true);
    const image = await repo.getInitImage(id);
    expect(image!.type).toBe("png");
    expect(Buffer.from(image!.bytes).equals(Buffer.from(PNG_1PX, "base64"))).toBe(true);
  });

  it("calls the taskEvents port with the new task's id, and survives a failing hook", async () => {
    const seen: string[] = [];
    const local = await createTestEdge({}, { taskEvents: { onTaskCreated: (id) => void seen.push(id) } });
    try {
      const res = await local.generate({ prompt: "p" });
      const { task_id } = (await res.json()) as { task_id: string };
      expect(seen).toEqual([task_id]);
    } finally {
      local.close();
    }
    const failing = await createTestEdge({}, { taskEvents: { onTaskCreated: async () => Promise.reject(new Error("down")) } });
    try {
      expect((await failing.generate({ prompt: "p" })).status).toBe(200);
    } finally {
      failing.close();
    }
  });
});

describe("GET /api/v1/tasks/{task_id}", () => {
  it("answers the spec's fields in the spec's order, then the additive ones", async () => {
    const id = await createTask({ prompt: "a cat", negative_prompt: "blurry", width: 512, height: 640, seed: 7, scheduler: "Euler a" });
    const res = await edge.request(`/api/v1/tasks/${id}`, { headers: { "x-api-key": KEY_1 } });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toBe(
      JSON.stringify({
        task_id: id,
        status: "pending",
        result_url: null,
        result_urls: null,
        error_message: null,
        created_at: "2024-01-01T12:00:00",
        updated_at: "2024-01-01T12:00:00",
        seed: 7,
        width: 512,
        height: 640,
        scheduler: "Euler a",
        num_images: 1,
        progress: null,
        queue_position: 0,
        prompt: "a cat",
        negative_prompt: "blurry",
        loras: [],
      }),
    );
  });

  it("shows result_url for one image, result_urls for several, progress and errors", async () => {
    const one = await createTask();
    const several = await createTask({ prompt: "p", num_images: 2 });
    const failed = await createTask();
    const db = edge.database.db;
    await db.update(tasks).set({ status: "completed", resultUrls: ["http://s3/b/a.png"], updatedAt: new Date(Date.UTC(2024, 0, 1, 12, 0, 30)) }).where(eq(tasks.id, one));
    await db.update(tasks).set({ status: "processing", progressStep: 3, progressTotal: 30, resultUrls: ["http://s3/b/a.png", "http://s3/b/b.png"] }).where(eq(tasks.id, several));
    await db.update(tasks).set({ status: "failed", errorMessage: "生成过程中发生错误" }).where(eq(tasks.id, failed));

    const get = async (id: string) => (await (await edge.request(`/api/v1/tasks/${id}`, { headers: { "x-api-key": KEY_1 } })).json()) as Record<string, unknown>;
    expect(await get(one)).toMatchObject({ status: "completed", result_url: "http://s3/b/a.png", result_urls: null, updated_at: "2024-01-01T12:00:30" });
    expect(await get(several)).toMatchObject({
      status: "processing",
      result_url: null,
      result_urls: ["http://s3/b/a.png", "http://s3/b/b.png"],
      progress: { step: 3, total: 30 },
    });
    expect(await get(failed)).toMatchObject({ status: "failed", result_url: null, result_urls: null, error_message: "生成过程中发生错误" });
  });

  it("never stores the key itself", async () => {
    const id = await createTask();
    const row = await edge.database.client.execute({ sql: "SELECT * FROM tasks WHERE id = ?", args: [id] });
    const text = JSON.stringify(row.rows[0]);
    expect(text).not.toContain(KEY_1);
    expect(row.rows[0].owner_key_hash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("POST /api/v1/generate with loras", () => {
  let node: LoraNode;
  async function loraEdge(...nodes: LoraNode[]) {
    edge.close();
    edge = await createTestEdge({}, { loraCatalog: createGpuNodesLoraCatalog(nodes, new ManualClock()) });
  }
  beforeEach(async () => {
    node = new LoraNode([{ name: "ink" }, { name: "style" }, { name: "broken", error: "broken.safetensors: header runs past the end of the file" }]);
    await loraEdge(node);
  });

  const nameError = (i: number, input: string, msg: string) => ({ type: "value_error", loc: ["body", "loras", i, "name"], msg: `Value error, ${msg}`, input, ctx: { error: {} } });

  it("stores the adapters the nodes offer, with weight 1 where none was given, and echoes them on the task", async () => {
    const id = await createTask({ prompt: "p", loras: [{ name: "style", weight: 0.5 }, { name: "ink" }] });
    const row = await edge.database.db.select().from(tasks).where(eq(tasks.id, id)).get();
    expect(row?.loras).toEqual([
      { name: "style", weight: 0.5 },
      { name: "ink", weight: 1 },
    ]);
    const view = (await (await edge.request(`/api/v1/tasks/${id}`, { headers: { "x-api-key": KEY_1 } })).json()) as { loras: unknown };
    expect(view.loras).toEqual([
      { name: "style", weight: 0.5 },
      { name: "ink", weight: 1 },
    ]);
  });

  it("refuses names no node offers with a 422 listing the usable ones, and names that cannot be used with their error", async () => {
    const res = await edge.generate({ prompt: "p", loras: [{ name: "ink" }, { name: "inkk", weight: 2 }, { name: "broken" }] });
    expect(res.status).toBe(422);
    expect(await res.json()).toEqual({
      detail: [
        nameError(1, "inkk", "unknown LoRA 'inkk'; available: ink, style"),
        nameError(2, "broken", "LoRA 'broken' cannot be used: broken.safetensors: header runs past the end of the file"),
      ],
    });
    expect((await edge.database.client.execute("SELECT count(*) AS n FROM tasks")).rows[0].n).toBe(0);
  });

  it("says so when the nodes offer no adapter at all", async () => {
    await loraEdge(new LoraNode([]));
    const res = await edge.generate({ prompt: "p", loras: [{ name: "ink" }] });
    expect(await res.json()).toEqual({ detail: [nameError(0, "ink", "unknown LoRA 'ink': the GPU nodes offer no usable LoRA adapters")] });
  });

  it("checks schema errors first and asks the nodes only for a request that names adapters", async () => {
    const bad = await edge.generate({ prompt: "p", loras: [{ name: "nope", weight: 11 }] });
    expect(((await bad.json()) as { detail: Array<{ type: string }> }).detail.map((d) => d.type)).toEqual(["less_than_equal"]);
    await createTask({ prompt: "p" });
    await createTask({ prompt: "p", loras: [] });
    await createTask({ prompt: "p", loras: null });
    expect(node.calls).toBe(0);
    const row = await edge.database.db.select().from(tasks).get();
    expect(row?.loras).toBeNull();
  });

  it("accepts any name while no node can be asked: the node that runs the task refuses what it lacks", async () => {
    node.down = true;
    await loraEdge(node);
    const id = await createTask({ prompt: "p", loras: [{ name: "whatever", weight: 0.3 }] });
    expect((await edge.database.db.select().from(tasks).where(eq(tasks.id, id)).get())?.loras).toEqual([{ name: "whatever", weight: 0.3 }]);
    await loraEdge();
    await createTask({ prompt: "p", loras: [{ name: "whatever" }] });
    edge.close();
    edge = await createTestEdge({}, { loraCatalog: { snapshot: () => Promise.reject(new Error("catalog down")) } });
    await createTask({ prompt: "p", loras: [{ name: "whatever" }] });
  });
});

describe("GET /api/v1/tasks/{task_id} queue_position", () => {
  it("counts the pending tasks created before a task still waiting in the database", async () => {
    const first = await createTask({ prompt: "1" });
    edge.clock.advance(1000);
    const second = await createTask({ prompt: "2" });
    edge.clock.advance(1000);
    const third = await createTask({ prompt: "3" });
    const position = async (id: string) => ((await (await edge.request(`/api/v1/tasks/${id}`, { headers: { "x-api-key": KEY_1 } })).json()) as { queue_position: number | null }).queue_position;
    expect([await position(first), await position(second), await position(third)]).toEqual([0, 1, 2]);
    // Tasks of other keys count too: they are ahead in the same queue. Finished ones do not.
    await edge.database.client.execute({ sql: "UPDATE tasks SET status = 'completed' WHERE id = ?", args: [first] });
    expect(await position(third)).toBe(1);
    // A node's own report wins while the task waits in its queue; processing tasks have none.
    await edge.database.client.execute({ sql: "UPDATE tasks SET queue_position = 0 WHERE id = ?", args: [third] });
    expect(await position(third)).toBe(0);
    await edge.database.client.execute({ sql: "UPDATE tasks SET status = 'processing' WHERE id = ?", args: [second] });
    expect(await position(second)).toBeNull();
  });
});

describe("POST /api/v1/tasks/{task_id}/cancel", () => {
  async function cancelEdge() {
    const cancelled: Array<[string, string | null]> = [];
    edge.close();
    edge = await createTestEdge({}, { taskEvents: { onTaskCreated: () => {}, onTaskCancelled: (id, node) => void cancelled.push([id, node]) } });
    return cancelled;
  }
  const cancel = (id: string, key = KEY_1) => edge.request(`/api/v1/tasks/${id}/cancel`, { method: "POST", headers: { "x-api-key": key } });

  it("cancels a pending task: the task view with status cancelled, the hook told, the callback queued", async () => {
    const hooks = await cancelEdge();
    const id = await createTask({ prompt: "p", callback_url: "https://hooks.example.com/cb" });
    edge.clock.advance(2000);
    const res = await cancel(id);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ task_id: id, status: "cancelled", error_message: null, updated_at: "2024-01-01T12:00:02", queue_position: null });
    expect(hooks).toEqual([[id, null]]);
    const outbox = await edge.database.client.execute({ sql: "SELECT payload, url FROM webhook_outbox WHERE task_id = ?", args: [id] });
    expect(outbox.rows).toHaveLength(1);
    expect(JSON.parse(String(outbox.rows[0].payload))).toEqual({ task_id: id, status: "cancelled" });
  });

  it("cancels a processing task and names its node to the hook", async () => {
    const hooks = await cancelEdge();
    const id = await createTask();
    await edge.database.client.execute({ sql: "UPDATE tasks SET status = 'processing', node = 'gpu-1', lease_owner = 'edge-x' WHERE id = ?", args: [id] });
    expect((await cancel(id)).status).toBe(200);
    expect(hooks).toEqual([[id, "gpu-1"]]);
    const row = await edge.database.db.select().from(tasks).where(eq(tasks.id, id)).get();
    expect(row).toMatchObject({ status: "cancelled", leaseOwner: null, leaseUntil: null });
    expect(row?.finishedAt).toBeInstanceOf(Date);
  });

  it("answers 409 for a finished task, changing nothing", async () => {
    const hooks = await cancelEdge();
    const id = await createTask();
    await edge.database.client.execute({ sql: "UPDATE tasks SET status = 'completed', result_urls = '[\"u\"]' WHERE id = ?", args: [id] });
    const res = await cancel(id);
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({ detail: "任务已结束，无法取消" });
    expect(await cancel(id)).toHaveProperty("status", 409);
    expect(hooks).toEqual([]);
    // Cancelling twice: the second is a 409 too.
    const other = await createTask();
    expect((await cancel(other)).status).toBe(200);
    expect((await cancel(other)).status).toBe(409);
  });

  it("answers 404 for unknown ids, non-UUIDs and other keys' tasks, and 401 without a key", async () => {
    const id = await createTask({ prompt: "mine" }, KEY_1);
    for (const [taskId, key] of [
      [id, KEY_2],
      ["550e8400-e29b-41d4-a716-446655440000", KEY_1],
      ["not-a-uuid", KEY_1],
    ]) {
      const res = await cancel(taskId, key);
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ detail: "任务不存在" });
    }
    expect((await edge.request(`/api/v1/tasks/${id}/cancel`, { method: "POST" })).status).toBe(401);
    // Still pending: another key's cancel did nothing.
    const row = await edge.database.db.select().from(tasks).where(eq(tasks.id, id)).get();
    expect(row?.status).toBe("pending");
  });
});
