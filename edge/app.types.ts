import type { RouteConfig, RouteConfigToEnv, RouteHandler } from "@hono/zod-openapi";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { Config } from "../shared/config/config.schema.js";
import type { GenerateRequestSchema } from "../shared/api/generate.schema.js";
import type { Database } from "./db/database.js";
import type { TasksRepo } from "./db/tasks.repo.js";
import type { TaskOutcomes } from "./dispatch/task-outcomes.js";
import type { EdgeMetrics } from "./metrics/metrics.port.js";
import type { Clock } from "./ports/clock.port.js";
import type { DocsAssets } from "./ports/docs-assets.port.js";
import type { GpuStatus } from "./ports/gpu-status.port.js";
import type { Logger } from "./ports/logger.port.js";
import type { LoraCatalog } from "./ports/lora-catalog.port.js";
import type { StatementCache } from "./ports/statement-cache.port.js";
import type { TaskEvents } from "./ports/task-events.port.js";
import type { ApiKeyAuth } from "./security/api-key-auth.js";
import type { TokenBucketLimiter } from "./security/token-bucket.js";

/** Everything the app needs from outside; the entry point (Node or Workers) builds these. */
export interface AppDeps {
  config: Config;
  /** drizzle over a libSQL client: `@libsql/client` on Node, `@libsql/client/web` on Workers. Migrations already applied. */
  db: Database;
  clock: Clock;
  logger: Logger;
  gpuStatus: GpuStatus;
  /** The adapters the GPU nodes offer: GET /api/v1/loras and the check of a request's `loras`. */
  loraCatalog: LoraCatalog;
  taskEvents: TaskEvents;
  /** Swagger UI / ReDoc bundles to serve; omit where the platform serves them (Workers static assets). */
  docsAssets?: DocsAssets;
  /** Let concurrent task inserts share commits (Node: yes; Workers: no, see TasksRepo). Default false. */
  coalesceInserts?: boolean;
  /** Kept native statements for the hottest reads (Node with a local file); drizzle's path when absent. */
  statements?: StatementCache;
  /** Request/task/webhook metrics (prom-client on Node); none when absent. */
  metrics?: EdgeMetrics;
}

/**
 * What handlers and middleware reach through `c.get("services")`: built once per app, not per request. (Read
 * variables with c.get: hono's c.var copies every variable into a new object on each access, which the hot
 * routes did several times per request.)
 */
export interface Services {
  config: Config;
  clock: Clock;
  logger: Logger;
  gpuStatus: GpuStatus;
  loraCatalog: LoraCatalog;
  taskEvents: TaskEvents;
  tasks: TasksRepo;
  /** Terminal transitions (cancel) with their callback queued in the same transaction. */
  taskOutcomes: TaskOutcomes;
  metrics: EdgeMetrics;
  auth: ApiKeyAuth;
  /** null when api.rate_limit.enabled is false. */
  rateLimiter: TokenBucketLimiter | null;
  generateRequestSchema: GenerateRequestSchema;
  /** The largest request body accepted (room for the largest allowed init_image as base64). */
  maxBodyBytes: number;
  /** Enforces maxBodyBytes on bodies without a Content-Length, while they stream in. */
  bodyLimit: MiddlewareHandler<AppBindings>;
}

export interface AppBindings {
  Variables: {
    services: Services;
  };
}

export type AppOpenAPI = OpenAPIHono<AppBindings>;

/** A handler for a route; variables set by the route's own middleware (auth, body) are typed too. */
export type AppRouteHandler<R extends RouteConfig> = RouteHandler<R, AppBindings & RouteConfigToEnv<R>>;
