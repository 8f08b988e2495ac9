// End to end through the public API with real parts only: s3rver, a gpu-node PROCESS running the tiny ONNX
// model, the Node edge (startEdgeServer: real HTTP, libSQL file, dispatcher, webhook loop) and a real HTTP
// webhook receiver. Sizes and steps are small; every wait is a condition with a generous deadline.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp, { type Metadata } from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../edge/adapters/silent.logger.js";
import { startEdgeServer, type EdgeServer } from "../../edge/node/edge-server.js";
import { startS3rver, type RunningS3rver } from "../../gpu-node/dev/s3rver.server.js";
import { parseConfig } from "../../shared/config/config.schema.js";
import { startWebhookReceiver, type WebhookReceiver } from "../edge/webhooks/webhook-receiver.js";
import { verifyStandardWebhook } from "../helpers/standard-webhooks.verify.js";
import { ApiClient } from "./support/api.client.js";
import { startGpuNodeProcess, waitFor, type GpuNodeProcess } from "./support/processes.js";

const KEY = "e2e-key";
// Long enough to act on mid-run (~20 s at 256x256 on one core); these tasks are cancelled, never awaited.
const LONG = { width: 256, height: 256, num_inference_steps: 150 };
const SECRET = "whsec_ZTJlLXdlYmhvb2stc2lnbmluZy1zZWNyZXQtMzItYnl0ZXM=";

let dir: string;
let s3: RunningS3rver;
let node: GpuNodeProcess;
let edge: EdgeServer;
let receiver: WebhookReceiver;
let api: ApiClient;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "e2e-generate-"));
  s3 = await startS3rver({ directory: join(dir, "s3") });
  [node, receiver] = await Promise.all([startGpuNodeProcess(dir, "node-a", s3.endpoint, "e2e-generate"), startWebhookReceiver()]);
  const config = parseConfig({
    api: { keys: [KEY] },
    server: { host: "127.0.0.1", port: 0 },
    task_db: { path: join(dir, "tasks.db") },
    gpu_nodes: [{ name: "node-a", grpc: node.address }],
    callback: { secret: SECRET, retry_interval: 0.2, timeout_seconds: 5, allow_private_targets: true },
    dispatch: { lease_seconds: 5, reconcile_interval_seconds: 1 },
  });
  edge = await startEdgeServer(config, { logger: silentLogger });
  api = new ApiClient(edge.url, KEY);
});

