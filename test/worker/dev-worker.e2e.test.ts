// End to end through the worker, as `npm run dev:worker` runs it: sqld (migrations applied by the script),
// s3rver, a gpu-node process with the tiny model, and `wrangler dev` (workerd; miniflare's queue; the script's
// timer firing the cron). Real processes and servers only: a generation reaches a fetched PNG and a signed
// webhook, adapters from the node's lora.models_dir are listed and applied, a receiver answering 500 gets the
// event again, a task whose consumer died is taken back by the cron, a generation longer than a consumer
// invocation may live is handed from one to the next, and a cancel stops a running generation.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createClient, type Client } from "@libsql/client";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtureRng, loraModule, TINY_MODULES, writeSafetensors } from "../helpers/lora-fixtures.js";
import { freePort } from "../../shared/node/free-port.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const KEY = "worker-e2e-key";
const SECRET_BYTES = Buffer.from("worker-e2e-signing-key-0123456789");
const SECRET = `whsec_${SECRET_BYTES.toString("base64")}`;

interface Hook {
  headers: Record<string, string | string[] | undefined>;
  body: string;
  at: number;
}

let dir: string;
let stack: ChildProcess;
let stackExited: Promise<void>;
const stackLog: string[] = [];
let api: string;
let db: Client;
let receiver: Server;
let hookBase: string;
const hooks = new Map<string, Hook[]>();
// Paths that answer 500 to their first delivery.
const failFirst = new Set<string>(["/flaky"]);


async function until<T>(what: string, check: () => Promise<T | undefined | null | false>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n--- stack log (tail) ---\n${stackLog.slice(-60).join("\n")}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "worker-e2e-"));
  receiver = createHttpServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      const path = req.url ?? "/";
      const list = hooks.get(path) ?? [];
      list.push({ headers: req.headers, body, at: Date.now() });
      hooks.set(path, list);
      const fail = failFirst.has(path) && list.length === 1;
      res.writeHead(fail ? 500 : 204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  hookBase = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;

  const [apiPort, s3Port] = [await freePort(), await freePort()];
  // A tiny adapter for the node's lora.models_dir (UNet and text encoder).
  const rng = fixtureRng(3);
  await writeSafetensors(join(dir, "loras", "style.safetensors"), {
    ...loraModule(TINY_MODULES.unet.to_q, { rank: 4, rng }),
    ...loraModule(TINY_MODULES.text_encoder.q_proj, { rank: 4, rng }),
  });
  const configPath = join(dir, "config.yaml");
  writeFileSync(
    configPath,
    [
      `api: { keys: ["${KEY}"] }`,
      "sd_model: { path: models/tiny-sd }",
      `minio: { endpoint: "127.0.0.1:${s3Port}", bucket: worker-e2e }`,
      "gpu_node: { grpc_port: 0, web_port: 0, metrics_port: 0 }",
      `lora: { models_dir: "${join(dir, "loras")}" }`,
      `server: { host: 127.0.0.1, port: ${apiPort} }`,
      "callback: { retry_times: 3, retry_interval: 1, max_backoff_seconds: 2, allow_private_targets: true }",
      // Short leases and a fast cron timer: the consumer-died case is over in seconds.
      "dispatch: { lease_seconds: 6, reconcile_interval_seconds: 2 }",
      "log_level: info",
    ].join("\n"),
  );
  stack = spawn(process.execPath, ["--import", "tsx", "scripts/dev-worker.ts", "--data-dir", join(dir, "data")], {
    cwd: ROOT,
    // A 5 s consumer wall budget: a generation of some seconds outlives several consumer invocations.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, SD_CONFIG: configPath, WEBHOOK_SECRET: SECRET, CONSUMER_WALL_SECONDS: "5" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  stackExited = new Promise((r) => stack.once("exit", () => r()));
  let sqldUrl: string | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    for (const stream of [stack.stdout!, stack.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => {
        stackLog.push(line);
        sqldUrl ??= /^\[dev:worker\] sqld: (\S+)/.exec(line)?.[1];
        if (line.startsWith("[dev:worker] ready:")) resolve();
      });
    }
    stack.once("exit", (code) => reject(new Error(`dev:worker exited (${code}) before it was ready:\n${stackLog.slice(-60).join("\n")}`)));
  });
  await ready;
  api = `http://127.0.0.1:${apiPort}`;
  db = createClient({ url: sqldUrl! });
}, 300_000);

