// The Node edge process: `tsx edge/node/main.ts` (`npm run dev` starts it beside s3rver and a gpu-node).
import { loadNodeConfigOrExit } from "../../shared/node/config.load.js";
import { startEdgeServer } from "./edge-server.js";
import { createPinoLogger } from "./pino.logger.js";

const SHUTDOWN_TIMEOUT_MS = 10_000;

async function main(): Promise<void> {
  const config = loadNodeConfigOrExit();
  const logger = createPinoLogger(config.log_level);
  let server;
  try {
    server = await startEdgeServer(config, { logger });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") {
      console.error(`server.port: ${config.server.host}:${config.server.port} is already in use (set PORT or server.port)`);
      process.exit(1);
    }
    throw err;
  }
  logger.info({ url: server.url, database: server.database.url.startsWith("file:") ? server.database.url : "(remote)" }, "edge listening");

  const shutdown = (signal: string) => {
    logger.info({ signal }, "shutting down");
    setTimeout(() => {
      logger.error("in-flight requests did not finish in time; exiting");
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS).unref();
    void server.close().then(() => process.exit(0));
  };
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.once("SIGTERM", () => shutdown("SIGTERM"));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
