// `npm run bench:node`: the gpu-node service around the real pipeline (tiny model, CPU) and s3rver.
//  1. GetStatus latency (p50/p95/p99/max) over both listeners while generations run back to back
//     (target p99 < 50 ms: the pipeline's worker thread leaves the event loop free).
//  2. Generate wall time (request → completed, including queueing and the S3 upload) against the pipeline
//     alone (runner.generate) for the same request, interleaved run by run so machine noise hits both; and,
//     immune to run-to-run noise, each Generate's wall time against the pipeline time the node measured for
//     that same run ("same-run overhead", target < 5%).
// The node (gpu-node/main.ts) and s3rver run as their own processes, as in production; this process holds the
// clients and, for the baseline, its own pipeline runner (same model, same config).
// Options: --steps 20 --sizes 128,256 --pairs 7 --status-seconds 10 --pause 300 (ms between runs)
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { parseConfig } from "../shared/config/config.schema.js";
import { resolveScheduler } from "../shared/schedulers/scheduler-names.js";
import { createPipelineRunner } from "../gpu-node/pipeline/pipeline.host.js";
import type { GenerateParams } from "../gpu-node/pipeline/pipeline.types.js";
import { createConnectGpuClient } from "../edge/gpu/connect.gpu-client.js";
import type { GenerateRequestInit, GpuClient } from "../edge/gpu/gpu-client.port.js";
import { createGrpcGpuClient } from "../edge/gpu/grpc.gpu-client.js";

const { values } = parseArgs({
  options: {
    steps: { type: "string", default: "20" },
    // Comma list: the overhead is measured per size (a fixed cost weighs less on a longer generation).
    sizes: { type: "string", default: "128,256" },
    pairs: { type: "string", default: "7" },
    "status-seconds": { type: "string", default: "10" },
    pause: { type: "string", default: "300" },
  },
});
const steps = Number(values.steps);
const sizes = values.sizes.split(",").map(Number);
const pairs = Number(values.pairs);
// GetStatus is measured while generations of the first size run.
const loadSize = sizes[0];
const statusSeconds = Number(values["status-seconds"]);
const PAUSE_MS = Number(values.pause);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}
const ms = (value: number) => `${value.toFixed(1)} ms`;

interface NodeSide {
  pipelineMs: number;
  queueMs: number;
  uploadMs: number;
  totalMs: number;
}

async function runToEnd(client: GpuClient, request: GenerateRequestInit): Promise<NodeSide> {
  for await (const event of client.generate(request)) {
    if (event.event.case === "failed") throw new Error(`${event.event.value.code}: ${event.event.value.message}`);
    if (event.event.case === "completed") {
      const t = event.event.value.timings!;
      return { pipelineMs: t.pipelineMs, queueMs: t.queueMs, uploadMs: t.uploadMs, totalMs: t.totalMs };
    }
  }
  throw new Error("the stream ended without an outcome");
}

const ROOT = new URL("..", import.meta.url).pathname;
const children: ChildProcess[] = [];

/** Starts `node --import tsx <script>` and resolves with the first stdout line `match` accepts. */
function startProcess<T>(script: string, args: string[], env: Record<string, string>, match: (line: string) => T | null): Promise<T> {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  return new Promise<T>((resolve, reject) => {
    let found = false;
    createInterface({ input: child.stdout! }).on("line", (line) => {
      // The node logs JSON; show its errors (level >= 50) so a failed start explains itself.
      if (/"level":(5|6)\d/.test(line)) console.error(`[${script}] ${line}`);
      if (found) return;
      const value = match(line);
      if (value !== null) {
        found = true;
        resolve(value);
      }
    });
    child.once("exit", (code) => reject(new Error(`${script} exited (${code}) before it was ready`)));
  });
}

// Whatever happens, the children go with us.
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
});

