import { z } from "zod";
import { ConfigError, parseConfig, type Config, type ConfigEnv } from "../../shared/config/config.schema.js";
import type { WorkerEnv } from "./worker.env.js";

// The worker's config: the [vars.CONFIG] table (config.yaml's keys) with the string bindings (vars and secrets)
// applied as the same environment overrides the Node edge reads, through the same zod schema. Parsed once per
// isolate, at the first event.

/** The string-valued bindings, as the environment the overrides read (queues, objects and JSON vars left out). */
export function stringBindings(env: object): ConfigEnv {
  const out: ConfigEnv = {};
  for (const [name, value] of Object.entries(env)) if (typeof value === "string") out[name] = value;
  return out;
}

function rawConfig(value: unknown): unknown {
  if (value === undefined || value === null || value === "") return {};
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value) as unknown;
  } catch (err) {
    throw new ConfigError(`CONFIG: not valid JSON: ${(err as Error).message}`);
  }
}

/** Settings that parse but cannot work inside workerd, refused with the key to change. */
function checkWorkerSettings(config: Config): void {
  const problems: string[] = [];
  const url = config.database.url;
  if (url === null) problems.push("  database.url (DATABASE_URL): required on Workers (libsql://, https:// or http:// of a libSQL server)");
  else if (!/^(libsql|https?):\/\//.test(url)) problems.push(`  database.url (DATABASE_URL): Workers reach libSQL over HTTP; got a ${url.split(":", 1)[0]}: URL`);
  config.gpu_nodes.forEach((node, i) => {
    if (!node.web) problems.push(`  gpu_nodes.${i}.web: required on Workers (the node's gRPC-web listener; GPU_NODES "host:port|http://host:webport")`);
  });
  if (problems.length > 0) throw new ConfigError(`invalid config for Workers:\n${problems.join("\n")}`);
}

export function parseWorkerConfig(env: WorkerEnv): Config {
  const config = parseConfig(rawConfig(env.CONFIG), stringBindings(env));
  checkWorkerSettings(config);
  return config;
}

/**
 * The platform limits a queue consumer stays within (vars, not config.yaml keys: they describe the Cloudflare plan,
 * not the service). A consumer holding a generation hands it over to a fresh invocation before either runs out.
 */
const workerLimitsSchema = z.object({
  // Subrequests per invocation: 50 on Workers Free, 1,000 on Paid (10,000 in the current limits page).
  SUBREQUEST_LIMIT: z.coerce.number().int().min(20).default(1000),
  // Queue consumers may run 15 minutes of wall time; hand over a minute before.
  CONSUMER_WALL_SECONDS: z.coerce.number().int().min(5).max(900).default(840),
});

export interface WorkerLimits {
  subrequests: number;
  consumerWallMs: number;
}

export function parseWorkerLimits(env: WorkerEnv): WorkerLimits {
  const result = workerLimitsSchema.safeParse({ SUBREQUEST_LIMIT: env.SUBREQUEST_LIMIT || undefined, CONSUMER_WALL_SECONDS: env.CONSUMER_WALL_SECONDS || undefined });
  if (!result.success) {
    throw new ConfigError(`invalid worker limits:\n${result.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`).join("\n")}`);
  }
  return { subrequests: result.data.SUBREQUEST_LIMIT, consumerWallMs: result.data.CONSUMER_WALL_SECONDS * 1000 };
}
