import type { WebhookRequest, WebhookTransport } from "./webhook-transport.port.js";

/** POST with the runtime's fetch: a timeout, no redirects (a 3xx is an answer, not a new target). */
export function createFetchWebhookTransport(fetchImpl: typeof globalThis.fetch = (input, init) => globalThis.fetch(input, init)): WebhookTransport {
  return {
    async post(request: WebhookRequest) {
      const response = await fetchImpl(request.url.href, {
        method: "POST",
        headers: request.headers,
        body: request.body,
        redirect: "manual",
        signal: AbortSignal.timeout(request.timeoutMs),
      });
      // The body is not needed; releasing it frees the connection.
      await response.body?.cancel().catch(() => {});
      return { status: response.status };
    },
  };
}
