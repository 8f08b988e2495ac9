// `npm run bench:e2e`: the whole stack as in production — s3rver, gpu-node PROCESSES (tiny model, CPU) and the
// Node edge as a PROCESS (edge/node/main.ts) on a libSQL file — measured from outside through the public API.
//  1. POST → started when idle (target p50 < 20 ms): tasks one at a time on an idle node; the edge records
//     created_at at the POST and started_at when the node's `started` event arrives (same clock).
//  2. POST → completed against the node's own time for the same task (target overhead < 5%): the edge's
//     finished_at − created_at versus the node's reported total_ms (acceptance → stored images), from
//     its "task completed" log line. Also the client's view: POST sent → signed callback received.
//  3. A burst of tasks submitted at once (default 200, over two nodes): every one reaches a terminal state,
//     none is lost, none runs twice (counted from the nodes' own "task accepted" / "task started" lines).
// Options: --idle 30 --overhead 5 --size 256 --steps 20 --burst 200 --nodes 2
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClient } from "@libsql/client";
import { startS3rver } from "../gpu-node/dev/s3rver.server.js";
import { startWebhookReceiver } from "../test/edge/webhooks/webhook-receiver.js";
import { ApiClient } from "../test/e2e/support/api.client.js";
import { startEdgeProcess, startGpuNodeProcess, waitFor, writeConfig, type GpuNodeProcess } from "../test/e2e/support/processes.js";

