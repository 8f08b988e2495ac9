import { z } from "zod";

// One schema for config.yaml, used by every entry point (Node edge, Workers edge, gpu-node).
// It keeps the original service's keys (sd_model, lora, default_scheduler, minio, api, callback,
// health_check, task_db, device) and adds ours beside them. Runs anywhere: no `node:` imports.

const commaList = z
  .union([z.array(z.string()), z.string()])
  .transform((v) => (typeof v === "string" ? v.split(",") : v).map((s) => s.trim()).filter((s) => s.length > 0));

const port = z.coerce.number().int().min(0).max(65535);

const loraModel = z.object({
  path: z.string().min(1),
  weight: z.number().default(1),
  // The original accepted a list or one comma-separated string.
  trigger_words: commaList.default([]),
});

export const configSchema = z.object({
  sd_model: z
    .object({
      path: z.string().min(1).default("models/tiny-sd"),
      // Name written into PNG metadata and reported by GetStatus; defaults to the directory's name.
      name: z.string().min(1).nullable().default(null),
    })
    .prefault({}),
  lora: z
    .object({
      models: z.array(loraModel).default([]),
      models_dir: z.string().nullable().default(null),
      models_list: z.array(loraModel).default([]),
      // Sessions with merged adapters are cached per adapter set; this bounds their weight copies.
      cache_mb: z.number().int().positive().default(4096),
    })
    .prefault({}),
  // null: the scheduler named by the model's scheduler_config.json.
  default_scheduler: z.string().min(1).nullable().default(null),
  device: z.enum(["cpu", "cuda", "mps"]).default("cpu"),
  minio: z
    .object({
      endpoint: z.string().min(1).default("127.0.0.1:9000"),
      access_key: z.string().default("S3RVER"),
      secret_key: z.string().default("S3RVER"),
      bucket: z.string().min(3).default("sd-images"),
      secure: z.boolean().default(false),
      region: z.string().default("us-east-1"),
      prefix: z.string().default("images"),
      // URL = public_base_url + "/" + bucket + "/" + key; null derives it from endpoint and secure. Presigned
      // URLs are signed for this base's host (see gpu-node/storage/minio.store.ts).
      public_base_url: z.url().nullable().default(null),
      url_mode: z.enum(["public", "presigned"]).default("public"),
      presign_expiry_seconds: z.number().int().min(1).max(7 * 24 * 3600).default(7 * 24 * 3600),
      public_read_policy: z.boolean().default(true),
    })
    .prefault({}),
  api: z
    .object({
      keys: commaList.default([]),
      key_header: z.string().min(1).default("X-API-Key"),
      cors_origins: commaList.default(["*"]),
      rate_limit: z
        .object({
          enabled: z.boolean().default(false),
          // Token bucket per API key for POST /api/v1/generate.
          capacity: z.number().int().positive().default(10),
          refill_per_second: z.number().positive().default(1),
        })
        .prefault({}),
      limits: z
        .object({
          max_pixels: z.number().int().positive().default(1024 * 1024),
          max_init_image_bytes: z.number().int().positive().default(10 * 1024 * 1024),
        })
        .prefault({}),
    })
    .prefault({}),
  health_check: z.object({ no_auth: z.boolean().default(true) }).prefault({}),
  task_db: z
    .object({
      path: z.string().min(1).default("data/tasks.db"),
      // Finished tasks (completed, failed, cancelled) created more than this many days ago are deleted, with their
      // callback records, by the periodic pass (a callback still being delivered keeps its task). null keeps every
      // task for ever, as the original service did.
      retention_days: z.number().positive().nullable().default(null),
    })
    .prefault({}),
  database: z
    .object({
      // libSQL URL (file:, libsql://, http(s)://). null: a local file at task_db.path.
      url: z.string().min(1).nullable().default(null),
      auth_token: z.string().nullable().default(null),
    })
    .prefault({}),
  callback: z
    .object({
      retry_times: z.number().int().min(0).default(3),
      // Seconds; the minimum delay between attempts (backoff grows from it).
      retry_interval: z.number().min(0).default(5),
      timeout_seconds: z.number().positive().default(30),
      // Standard Webhooks signing secret ("whsec_<base64>" or any string); null sends unsigned callbacks.
      secret: z.string().min(1).nullable().default(null),
      // SSRF guard: loopback, private and link-local targets are refused unless this is true.
      allow_private_targets: z.boolean().default(false),
      // Delivery stops after this many attempts (never fewer than retry_times + 1) or once the next attempt
      // would start later than max_retry_window_seconds after the event; delays grow from retry_interval
      // (doubling, full jitter) up to max_backoff_seconds. The defaults keep trying for about an hour.
      max_attempts: z.number().int().positive().default(20),
      max_retry_window_seconds: z.number().positive().default(3600),
      max_backoff_seconds: z.number().positive().default(600),
    })
    .prefault({}),
  server: z
    .object({
      host: z.string().default("127.0.0.1"),
      port: port.default(8000),
    })
    .prefault({}),
  generation_defaults: z
    .object({
      // Used when a request leaves the field null (diffusers' own defaults).
      num_inference_steps: z.number().int().min(1).max(150).default(50),
      guidance_scale: z.number().min(0).max(50).default(7.5),
      strength: z.number().min(0).max(1).default(0.75),
      // null: the model's native size (unet sample_size x VAE scale factor).
      width: z.number().int().nullable().default(null),
      height: z.number().int().nullable().default(null),
    })
    .prefault({}),
  // GPU nodes the edge dispatches to.
  gpu_nodes: z
    .array(
      z.object({
        name: z.string().min(1).optional(),
        // host:port of the grpc-js (h2c) listener, used by the Node edge.
        grpc: z.string().min(1),
        // base URL of the gRPC-web/Connect listener, used by the Workers edge.
        web: z.url().optional(),
      }),
    )
    .default([{ grpc: "127.0.0.1:50051", web: "http://127.0.0.1:50052" }]),
  // Shared secret between edge and gpu-node (metadata `x-tier-secret`); null disables the check.
  tier_secret: z.string().min(1).nullable().default(null),
  gpu_node: z
    .object({
      host: z.string().default("127.0.0.1"),
      grpc_port: port.default(50051),
      web_port: port.default(50052),
      metrics_port: port.default(9464),
      queue_capacity: z.number().int().positive().default(64),
      // Generations run at once: one pipeline worker thread with its own copy of the model per slot (memory x N).
      // With onnx.intra_op_threads 0 each session takes every core, so on CPU set threads to cores / N.
      concurrency: z.number().int().positive().default(1),
      result_ttl_seconds: z.number().int().positive().default(3600),
      shutdown_timeout_seconds: z.number().positive().default(60),
      // onnxruntime keeps its memory pools at their peak until its session ends. After a job, when the process's
      // RSS is above this (MiB) and no job waits, the pipeline worker is replaced (the model loads again; the
      // next job waits for it). Null: never. Set it well above the RSS of a typical job.
      recycle_rss_mb: z.number().int().positive().nullable().default(null),
    })
    .prefault({}),
  dispatch: z
    .object({
      // A claimed task's lease; renewed every third of it while its event stream lives. An edge that dies
      // holding tasks delays their retry by at most this long.
      lease_seconds: z.number().positive().default(30),
      // Attempts per task (claims that reached a node); then the task fails naming the last error.
      max_attempts: z.number().int().positive().default(3),
      // The periodic pass: node status, expired leases, timeouts, then dispatch (new tasks go out at once anyway).
      reconcile_interval_seconds: z.number().positive().default(10),
      // Tasks an edge sends to a node beyond its concurrency: they wait in the node's queue and start the moment a
      // slot frees. Kept small so the database stays the queue and a dying node strands few tasks.
      prefetch: z.number().int().min(0).default(1),
      // At most one progress write per task per interval (the last step is always written).
      progress_interval_ms: z.number().int().min(0).default(250),
      // Pending tasks fail after waiting this long while no GPU node is healthy (generous: nodes restart).
      pending_timeout_seconds: z.number().positive().default(1800),
      // A started task whose node sends no event for this long is taken back and retried (a hung node).
      stall_timeout_seconds: z.number().positive().default(600),
    })
    .prefault({}),
  onnx: z
    .object({
      // 0 lets onnxruntime choose.
      intra_op_threads: z.number().int().min(0).default(0),
      graph_optimization_level: z.enum(["disabled", "basic", "extended", "all"]).default("all"),
      // UNet/VAE batches are split into chunks whose estimated working set fits this budget.
      memory_budget_mb: z.number().int().positive().default(2048),
    })
    .prefault({}),
  output: z
    .object({
      jpeg_quality: z.number().int().min(1).max(100).default(95),
    })
    .prefault({}),
  log_level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Environment variables that override config.yaml (secrets and per-process settings). */
export type ConfigEnv = Record<string, string | undefined>;

const ENV_OVERRIDES: ReadonlyArray<[env: string, path: string[], parse?: (v: string) => unknown]> = [
  ["PORT", ["server", "port"]],
  ["HOST", ["server", "host"]],
  ["SD_API_KEYS", ["api", "keys"]],
  ["DATABASE_URL", ["database", "url"]],
  ["DATABASE_AUTH_TOKEN", ["database", "auth_token"]],
  ["SD_MODEL_PATH", ["sd_model", "path"]],
  ["MINIO_ENDPOINT", ["minio", "endpoint"]],
  ["MINIO_ACCESS_KEY", ["minio", "access_key"]],
  ["MINIO_SECRET_KEY", ["minio", "secret_key"]],
  ["MINIO_BUCKET", ["minio", "bucket"]],
  ["MINIO_PUBLIC_BASE_URL", ["minio", "public_base_url"]],
  ["WEBHOOK_SECRET", ["callback", "secret"]],
  ["TIER_SECRET", ["tier_secret"]],
  // Comma list of "grpcHost:port" or "grpcHost:port|http://webHost:port".
  ["GPU_NODES", ["gpu_nodes"], parseGpuNodes],
  ["GPU_GRPC_PORT", ["gpu_node", "grpc_port"]],
  ["GPU_WEB_PORT", ["gpu_node", "web_port"]],
  ["GPU_METRICS_PORT", ["gpu_node", "metrics_port"]],
  ["LOG_LEVEL", ["log_level"]],
];

function parseGpuNodes(value: string): unknown {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const [grpc, web] = entry.split("|").map((s) => s.trim());
      return web ? { grpc, web } : { grpc };
    });
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]] = value;
}

/** Applies the documented environment overrides to a raw (unparsed) config object. */
export function applyEnvOverrides(raw: unknown, env: ConfigEnv): Record<string, unknown> {
  const base = raw === null || raw === undefined ? {} : raw;
  if (typeof base !== "object" || Array.isArray(base)) {
    throw new ConfigError("config: the top level must be a mapping of keys");
  }
  const out = structuredClone(base) as Record<string, unknown>;
  for (const [name, path, parse] of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    setPath(out, path, parse ? parse(value) : value);
  }
  return out;
}

/** Validates a raw config (after env overrides); a ConfigError names the first offending keys. */
export function parseConfig(raw: unknown, env: ConfigEnv = {}): Config {
  const result = configSchema.safeParse(applyEnvOverrides(raw, env));
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const key = issue.path.length > 0 ? issue.path.join(".") : "(root)";
      return `  ${key}: ${issue.message}`;
    });
    throw new ConfigError(`invalid config:\n${lines.join("\n")}`);
  }
  return result.data;
}
