// Two gpu-node PROCESSES behind one edge: load sharing, and a node SIGKILLed mid-generation (the task completes on
// the other node; with no attempt left, it fails with a clear message). Real s3rver, real model, real sockets.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../edge/adapters/silent.logger.js";
import { startEdgeServer, type EdgeServer } from "../../edge/node/edge-server.js";
import { startS3rver, type RunningS3rver } from "../../gpu-node/dev/s3rver.server.js";
import { parseConfig } from "../../shared/config/config.schema.js";
import { ApiClient } from "./support/api.client.js";
import { startGpuNodeProcess, waitFor, type GpuNodeProcess } from "./support/processes.js";

const KEY = "e2e-key";
let dir: string;
let s3: RunningS3rver;
let nodeA: GpuNodeProcess;
let nodeB: GpuNodeProcess;
const edges: EdgeServer[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "e2e-faults-"));
  s3 = await startS3rver({ directory: join(dir, "s3") });
  [nodeA, nodeB] = await Promise.all([startGpuNodeProcess(dir, "node-a", s3.endpoint, "e2e-faults"), startGpuNodeProcess(dir, "node-b", s3.endpoint, "e2e-faults")]);
});

afterAll(async () => {
  for (const edge of edges) await edge.close();
  await Promise.all([nodeA?.kill(), nodeB?.kill()]);
  await s3?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function edgeFor(nodes: GpuNodeProcess[], name: string, dispatch: Record<string, unknown> = {}): Promise<ApiClient> {
  const config = parseConfig({
    api: { keys: [KEY] },
    server: { host: "127.0.0.1", port: 0 },
    task_db: { path: join(dir, `${name}.db`) },
    gpu_nodes: nodes.map((n, i) => ({ name: `node-${"ab"[i]}`, grpc: n.address })),
    dispatch: { lease_seconds: 5, reconcile_interval_seconds: 1, ...dispatch },
  });
  const edge = await startEdgeServer(config, { logger: silentLogger });
  edges.push(edge);
  return new ApiClient(edge.url, KEY);
}

function ranOn(node: GpuNodeProcess, id: string): boolean {
  return node.linesWith("task started", id).length > 0;
}

describe("two GPU nodes", () => {
  it("share the load: both run tasks, every task completes once", async () => {
    const api = await edgeFor([nodeA, nodeB], "sharing");
    const ids = await Promise.all(Array.from({ length: 6 }, (_, i) => api.generate({ prompt: `share ${i}`, width: 64, height: 64, num_inference_steps: 8 })));
    for (const id of ids) expect((await api.waitTask(id)).status).toBe("completed");
    const onA = ids.filter((id) => ranOn(nodeA, id));
    const onB = ids.filter((id) => ranOn(nodeB, id));
    expect(onA.length).toBeGreaterThan(0);
    expect(onB.length).toBeGreaterThan(0);
    // Each task ran on exactly one node, once.
    expect(onA.length + onB.length).toBe(ids.length);
    for (const id of ids) expect(nodeA.linesWith("task started", id).length + nodeB.linesWith("task started", id).length).toBe(1);
  });

  it("a node killed mid-generation: the task completes on the other node", async () => {
    const api = await edgeFor([nodeA, nodeB], "kill");
    // A long task and a short one: the dispatcher puts them on different nodes.
    const long = await api.generate({ prompt: "interrupted", width: 128, height: 128, num_inference_steps: 150, seed: 77, scheduler: "Euler" });
    const running = await api.waitTask(long, (t) => t.status === "processing" && (t.progress?.step ?? 0) > 0);
    expect(running.progress!.total).toBe(150);
    // The node's "task started" line travels over its stdout pipe, apart from the progress the edge relayed: wait
    // for it rather than guess the other node (killing the wrong one would prove nothing).
    const victim = await waitFor("the node running the task", () => (ranOn(nodeA, long) ? nodeA : ranOn(nodeB, long) ? nodeB : undefined));
    const survivor = victim === nodeA ? nodeB : nodeA;
    await victim.kill("SIGKILL");
    const done = await api.waitTask(long);
    expect(done).toMatchObject({ status: "completed", seed: 77, error_message: null });
    expect(ranOn(survivor, long)).toBe(true);
    // The node logs "task completed" as it sends the outcome, so the edge can have recorded it first: wait for the line.
    await waitFor("the survivor's task completed line", () => survivor.linesWith("task completed", long).length > 0);
    expect(survivor.linesWith("task completed", long)).toHaveLength(1);
    const image = await fetch(done.result_url!);
    expect(image.status).toBe(200);
  });

  it("with no attempt left, a node killed mid-generation fails the task with a clear message", async () => {
    const target = await startGpuNodeProcess(dir, "node-c", s3.endpoint, "e2e-faults");
    try {
      const api = await edgeFor([target], "exhausted", { max_attempts: 1 });
      const id = await api.generate({ prompt: "doomed", width: 128, height: 128, num_inference_steps: 150 });
      await api.waitTask(id, (t) => t.status === "processing" && (t.progress?.step ?? 0) > 0);
      await target.kill("SIGKILL");
      const done = await api.waitTask(id);
      expect(done.status).toBe("failed");
      expect(done.error_message).toMatch(/^generation gave up after 1 attempt: gpu node 127\.0\.0\.1:\d+: /);
      // /health notices the node is gone.
      await waitFor("model_loaded false", async () => {
        const health = (await (await fetch(`${api.baseUrl}/health`)).json()) as { model_loaded: boolean };
        return health.model_loaded === false;
      });
    } finally {
      await target.kill();
    }
  });
});
