import { createMiddleware } from "hono/factory";
import { API_MESSAGES } from "../../shared/api/api-messages.js";
import type { AppBindings } from "../app.types.js";
import type { AuthVariables } from "./api-key.middleware.js";

/** Per-key token bucket (api.rate_limit); runs after requireApiKey. 429 with Retry-After when empty. */
export const rateLimit = createMiddleware<AppBindings & { Variables: AuthVariables }>(async (c, next) => {
  const limiter = c.get("services").rateLimiter;
  if (limiter) {
    const taken = limiter.take(c.get("ownerKeyHash"));
    if (!taken.allowed) {
      c.header("Retry-After", String(taken.retryAfterSeconds));
      return c.json({ detail: API_MESSAGES.rateLimited }, 429);
    }
  }
  await next();
});
