// `npm run bench:api`: the Node edge (a child process, as in production) against autocannon on loopback.
// POST /api/v1/generate and GET /api/v1/tasks/{id}, 64 connections each; prints req/s, p50 and p99.
// Honours the usual environment (SD_CONFIG, SD_API_KEYS, DATABASE_URL, ...); by default the edge gets a fresh
// temporary libSQL file and a random port. Options: --duration <seconds> (default 10), --connections <n> (64).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { loadNodeConfig } from "../shared/node/config.load.js";
import { freePort } from "../shared/node/free-port.js";

const { values: args } = parseArgs({
  options: { duration: { type: "string", default: "10" }, connections: { type: "string", default: "64" } },
});
const DURATION = Number(args.duration);
const CONNECTIONS = Number(args.connections);
const TARGETS = { getRps: 5000, postRps: 2000, p99Ms: 25 };


const dir = mkdtempSync(join(tmpdir(), "bench-api-"));
const env: Record<string, string | undefined> = {
  ...process.env,
  PORT: process.env.PORT ?? String(await freePort()),
  DATABASE_URL: process.env.DATABASE_URL ?? `file:${join(dir, "tasks.db")}`,
  SD_API_KEYS: process.env.SD_API_KEYS ?? "bench-key",
  // A log line per request would measure the terminal, not the edge.
  LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
};
const config = loadNodeConfig(env);
const key = config.api.keys[0];
const headers = { [config.api.key_header]: key, "content-type": "application/json" };
const host = config.server.host === "0.0.0.0" || config.server.host === "::" ? "127.0.0.1" : config.server.host;
const baseUrl = `http://${host.includes(":") ? `[${host}]` : host}:${config.server.port}`;

async function startEdge(): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ["--import", "tsx", "edge/node/main.ts"], {
    cwd: new URL("..", import.meta.url).pathname,
    env,
    stdio: ["ignore", "inherit", "inherit"],
  });
  let exited = false;
  child.once("exit", () => (exited = true));
  for (;;) {
    if (exited) throw new Error("the edge exited during start-up");
    try {
      if ((await fetch(`${baseUrl}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = () =>
    new Promise<void>((resolve) => {
      if (exited) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  return { url: baseUrl, stop };
}

interface Row {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function run(name: string, opts: autocannon.Options, duration = DURATION): Promise<Row> {
  const result = await autocannon({ connections: CONNECTIONS, pipelining: 1, duration, ...opts });
  return {
    name,
    rps: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

const edge = await startEdge();
try {
  const body = JSON.stringify({ prompt: "a beautiful landscape with mountains and lakes, sunset", width: 512, height: 512, num_inference_steps: 30, guidance_scale: 7.5 });
  const created = await fetch(`${edge.url}/api/v1/generate`, { method: "POST", headers, body });
  if (created.status !== 200) throw new Error(`POST /api/v1/generate answered ${created.status}: ${await created.text()}`);
  const { task_id } = (await created.json()) as { task_id: string };

  const post = { url: `${edge.url}/api/v1/generate`, method: "POST" as const, headers, body };
  const get = { url: `${edge.url}/api/v1/tasks/${task_id}`, method: "GET" as const, headers: { [config.api.key_header]: key } };
  // Warm-up (JIT, SQLite page cache), not reported.
  await run("warm-up", post, 2);
  await run("warm-up", get, 2);
  const rows = [await run("POST /api/v1/generate", post), await run("GET /api/v1/tasks/{id}", get)];

  console.log(`\nedge on ${edge.url}, ${CONNECTIONS} connections, ${DURATION} s each, database ${env.DATABASE_URL?.startsWith("file:") ? "libSQL file (WAL)" : "remote libSQL"}`);
  console.log("route                      req/s    p50 ms   p99 ms   non-2xx  errors");
  for (const r of rows) {
    console.log(`${r.name.padEnd(24)} ${String(r.rps).padStart(7)} ${String(r.p50).padStart(8)} ${String(r.p99).padStart(8)} ${String(r.non2xx).padStart(9)} ${String(r.errors).padStart(7)}`);
  }
  const [postRow, getRow] = rows;
  const checks = [
    [`GET >= ${TARGETS.getRps} req/s`, getRow.rps >= TARGETS.getRps],
    [`POST >= ${TARGETS.postRps} req/s`, postRow.rps >= TARGETS.postRps],
    [`p99 < ${TARGETS.p99Ms} ms`, postRow.p99 < TARGETS.p99Ms && getRow.p99 < TARGETS.p99Ms],
    ["no errors", rows.every((r) => r.non2xx === 0 && r.errors === 0)],
  ] as const;
  console.log(`targets: ${checks.map(([label, ok]) => `${label} ${ok ? "ok" : "MISSED"}`).join("; ")}`);
} finally {
  await edge.stop();
  rmSync(dir, { recursive: true, force: true });
}
