// Builds the real app over a real libSQL file in a temp directory (migrations applied the way the Node entry
// applies them). Not a test file itself: the edge suites share it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { noopTaskEvents } from "../../edge/adapters/noop.task-events.js";
import { silentLogger } from "../../edge/adapters/silent.logger.js";
import { createApp } from "../../edge/app.js";
import type { AppDeps } from "../../edge/app.types.js";
import { startEdgeServer, type EdgeServer } from "../../edge/node/edge-server.js";
import { openMigratedDatabase, type OpenDatabase } from "../../edge/node/open-database.js";
import type { Clock } from "../../edge/ports/clock.port.js";
import { parseConfig, type Config } from "../../shared/config/config.schema.js";

export const KEY_1 = "test-key-1";
export const KEY_2 = "test-key-2";

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  constructor(public ms = Date.UTC(2024, 0, 1, 12, 0, 0)) {}
  now(): Date {
    return new Date(this.ms);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

export interface TestEdge {
  config: Config;
  database: OpenDatabase;
  clock: ManualClock;
  app: ReturnType<typeof createApp>;
  dir: string;
  request(path: string, init?: RequestInit): Promise<Response>;
  /** POST /api/v1/generate with a JSON body and KEY_1 unless headers say otherwise. */
  generate(body: unknown, headers?: Record<string, string>): Promise<Response>;
  close(): void;
}

export async function createTestEdge(
  rawConfig: Record<string, unknown> = {},
  deps: Partial<Pick<AppDeps, "gpuStatus" | "loraCatalog" | "taskEvents" | "logger" | "docsAssets">> = {},
): Promise<TestEdge> {
  const dir = mkdtempSync(join(tmpdir(), "edge-test-"));
  const config = parseConfig({ api: { keys: [KEY_1, KEY_2] }, task_db: { path: join(dir, "tasks.db") }, ...rawConfig });
  const database = await openMigratedDatabase(config);
  const clock = new ManualClock();
  const app = createApp({
    config,
    db: database.db,
    clock,
    logger: deps.logger ?? silentLogger,
    gpuStatus: deps.gpuStatus ?? { modelLoaded: async () => false },
    // No GPU node answers: a request's LoRA names are not checked at the edge.
    loraCatalog: deps.loraCatalog ?? { snapshot: async () => ({ nodesTotal: 0, nodesAnswered: 0, loras: [] }) },
    taskEvents: deps.taskEvents ?? noopTaskEvents,
    docsAssets: deps.docsAssets,
  });
  const request = (path: string, init?: RequestInit) => Promise.resolve(app.request(`http://edge.test${path}`, init));
  return {
    config,
    database,
    clock,
    app,
    dir,
    request,
    generate: (body, headers = {}) =>
      request("/api/v1/generate", {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": KEY_1, ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
      }),
    close: () => {
      database.client.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestEdgeServer {
  server: EdgeServer;
  /** The temp directory holding its database; other scratch files may go here too. */
  dir: string;
  /** Stops the server and removes the directory. */
  close(): Promise<void>;
}

/** The Node edge's real HTTP server on 127.0.0.1 (a free port), key "k1", over a libSQL file in a temp directory. */
export async function startTestEdgeServer(prefix: string): Promise<TestEdgeServer> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const config = parseConfig({ api: { keys: ["k1"] }, server: { host: "127.0.0.1", port: 0 }, task_db: { path: join(dir, "t.db") } });
  const server = await startEdgeServer(config, { logger: silentLogger });
  return {
    server,
    dir,
    async close() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