const dir = mkdtempSync(join(tmpdir(), "bench-node-"));
const s3Endpoint = await startProcess("scripts/s3rver.ts", ["--port", "0", "--dir", join(dir, "s3")], {}, (line) =>
  /listening on http:\/\/(\S+)/.exec(line)?.[1] ?? null,
);
const configPath = join(dir, "config.yaml");
writeFileSync(
  configPath,
  [
    `minio: { endpoint: "${s3Endpoint}", bucket: bench }`,
    "gpu_node: { grpc_port: 0, web_port: 0, metrics_port: 0, queue_capacity: 64 }",
    "log_level: info",
  ].join("\n"),
);
const ports = await startProcess("gpu-node/main.ts", [], { SD_CONFIG: configPath }, (line) => {
  try {
    const entry = JSON.parse(line) as { msg?: string; grpc_port?: number; web_port?: number; metrics_port?: number };
    return entry.msg === "gpu-node ready" ? { grpc: entry.grpc_port!, web: entry.web_port!, metrics: entry.metrics_port! } : null;
  } catch {
    return null;
  }
});
// The baseline: the same pipeline host the node uses, in this process.
const runner = await createPipelineRunner(parseConfig({ log_level: "warn" }));
const grpc = createGrpcGpuClient({ address: `127.0.0.1:${ports.grpc}` });
const web = createConnectGpuClient({ baseUrl: `http://127.0.0.1:${ports.web}` });

const scheduler = resolveScheduler("Euler")!;
const PROMPT = "a lighthouse on a cliff at dusk, oil painting";
const request = (size: number): GenerateRequestInit => ({
  taskId: `bench-${randomUUID()}`,
  prompt: PROMPT,
  width: size,
  height: size,
  numInferenceSteps: steps,
  guidanceScale: 7.5,
  seed: 42,
  scheduler: "Euler",
});
// What the node resolves that request to (the defaults it fills in included).
const params = (size: number): GenerateParams => ({
  prompt: PROMPT,
  negativePrompt: null,
  width: size,
  height: size,
  numImages: 1,
  numInferenceSteps: steps,
  guidanceScale: 7.5,
  strength: 0.75,
  scheduler: { name: scheduler.name, className: scheduler.className, overrides: scheduler.overrides },
  seed: 42,
  initImage: null,
  outputFormat: "png",
  loras: [],
});

console.log(`gpu-node bench: tiny-sd, ${steps} steps, Euler, CPU (${cpus().length} cores); node ${process.version}`);

// Warm-up: the first runs compile ORT kernels and open connections.
await runner.generate(params(sizes[0]), {});
await runToEnd(grpc, request(sizes[0]));
await runToEnd(web, request(sizes[0]));

