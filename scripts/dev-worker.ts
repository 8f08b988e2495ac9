// `npm run dev:worker`: the local stack with the edge in workerd. sqld (libSQL over HTTP, data under .data/sqld,
// migrations applied here), s3rver (.data/s3), a gpu-node (the configured model, CPU) and `wrangler dev` (local
// mode: miniflare simulates the dispatch queue; a timer here triggers the cron handler through /__scheduled)
// serving the API on PORT (default server.port, 8000) like `npm run dev`. Config: SD_CONFIG or ./config.yaml,
// given to the worker as its CONFIG var; environment overrides pass through as vars. One Ctrl-C stops all; if
// one part dies, all stop.
//   --data-dir <dir>   where sqld, s3rver and wrangler keep their state (default .data)
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { createClient } from "@libsql/client";
import { parse as parseYaml } from "yaml";
import { startS3rver, type RunningS3rver } from "../gpu-node/dev/s3rver.server.js";
import { parseEndpoint } from "../gpu-node/storage/minio.store.js";
import { applyMigrations } from "../edge/db/migrator.js";
import { startSqld, type RunningSqld } from "../edge/worker/dev/sqld.server.js";
import { migrations } from "../migrations/index.js";
import { loadNodeConfigOrExit } from "../shared/node/config.load.js";

const ROOT = resolve(new URL("..", import.meta.url).pathname);
const { values: args } = parseArgs({ options: { "data-dir": { type: "string", default: ".data" } } });
const dataDir = resolve(args["data-dir"]!);

// The environment overrides the worker understands (shared/config/config.schema.ts), and its platform limits
// (edge/worker/worker.config.ts), passed on as vars.
const PASSED_ENV = ["SD_API_KEYS", "WEBHOOK_SECRET", "TIER_SECRET", "LOG_LEVEL", "MINIO_PUBLIC_BASE_URL", "SUBREQUEST_LIMIT", "CONSUMER_WALL_SECONDS"] as const;

function say(message: string): void {
  console.log(`[dev:worker] ${message}`);
}

function prefixLines(name: string, stream: NodeJS.ReadableStream | null, onLine?: (line: string) => void): void {
  if (!stream) return;
  createInterface({ input: stream }).on("line", (line) => {
    console.log(`[${name}] ${line}`);
    onLine?.(line);
  });
}

interface Child {
  name: string;
  process: ChildProcess;
  exited: Promise<void>;
}

const children: Child[] = [];
let s3: RunningS3rver | undefined;
let sqld: RunningSqld | undefined;
let cronTimer: NodeJS.Timeout | undefined;
let stopping: Promise<void> | undefined;

function startChild(name: string, command: string, argv: string[], env: NodeJS.ProcessEnv, onLine?: (line: string) => void): Child {
  // Own process groups: Ctrl-C reaches this script only, which stops the parts in order (edge, node, storage).
  const child = spawn(command, argv, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  process.once("exit", () => child.kill("SIGKILL"));
  prefixLines(name, child.stdout, onLine);
  prefixLines(name, child.stderr, onLine);
  const exited = new Promise<void>((resolveExit) => {
    child.once("exit", (code, signal) => {
      if (!stopping) {
        say(`${name} exited (${signal ?? code}); stopping everything`);
        void stopAll(1);
      }
      resolveExit();
    });
  });
  const entry = { name, process: child, exited };
  children.push(entry);
  return entry;
}

async function stopChild(child: Child, graceMs: number): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  child.process.kill("SIGTERM");
  const timer = setTimeout(() => child.process.kill("SIGKILL"), graceMs);
  await child.exited;
  clearTimeout(timer);
}

function stopAll(code: number): Promise<void> {
  stopping ??= (async () => {
    if (cronTimer) clearInterval(cronTimer);
    // The edge first (nothing new reaches the node), then the node (a running task may finish), then storage.
    for (const child of [...children].reverse()) await stopChild(child, child.name === "gpu-node" ? 15_000 : 5_000);
    await s3?.close();
    await sqld?.close();
    process.exit(code);
  })();
  return stopping;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    say(`${signal}: stopping`);
    void stopAll(0);
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (stopping) throw new Error(`stopped while waiting for ${what}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} was not ready within ${Math.round(timeoutMs / 1000)} s`);
}

function assertPortFree(port: number, setting: string): Promise<void> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once("error", () => reject(new Error(`${setting}: port ${port} is already in use`)));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolvePort()));
  });
}

