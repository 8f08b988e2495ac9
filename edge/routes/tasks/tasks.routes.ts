import { createRoute } from "@hono/zod-openapi";
import { DetailErrorSchema } from "../../../shared/api/errors.schema.js";
import { GenerateResponseSchema } from "../../../shared/api/generate.schema.js";
import { TaskIdParamsSchema, TaskResponseSchema } from "../../../shared/api/task.schema.js";
import { apiKeySecurity, jsonContent, unauthorizedResponse, validationErrorResponse } from "../../lib/openapi-responses.js";
import { requireApiKey } from "../../middlewares/api-key.middleware.js";
import { bodySizeLimit, jsonBody } from "../../middlewares/json-body.middleware.js";
import { rateLimit } from "../../middlewares/rate-limit.middleware.js";

export const generate = createRoute({
  method: "post",
  path: "/api/v1/generate",
  tags: ["tasks"],
  summary: "Create an image generation task",
  description:
    "Text-to-image, or image-to-image when init_image is given. Returns at once with a task ID; poll " +
    "GET /api/v1/tasks/{task_id} or pass callback_url to be notified.",
  middleware: [requireApiKey, rateLimit, bodySizeLimit, jsonBody((s) => s.generateRequestSchema)] as const,
  security: apiKeySecurity,
  request: {
    // Declared by reference: the body is validated by jsonBody (FastAPI's rules), not by zod-openapi.
    body: { content: { "application/json": { schema: { $ref: "#/components/schemas/GenerateRequest" } } }, required: true },
  },
  responses: {
    200: jsonContent(GenerateResponseSchema, "Task created"),
    401: unauthorizedResponse,
    413: jsonContent(DetailErrorSchema, "Request body too large"),
    422: validationErrorResponse,
    429: jsonContent(DetailErrorSchema, "Rate limit exceeded (see the Retry-After header)"),
  },
});

// Unknown ids and other keys' tasks alike (a task of another key does not exist for you).
const taskNotFoundResponse = jsonContent(DetailErrorSchema, "No such task for this API key (任务不存在)");

export const getTask = createRoute({
  method: "get",
  path: "/api/v1/tasks/{task_id}",
  tags: ["tasks"],
  summary: "Get a task's status and results",
  middleware: [requireApiKey] as const,
  security: apiKeySecurity,
  request: { params: TaskIdParamsSchema },
  responses: {
    200: jsonContent(TaskResponseSchema, "The task"),
    401: unauthorizedResponse,
    404: taskNotFoundResponse,
  },
});

export const cancelTask = createRoute({
  method: "post",
  path: "/api/v1/tasks/{task_id}/cancel",
  tags: ["tasks"],
  summary: "Cancel a pending or processing task",
  description:
    "Stops a task that is waiting or running: its status becomes `cancelled` at once (the GPU node stops it " +
    "between two denoising steps) and its callback_url, if any, receives {task_id, status: \"cancelled\"}. " +
    "A task that already completed, failed or was cancelled answers 409.",
  middleware: [requireApiKey] as const,
  security: apiKeySecurity,
  request: { params: TaskIdParamsSchema },
  responses: {
    200: jsonContent(TaskResponseSchema, "The task, now cancelled"),
    401: unauthorizedResponse,
    404: taskNotFoundResponse,
    409: jsonContent(DetailErrorSchema, "The task already finished (任务已结束，无法取消)"),
  },
});

export type GenerateRoute = typeof generate;
export type CancelTaskRoute = typeof cancelTask;
export type GetTaskRoute = typeof getTask;
