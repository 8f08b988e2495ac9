import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { serve } from "@hono/node-server";
import type { Config } from "../../shared/config/config.schema.js";
import { systemClock } from "../adapters/system.clock.js";
import { createApp } from "../app.js";
import type { AppDeps, AppOpenAPI } from "../app.types.js";
import type { Migration } from "../db/migrator.js";
import { DispatchRepo } from "../dispatch/dispatch.repo.js";
import { Dispatcher } from "../dispatch/dispatcher.js";
import { NodePool, type PoolNode } from "../dispatch/node-pool.js";
import { TaskOutcomes } from "../dispatch/task-outcomes.js";
import { createGpuNodesLoraCatalog } from "../gpu/gpu-nodes.lora-catalog.js";
import { createGrpcGpuClient } from "../gpu/grpc.gpu-client.js";
import type { Logger } from "../ports/logger.port.js";
import { OutboxRepo } from "../webhooks/outbox.repo.js";
import type { HostResolver } from "../webhooks/ssrf.guard.js";
import { retryPolicyFromConfig } from "../webhooks/webhook.backoff.js";
import { WebhookDeliverer } from "../webhooks/webhook.deliverer.js";
import { WebhookSigner } from "../webhooks/webhook.signing.js";
import type { WebhookTransport } from "../webhooks/webhook-transport.port.js";
import { startEdgeLoops, type EdgeLoops } from "./background.loops.js";
import { dnsHostResolver } from "./dns.host-resolver.js";
import { readDocsAssets } from "./docs-assets.fs.js";
import { httpWebhookTransport } from "./http.webhook-transport.js";
import { FILE_CONNECTION_PRAGMAS, filePathOfUrl, openMigratedDatabase, type OpenDatabase } from "./open-database.js";
import { createPinoLogger } from "./pino.logger.js";
import { PromMetrics } from "./prom.metrics.js";
import { openLibsqlStatementCache } from "./statement-cache.libsql.js";
import { REQUEST_CONNECTION_CHECKPOINT_PRAGMAS, startWalCheckpointer, type WalCheckpointer } from "./wal-checkpointer.js";

// The Node edge as a library: open and migrate the database, build the app with its dispatcher (GPU nodes over
// grpc-js), webhook delivery and Prometheus metrics, run their loops, listen. main.ts, `npm run dev`, the tests
// and the benchmarks all start it this way.

export interface EdgeServerOptions {
  logger?: Logger;
  /** Defaults to the migrations folder. */
  migrations?: readonly Migration[];
  /** GET /health's model_loaded; default: the GPU nodes' GetStatus (cached briefly). */
  gpuStatus?: AppDeps["gpuStatus"];
  /** GET /api/v1/loras and the check of `loras`; default: the GPU nodes' ListLoras (cached briefly). */
  loraCatalog?: AppDeps["loraCatalog"];
  clock?: AppDeps["clock"];
  /** The GPU nodes; default: a grpc-js client per config.gpu_nodes entry. */
  gpuNodes?: PoolNode[];
  /** This process's lease owner id (default: host, pid and a random suffix). */
  instanceId?: string;
  webhookTransport?: WebhookTransport;
  hostResolver?: HostResolver;
}

export interface EdgeServer {
  url: string;
  port: number;
  app: AppOpenAPI;
  database: OpenDatabase;
  dispatcher: Dispatcher;
  nodes: NodePool;
  outbox: OutboxRepo;
  metrics: PromMetrics;
  /**
   * Stops accepting connections, lets in-flight requests finish, stops the loops, hands the tasks it streams
   * over (their leases end now, so another edge re-attaches at once), closes the database.
   */
  close(): Promise<void>;
}

/** The node names tasks record: config.gpu_nodes[].name, else the grpc address. */
export function grpcPoolNodes(config: Config): PoolNode[] {
  return config.gpu_nodes.map((node) => ({
    name: node.name ?? node.grpc,
    client: createGrpcGpuClient({
      address: node.grpc,
      tierSecret: config.tier_secret,
      // The init image plus the other fields.
      maxSendBytes: config.api.limits.max_init_image_bytes + 1024 * 1024,
    }),
  }));
}

