// The Node edge's in-process loops around the runtime-agnostic cores: the dispatcher's periodic pass and lease
// renewal, and webhook delivery. (The Workers edge drives the same cores from a Queue consumer and a cron.)
import type { Config } from "../../shared/config/config.schema.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import type { Logger } from "../ports/logger.port.js";
import type { OutboxRepo } from "../webhooks/outbox.repo.js";
import type { WebhookDeliverer } from "../webhooks/webhook.deliverer.js";

/** Runs `body` again and again: `body` returns how long to sleep (ms); wake() cuts a sleep short. Never overlaps. */
export class Loop {
  #timer: ReturnType<typeof setTimeout> | null = null;
  #running: Promise<void> | null = null;
  #wakeRequested = false;
  #stopped = false;

  constructor(
    private readonly name: string,
    private readonly body: () => Promise<number>,
    private readonly logger: Logger,
    private readonly errorDelayMs = 1_000,
  ) {}

  start(): this {
    this.#schedule(0);
    return this;
  }

  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#wakeRequested = true;
      return;
    }
    this.#schedule(0);
  }

  /** Stops scheduling; waits for a running pass, at most `graceMs` when given. */
  async stop(graceMs?: number): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (!this.#running) return;
    if (graceMs === undefined) {
      await this.#running;
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#running, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#running = this.#run().finally(() => (this.#running = null));
    }, ms);
    // Loops never keep the process alive on their own; the HTTP server does.
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    let delay: number;
    this.#wakeRequested = false;
    try {
      delay = await this.body();
    } catch (error) {
      this.logger.error({ loop: this.name, err: error instanceof Error ? error.message : String(error) }, "background loop failed; retrying");
      delay = this.errorDelayMs;
    }
    if (this.#wakeRequested) delay = 0;
    this.#schedule(Math.max(0, delay));
  }
}

export interface EdgeLoops {
  /** A callback was queued: deliver it now rather than at the next poll. */
  wakeWebhooks(): void;
  stop(): Promise<void>;
}

// Webhook rows due later than this are still looked at this often (another edge may have queued one).
const WEBHOOK_POLL_MS = 1_000;
const WEBHOOK_BATCH = 16;
const NO_NODE_TICK_MS = 1_000;
const WEBHOOK_STOP_GRACE_MS = 2_000;

export function startEdgeLoops(options: {
  config: Config;
  dispatcher: Dispatcher;
  deliverer: WebhookDeliverer;
  outbox: OutboxRepo;
  logger: Logger;
}): EdgeLoops {
  const { config, dispatcher, deliverer, outbox, logger } = options;
  const tick = new Loop(
    "dispatch",
    async () => {
      await dispatcher.tick();
      const interval = config.dispatch.reconcile_interval_seconds * 1000;
      // While no node is healthy, look again sooner (the pool's backoff still spaces probes of a dead node).
      return dispatcher.hasHealthyNode() ? interval : Math.min(interval, NO_NODE_TICK_MS);
    },
    logger,
  ).start();
  // A third of the lease: two renewals can fail (a slow disk, a GC pause) before the lease lapses.
  const renewMs = Math.max(100, (config.dispatch.lease_seconds * 1000) / 3);
  const renew = new Loop(
    "lease-renewal",
    async () => {
      await dispatcher.renewLeases();
      return renewMs;
    },
    logger,
    renewMs,
  ).start();
  const webhooks = new Loop(
    "webhooks",
    async () => {
      const n = await deliverer.deliverDue(WEBHOOK_BATCH);
      if (n === WEBHOOK_BATCH) return 0;
      const due = await outbox.nextDueAt();
      if (due === null) return WEBHOOK_POLL_MS;
      // At least a few ms: a row whose time has come but that another edge is delivering is not worth spinning on.
      return Math.min(WEBHOOK_POLL_MS, Math.max(20, due.getTime() - Date.now()));
    },
    logger,
  ).start();
  return {
    wakeWebhooks: () => webhooks.wake(),
    async stop() {
      // A callback attempt may wait for a slow receiver up to callback.timeout_seconds; shutdown does not. An
      // attempt cut off here stays leased until its lease ends, then any edge retries it (same webhook-id).
      await Promise.all([tick.stop(), renew.stop(), webhooks.stop(WEBHOOK_STOP_GRACE_MS)]);
    },
  };
}
