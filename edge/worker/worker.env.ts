import type { ExecutionContext, Queue } from "@cloudflare/workers-types";

// The bindings wrangler.toml gives the worker. Non-secret config sits in [vars] (CONFIG: the config.yaml keys as a
// table); secrets come from `wrangler secret put` (or .dev.vars locally) under the same names as the Node edge's
// environment overrides (shared/config/config.schema.ts ENV_OVERRIDES).

/** What the dispatch queue carries: the id of a task to (re)dispatch. The row is the truth; this is a nudge. */
export interface DispatchMessage {
  taskId: string;
}

export interface WorkerEnv {
  /** The config.yaml keys, as a [vars.CONFIG] table (an object) or a JSON string. */
  CONFIG?: unknown;
  SD_API_KEYS?: string;
  DATABASE_URL?: string;
  DATABASE_AUTH_TOKEN?: string;
  WEBHOOK_SECRET?: string;
  TIER_SECRET?: string;
  /** Comma list of "grpcHost:port|https://web-listener" (the worker uses the web part). */
  GPU_NODES?: string;
  LOG_LEVEL?: string;
  DISPATCH_QUEUE: Queue<DispatchMessage>;
}

export type { ExecutionContext };