afterAll(async () => {
  db?.close();
  if (stack && stack.exitCode === null) {
    stack.kill("SIGTERM");
    const killer = setTimeout(() => stack.kill("SIGKILL"), 60_000);
    await stackExited;
    clearTimeout(killer);
  }
  await new Promise((r) => receiver?.close(r));
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

async function generate(body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${api}/api/v1/generate`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": KEY },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { task_id: string }).task_id;
}

type Task = Record<string, unknown> & { status: string; result_url: string | null; progress: { step: number; total: number } | null };

async function task(id: string): Promise<Task> {
  const res = await fetch(`${api}/api/v1/tasks/${id}`, { headers: { "x-api-key": KEY } });
  expect(res.status).toBe(200);
  return (await res.json()) as Task;
}

function finished(id: string, timeoutMs?: number): Promise<Task> {
  return until(
    `task ${id} to finish`,
    async () => {
      const t = await task(id);
      return ["completed", "failed", "cancelled"].includes(t.status) ? t : null;
    },
    timeoutMs,
  );
}

/** The PNG's width and height from its IHDR chunk. */
function pngSize(bytes: Buffer): { width: number; height: number } {
  expect(bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

/** Standard Webhooks verification, computed here independently of the edge's signer. */
function verify(hook: Hook): void {
  const id = String(hook.headers["webhook-id"]);
  const timestamp = String(hook.headers["webhook-timestamp"]);
  expect(id).toMatch(/^msg_[0-9a-f]{32}$/);
  expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(300);
  const expected = createHmac("sha256", SECRET_BYTES).update(`${id}.${timestamp}.${hook.body}`).digest("base64");
  expect(String(hook.headers["webhook-signature"]).split(" ")).toContain(`v1,${expected}`);
}

describe("the worker stack (npm run dev:worker)", () => {
  it("serves a generation end to end: progress, a fetchable PNG, a signed webhook", async () => {
    const id = await generate({ prompt: "a lighthouse at dusk", width: 64, height: 72, num_inference_steps: 3, seed: 42, callback_url: `${hookBase}/done` });
    const done = await finished(id);
    expect(done).toMatchObject({ status: "completed", seed: 42, width: 64, height: 72, error_message: null });
    expect(done.progress).toEqual({ step: done.progress!.total, total: done.progress!.total });
    const image = await fetch(done.result_url!);
    expect(image.status).toBe(200);
    expect(pngSize(Buffer.from(await image.arrayBuffer()))).toEqual({ width: 64, height: 72 });

    const [hook] = await until("the webhook", async () => hooks.get("/done"));
    verify(hook);
    expect(JSON.parse(hook.body)).toEqual({ task_id: id, status: "completed", image_url: done.result_url });
    // The receiver sees the request before the worker records the answer, so wait for the row.
    const outbox = await until("the outbox row to say delivered", async () => {
      const r = await db.execute({ sql: "SELECT state, attempts FROM webhook_outbox WHERE task_id = ?", args: [id] });
      return r.rows[0]?.state === "delivered" ? r.rows[0] : null;
    });
    expect(outbox).toMatchObject({ state: "delivered", attempts: 1 });
  }, 300_000);

  it("reports the node's model on /health (GetStatus over gRPC-web)", async () => {
    const res = await fetch(`${api}/health`);
    expect(await res.json()).toEqual({ status: "ok", model_loaded: true });
  });

  it("lists the node's adapters (ListLoras over gRPC-web), checks names, and runs a task with one", async () => {
    const list = await fetch(`${api}/api/v1/loras`, { headers: { "x-api-key": KEY } });
    expect(await list.json()).toMatchObject({ nodes_total: 1, nodes_answered: 1, loras: [{ name: "style", kind: "lora", matched_modules: 2, error: null }] });
    const unknown = await fetch(`${api}/api/v1/generate`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": KEY },
      body: JSON.stringify({ prompt: "p", loras: [{ name: "nope" }] }),
    });
    expect(unknown.status).toBe(422);
    expect(((await unknown.json()) as { detail: Array<{ msg: string }> }).detail[0].msg).toBe("Value error, unknown LoRA 'nope'; available: style");
    const id = await generate({ prompt: "a lighthouse at dusk", width: 64, height: 64, num_inference_steps: 3, seed: 42, loras: [{ name: "style", weight: 0.8 }] });
    const done = await finished(id);
    expect(done).toMatchObject({ status: "completed", error_message: null, loras: [{ name: "style", weight: 0.8 }] });
    const image = Buffer.from(await (await fetch(done.result_url!)).arrayBuffer());
    const parameters = (await sharp(image).metadata()).comments?.find((c) => c.keyword === "parameters")?.text;
    expect(parameters).toMatch(/LoRA: "style: 0\.8"$/);
  }, 300_000);

  it("runs img2img: the init image goes through libSQL over HTTP and gRPC-web as bytes", async () => {
    const init = await sharp({ create: { width: 96, height: 64, channels: 3, background: { r: 200, g: 80, b: 40 } } }).png().toBuffer();
    const id = await generate({ prompt: "a warmer sky", init_image: `data:image/png;base64,${init.toString("base64")}`, strength: 0.5, num_inference_steps: 4 });
    const done = await finished(id);
    expect(done.status).toBe("completed");
    const image = Buffer.from(await (await fetch(done.result_url!)).arrayBuffer());
    // img2img keeps the init image's size.
    expect(pngSize(image)).toEqual({ width: 96, height: 64 });
  }, 300_000);

  it("delivers a callback again after the receiver answered 500, with the same webhook-id", async () => {
    const id = await generate({ prompt: "a flaky receiver", width: 64, height: 64, num_inference_steps: 2, num_images: 2, callback_url: `${hookBase}/flaky` });
    const done = await finished(id);
    expect(done.status).toBe("completed");
    const list = await until("the second delivery", async () => ((hooks.get("/flaky")?.length ?? 0) >= 2 ? hooks.get("/flaky") : null), 180_000);
    expect(list[1].headers["webhook-id"]).toBe(list[0].headers["webhook-id"]);
    verify(list[1]);
    expect(JSON.parse(list[1].body)).toEqual({ task_id: id, status: "completed", image_urls: done.result_urls });
    // As above: the second attempt's row is written after the receiver answered it.
    const rows = await until("two recorded attempts", async () => {
      const r = await db.execute({
        sql: "SELECT a.status_code, a.outcome FROM webhook_attempts a JOIN webhook_outbox o ON o.id = a.outbox_id WHERE o.task_id = ? ORDER BY a.attempt",
        args: [id],
      });
      return r.rows.length >= 2 ? r : null;
    });
    expect(rows.rows.map((r) => [r.status_code, r.outcome])).toEqual([
      [500, "retry"],
      [204, "delivered"],
    ]);
  }, 300_000);

  it("takes back a task whose consumer died holding it (expired lease), and runs it to completion", async () => {
    const id = crypto.randomUUID();
    const now = Date.now();
    const owner = createHash("sha256").update(KEY).digest("hex");
    // What a consumer evicted mid-generation leaves behind: processing, leased by it, the lease run out.
    await db.execute({
      sql: `INSERT INTO tasks (id, owner_key_hash, status, prompt, width, height, num_images, num_inference_steps, output_format,
              attempts, lease_owner, lease_until, created_at, updated_at, started_at)
            VALUES (?, ?, 'processing', 'an orphaned task', 64, 64, 1, 2, 'png', 1, 'worker:dead-invocation', ?, ?, ?, ?)`,
      args: [id, owner, now - 1000, now - 20_000, now - 10_000, now - 10_000],
    });
    const done = await finished(id);
    expect(done.status).toBe("completed");
    const row = await db.execute({ sql: "SELECT attempts, lease_owner FROM tasks WHERE id = ?", args: [id] });
    expect(row.rows[0]).toMatchObject({ attempts: 2, lease_owner: null });
  }, 300_000);

  it("hands a generation that outlives a consumer invocation over to the next one, which re-attaches on the same node", async () => {
    const id = await generate({ prompt: "a long generation", width: 256, height: 256, num_inference_steps: 150, seed: 7 });
    const done = await finished(id, 300_000);
    expect(done).toMatchObject({ status: "completed", seed: 7 });
    // Every step the node ran is accounted for (PNDM runs one more than asked).
    expect(done.progress!.step).toBe(done.progress!.total);
    expect(done.progress!.total).toBeGreaterThanOrEqual(150);
    const lines = stackLog.filter((l) => l.includes(id));
    expect(lines.filter((l) => l.includes("handing the task over to a fresh invocation")).length).toBeGreaterThan(0);
    // The node ran it once: later consumers re-attached to the running generation.
    expect(lines.filter((l) => l.startsWith("[gpu-node]") && l.includes('"task accepted"'))).toHaveLength(1);
    const row = await db.execute({ sql: "SELECT attempts FROM tasks WHERE id = ?", args: [id] });
    // A hand-over gives the attempt back.
    expect(row.rows[0].attempts).toBe(1);
    expect((await fetch(done.result_url!)).status).toBe(200);
  }, 360_000);

  it("cancels a running generation: the row, the node and the callback", async () => {
    const id = await generate({ prompt: "a long one", width: 256, height: 256, num_inference_steps: 150, callback_url: `${hookBase}/cancelled` });
    await until("the task to run", async () => (await task(id)).status === "processing");
    const res = await fetch(`${api}/api/v1/tasks/${id}/cancel`, { method: "POST", headers: { "x-api-key": KEY } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as Task).status).toBe("cancelled");
    const [hook] = await until("the cancel webhook", async () => hooks.get("/cancelled"));
    verify(hook);
    expect(JSON.parse(hook.body)).toEqual({ task_id: id, status: "cancelled" });
    // The consumer holding the stream lets go (the node stopped the generation; the row is not its own any more).
    await until("the row to stay cancelled with no lease", async () => {
      const row = await db.execute({ sql: "SELECT status, lease_owner FROM tasks WHERE id = ?", args: [id] });
      return row.rows[0].status === "cancelled" && row.rows[0].lease_owner === null;
    });
    expect((await task(id)).status).toBe("cancelled");
  }, 300_000);
});