// --- 1. Generate overhead ---------------------------------------------------------------------------------
for (const size of sizes) {
  const alone: number[] = [];
  const viaGrpc: number[] = [];
  const viaWeb: number[] = [];
  const nodeSide: NodeSide[] = [];
  // Per run: client wall time against the pipeline time the node measured for that same run.
  const pairedGrpc: number[] = [];
  const pairedWeb: number[] = [];
  const contenders: Array<() => Promise<void>> = [
    async () => {
      const t = performance.now();
      await runner.generate(params(size), {});
      alone.push(performance.now() - t);
    },
    async () => {
      const t = performance.now();
      const side = await runToEnd(grpc, request(size));
      const wall = performance.now() - t;
      nodeSide.push(side);
      viaGrpc.push(wall);
      pairedGrpc.push((wall - side.pipelineMs) / side.pipelineMs);
    },
    async () => {
      const t = performance.now();
      const side = await runToEnd(web, request(size));
      const wall = performance.now() - t;
      nodeSide.push(side);
      viaWeb.push(wall);
      pairedWeb.push((wall - side.pipelineMs) / side.pipelineMs);
    },
  ];
  for (let i = 0; i < pairs; i++) {
    // Rotating the order keeps "who runs first after a pause" from favouring one contender.
    for (let j = 0; j < contenders.length; j++) {
      // A pause between runs: onnxruntime's intra-op threads spin for a while after a run, and the baseline's
      // runner and the node's are in different processes, so back to back one would steal the other's cores.
      await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
      await contenders[(i + j) % contenders.length]();
    }
  }
  const base = median(alone);
  console.log(`\nGenerate wall time vs the pipeline alone, ${size}x${size} (median of ${pairs} interleaved runs each)`);
  console.log(`  pipeline alone (runner.generate)   ${ms(base)}`);
  for (const [name, times, paired] of [
    ["Generate over grpc-js", viaGrpc, pairedGrpc],
    ["Generate over gRPC-web", viaWeb, pairedWeb],
  ] as const) {
    const m = median(times);
    console.log(
      `  ${name.padEnd(34)} ${ms(m)}  vs alone ${(((m - base) / base) * 100).toFixed(1)}%; ` +
        `same-run overhead ${(median(paired) * 100).toFixed(1)}% (target < 5%)`,
    );
  }
  // What the node itself adds around the pipeline, from the completed events' timings (free of the noise
  // between separate runs): queue wait + S3 upload + bookkeeping. The rest is the two network hops.
  const around = nodeSide.map((t) => t.totalMs - t.pipelineMs);
  console.log(
    `  node-side per task (median): pipeline ${ms(median(nodeSide.map((t) => t.pipelineMs)))}, queue ${ms(median(nodeSide.map((t) => t.queueMs)))}, ` +
      `upload ${ms(median(nodeSide.map((t) => t.uploadMs)))}; total - pipeline ${ms(median(around))} ` +
      `(${((median(around) / base) * 100).toFixed(1)}% of the pipeline alone)`,
  );
}

// --- 2. GetStatus latency under load ----------------------------------------------------------------------
const loadUntil = performance.now() + statusSeconds * 1000;
let generations = 0;
const load = (async () => {
  // Two tasks in flight: one running, one queued, so the node is busy the whole time.
  const lane = async () => {
    while (performance.now() < loadUntil) {
      await runToEnd(grpc, request(loadSize));
      generations++;
    }
  };
  await Promise.all([lane(), lane()]);
})();

const latencies: Record<string, number[]> = { "grpc-js": [], "gRPC-web": [] };
let busySamples = 0;
while (performance.now() < loadUntil) {
  for (const [name, client] of [["grpc-js", grpc], ["gRPC-web", web]] as const) {
    const t = performance.now();
    const status = await client.status();
    latencies[name].push(performance.now() - t);
    if (status.busy) busySamples++;
  }
  await new Promise((resolve) => setTimeout(resolve, 10));
}
await load;
console.log(`\nGetStatus latency while generating (${statusSeconds} s, ${generations} generations, busy in ${busySamples} samples)`);
for (const [name, samples] of Object.entries(latencies)) {
  const sorted = [...samples].sort((a, b) => a - b);
  console.log(
    `  ${name.padEnd(9)} n=${sorted.length}  p50 ${ms(percentile(sorted, 50))}  p95 ${ms(percentile(sorted, 95))}  ` +
      `p99 ${ms(percentile(sorted, 99))} (target < 50 ms)  max ${ms(sorted.at(-1) ?? 0)}`,
  );
}

// The node's own event-loop delay over the whole run (prom-client's default metrics): if it stays low while
// GetStatus has a long tail, the tail is CPU scheduling on a shared machine, not a blocked loop.
const metricsText = await (await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).text();
const lag = (name: string) => Number(new RegExp(`^sd_gpu_node_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, "m").exec(metricsText)?.[1] ?? NaN) * 1000;
console.log(`  node event-loop delay over the run: p50 ${ms(lag("p50"))}  p99 ${ms(lag("p99"))}  max ${ms(lag("max"))}`);
console.log(`  machine load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(", ")}`);

grpc.close();
web.close();
await runner.close();
for (const child of children.reverse()) {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}
rmSync(dir, { recursive: true, force: true });
process.exit(0);
