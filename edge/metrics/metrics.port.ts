import type { WebhookAttemptOutcome } from "../db/webhooks.schema.js";
import type { TerminalStatus } from "../webhooks/webhook.payload.js";

// What the edge reports for monitoring. The Node edge implements it with prom-client (edge/node/prom.metrics.ts,
// served at /metrics); the Workers edge, which must not import prom-client, uses noopMetrics or its own.

/** The outcomes webhook_attempts records. */
export type WebhookOutcome = WebhookAttemptOutcome;

export interface EdgeMetrics {
  /** One HTTP request: the matched route pattern ("/api/v1/tasks/:task_id"), method and status. */
  request(route: string, method: string, status: number, seconds: number): void;
  /** A task reached a terminal state through this edge. */
  taskFinished(status: TerminalStatus): void;
  /** A task went back to the queue for another attempt. */
  taskRetried(reason: string): void;
  /** From POST (created_at) to the node's `started` event. */
  dispatchLatency(seconds: number): void;
  webhookAttempt(outcome: WebhookOutcome, seconds: number): void;
}

const nothing = () => {};

export const noopMetrics: EdgeMetrics = {
  request: nothing,
  taskFinished: nothing,
  taskRetried: nothing,
  dispatchLatency: nothing,
  webhookAttempt: nothing,
};
