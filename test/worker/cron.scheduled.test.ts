// The cron handler in workerd against a real sqld, with no GPU node reachable: tasks whose lease expired with no
// attempt left fail naming the attempts, and pending tasks fail once no node was healthy for
// dispatch.pending_timeout_seconds. Nothing stays pending or processing forever on Workers either.
import { createHash } from "node:crypto";
import { createClient, type Client } from "@libsql/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestWorker, startWorkerTestBed, type TestWorker, type WorkerTestBed } from "./worker-harness.js";

const KEY = "cron-key";
let bed: WorkerTestBed;
let worker: TestWorker;
let db: Client;

beforeAll(async () => {
  bed = await startWorkerTestBed("worker-cron-");
  worker = await startTestWorker({
    config: {
      api: { keys: [KEY] },
      gpu_nodes: [{ grpc: "127.0.0.1:1", web: "http://127.0.0.1:1" }],
      dispatch: { max_attempts: 2, pending_timeout_seconds: 1 },
    },
    databaseUrl: bed.sqld.url,
    persistTo: `${bed.dir}/wrangler`,
  });
  db = createClient({ url: bed.sqld.url });
  // The worker applies the migrations at its first event; the test writes rows itself afterwards.
  expect((await fetch(`${worker.baseUrl}/health`)).status).toBe(200);
  expect((await db.execute("SELECT count(*) AS n FROM __sd_migrations")).rows[0].n).toBeGreaterThan(0);
});
afterAll(async () => {
  db?.close();
  await worker?.stop();
  await bed?.close();
});

async function get(id: string): Promise<{ status: string; error_message: string | null }> {
  const res = await fetch(`${worker.baseUrl}/api/v1/tasks/${id}`, { headers: { "x-api-key": KEY } });
  expect(res.status).toBe(200);
  return (await res.json()) as { status: string; error_message: string | null };
}

describe("the cron pass (scheduled handler)", () => {
  it("fails a task whose lease expired with no attempt left, naming the attempts", async () => {
    const id = crypto.randomUUID();
    const now = Date.now();
    await db.execute({
      sql: `INSERT INTO tasks (id, owner_key_hash, status, prompt, num_images, output_format, attempts, lease_owner, lease_until, last_error, created_at, updated_at)
            VALUES (?, ?, 'processing', 'p', 1, 'png', 2, 'worker:gone', ?, 'gpu node x: unavailable', ?, ?)`,
      args: [id, createHash("sha256").update(KEY).digest("hex"), now - 1000, now - 60_000, now - 30_000],
    });
    await worker.triggerCron();
    const task = await get(id);
    expect(task.status).toBe("failed");
    expect(task.error_message).toBe("generation gave up after 2 attempts: gpu node x: unavailable");
  });

  it("leaves new tasks pending while no node is healthy, then fails them after the pending timeout", async () => {
    const res = await fetch(`${worker.baseUrl}/api/v1/generate`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": KEY },
      body: JSON.stringify({ prompt: "nobody home" }),
    });
    const { task_id: id } = (await res.json()) as { task_id: string };
    // The first pass sees no healthy node and starts counting; the task waits.
    await worker.triggerCron();
    expect((await get(id)).status).toBe("pending");
    await new Promise((r) => setTimeout(r, 1500));
    await worker.triggerCron();
    const task = await get(id);
    expect(task.status).toBe("failed");
    expect(task.error_message).toMatch(/^no GPU node was available for 1 s; the task was not started/);
  });
});
