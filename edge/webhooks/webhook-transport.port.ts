import type { ResolvedAddress } from "./ssrf.guard.js";

// How a callback is POSTed. Two adapters: fetch.webhook-transport.ts (any runtime; Workers) and
// edge/node/http.webhook-transport.ts (Node: connects to the addresses the SSRF guard vetted, so a DNS answer
// that changes between the check and the connection cannot redirect the request).

export interface WebhookRequest {
  url: URL;
  /** The addresses the guard checked (null when private targets are allowed and nothing was resolved). */
  addresses: ResolvedAddress[] | null;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

export interface WebhookTransport {
  /** The receiver's status code (redirects are not followed). Rejects on network errors and timeouts. */
  post(request: WebhookRequest): Promise<{ status: number }>;
}