const { values } = parseArgs({
  options: {
    idle: { type: "string", default: "30" },
    overhead: { type: "string", default: "5" },
    size: { type: "string", default: "256" },
    steps: { type: "string", default: "20" },
    burst: { type: "string", default: "200" },
    nodes: { type: "string", default: "2" },
  },
});
const KEY = "bench-key";

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
const f1 = (v: number) => v.toFixed(1);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bench-e2e-"));
  const s3 = await startS3rver({ directory: join(dir, "s3") });
  const nodes: GpuNodeProcess[] = await Promise.all(
    Array.from({ length: Number(values.nodes) }, (_, i) => startGpuNodeProcess(dir, `node-${i}`, s3.endpoint, "bench-e2e")),
  );
  const receiver = await startWebhookReceiver([200]);
  const dbPath = join(dir, "tasks.db");
  const configPath = writeConfig(dir, "edge.yaml", {
    api: { keys: [KEY] },
    server: { host: "127.0.0.1", port: 0 },
    task_db: { path: dbPath },
    gpu_nodes: nodes.map((n, i) => ({ name: `node-${i}`, grpc: n.address })),
    callback: { allow_private_targets: true, retry_interval: 1 },
    log_level: "info",
  });
  const edge = await startEdgeProcess(configPath);
  const api = new ApiClient(edge.url, KEY);
  const db = createClient({ url: `file:${dbPath}` });
  const row = async (id: string) =>
    (await db.execute({ sql: "SELECT status, created_at, started_at, finished_at FROM tasks WHERE id = ?", args: [id] })).rows[0] as unknown as {
      status: string;
      created_at: number;
      started_at: number | null;
      finished_at: number | null;
    };
  const allLogs = () => nodes.flatMap((n) => n.logs);

  try {
    await waitFor("a healthy node", async () => ((await (await fetch(`${edge.url}/health`)).json()) as { model_loaded: boolean }).model_loaded);
    console.log(`bench:e2e — ${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}, ${nodes.length} gpu-node process(es), edge process`);

    // Warm-up: first runs pay for session warm-up and JIT.
    for (let i = 0; i < 3; i++) await api.waitTask(await api.generate({ prompt: "warm-up", width: 64, height: 64, num_inference_steps: 2 }));

    // 1. POST → started when idle.
    const idle = Number(values.idle);
    const started: number[] = [];
    const roundTrip: number[] = [];
    for (let i = 0; i < idle; i++) {
      const t0 = performance.now();
      const id = await api.generate({ prompt: `idle ${i}`, width: 64, height: 64, num_inference_steps: 2 });
      roundTrip.push(performance.now() - t0);
      await api.waitTask(id);
      const r = await row(id);
      started.push(Number(r.started_at) - Number(r.created_at));
      // Idle between tasks: nothing queued, the node's slot free.
      await new Promise((r2) => setTimeout(r2, 50));
    }
    console.log(
      `\n1. POST → started, idle (${idle} tasks, 64x64, 2 steps): p50 ${f1(percentile(started, 50))} ms, p95 ${f1(percentile(started, 95))} ms, ` +
        `max ${f1(Math.max(...started))} ms   [target p50 < 20 ms]   (POST round trip p50 ${f1(percentile(roundTrip, 50))} ms)`,
    );

    // 2. POST → completed vs the node's own time.
    const n = Number(values.overhead);
    const size = Number(values.size);
    const steps = Number(values.steps);
    const rows: Array<{ edgeMs: number; nodeMs: number; pipelineMs: number; clientMs: number }> = [];
    for (let i = 0; i < n; i++) {
      const before = receiver.received.length;
      const t0 = Date.now();
      const id = await api.generate({ prompt: `overhead ${i}`, width: size, height: size, num_inference_steps: steps, scheduler: "Euler", callback_url: `${receiver.url}/cb` });
      await api.waitTask(id);
      const callback = await waitFor("callback", () => receiver.received.slice(before).find((r) => r.body.includes(id)));
      const r = await row(id);
      const line = await waitFor("node log", () => allLogs().find((l) => l.task_id === id && l.msg === "task completed"));
      rows.push({ edgeMs: Number(r.finished_at) - Number(r.created_at), nodeMs: Number(line.total_ms), pipelineMs: Number(line.pipeline_ms), clientMs: callback.at - t0 });
    }
    const over = rows.map((r) => r.edgeMs - r.nodeMs);
    const rel = rows.map((r) => (r.edgeMs - r.nodeMs) / r.nodeMs);
    console.log(`\n2. POST → completed vs the node's own time (${n} tasks, ${size}x${size}, ${steps} steps):`);
    for (const r of rows) {
      console.log(
        `   edge ${f1(r.edgeMs)} ms   node ${f1(r.nodeMs)} ms (pipeline ${f1(r.pipelineMs)})   overhead ${f1(r.edgeMs - r.nodeMs)} ms = ${((100 * (r.edgeMs - r.nodeMs)) / r.nodeMs).toFixed(2)}%   client POST→callback ${r.clientMs} ms`,
      );
    }
    console.log(`   median overhead ${f1(percentile(over, 50))} ms = ${(100 * percentile(rel, 50)).toFixed(2)}%   [target < 5%]`);

    // 3. The burst.
    const burst = Number(values.burst);
    const t0 = performance.now();
    const ids = await Promise.all(Array.from({ length: burst }, (_, i) => api.generate({ prompt: `burst ${i}`, width: 64, height: 64, num_inference_steps: 2 })));
    const postedMs = performance.now() - t0;
    const terminal = new Set(["completed", "failed", "cancelled"]);
    await waitFor(
      "every burst task terminal",
      async () => {
        const rs = await db.execute({
          sql: `SELECT count(*) AS n FROM tasks WHERE id IN (${ids.map(() => "?").join(",")}) AND status IN ('completed','failed','cancelled')`,
          args: ids,
        });
        return Number(rs.rows[0].n) === burst;
      },
      600_000,
      200,
    );
    const doneMs = performance.now() - t0;
    const statuses = new Map<string, number>();
    for (const id of ids) {
      const r = await row(id);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (!terminal.has(r.status)) throw new Error(`task ${id} is ${r.status}`);
    }
    const count = (msg: string) => {
      const per = new Map<string, number>();
      for (const l of allLogs()) if (l.msg === msg && typeof l.task_id === "string" && ids.includes(l.task_id)) per.set(l.task_id, (per.get(l.task_id) ?? 0) + 1);
      return per;
    };
    const accepted = count("task accepted");
    const runs = count("task started");
    const twice = [...runs.values()].filter((v) => v > 1).length;
    const perNode = nodes.map((node, i) => `node-${i}: ${node.logs.filter((l) => l.msg === "task started" && ids.includes(String(l.task_id))).length}`);
    console.log(
      `\n3. Burst of ${burst} tasks (64x64, 2 steps) submitted at once: all accepted by the edge in ${f1(postedMs)} ms, all terminal after ${(doneMs / 1000).toFixed(1)} s`,
    );
    console.log(`   statuses: ${[...statuses].map(([s, c]) => `${s} ${c}`).join(", ")}   lost: ${burst - [...statuses.values()].reduce((a, b) => a + b, 0)}`);
    console.log(`   node side: accepted ${accepted.size} distinct tasks, started ${runs.size}, started more than once: ${twice}   (${perNode.join(", ")})`);
  } finally {
    db.close();
    await edge.kill("SIGTERM");
    await Promise.all(nodes.map((n) => n.kill("SIGTERM")));
    await receiver.close();
    await s3.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
