// The subset of pino's interface the edge uses, so pino (Node) or a console-backed logger (Workers) fits.
// Never pass API keys, request headers or query strings to it.

export interface LogFn {
  (obj: Record<string, unknown>, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
}
