import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { Config } from "../../shared/config/config.schema.js";
import { noopTaskEvents } from "../adapters/noop.task-events.js";
import { offlineGpuStatus } from "../adapters/offline.gpu-status.js";
import { systemClock } from "../adapters/system.clock.js";
import { createApp } from "../app.js";
import type { AppDeps, AppOpenAPI } from "../app.types.js";
import type { Migration } from "../db/migrator.js";
import type { Logger } from "../ports/logger.port.js";
import { readDocsAssets } from "./docs-assets.fs.js";
import { filePathOfUrl, openMigratedDatabase, type OpenDatabase } from "./open-database.js";
import { createPinoLogger } from "./pino.logger.js";
import { startWalCheckpointer, type WalCheckpointer } from "./wal-checkpointer.js";

// The Node edge as a library: open and migrate the database, build the app, listen. main.ts, `npm run dev`,
// the tests and the benchmark all start it this way.

export interface EdgeServerOptions {
  logger?: Logger;
  /** Defaults to the migrations folder. */
  migrations?: readonly Migration[];
  /** Replace the placeholder ports (until the GPU tier and dispatcher exist, the defaults). */
  gpuStatus?: AppDeps["gpuStatus"];
  taskEvents?: AppDeps["taskEvents"];
  clock?: AppDeps["clock"];
}

export interface EdgeServer {
  url: string;
  port: number;
  app: AppOpenAPI;
  database: OpenDatabase;
  /** Stops accepting connections, lets in-flight requests finish, closes the database. */
  close(): Promise<void>;
}

export async function startEdgeServer(config: Config, options: EdgeServerOptions = {}): Promise<EdgeServer> {
  const logger = options.logger ?? createPinoLogger(config.log_level);
  const database = await openMigratedDatabase(config, options.migrations);
  if (database.applied.length > 0) logger.info({ migrations: database.applied }, "migrations applied");
  const filePath = database.url.startsWith("file:") ? filePathOfUrl(database.url) : null;
  const checkpointer: WalCheckpointer | null = filePath ? await startWalCheckpointer(database.client, filePath, logger) : null;
  const app = createApp({
    config,
    db: database.db,
    clock: options.clock ?? systemClock,
    logger,
    gpuStatus: options.gpuStatus ?? offlineGpuStatus,
    taskEvents: options.taskEvents ?? noopTaskEvents,
    docsAssets: readDocsAssets(),
    // This process owns the database: concurrent inserts may share commits.
    coalesceInserts: true,
  });

  const { host, port } = config.server;
  let server: ReturnType<typeof serve>;
  try {
    server = await new Promise<ReturnType<typeof serve>>((resolvePromise, reject) => {
      const s = serve({ fetch: app.fetch, hostname: host, port }, () => resolvePromise(s));
      s.once("error", reject);
    });
  } catch (err) {
    await checkpointer?.stop();
    database.client.close();
    throw err;
  }
  const address = server.address() as AddressInfo;
  const urlHost = address.family === "IPv6" ? `[${address.address}]` : address.address;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= new Promise<void>((resolveClose) => {
      server.close(() => {
        void (checkpointer?.stop() ?? Promise.resolve()).then(() => {
          database.client.close();
          resolveClose();
        });
      });
      // Keep-alive connections with no request in flight would hold close() open.
      if ("closeIdleConnections" in server) server.closeIdleConnections();
    }));

  return { url: `http://${urlHost}:${address.port}`, port: address.port, app, database, close };
}
