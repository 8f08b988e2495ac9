import { request as httpRequest, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import type { LookupFunction } from "node:net";
import type { WebhookRequest, WebhookTransport } from "../webhooks/webhook-transport.port.js";

// Callbacks on Node through node:http(s). The connection goes to an address the SSRF guard vetted (a custom
// lookup hands it over), so DNS cannot answer differently between the check and the connect (rebinding). TLS
// still verifies the certificate against the URL's host name. No redirects are followed; no agent keeps
// sockets to receivers between attempts.

function pinnedLookup(addresses: NonNullable<WebhookRequest["addresses"]>): LookupFunction {
  return (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all) {
      (callback as unknown as (err: null, list: { address: string; family: number }[]) => void)(null, addresses);
      return;
    }
    const first = addresses[0];
    callback(null, first.address, first.family);
  };
}

export const httpWebhookTransport: WebhookTransport = {
  post(req: WebhookRequest): Promise<{ status: number }> {
    return new Promise((resolve, reject) => {
      const isHttps = req.url.protocol === "https:";
      const body = Buffer.from(req.body, "utf8");
      const options: RequestOptions = {
        method: "POST",
        headers: { ...req.headers, "content-length": String(body.byteLength) },
        agent: false,
        ...(req.addresses && req.addresses.length > 0 ? { lookup: pinnedLookup(req.addresses) } : {}),
      };
      const call = (isHttps ? httpsRequest : httpRequest)(req.url, options, (res) => {
        // Drain: only the status matters.
        res.resume();
        res.once("end", () => {});
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0 });
      });
      const timer = setTimeout(() => {
        const error = new Error(`timed out after ${req.timeoutMs} ms`);
        error.name = "TimeoutError";
        call.destroy(error);
      }, req.timeoutMs);
      call.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      call.end(body);
    });
  },
};
