// The Cloudflare Workers entry (wrangler.toml `main`): the same app as the Node edge, with Workers adapters.
// fetch: the public API. queue: the dispatch consumer. scheduled: lease reconciliation and webhook delivery.
import type { ExecutionContext } from "@cloudflare/workers-types";
import { API_MESSAGES } from "../../shared/api/api-messages.js";
import { ConfigError } from "../../shared/config/config.schema.js";
import { workerRuntime } from "./worker.runtime.js";
import type { WorkerEnv } from "./worker.env.js";

function internalError(): Response {
  return new Response(JSON.stringify({ detail: API_MESSAGES.internalError }), { status: 500, headers: { "content-type": "application/json" } });
}

export default {
  async fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response> {
    let runtime;
    try {
      runtime = workerRuntime(env);
      await runtime.database.ensureMigrated();
    } catch (err) {
      // A bad config names the key to fix; it reaches the logs (wrangler tail), never the client.
      console.error(err instanceof ConfigError ? err.message : `worker start-up failed: ${(err as Error).stack ?? String(err)}`);
      return internalError();
    }
    return runtime.app.fetch(request, env, ctx as never);
  },
};
