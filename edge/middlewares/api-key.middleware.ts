import { createMiddleware } from "hono/factory";
import { API_MESSAGES } from "../../shared/api/api-messages.js";
import type { AppBindings } from "../app.types.js";

export interface AuthVariables {
  /** SHA-256 (hex) of the caller's key: the owner of the tasks it creates. */
  ownerKeyHash: string;
}

/** 401 {"detail":"缺少API Key"} / {"detail":"无效的API Key"} as the original service answered. */
export const requireApiKey = createMiddleware<AppBindings & { Variables: AuthVariables }>(async (c, next) => {
  const check = await c.get("services").auth.check({
    header: (name) => c.req.header(name),
    query: (name) => c.req.query(name),
  });
  if (!check.ok) {
    return c.json({ detail: check.reason === "missing" ? API_MESSAGES.missingApiKey : API_MESSAGES.invalidApiKey }, 401);
  }
  c.set("ownerKeyHash", check.ownerKeyHash);
  await next();
});

/** Health checks need no key unless health_check.no_auth is false. */
export const healthAuth = createMiddleware<AppBindings>(async (c, next) => {
  if (c.get("services").config.health_check.no_auth) return next();
  return requireApiKey(c as never, next);
});
