// A real HTTP server that receives webhooks in tests: answers each request with the next scripted status (the
// last one repeats), or never answers ("hang"), and records what arrived. Not a test file itself.
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedWebhook {
  at: number;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface WebhookReceiver {
  url: string;
  port: number;
  received: ReceivedWebhook[];
  /** The statuses to answer next, in order; the last one keeps answering. "hang" never answers. */
  script(statuses: Array<number | "hang">): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(statuses: Array<number | "hang"> = [200], port = 0): Promise<WebhookReceiver> {
  let script = [...statuses];
  const received: ReceivedWebhook[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ at: Date.now(), path: req.url ?? "/", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      const status = script.length > 1 ? script.shift()! : script[0];
      if (status === "hang") return;
      res.writeHead(status, { "content-type": "application/json" });
      res.end('{"status":"ok"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    received,
    script: (next) => {
      script = [...next];
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
