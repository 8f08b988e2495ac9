import { pino } from "pino";
import type { Config } from "../../shared/config/config.schema.js";
import type { Logger } from "../ports/logger.port.js";

/** JSON lines on stdout. Nothing logs headers or query strings, and these paths are censored should one slip in. */
export function createPinoLogger(level: Config["log_level"], name = "edge"): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: ["headers.authorization", 'headers["x-api-key"]', "api_key", "apiKey", "key", "keys"],
      censor: "[redacted]",
    },
  });
}
