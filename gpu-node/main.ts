// `npm run gpu-node`: config (SD_CONFIG or ./config.yaml + env), the pipeline worker with its model, then the
// listeners. SIGTERM/SIGINT: stop accepting, let running tasks finish (gpu_node.shutdown_timeout_seconds),
// fail queued ones as retryable, close the listeners, exit. A second signal exits at once.
import { loadNodeConfigOrExit } from "../shared/node/config.load.js";
import { startGpuNode } from "./app/gpu-node.app.js";
import { createLogger } from "./observability/logger.js";
import { createPipelineRunner } from "./pipeline/pipeline.host.js";

// Past the shutdown timeout, the abort grace and the listeners' drain, something is stuck: exit anyway.
const HARD_EXIT_MARGIN_MS = 20_000;

const config = loadNodeConfigOrExit();
const logger = createLogger(config.log_level);

const runner = await createPipelineRunner(config).catch((error: unknown) => {
  logger.fatal({ err: error, model: config.sd_model.path }, "could not load the model");
  process.exit(1);
});
const node = await startGpuNode(config, { runner, logger }).catch(async (error: unknown) => {
  logger.fatal({ err: error }, "could not start the gpu-node");
  await runner.close();
  process.exit(1);
});

let stopping = false;
function stop(signal: NodeJS.Signals): void {
  if (stopping) {
    logger.warn({ signal }, "second signal: exiting now");
    process.exit(1);
  }
  stopping = true;
  logger.info({ signal }, "signal received");
  setTimeout(() => {
    logger.error("shutdown did not finish in time; exiting");
    process.exit(1);
  }, config.gpu_node.shutdown_timeout_seconds * 1000 + HARD_EXIT_MARGIN_MS).unref();
  node
    .shutdown()
    .then(() => runner.close())
    .then(() => process.exit(0))
    .catch((error: unknown) => {
      logger.error({ err: error }, "shutdown failed");
      process.exit(1);
    });
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
