// One contract for both WebhookTransport adapters (fetch: any runtime; node:http with pinned addresses: the
// Node edge), against a real HTTP server.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { httpWebhookTransport } from "../../../edge/node/http.webhook-transport.js";
import { createFetchWebhookTransport } from "../../../edge/webhooks/fetch.webhook-transport.js";
import type { WebhookTransport } from "../../../edge/webhooks/webhook-transport.port.js";

let server: Server;
let base: string;
const seen: Array<{ path: string; headers: Record<string, unknown>; body: string }> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      seen.push({ path: req.url ?? "", headers: req.headers, body });
      if (req.url === "/redirect") {
        res.writeHead(302, { location: "/ok" }).end();
      } else if (req.url === "/hang") {
        // never answers
      } else if (req.url?.startsWith("/status/")) {
        res.writeHead(Number(req.url.slice(8))).end("x".repeat(100_000));
      } else {
        res.writeHead(200).end("ok");
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const adapters: Array<[string, WebhookTransport]> = [
  ["fetch", createFetchWebhookTransport()],
  ["node:http", httpWebhookTransport],
];

describe.each(adapters)("WebhookTransport contract: %s", (_name, transport) => {
  const post = (path: string, timeoutMs = 2000) =>
    transport.post({ url: new URL(`${base}${path}`), addresses: null, headers: { "content-type": "application/json", "webhook-id": "msg_1" }, body: '{"a":"猫"}', timeoutMs });

  it("POSTs the body and headers and returns the status", async () => {
    expect(await post("/ok")).toEqual({ status: 200 });
    const last = seen.at(-1)!;
    expect(last).toMatchObject({ path: "/ok", body: '{"a":"猫"}' });
    expect(last.headers["webhook-id"]).toBe("msg_1");
    expect(last.headers["content-type"]).toBe("application/json");
  });

  it("returns error statuses (reading past a large body)", async () => {
    expect(await post("/status/500")).toEqual({ status: 500 });
    expect(await post("/status/410")).toEqual({ status: 410 });
  });

  it("does not follow redirects", async () => {
    const before = seen.length;
    expect(await post("/redirect")).toEqual({ status: 302 });
    expect(seen.length).toBe(before + 1);
  });

  it("rejects on timeout and on a refused connection", async () => {
    await expect(post("/hang", 200)).rejects.toThrow();
    await expect(
      transport.post({ url: new URL("http://127.0.0.1:1/x"), addresses: null, headers: {}, body: "{}", timeoutMs: 2000 }),
    ).rejects.toThrow();
  });
});

describe("node:http transport", () => {
  it("connects to the vetted address, whatever the host name would resolve to now", async () => {
    const port = new URL(base).port;
    const result = await httpWebhookTransport.post({
      url: new URL(`http://hooks.invalid:${port}/pinned`),
      addresses: [{ address: "127.0.0.1", family: 4 }],
      headers: {},
      body: "{}",
      timeoutMs: 2000,
    });
    expect(result.status).toBe(200);
    expect(seen.at(-1)).toMatchObject({ path: "/pinned" });
    expect(seen.at(-1)!.headers.host).toBe(`hooks.invalid:${port}`);
  });
});
