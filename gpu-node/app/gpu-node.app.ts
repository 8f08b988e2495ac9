// Assembles a gpu-node from its parts (config parsed by the caller): object store, service core, the grpc-js
// and gRPC-web/Connect listeners and the metrics server; and takes it down in order on shutdown.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { Config } from "../../shared/config/config.schema.js";
import { GpuNode } from "../../shared/gen/sd/v1/gpu_pb.js";
import { NodeMetrics, startMetricsServer } from "../observability/node.metrics.js";
import type { PipelineRunner } from "../pipeline/pipeline.types.js";
import { GenerationService } from "../service/generation.service.js";
import { MinioStore } from "../storage/minio.store.js";
import type { ObjectStore } from "../storage/object-store.port.js";
import { startConnectServer } from "../transport/connect.server.js";
import { startGrpcServer } from "../transport/grpc.server.js";
import { ServingStatus } from "../transport/health.service.js";
import { defaultScheduler } from "./default-scheduler.js";

export interface GpuNodeDeps {
  /** Owned by the caller: the node does not close it (tests share one across nodes). */
  runner: PipelineRunner;
  logger: Logger;
  /** The MinIO store from config.minio when absent. */
  store?: ObjectStore;
}

export interface RunningGpuNode {
  service: GenerationService;
  metrics: NodeMetrics;
  grpcPort: number;
  webPort: number;
  metricsPort: number;
  /**
   * Stops accepting tasks, fails queued ones as retryable, lets running ones finish (bounded by
   * gpu_node.shutdown_timeout_seconds), then closes the listeners. Idempotent.
   */
  shutdown(): Promise<void>;
}

// Streams still open once every task has ended get this long to drain before their sockets are cut.
const LISTENER_GRACE_MS = 2_000;

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

export async function startGpuNode(config: Config, deps: GpuNodeDeps): Promise<RunningGpuNode> {
  const { logger, runner } = deps;
  const node = config.gpu_node;
  const metrics = new NodeMetrics();
  const store = deps.store ?? new MinioStore({ minio: config.minio, logger: logger.child({ component: "storage" }) });
  try {
    await store.prepare();
  } catch (error) {
    // The S3 server may come up after us; every upload prepares again before giving up.
    logger.warn({ err: error }, "object store not ready at start-up; uploads will retry");
  }

  logLoras(runner, logger.child({ component: "lora" }));

  let grpcPort = node.grpc_port;
  const service = new GenerationService({
    runner,
    store,
    config,
    defaultScheduler: defaultScheduler(config),
    logger,
    observer: metrics,
    nodeId: () => `${hostname()}:${grpcPort}`,
    version: packageVersion(),
  });

  // The whole request is the init image plus a few hundred bytes of parameters.
  const maxRequestBytes = config.api.limits.max_init_image_bytes + 1024 * 1024;
  const common = { service, host: node.host, tierSecret: config.tier_secret, maxRequestBytes };
  const grpc = await startGrpcServer({ ...common, port: node.grpc_port, logger: logger.child({ component: "grpc" }) });
  grpcPort = grpc.port;
  const web = await startConnectServer({ ...common, port: node.web_port, logger: logger.child({ component: "connect" }) });
  const metricsServer = await startMetricsServer({
    metrics,
    host: node.host,
    port: node.metrics_port,
    health: () => {
      const status = service.status();
      return {
        ok: status.accepting && status.modelLoaded,
        status: status.accepting ? "ok" : "shutting_down",
        model_loaded: status.modelLoaded,
        queue_depth: status.queueDepth,
        running: status.runningTaskIds.length,
      };
    },
  });
  logger.info(
    { grpc_port: grpc.port, web_port: web.port, metrics_port: metricsServer.port, model: runner.status().modelName },
    "gpu-node ready",
  );

  let stopping: Promise<void> | null = null;
  return {
    service,
    metrics,
    grpcPort: grpc.port,
    webPort: web.port,
    metricsPort: metricsServer.port,
    shutdown() {
      stopping ??= (async () => {
        logger.info({ timeout_s: node.shutdown_timeout_seconds }, "shutting down: no new tasks, finishing running ones");
        grpc.health.setStatus(GpuNode.typeName, ServingStatus.NOT_SERVING);
        // Listeners stay open meanwhile: clients attached to running tasks still get their events.
        await service.shutdown(node.shutdown_timeout_seconds * 1000);
        await Promise.all([grpc.close(LISTENER_GRACE_MS), web.close(LISTENER_GRACE_MS), metricsServer.close()]);
        service.dispose();
        logger.info("gpu-node stopped");
      })();
      return stopping;
    },
  };
}

/** What the pipeline found in lora.models_dir and the start-up list: broken files and keys that match nothing. */
function logLoras(runner: PipelineRunner, logger: Logger): void {
  const { adapters, cache } = runner.loras();
  if (adapters.length === 0) return;
  for (const adapter of adapters) {
    if (adapter.error) {
      logger.error({ lora: adapter.name }, `LoRA "${adapter.name}" is skipped (requests naming it are refused): ${adapter.error}`);
    } else if (adapter.unmatchedKeys.length > 0) {
      logger.warn(
        { lora: adapter.name, matched: adapter.matchedModules, unmatched: adapter.unmatchedKeys.length, examples: adapter.unmatchedKeys.slice(0, 5) },
        `LoRA "${adapter.name}": ${adapter.unmatchedKeys.length} keys match no weight of the model`,
      );
    }
  }
  const startup = adapters.filter((a) => a.startupWeight !== null).map((a) => ({ name: a.name, weight: a.startupWeight }));
  logger.info(
    {
      available: adapters.filter((a) => !a.error).map((a) => a.name),
      broken: adapters.filter((a) => a.error).length,
      startup,
      cache_mb: Math.round(cache.limitBytes / (1024 * 1024)),
    },
    "LoRA adapters",
  );
}