async function main(): Promise<void> {
  const configPath = resolve(process.env.SD_CONFIG ?? "config.yaml");
  const rawConfig: unknown = existsSync(configPath) ? (parseYaml(readFileSync(configPath, "utf8")) ?? {}) : {};
  // Validated here too, so a bad config stops before anything starts.
  const config = loadNodeConfigOrExit();
  await assertPortFree(config.server.port, `server.port / PORT (${config.server.port})`);

  sqld = await startSqld({ dbPath: join(dataDir, "sqld", "db"), onLog: (line) => console.log(`[sqld] ${line}`) });
  say(`sqld: ${sqld.url} (data in ${join(dataDir, "sqld")})`);
  void sqld.exited.then((code) => {
    if (!stopping) {
      say(`sqld exited (${code}); stopping everything`);
      void stopAll(1);
    }
  });
  const migrationClient = createClient({ url: sqld.url });
  const applied = await applyMigrations(migrationClient, migrations);
  migrationClient.close();
  say(applied.length > 0 ? `migrations applied: ${applied.join(", ")}` : "migrations: up to date");

  const s3Port = parseEndpoint(config.minio.endpoint, config.minio.secure).port ?? 9000;
  // s3rver reports a taken port as an uncaught error event; ask first so the message names the setting.
  await assertPortFree(s3Port, `minio.endpoint (${config.minio.endpoint})`);
  s3 = await startS3rver({ directory: join(dataDir, "s3"), port: s3Port, host: "127.0.0.1" });
  say(`s3rver: http://${s3.endpoint} (data in ${join(dataDir, "s3")})`);

  let gpuReady: (ports: { grpc_port: number; web_port: number }) => void = () => {};
  const gpuPorts = new Promise<{ grpc_port: number; web_port: number }>((r) => (gpuReady = r));
  startChild("gpu-node", process.execPath, ["--import", "tsx", "gpu-node/main.ts"], { ...process.env, SD_CONFIG: configPath }, (line) => {
    if (!line.includes('"gpu-node ready"')) return;
    try {
      gpuReady(JSON.parse(line) as { grpc_port: number; web_port: number });
    } catch {
      // Not the JSON line.
    }
  });
  const ports = await Promise.race([gpuPorts, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("gpu-node was not ready within 180 s")), 180_000))]);
  const gpuNodes = process.env.GPU_NODES ?? `127.0.0.1:${ports.grpc_port}|http://127.0.0.1:${ports.web_port}`;

  const { host, port } = config.server;
  const vars: Record<string, string> = {
    CONFIG: JSON.stringify(rawConfig),
    DATABASE_URL: sqld.url,
    GPU_NODES: gpuNodes,
  };
  for (const name of PASSED_ENV) if (process.env[name]) vars[name] = process.env[name]!;
  const wranglerArgs = [
    join(ROOT, "node_modules/wrangler/bin/wrangler.js"),
    "dev",
    "--ip", host,
    "--port", String(port),
    "--test-scheduled",
    "--persist-to", join(dataDir, "wrangler"),
    "--show-interactive-dev-session=false",
    ...Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
  ];
  startChild("worker", process.execPath, wranglerArgs, {
    ...process.env,
    WRANGLER_SEND_METRICS: process.env.WRANGLER_SEND_METRICS ?? "false",
    // The app reads nothing from request.cf; without this, miniflare downloads it from workers.cloudflare.com.
    CLOUDFLARE_CF_FETCH_ENABLED: process.env.CLOUDFLARE_CF_FETCH_ENABLED ?? "false",
  });
  const base = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  await waitFor("wrangler dev", async () => (await fetch(`${base}/health`, { signal: AbortSignal.timeout(2000) })).ok, 120_000);

  // wrangler dev does not fire cron triggers by itself: this timer stands in for the minute trigger, at the
  // reconcile interval so retries and reclaimed leases are not a minute away while developing.
  const cronEveryMs = config.dispatch.reconcile_interval_seconds * 1000;
  cronTimer = setInterval(() => {
    fetch(`${base}/__scheduled?cron=${encodeURIComponent("* * * * *")}`, { signal: AbortSignal.timeout(cronEveryMs * 5) })
      .then((res) => res.arrayBuffer())
      .catch((err: unknown) => say(`cron trigger failed: ${(err as Error).message}`));
  }, cronEveryMs);

  const key = config.api.keys[0] ?? "<your key>";
  say(`ready: API ${base}  docs ${base}/docs  (worker in workerd; gpu-node web ${gpuNodes.split("|")[1] ?? gpuNodes})`);
  say(`try: curl -s -X POST ${base}/api/v1/generate -H 'X-API-Key: ${key}' -H 'Content-Type: application/json' -d '{"prompt":"a lighthouse at dusk"}'`);
}

main().catch((err: unknown) => {
  say(`failed: ${err instanceof Error ? err.message : String(err)}`);
  void stopAll(1);
});
