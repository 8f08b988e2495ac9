// The edge as a PROCESS, killed (SIGKILL) mid-generation and mid-callback and started again on the same
// database: the task completes (the new edge re-attaches to the generation on the same node, which runs it
// once), the callback arrives with the same webhook-id however often it is retried, and nothing is lost.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startS3rver, type RunningS3rver } from "../../gpu-node/dev/s3rver.server.js";
import { startWebhookReceiver, type WebhookReceiver } from "../edge/webhooks/webhook-receiver.js";
import { verifyStandardWebhook } from "../helpers/standard-webhooks.verify.js";
import { ApiClient, type TaskJson } from "./support/api.client.js";
import { startEdgeProcess, startGpuNodeProcess, waitFor, writeConfig, type EdgeProcess, type GpuNodeProcess } from "./support/processes.js";

const KEY = "e2e-key";
const SECRET = "whsec_cmVzdGFydC10ZXN0LXNlY3JldC1mb3ItZTJlLXdlYmhvb2tz";
let dir: string;
let s3: RunningS3rver;
let node: GpuNodeProcess;
let receiver: WebhookReceiver;
let configPath: string;
let dbPath: string;
const edges: EdgeProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "e2e-restart-"));
  s3 = await startS3rver({ directory: join(dir, "s3") });
  [node, receiver] = await Promise.all([startGpuNodeProcess(dir, "node-a", s3.endpoint, "e2e-restart"), startWebhookReceiver()]);
  dbPath = join(dir, "tasks.db");
  configPath = writeConfig(dir, "edge.yaml", {
    api: { keys: [KEY] },
    server: { host: "127.0.0.1", port: 0 },
    task_db: { path: dbPath },
    gpu_nodes: [{ name: "node-a", grpc: node.address }],
    callback: { secret: SECRET, retry_interval: 0.3, timeout_seconds: 5, allow_private_targets: true },
    dispatch: { lease_seconds: 2, reconcile_interval_seconds: 0.5 },
    log_level: "info",
  });
});

afterAll(async () => {
  for (const edge of edges) await edge.kill();
  await node?.kill();
  await receiver?.close();
  await s3?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function startEdge(): Promise<EdgeProcess> {
  const edge = await startEdgeProcess(configPath);
  edges.push(edge);
  return edge;
}

const created: string[] = [];
let longTask = "";

describe("edge restarts", () => {
  it("SIGKILL mid-generation and mid-callback: the task completes once, its callback arrives with one webhook-id", async () => {
    let edge = await startEdge();
    const api = new ApiClient(edge.url, KEY);
    // Done before the crash: its result must survive it.
    const early = await api.generate({ prompt: "before the crash", width: 64, height: 64, num_inference_steps: 4 });
    expect((await api.waitTask(early)).status).toBe("completed");
    created.push(early);

    receiver.script([500, 500, 200]);
    longTask = await api.generate({ prompt: "survives restarts", width: 256, height: 256, num_inference_steps: 60, scheduler: "Euler", callback_url: `${receiver.url}/hook` });
    created.push(longTask);
    // Behind it: one prefetched onto the node, one still in the database.
    for (let i = 0; i < 2; i++) created.push(await api.generate({ prompt: `queued ${i}`, width: 64, height: 64, num_inference_steps: 4 }));
    await api.waitTask(longTask, (t) => t.status === "processing" && (t.progress?.step ?? 0) > 0);
    await edge.kill("SIGKILL");

    // A new edge process (a new lease owner) on the same database: it reclaims the task once the dead edge's
    // lease expires and re-attaches to the generation still running on the node.
    edge = await startEdge();
    api.baseUrl = edge.url;
    const done = await api.waitTask(longTask);
    expect(done).toMatchObject({ status: "completed", progress: { step: 60, total: 60 } });
    expect(node.linesWith("task started", longTask)).toHaveLength(1);
    expect(node.linesWith("task accepted", longTask)).toHaveLength(1);

    // The first callback attempt fails (500); kill this edge too once it has recorded it.
    await waitFor("the first callback attempt on record", async () => {
      const client = createClient({ url: `file:${dbPath}` });
      try {
        const rs = await client.execute("SELECT count(*) AS n FROM webhook_attempts");
        return Number(rs.rows[0].n) >= 1;
      } finally {
        client.close();
      }
    });
    await edge.kill("SIGKILL");
    edge = await startEdge();
    api.baseUrl = edge.url;
    await waitFor("the delivered callback", () => receiver.received.length >= 3, 120_000);

    const ids = new Set(receiver.received.map((r) => r.headers["webhook-id"]));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^msg_[0-9a-f]{32}$/);
    for (const request of receiver.received) {
      expect(JSON.parse(request.body)).toEqual({ task_id: longTask, status: "completed", image_url: done.result_url });
      expect(verifyStandardWebhook(SECRET, request.headers, request.body)).toBe(true);
    }
    // The queued tasks were not lost either.
    for (const id of created) expect((await api.waitTask(id)).status).toBe("completed");
    // The receiver answers before the edge records the answer, and the edge that sent the answered attempt may be
    // the one killed above (then the next one sends it again once the lease lapses): the SIGTERM below must not
    // cut that short, or the reopened database would still say pending. Wait for the row to say delivered.
    await waitFor("the callback recorded as delivered", async () => {
      const client = createClient({ url: `file:${dbPath}` });
      try {
        const rs = await client.execute({ sql: "SELECT state FROM webhook_outbox WHERE task_id = ?", args: [longTask] });
        return rs.rows[0]?.state === "delivered";
      } finally {
        client.close();
      }
    });
    await edge.kill("SIGTERM");
  });

  it("the database reopened after the restarts has every task, result and callback attempt", async () => {
    const edge = await startEdge();
    const api = new ApiClient(edge.url, KEY);
    const tasks: TaskJson[] = await Promise.all(created.map((id) => api.task(id)));
    for (const task of tasks) {
      expect(task.status).toBe("completed");
      expect(task.result_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/e2e-restart\//);
      expect((await fetch(task.result_url!)).status).toBe(200);
    }
    // Every attempt of the callback is on record, across the edges that made them.
    const client = createClient({ url: `file:${dbPath}` });
    try {
      const outbox = await client.execute({ sql: "SELECT id, state, attempts FROM webhook_outbox WHERE task_id = ?", args: [longTask] });
      expect(outbox.rows).toHaveLength(1);
      expect(outbox.rows[0]).toMatchObject({ state: "delivered" });
      const attempts = await client.execute({ sql: "SELECT attempt, status_code, outcome FROM webhook_attempts WHERE outbox_id = ? ORDER BY attempt", args: [outbox.rows[0].id] });
      expect(attempts.rows.map((r) => [r.status_code, r.outcome]).at(-1)).toEqual([200, "delivered"]);
      expect(attempts.rows[0]).toMatchObject({ attempt: 1, status_code: 500, outcome: "retry" });
      // An edge killed between sending an attempt and recording it cannot record it; otherwise all are here.
      expect(attempts.rows.length).toBeGreaterThanOrEqual(2);
      expect(attempts.rows.length).toBeLessThanOrEqual(receiver.received.length);
    } finally {
      client.close();
    }
    await edge.kill("SIGTERM");
    expect(await edge.exited).toBe(0);
  });
});
