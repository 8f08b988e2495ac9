import { bodyLimit } from "hono/body-limit";
import { API_MESSAGES } from "../shared/api/api-messages.js";
import { createGenerateRequestSchema, generateLimitsFromConfig } from "../shared/api/generate.schema.js";
import type { AppDeps, AppOpenAPI, Services } from "./app.types.js";
import { TasksRepo } from "./db/tasks.repo.js";
import { TaskOutcomes } from "./dispatch/task-outcomes.js";
import { noopMetrics } from "./metrics/metrics.port.js";
import { corsMiddleware } from "./middlewares/cors.middleware.js";
import { createRouter } from "./lib/create-router.js";
import { notFoundHandler, onError } from "./lib/error-handlers.js";
import { buildOpenApiJson, registerComponents } from "./lib/openapi.js";
import { createDocsRouter } from "./routes/docs/docs.index.js";
import health from "./routes/health/health.index.js";
import loras from "./routes/loras/loras.index.js";
import tasks from "./routes/tasks/tasks.index.js";
import { ApiKeyAuth } from "./security/api-key-auth.js";
import { routePath } from "hono/route";
import { TokenBucketLimiter } from "./security/token-bucket.js";

// The edge HTTP app, built from injected dependencies only: the same code runs under @hono/node-server and on
// Cloudflare Workers (no node: imports anywhere under edge/ except edge/node/).

/** Room for the largest allowed init_image as base64 (4/3 of its bytes) plus the other fields. */
function maxBodyBytes(maxInitImageBytes: number): number {
  return Math.ceil(maxInitImageBytes / 3) * 4 + 1024 * 1024;
}

export function createServices(deps: AppDeps): Services {
  const { config } = deps;
  const rate = config.api.rate_limit;
  const maxBody = maxBodyBytes(config.api.limits.max_init_image_bytes);
  return {
    config,
    clock: deps.clock,
    logger: deps.logger,
    gpuStatus: deps.gpuStatus,
    loraCatalog: deps.loraCatalog,
    taskEvents: deps.taskEvents,
    tasks: new TasksRepo(deps.db, { coalesceInserts: deps.coalesceInserts ?? false, statements: deps.statements }),
    taskOutcomes: new TaskOutcomes(deps.db),
    metrics: deps.metrics ?? noopMetrics,
    auth: new ApiKeyAuth(config.api.keys, config.api.key_header),
    rateLimiter: rate.enabled ? new TokenBucketLimiter({ capacity: rate.capacity, refillPerSecond: rate.refill_per_second }, deps.clock) : null,
    generateRequestSchema: createGenerateRequestSchema(generateLimitsFromConfig(config)),
    maxBodyBytes: maxBody,
    bodyLimit: bodyLimit({
      maxSize: maxBody,
      onError: (c) => c.json({ detail: API_MESSAGES.bodyTooLarge }, 413),
    }),
  };
}

export function createApp(deps: AppDeps): AppOpenAPI {
  const services = createServices(deps);
  const { config, logger } = deps;
  const app = createRouter();

  app.use(async (c, next) => {
    c.set("services", services);
    await next();
  });
  app.use(corsMiddleware(config.api.cors_origins));
  app.use(async (c, next) => {
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    // The matched pattern ("/api/v1/tasks/:task_id") keeps the label set small; unmatched paths share one label.
    const matched = routePath(c, -1);
    const route = matched === "*" || matched === "/*" ? "(unmatched)" : matched;
    services.metrics.request(route, c.req.method, c.res.status, seconds);
    // Path only: the query string may carry ?api_key=.
    logger.debug({ method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(seconds * 10_000) / 10 }, "request");
  });
  app.onError(onError);

  for (const router of [health, tasks, loras]) app.route("/", router);

  registerComponents(app, config, services.generateRequestSchema);
  let openApiJson: string | undefined;
  // Built on first request: generating it at start-up would slow every cold start on Workers.
  app.route("/", createDocsRouter(() => (openApiJson ??= buildOpenApiJson(app, config)), deps.docsAssets));
  app.notFound(notFoundHandler(app.routes));
  return app;
}