export async function startEdgeServer(config: Config, options: EdgeServerOptions = {}): Promise<EdgeServer> {
  const logger = options.logger ?? createPinoLogger(config.log_level);
  const database = await openMigratedDatabase(config, options.migrations);
  if (database.applied.length > 0) logger.info({ migrations: database.applied }, "migrations applied");
  const filePath = database.url.startsWith("file:") ? filePathOfUrl(database.url) : null;
  const checkpointer: WalCheckpointer | null = filePath ? await startWalCheckpointer(database.client, filePath, logger) : null;
  // A second connection (kept statements for task polls and coalesced inserts), set up as the driver's is.
  const statements = filePath ? openLibsqlStatementCache(filePath, [...FILE_CONNECTION_PRAGMAS, ...REQUEST_CONNECTION_CHECKPOINT_PRAGMAS]) : null;
  const clock = options.clock ?? systemClock;
  const instanceId = options.instanceId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const dispatchRepo = new DispatchRepo(database.db);
  const poolNodes = options.gpuNodes ?? grpcPoolNodes(config);
  const nodes = new NodePool(poolNodes, { prefetch: config.dispatch.prefetch, logger });
  const metrics = new PromMetrics({ taskCounts: () => dispatchRepo.countByStatus(), nodes: () => nodes.views() });
  const outbox = new OutboxRepo(database.db);
  let loops: EdgeLoops | null = null;
  const dispatcher = new Dispatcher({
    repo: dispatchRepo,
    outcomes: new TaskOutcomes(database.db),
    nodes,
    clock,
    logger,
    metrics,
    instanceId,
    settings: config.dispatch,
    onFinished: () => loops?.wakeWebhooks(),
    retentionDays: config.task_db.retention_days,
  });
  const deliverer = new WebhookDeliverer({
    repo: outbox,
    transport: options.webhookTransport ?? httpWebhookTransport,
    resolver: options.hostResolver ?? dnsHostResolver,
    signer: config.callback.secret ? new WebhookSigner(config.callback.secret) : null,
    clock,
    logger,
    metrics,
    instanceId,
    policy: retryPolicyFromConfig(config.callback),
    timeoutMs: config.callback.timeout_seconds * 1000,
    allowPrivateTargets: config.callback.allow_private_targets,
  });
  const app = createApp({
    config,
    db: database.db,
    clock,
    logger,
    gpuStatus: options.gpuStatus ?? { modelLoaded: () => nodes.modelLoaded() },
    loraCatalog: options.loraCatalog ?? createGpuNodesLoraCatalog(poolNodes.map((n) => n.client), clock),
    taskEvents: {
      // No polling delay: a new task goes out at once when a node has room.
      onTaskCreated: () => dispatcher.kick(),
      onTaskCancelled: (taskId, node) => {
        dispatcher.cancel(taskId, node);
        loops?.wakeWebhooks();
      },
    },
    docsAssets: readDocsAssets(),
    // This process owns the database: concurrent inserts may share commits.
    coalesceInserts: true,
    statements: statements ?? undefined,
    metrics,
  });
  // Prometheus scrapes /metrics without a key (keep the edge on a private interface, or filter it upstream).
  const fetchWithMetrics = (request: Request, env?: unknown): Response | Promise<Response> => {
    const { url } = request;
    if (request.method === "GET" && url.includes("/metrics") && new URL(url).pathname === "/metrics") {
      return metrics.render().then(({ contentType, body }) => new Response(body, { headers: { "content-type": contentType } }));
    }
    return app.fetch(request, env);
  };

  const { host, port } = config.server;
  let server: ReturnType<typeof serve>;
  try {
    server = await new Promise<ReturnType<typeof serve>>((resolvePromise, reject) => {
      const s = serve({ fetch: fetchWithMetrics, hostname: host, port }, () => resolvePromise(s));
      s.once("error", reject);
    });
  } catch (err) {
    statements?.close();
    await checkpointer?.stop();
    database.client.close();
    nodes.close();
    throw err;
  }
  // Start-up: reconcile expired leases and dispatch what waits, then keep doing it periodically.
  loops = startEdgeLoops({ config, dispatcher, deliverer, outbox, logger });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === "IPv6" ? `[${address.address}]` : address.address;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= new Promise<void>((resolveClose) => {
      server.close(() => {
        void (async () => {
          await loops?.stop();
          await dispatcher.stop();
          statements?.close();
          await checkpointer?.stop();
          database.client.close();
          nodes.close();
          resolveClose();
        })();
      });
      // Keep-alive connections with no request in flight would hold close() open.
      if ("closeIdleConnections" in server) server.closeIdleConnections();
    }));

  return { url: `http://${urlHost}:${address.port}`, port: address.port, app, database, dispatcher, nodes, outbox, metrics, close };
}
