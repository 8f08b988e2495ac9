// Starts the worker the way `wrangler dev` does (wrangler's unstable_dev: the real wrangler.toml, its build step
// and static assets, workerd with the queue and cron simulated by miniflare) against a real sqld. Not a test file.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unstable_dev } from "wrangler";
import { startSqld, type RunningSqld } from "../../edge/worker/dev/sqld.server.js";

const ROOT = new URL("../..", import.meta.url).pathname;

export interface TestWorker {
  baseUrl: string;
  /** Runs the cron handler once (wrangler's /__scheduled test route), as the minute trigger would. */
  triggerCron(): Promise<void>;
  stop(): Promise<void>;
}

export interface TestWorkerOptions {
  /** The CONFIG var: config.yaml's keys. */
  config: Record<string, unknown>;
  databaseUrl: string;
  /** Other string bindings (secrets such as WEBHOOK_SECRET, TIER_SECRET, GPU_NODES). */
  vars?: Record<string, string>;
  /** Where miniflare keeps the queue's state; one per test file so files running at once do not share it. */
  persistTo: string;
}

export async function startTestWorker(options: TestWorkerOptions): Promise<TestWorker> {
  // The sandbox has no internet: miniflare would otherwise try to download the Request.cf object at each start.
  process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
  process.env.WRANGLER_SEND_METRICS ??= "false";
  const worker = await unstable_dev(join(ROOT, "edge/worker/main.ts"), {
    config: join(ROOT, "wrangler.toml"),
    ip: "127.0.0.1",
    port: 0,
    inspect: false,
    persistTo: options.persistTo,
    logLevel: "warn",
    vars: { CONFIG: JSON.stringify(options.config), DATABASE_URL: options.databaseUrl, LOG_LEVEL: "warn", ...options.vars },
    experimental: { disableExperimentalWarning: true, disableDevRegistry: true, testScheduled: true },
  });
  const baseUrl = `http://127.0.0.1:${worker.port}`;
  return {
    baseUrl,
    async triggerCron() {
      const res = await fetch(`${baseUrl}/__scheduled?cron=${encodeURIComponent("* * * * *")}`);
      await res.text();
      if (!res.ok) throw new Error(`/__scheduled answered ${res.status}`);
    },
    stop: () => worker.stop(),
  };
}

/** One sqld and one temp directory for a test file. */
export interface WorkerTestBed {
  dir: string;
  sqld: RunningSqld;
  close(): Promise<void>;
}

export async function startWorkerTestBed(prefix: string): Promise<WorkerTestBed> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const sqld = await startSqld({ dbPath: join(dir, "sqld") });
  return {
    dir,
    sqld,
    async close() {
      await sqld.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
