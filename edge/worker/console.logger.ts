import type { Config } from "../../shared/config/config.schema.js";
import type { LogFn, Logger } from "../ports/logger.port.js";

// The Workers logger: one JSON object per line on console (what `wrangler tail` and Workers Logs show), with the
// same levels and fields as the Node edge's pino lines.

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Number.POSITIVE_INFINITY } as const;

type Sink = (line: string) => void;

export function createConsoleLogger(level: Config["log_level"], name = "edge", sinks?: Partial<Record<keyof Logger, Sink>>): Logger {
  const threshold = LEVELS[level];
  const make = (method: keyof Logger): LogFn => {
    if (LEVELS[method] < threshold) return () => {};
    const sink: Sink = sinks?.[method] ?? ((line) => console[method === "debug" ? "log" : method](line));
    return ((objOrMsg: Record<string, unknown> | string, msg?: string) => {
      const fields = typeof objOrMsg === "string" ? { msg: objOrMsg } : { ...objOrMsg, ...(msg === undefined ? {} : { msg }) };
      sink(JSON.stringify({ level: LEVELS[method], time: Date.now(), name, ...fields }, errorReplacer));
    }) as LogFn;
  };
  return { error: make("error"), warn: make("warn"), info: make("info"), debug: make("debug") };
}

// Error objects serialise to {} by default.
function errorReplacer(_key: string, value: unknown): unknown {
  return value instanceof Error ? { name: value.name, message: value.message, stack: value.stack } : value;
}
