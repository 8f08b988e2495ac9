import { DispatchRepo } from "../dispatch/dispatch.repo.js";
import { Dispatcher, type NoHealthySince } from "../dispatch/dispatcher.js";
import { NodePool, type NodePoolOptions, type PoolNode } from "../dispatch/node-pool.js";
import { TaskOutcomes } from "../dispatch/task-outcomes.js";
import { createConnectGpuClient } from "../gpu/connect.gpu-client.js";
import { noopMetrics } from "../metrics/metrics.port.js";
import { createFetchWebhookTransport } from "../webhooks/fetch.webhook-transport.js";
import { OutboxRepo } from "../webhooks/outbox.repo.js";
import { retryPolicyFromConfig } from "../webhooks/webhook.backoff.js";
import { WebhookDeliverer } from "../webhooks/webhook.deliverer.js";
import { WebhookSigner } from "../webhooks/webhook.signing.js";
import { createDohHostResolver } from "./doh.host-resolver.js";
import { connectLibsqlWeb } from "./libsql-web.database.js";
import { SubrequestBudget } from "./subrequest-budget.js";
import type { WorkerRuntime } from "./worker.runtime.js";

// One queue or cron invocation's dispatch machinery: the Node edge's dispatcher and webhook deliverer
// (edge/dispatch, edge/webhooks), built fresh for the invocation over its own libSQL client and GPU clients.
// Fresh, because workerd forbids one invocation from waiting on I/O another started, and the dispatcher keeps
// promises (node probes, rounds) between calls; and because each invocation has its own subrequest budget,
// which these clients count.

/**
 * The node pool of one invocation, allowed `claims` new tasks in all: a consumer holds ONE generation's stream
 * (the queue's max_concurrency bounds how many run at once), the cron none.
 */
class ClaimLimitedNodePool extends NodePool {
  #claimsLeft: number;

  constructor(nodes: readonly PoolNode[], claims: number, options: NodePoolOptions) {
    super(nodes, options);
    this.#claimsLeft = claims;
  }

  override freeSlots(): number {
    return this.#claimsLeft > 0 ? Math.min(this.#claimsLeft, super.freeSlots()) : 0;
  }

  override acquire(name: string): void {
    this.#claimsLeft--;
    super.acquire(name);
  }

  override async refresh(force = false): Promise<void> {
    // Once nothing more may be claimed, a status would be a wasted subrequest.
    if (this.#claimsLeft <= 0 && this.probed) return;
    await super.refresh(force);
  }
}

export interface DispatchSession {
  budget: SubrequestBudget;
  repo: DispatchRepo;
  outbox: OutboxRepo;
  nodes: NodePool;
  dispatcher: Dispatcher;
  deliverer: WebhookDeliverer;
  /** Tasks that reached a terminal state through this session (their callbacks are in the outbox). */
  finished: number;
  close(): void;
}

export function openDispatchSession(
  runtime: WorkerRuntime,
  options: { claims: number; subrequests: number; noHealthySince?: NoHealthySince },
): DispatchSession {
  const { config, clock, logger } = runtime;
  const budget = new SubrequestBudget(options.subrequests);
  const counted = budget.wrap();
  // Its own client: every statement of this invocation counts against the budget.
  const { client, db } = connectLibsqlWeb(config, counted);
  const instanceId = `worker:${crypto.randomUUID()}`;
  const poolNodes: PoolNode[] = runtime.gpuNodes.map((node) => ({
    name: node.name,
    client: createConnectGpuClient({ baseUrl: node.web, tierSecret: config.tier_secret, fetch: counted }),
  }));
  // Every invocation probes afresh, so "gpu node up" would be logged each time: debug here; "down" stays a warning.
  const poolLogger = { ...logger, info: logger.debug };
  const nodes = new ClaimLimitedNodePool(poolNodes, options.claims, { prefetch: config.dispatch.prefetch, logger: poolLogger });
  const repo = new DispatchRepo(db);
  const outcomes = new TaskOutcomes(db);
  const outbox = new OutboxRepo(db);
  const session: DispatchSession = {
    budget,
    repo,
    outbox,
    nodes,
    finished: 0,
    dispatcher: new Dispatcher({
      repo,
      outcomes,
      nodes,
      clock,
      logger,
      metrics: noopMetrics,
      instanceId,
      settings: {
        ...config.dispatch,
        // Each progress write is a subrequest: at most one a second on Workers.
        progress_interval_ms: Math.max(config.dispatch.progress_interval_ms, 1000),
      },
      onFinished: () => void session.finished++,
      noHealthySince: options.noHealthySince,
      // Used by the cron pass (reconcile): two subrequests when there is something to delete.
      retentionDays: config.task_db.retention_days,
    }),
    deliverer: new WebhookDeliverer({
      repo: outbox,
      transport: createFetchWebhookTransport(counted),
      resolver: createDohHostResolver({ fetch: counted }),
      signer: config.callback.secret ? new WebhookSigner(config.callback.secret) : null,
      clock,
      logger,
      metrics: noopMetrics,
      instanceId,
      policy: retryPolicyFromConfig(config.callback),
      timeoutMs: config.callback.timeout_seconds * 1000,
      allowPrivateTargets: config.callback.allow_private_targets,
    }),
    close: () => client.close(),
  };
  return session;
}
