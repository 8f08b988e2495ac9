import type { ExecutionContext, Queue } from "@cloudflare/workers-types";

// The bindings wrangler.toml gives the worker. Non-secret config sits in [vars] (CONFIG: the config.yaml keys as a
// table); secrets come from `wrangler secret put` (or .dev.vars locally) under the same names as the Node edge's
// environment overrides (shared/config/config.schema.ts ENV_OVERRIDES).

/**
 * What the dispatch queue carries. The rows are the truth; a message is a nudge: `dispatch` asks a consumer to
 * claim the next task and hold its event stream (taskId names the task that caused it, for the logs), `webhooks`
 * asks it to deliver the callbacks that are due.
 */
export type DispatchMessage = { kind: "dispatch"; taskId: string | null } | { kind: "webhooks" };

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
  /** Workers platform limits the consumer plans around (not config.yaml keys): see worker.config.ts. */
  SUBREQUEST_LIMIT?: string;
  CONSUMER_WALL_SECONDS?: string;
  DISPATCH_QUEUE: Queue<DispatchMessage>;
}

export type { ExecutionContext };
