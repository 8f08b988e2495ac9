// Structured JSON logs (pino). Task-scoped lines carry `task_id` through child loggers.
import { pino, type Logger } from "pino";
import type { Config } from "../../shared/config/config.schema.js";

export function createLogger(level: Config["log_level"]): Logger {
  return pino({ level, base: { service: "gpu-node" } });
}
