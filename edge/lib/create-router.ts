import { OpenAPIHono } from "@hono/zod-openapi";
import type { Hook } from "@hono/zod-openapi";
import { zodIssuesToPydantic, type Loc } from "../../shared/api/pydantic-errors.js";
import type { AppBindings } from "../app.types.js";

// FastAPI's names for where a value came from, the first element of every error's loc.
const LOC_BY_TARGET: Record<string, string> = { json: "body", form: "body", query: "query", param: "path", header: "header", cookie: "cookie" };

/** Validation failures of declared params/query/headers become FastAPI's 422 body. */
export const defaultHook: Hook<unknown, AppBindings, string, unknown> = (result, c) => {
  if (result.success) return;
  const prefix: Loc = [LOC_BY_TARGET[result.target] ?? result.target];
  // zod-validator passes the raw input as `data` on failure too; pydantic errors echo it.
  const input = (result as { data?: unknown }).data;
  return c.json({ detail: zodIssuesToPydantic(result.error.issues, input, prefix) }, 422);
};

export function createRouter(): OpenAPIHono<AppBindings> {
  // strict: false serves /path and /path/ alike.
  return new OpenAPIHono<AppBindings>({ strict: false, defaultHook });
}
