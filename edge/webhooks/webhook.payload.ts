import type { TaskStatus } from "../../shared/api/task.schema.js";
import { toHex } from "../lib/hex.codec.js";

// The callback body of the spec (and of the original service): `task_id`, `status`, then `image_url` (one image)
// or `image_urls` (several) when completed, `error_message` when failed. A cancelled task sends the first two.

export type TerminalStatus = Extract<TaskStatus, "completed" | "failed" | "cancelled">;

export type TerminalOutcome =
  | { status: "completed"; resultUrls: string[] }
  | { status: "failed"; errorMessage: string }
  | { status: "cancelled" };

export interface WebhookPayload {
  task_id: string;
  status: TerminalStatus;
  image_url?: string;
  image_urls?: string[];
  error_message?: string;
}

export function webhookPayload(taskId: string, outcome: TerminalOutcome): WebhookPayload {
  switch (outcome.status) {
    case "completed":
      return outcome.resultUrls.length === 1
        ? { task_id: taskId, status: "completed", image_url: outcome.resultUrls[0] }
        : { task_id: taskId, status: "completed", image_urls: outcome.resultUrls };
    case "failed":
      return { task_id: taskId, status: "failed", error_message: outcome.errorMessage };
    case "cancelled":
      return { task_id: taskId, status: "cancelled" };
  }
}

/** A Standard Webhooks message id: "msg_" + 128 random bits. */
export function newWebhookId(): string {
  return `msg_${toHex(crypto.getRandomValues(new Uint8Array(16)))}`;
}
