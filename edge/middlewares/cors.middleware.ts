import type { MiddlewareHandler } from "hono";

// CORS as the original service configured it (every origin by default; api.cors_origins narrows it). Headers
// are set with c.header() before the response exists: hono's own cors() edits c.res.headers, which makes the
// Node adapter build every response twice (a measurable share of each request).

const ALLOW_METHODS = "GET,POST,PUT,PATCH,DELETE,OPTIONS";
const EXPOSE_HEADERS = "Retry-After";
const MAX_AGE_SECONDS = "600";

export function corsMiddleware(origins: readonly string[]): MiddlewareHandler {
  const anyOrigin = origins.includes("*");
  const allowed = new Set(origins);
  return async (c, next) => {
    const origin = c.req.header("origin");
    // Without an Origin header this is not a cross-origin browser request.
    if (origin === undefined) return next();
    const allowOrigin = anyOrigin ? "*" : allowed.has(origin) ? origin : null;
    if (c.req.method === "OPTIONS" && c.req.header("access-control-request-method") !== undefined) {
      const headers: Record<string, string> = {};
      if (allowOrigin !== null) {
        headers["access-control-allow-origin"] = allowOrigin;
        headers["access-control-allow-methods"] = ALLOW_METHODS;
        headers["access-control-max-age"] = MAX_AGE_SECONDS;
        const requested = c.req.header("access-control-request-headers");
        if (requested) headers["access-control-allow-headers"] = requested;
      }
      if (!anyOrigin) headers.vary = "Origin";
      return c.body(null, 204, headers);
    }
    if (allowOrigin !== null) {
      c.header("access-control-allow-origin", allowOrigin);
      c.header("access-control-expose-headers", EXPOSE_HEADERS);
    }
    if (!anyOrigin) c.header("vary", "Origin", { append: true });
    await next();
  };
}
