import type { ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { API_MESSAGES } from "../../shared/api/api-messages.js";
import { DomainError } from "../../shared/errors/error-codes.js";
import type { AppBindings } from "../app.types.js";

// FastAPI's shapes: {"detail": "..."} for every error that is not a validation error.

export const notFound: NotFoundHandler<AppBindings> = (c) => c.json({ detail: API_MESSAGES.notFound }, 404);

export const onError: ErrorHandler<AppBindings> = (err, c) => {
  if (err instanceof DomainError) {
    return c.json({ detail: err.message }, err.http as 400);
  }
  if (err instanceof HTTPException) {
    return c.json({ detail: err.message || API_MESSAGES.internalError }, err.status);
  }
  c.var.services?.logger.error({ err: { name: err.name, message: err.message, stack: err.stack }, path: c.req.path }, "unhandled error");
  return c.json({ detail: API_MESSAGES.internalError }, 500);
};
