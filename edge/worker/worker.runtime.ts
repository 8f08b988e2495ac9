import { systemClock } from "../adapters/system.clock.js";
import { createApp } from "../app.js";
import type { AppOpenAPI } from "../app.types.js";
import { createConnectGpuClient } from "../gpu/connect.gpu-client.js";
import { createGpuNodesLoraCatalog } from "../gpu/gpu-nodes.lora-catalog.js";
import type { GpuClient } from "../gpu/gpu-client.port.js";
import type { Clock } from "../ports/clock.port.js";
import type { Logger } from "../ports/logger.port.js";
import type { Config } from "../../shared/config/config.schema.js";
import { createConsoleLogger } from "./console.logger.js";
import { createGpuNodesStatus } from "./gpu-nodes.gpu-status.js";
import { openWorkerDatabase, type WorkerDatabase } from "./libsql-web.database.js";
import { queueTaskEvents } from "./queue.task-events.js";
import { parseWorkerConfig, parseWorkerLimits, type WorkerLimits } from "./worker.config.js";
import type { WorkerEnv } from "./worker.env.js";

// Everything the worker builds once per isolate (honojs/examples: clients built once, handlers never know the
// runtime): config, the libSQL client, one gRPC-web client per GPU node, the app. Built at the first event,
// because bindings exist only then and Workers allow no I/O or crypto at start-up; no part of it holds I/O
// across requests. (Queue and cron invocations build their dispatch machinery per invocation: dispatch-session.ts.)

export interface WorkerGpuNode {
  /** What tasks.node records: config.gpu_nodes[].name, else the grpc address (as the Node edge names it). */
  name: string;
  /** The node's gRPC-web listener. */
  web: string;
}

export interface WorkerRuntime {
  config: Config;
  limits: WorkerLimits;
  logger: Logger;
  clock: Clock;
  database: WorkerDatabase;
  gpuNodes: readonly WorkerGpuNode[];
  /** By node name: for GET /health and cancel, from the fetch handler. */
  gpuClients: ReadonlyMap<string, GpuClient>;
  app: AppOpenAPI;
}

export function createWorkerRuntime(env: WorkerEnv): WorkerRuntime {
  const config = parseWorkerConfig(env);
  const limits = parseWorkerLimits(env);
  const logger = createConsoleLogger(config.log_level);
  const clock = systemClock;
  const database = openWorkerDatabase(config);
  const gpuNodes = config.gpu_nodes.map((node) => ({ name: node.name ?? node.grpc, web: node.web! }));
  const gpuClients = new Map<string, GpuClient>();
  for (const node of gpuNodes) gpuClients.set(node.name, createConnectGpuClient({ baseUrl: node.web, tierSecret: config.tier_secret }));
  const app = createApp({
    config,
    db: database.db,
    clock,
    logger,
    gpuStatus: createGpuNodesStatus([...gpuClients.values()], clock),
    loraCatalog: createGpuNodesLoraCatalog([...gpuClients.values()], clock),
    taskEvents: queueTaskEvents(env.DISPATCH_QUEUE, gpuClients, logger),
    // Served by the platform: wrangler.toml [assets] holds the Swagger UI and ReDoc bundles at the same paths.
    docsAssets: undefined,
    // One request must not do I/O for another on Workers.
    coalesceInserts: false,
  });
  return { config, limits, logger, clock, database, gpuNodes, gpuClients, app };
}

const runtimes = new WeakMap<object, WorkerRuntime>();

/** The isolate's runtime for these bindings (the same object for every event of a deployment). */
export function workerRuntime(env: WorkerEnv): WorkerRuntime {
  let runtime = runtimes.get(env);
  if (!runtime) {
    runtime = createWorkerRuntime(env);
    runtimes.set(env, runtime);
  }
  return runtime;
}
