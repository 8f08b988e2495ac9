// The Cloudflare Workers entry (wrangler.toml `main`): the same app as the Node edge, with Workers adapters.
// fetch: the public API. queue: the dispatch consumer (holds one generation's event stream per message).
// scheduled: the minute cron (lease reconciliation, waking consumers for waiting tasks, webhook delivery).
import type { ExecutionContext, MessageBatch, ScheduledController } from "@cloudflare/workers-types";
import { API_MESSAGES } from "../../shared/api/api-messages.js";
import { ConfigError } from "../../shared/config/config.schema.js";
import { runCron } from "./cron.scheduled.js";
import { consumeDispatchBatch } from "./dispatch.consumer.js";
import { workerRuntime, type WorkerRuntime } from "./worker.runtime.js";
import type { DispatchMessage, WorkerEnv } from "./worker.env.js";

/** The isolate's runtime with the migrations applied; a bad config is logged naming the key, and rethrown. */
async function ready(env: WorkerEnv): Promise<WorkerRuntime> {
  try {
    const runtime = workerRuntime(env);
    await runtime.database.ensureMigrated();
    return runtime;
  } catch (err) {
    // It reaches the logs (wrangler tail, Workers Logs), never a client.
    console.error(err instanceof ConfigError ? err.message : `worker start-up failed: ${(err as Error).stack ?? String(err)}`);
    throw err;
  }
}

export default {
  async fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response> {
    let runtime: WorkerRuntime;
    try {
      runtime = await ready(env);
    } catch {
      return new Response(JSON.stringify({ detail: API_MESSAGES.internalError }), { status: 500, headers: { "content-type": "application/json" } });
    }
    return runtime.app.fetch(request, env, ctx as never);
  },

  async queue(batch: MessageBatch<DispatchMessage>, env: WorkerEnv): Promise<void> {
    const runtime = await ready(env);
    await consumeDispatchBatch(batch, env, runtime, runtime.limits);
  },

  async scheduled(_controller: ScheduledController, env: WorkerEnv): Promise<void> {
    const runtime = await ready(env);
    await runCron(runtime, env, runtime.limits);
  },
};
