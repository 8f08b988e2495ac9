import type { ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { API_MESSAGES } from "../../shared/api/api-messages.js";
import { DomainError } from "../../shared/errors/error-codes.js";
import type { AppBindings } from "../app.types.js";

// FastAPI's shapes: {"detail": "..."} for every error that is not a validation error.

export interface KnownRoute {
  method: string;
  /** Hono's path syntax ("/api/v1/tasks/:task_id"). */
  path: string;
}

/**
 * 404 {"detail":"Not Found"} for unknown paths; 405 {"detail":"Method Not Allowed"} with Allow for a known path
 * asked with another method, as FastAPI answers.
 */
export function notFoundHandler(routes: readonly KnownRoute[]): NotFoundHandler<AppBindings> {
  const byPattern = new Map<string, { pattern: RegExp; methods: Set<string> }>();
  for (const { method, path } of routes) {
    if (method === "ALL" || path.includes("*")) continue;
    const entry = byPattern.get(path) ?? {
      pattern: new RegExp(`^${path.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/:[^/]+/g, "[^/]+")}/?$`),
      methods: new Set<string>(),
    };
    entry.methods.add(method.toUpperCase());
    if (method.toUpperCase() === "GET") entry.methods.add("HEAD");
    byPattern.set(path, entry);
  }
  const entries = [...byPattern.values()];
  return (c) => {
    const allowed = entries.find((e) => e.pattern.test(c.req.path));
    if (allowed) {
      c.header("allow", [...allowed.methods].join(", "));
      return c.json({ detail: API_MESSAGES.methodNotAllowed }, 405);
    }
    return c.json({ detail: API_MESSAGES.notFound }, 404);
  };
}

export const onError: ErrorHandler<AppBindings> = (err, c) => {
  if (err instanceof DomainError) {
    return c.json({ detail: err.message }, err.http as 400);
  }
  if (err instanceof HTTPException) {
    return c.json({ detail: err.message || API_MESSAGES.internalError }, err.status);
  }
  c.get("services")?.logger.error({ err: { name: err.name, message: err.message, stack: err.stack }, path: c.req.path }, "unhandled error");
  return c.json({ detail: API_MESSAGES.internalError }, 500);
};
