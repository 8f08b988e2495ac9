// Delivers the outbox: leases due rows, checks the target (SSRF guard), POSTs the stored body with Standard
// Webhooks headers, and records every attempt with the row's next state. Runtime-agnostic and timer-free:
// the Node edge calls deliverDue() from a loop, the Workers edge from a cron / queue handler.
import type { WebhookOutboxRow } from "../db/webhooks.schema.js";
import type { EdgeMetrics, WebhookOutcome } from "../metrics/metrics.port.js";
import type { Clock } from "../ports/clock.port.js";
import type { Logger } from "../ports/logger.port.js";
import { nextAttemptAt, type RetryPolicy } from "./webhook.backoff.js";
import type { AttemptRecord, NextState, OutboxRepo } from "./outbox.repo.js";
import { checkCallbackTarget, type HostResolver } from "./ssrf.guard.js";
import { webhookHeaders, type WebhookSigner } from "./webhook.signing.js";
import type { WebhookTransport } from "./webhook-transport.port.js";

export interface WebhookDelivererDeps {
  repo: OutboxRepo;
  transport: WebhookTransport;
  resolver: HostResolver;
  /** null: callbacks go unsigned (callback.secret not set). */
  signer: WebhookSigner | null;
  clock: Clock;
  logger: Logger;
  metrics: EdgeMetrics;
  instanceId: string;
  policy: RetryPolicy;
  timeoutMs: number;
  allowPrivateTargets: boolean;
  random?: () => number;
}

// The lease covers the request's timeout plus the time to record it.
const LEASE_MARGIN_MS = 5_000;

/** The part of a URL safe to log: callback URLs may carry tokens in their query. */
function loggableTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "(invalid url)";
  }
}

export class WebhookDeliverer {
  readonly #deps: WebhookDelivererDeps;

  constructor(deps: WebhookDelivererDeps) {
    this.#deps = deps;
  }

  /** Delivers up to `limit` due rows concurrently; returns how many attempts were made. */
  async deliverDue(limit = 16): Promise<number> {
    const { repo, clock, instanceId, timeoutMs } = this.#deps;
    const now = clock.now();
    const rows = await repo.claimDue(instanceId, now, new Date(now.getTime() + timeoutMs + LEASE_MARGIN_MS), limit);
    await Promise.all(rows.map((row) => this.#deliver(row)));
    return rows.length;
  }

  async #deliver(row: WebhookOutboxRow): Promise<void> {
    const { clock, transport, resolver, signer, timeoutMs, allowPrivateTargets, logger, metrics } = this.#deps;
    const attempt = row.attempts + 1;
    const attemptedAt = clock.now();
    const started = performance.now();
    const log = { task_id: row.taskId, webhook_id: row.id, attempt, target: loggableTarget(row.url) };
    let statusCode: number | null = null;
    let error: string | null = null;
    let outcome: WebhookOutcome;

    const target = await checkCallbackTarget(row.url, resolver, allowPrivateTargets);
    if (!target.ok) {
      error = target.reason;
      outcome = "refused";
    } else {
      const timestamp = Math.floor(attemptedAt.getTime() / 1000);
      try {
        const headers = await webhookHeaders(signer, row.id, timestamp, row.payload);
        const response = await transport.post({ url: target.url, addresses: target.addresses, headers, body: row.payload, timeoutMs });
        statusCode = response.status;
        outcome = statusCode >= 200 && statusCode < 300 ? "delivered" : statusCode === 410 ? "gone" : "retry";
        if (outcome === "retry") error = `HTTP ${statusCode}`;
      } catch (e) {
        error = describeError(e, timeoutMs);
        outcome = "retry";
      }
    }

    const now = clock.now();
    let next: NextState;
    if (outcome === "retry") {
      const at = nextAttemptAt(attempt, row.createdAt.getTime(), now.getTime(), this.#deps.policy, this.#deps.random);
      if (at === null) {
        outcome = "gave_up";
        next = { state: "failed", nextAttemptAt: null };
      } else {
        next = { state: "pending", nextAttemptAt: new Date(at) };
      }
    } else {
      next = { state: outcome === "delivered" ? "delivered" : "failed", nextAttemptAt: null };
    }
    const durationMs = performance.now() - started;
    const record: AttemptRecord = { attempt, attemptedAt, statusCode, error, durationMs, outcome };
    metrics.webhookAttempt(outcome, durationMs / 1000);
    const recorded = await this.#deps.repo.record(row, this.#deps.instanceId, record, next, now);
    const fields = { ...log, status_code: statusCode, outcome, ms: Math.round(durationMs), next_attempt_at: next.nextAttemptAt?.toISOString() };
    if (!recorded) logger.warn(fields, "webhook attempt not recorded: the lease passed to another edge");
    else if (outcome === "delivered") logger.info(fields, "webhook delivered");
    else if (outcome === "retry") logger.warn({ ...fields, err: error }, "webhook attempt failed; will retry");
    else logger.warn({ ...fields, err: error }, "webhook given up");
  }
}

function describeError(error: unknown, timeoutMs: number): string {
  if (error instanceof Error) {
    if (error.name === "TimeoutError" || error.name === "AbortError") return `timed out after ${timeoutMs} ms`;
    const cause = (error as { cause?: unknown }).cause;
    const detail = cause instanceof Error ? `: ${(cause as { code?: string }).code ?? cause.message}` : "";
    return `${error.message}${detail}`;
  }
  return String(error);
}