afterAll(async () => {
  await edge?.close();
  await node?.kill();
  await receiver?.close();
  await s3?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function fetchImage(url: string): Promise<{ contentType: string | null; meta: Metadata }> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { contentType: res.headers.get("content-type"), meta: await sharp(bytes).metadata() };
}

describe("end to end: edge → gpu-node → s3rver", () => {
  it("reports the node's model on /health", async () => {
    await waitFor("model_loaded", async () => ((await (await fetch(`${edge.url}/health`)).json()) as { model_loaded: boolean }).model_loaded);
  });

  it("text-to-image: POST, poll through processing with progress, fetch a PNG of the requested size", async () => {
    const id = await api.generate({ prompt: "a lighthouse at dusk", width: 64, height: 96, num_inference_steps: 12, seed: 1234, scheduler: "Euler" });
    const done = await api.waitTask(id);
    expect(done).toMatchObject({
      status: "completed",
      result_urls: null,
      error_message: null,
      seed: 1234,
      width: 64,
      height: 96,
      scheduler: "Euler",
      num_images: 1,
      progress: { step: 12, total: 12 },
      queue_position: null,
    });
    expect(done.result_url).toMatch(/\/e2e-generate\/images\/\d{4}\/\d{2}\/\d{2}\/[0-9a-f-]{36}\/0\.png$/);
    const image = await fetchImage(done.result_url!);
    expect(image.contentType).toBe("image/png");
    expect(image.meta).toMatchObject({ format: "png", width: 64, height: 96 });
    // The node ran it once.
    expect(node.linesWith("task started", id)).toHaveLength(1);
  });

  it("image-to-image: the output takes the input image's size, in the requested format", async () => {
    const input = await sharp({ create: { width: 96, height: 64, channels: 3, background: { r: 200, g: 80, b: 40 } } }).png().toBuffer();
    const id = await api.generate({
      prompt: "a red wall, watercolor",
      init_image: `data:image/png;base64,${input.toString("base64")}`,
      strength: 0.5,
      num_inference_steps: 10,
      scheduler: "Euler",
      output_format: "jpg",
    });
    const done = await api.waitTask(id);
    expect(done.status).toBe("completed");
    // floor(10 * 0.5) denoising steps; the row records the size that actually ran.
    expect(done).toMatchObject({ progress: { step: 5, total: 5 }, width: 96, height: 64 });
    expect(done.result_url).toMatch(/\.jpg$/);
    const image = await fetchImage(done.result_url!);
    expect(image.contentType).toBe("image/jpeg");
    expect(image.meta).toMatchObject({ format: "jpeg", width: 96, height: 64 });
  });

  it("num_images 3 gives three result_urls, each a distinct fetchable image", async () => {
    const id = await api.generate({ prompt: "three cats", width: 64, height: 64, num_images: 3, num_inference_steps: 4 });
    const done = await api.waitTask(id);
    expect(done.status).toBe("completed");
    expect(done.result_url).toBeNull();
    expect(done.result_urls).toHaveLength(3);
    expect(new Set(done.result_urls).size).toBe(3);
    for (const url of done.result_urls!) expect((await fetchImage(url)).meta).toMatchObject({ format: "png", width: 64, height: 64 });
  });

  it("sends the signed callback; a receiver answering 500 then 200 gets it again with the same webhook-id, every attempt recorded", async () => {
    receiver.script([500, 200]);
    const before = receiver.received.length;
    const id = await api.generate({ prompt: "a callback", width: 64, height: 64, num_inference_steps: 4, callback_url: `${receiver.url}/hooks/sd?token=abc` });
    const done = await api.waitTask(id);
    expect(done.status).toBe("completed");
    const requests = await waitFor("two callback requests", () => {
      const mine = receiver.received.slice(before).filter((r) => JSON.parse(r.body).task_id === id);
      return mine.length >= 2 ? mine : undefined;
    });
    expect(requests.map((r) => r.path)).toEqual(["/hooks/sd?token=abc", "/hooks/sd?token=abc"]);
    expect(JSON.parse(requests[0].body)).toEqual({ task_id: id, status: "completed", image_url: done.result_url });
    expect(requests[0].headers["webhook-id"]).toMatch(/^msg_/);
    expect(requests[1].headers["webhook-id"]).toBe(requests[0].headers["webhook-id"]);
    for (const r of requests) expect(verifyStandardWebhook(SECRET, r.headers, r.body)).toBe(true);
    // The second attempt came at least retry_interval (0.2 s) after the first.
    expect(requests[1].at - requests[0].at).toBeGreaterThanOrEqual(150);

    const row = await waitFor("delivered", async () => {
      const r = await edge.outbox.byTask(id);
      return r?.state === "delivered" ? r : undefined;
    });
    expect(row).toMatchObject({ attempts: 2, lastStatusCode: 200 });
    expect((await edge.outbox.attempts(row.id)).map((a) => [a.attempt, a.statusCode, a.outcome])).toEqual([
      [1, 500, "retry"],
      [2, 200, "delivered"],
    ]);
    receiver.script([200]);
  });

  it("cancels a running task: cancelled at once, the node stops it, the callback says cancelled; a finished task answers 409", async () => {
    const before = receiver.received.length;
    const id = await api.generate({ prompt: "a very long job", ...LONG, callback_url: `${receiver.url}/cancel` });
    await api.waitTask(id, (t) => t.status === "processing" && (t.progress?.step ?? 0) > 0);
    const res = await api.cancel(id);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ task_id: id, status: "cancelled" });
    expect((await api.task(id)).status).toBe("cancelled");
    // The node stopped it between two steps (and never finished it).
    await waitFor("the node's cancel", () => node.linesWith("cancel requested", id).length > 0 && node.logs.some((l) => l.task_id === id && String(l.msg).startsWith("task failed")));
    expect(node.linesWith("task completed", id)).toHaveLength(0);
    const callback = await waitFor("the cancel callback", () => receiver.received.slice(before).find((r) => JSON.parse(r.body).task_id === id));
    expect(JSON.parse(callback.body)).toEqual({ task_id: id, status: "cancelled" });
    // Still cancelled: the node's late "failed{cancelled}" changed nothing.
    expect((await api.task(id)).status).toBe("cancelled");
    const again = await api.cancel(id);
    expect(again.status).toBe(409);
    expect(await again.json()).toEqual({ detail: "任务已结束，无法取消" });
    // The node is free again.
    const next = await api.generate({ prompt: "after the cancel", width: 64, height: 64, num_inference_steps: 2 });
    expect((await api.waitTask(next)).status).toBe("completed");
  });

  it("cancels a task still waiting in the database", async () => {
    const blocker = await api.generate({ prompt: "blocker", ...LONG });
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push(await api.generate({ prompt: `waiting ${i}`, width: 64, height: 64, num_inference_steps: 2 }));
    await api.waitTask(blocker, (t) => t.status === "processing");
    // concurrency 1 + prefetch 1: one waits on the node, the last ones in the database with their place in line.
    const last = await api.task(queued[2]);
    expect(last.status).toBe("pending");
    expect(last.queue_position).toBeGreaterThanOrEqual(1);
    expect((await api.cancel(queued[2])).status).toBe(200);
    expect((await api.cancel(blocker)).status).toBe(200);
    for (const id of queued.slice(0, 2)) expect((await api.waitTask(id)).status).toBe("completed");
    expect((await api.task(queued[2])).status).toBe("cancelled");
    expect(node.linesWith("task accepted", queued[2])).toHaveLength(0);
  });

  it("exposes Prometheus metrics: requests by route and status, task states, dispatch latency, webhook attempts", async () => {
    const res = await fetch(`${edge.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/sd_edge_http_requests_total\{route="\/api\/v1\/generate",method="POST",status="200"\} \d+/);
    expect(text).toMatch(/sd_edge_http_requests_total\{route="\/api\/v1\/tasks\/:task_id",method="GET",status="200"\} \d+/);
    expect(text).toMatch(/sd_edge_tasks\{status="completed"\} [1-9]\d*/);
    expect(text).toMatch(/sd_edge_tasks\{status="cancelled"\} [1-9]\d*/);
    expect(text).toMatch(/sd_edge_dispatch_latency_seconds_count [1-9]\d*/);
    expect(text).toMatch(/sd_edge_webhook_attempts_total\{outcome="retry"\} [1-9]\d*/);
    expect(text).toMatch(/sd_edge_webhook_attempts_total\{outcome="delivered"\} [1-9]\d*/);
    expect(text).toMatch(/sd_edge_gpu_node_up\{node="node-a"\} 1/);
    // Keys never appear (they are not labels, nor logged).
    expect(text).not.toContain(KEY);
  });
});
