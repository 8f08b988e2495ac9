import { createHash, createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "minio";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig, type Config } from "../../../shared/config/config.schema.js";
import { startS3rver, type RunningS3rver } from "../../../gpu-node/dev/s3rver.server.js";
import { MinioStore, parseEndpoint } from "../../../gpu-node/storage/minio.store.js";
import { objectKey } from "../../../gpu-node/storage/object-store.port.js";
import { describeObjectStore } from "./object-store.contract.js";

let dir: string;
let s3: RunningS3rver;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "minio-store-"));
  s3 = await startS3rver({ directory: dir });
});
afterAll(async () => {
  await s3?.close();
  rmSync(dir, { recursive: true, force: true });
});

function captureLogs() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

function minioConfig(overrides: Partial<Config["minio"]> = {}): Config["minio"] {
  return { ...parseConfig({ minio: { endpoint: s3.endpoint } }).minio, ...overrides };
}

// s3rver does not check V4 signatures, so the tests do: the canonical request of a presigned GET (AWS SigV4,
// query-string authentication) for the host and path the S3 server sees.
function sigV4Valid(url: URL, sees: { host: string; path: string }, secretKey = "S3RVER"): boolean {
  const rfc3986 = (v: string) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const query = [...url.searchParams]
    .filter(([k]) => k !== "X-Amz-Signature")
    .map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`)
    .sort()
    .join("&");
  const canonical = ["GET", sees.path, query, `host:${sees.host}`, "", "host", "UNSIGNED-PAYLOAD"].join("\n");
  const [, date, region, service, terminal] = url.searchParams.get("X-Amz-Credential")!.split("/");
  const scope = [date, region, service, terminal].join("/");
  const toSign = ["AWS4-HMAC-SHA256", url.searchParams.get("X-Amz-Date"), scope, createHash("sha256").update(canonical).digest("hex")].join("\n");
  let key: Buffer | string = `AWS4${secretKey}`;
  for (const part of [date, region, service, terminal]) key = createHmac("sha256", key).update(part).digest();
  return createHmac("sha256", key).update(toSign).digest("hex") === url.searchParams.get("X-Amz-Signature");
}

/** A reverse proxy in front of s3rver that strips a path prefix and passes the Host header through. */
async function startStrippingProxy(prefix: string): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const upstream = request({ host: "127.0.0.1", port: s3.port, method: req.method, path: req.url!.slice(prefix.length), headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describeObjectStore("minio (public URLs) on s3rver", () => new MinioStore({ minio: minioConfig({ bucket: "public-urls" }), logger: pino({ level: "silent" }) }), {
  prefix: "images",
});
describeObjectStore(
  "minio (presigned URLs) on s3rver",
  () => new MinioStore({ minio: minioConfig({ bucket: "presigned-urls", url_mode: "presigned", prefix: "out" }), logger: pino({ level: "silent" }) }),
  { prefix: "out" },
);

describe("MinioStore", () => {
  it("creates a missing bucket and warns, without failing, when the server has no bucket policies", async () => {
    const { logger, lines } = captureLogs();
    const config = minioConfig({ bucket: "fresh-bucket", public_read_policy: true });
    const raw = new Client({ endPoint: "127.0.0.1", port: s3.port, useSSL: false, accessKey: "S3RVER", secretKey: "S3RVER", region: "us-east-1" });
    expect(await raw.bucketExists("fresh-bucket")).toBe(false);
    await new MinioStore({ minio: config, logger }).prepare();
    expect(await raw.bucketExists("fresh-bucket")).toBe(true);
    const warning = lines.find((line) => line.level === 40);
    expect(warning?.msg).toMatch(/public-read bucket policy/);
    expect(String(warning?.err)).toMatch(/NotImplemented/);
  });

  it("applies no policy (and logs no warning) when public_read_policy is off", async () => {
    const { logger, lines } = captureLogs();
    await new MinioStore({ minio: minioConfig({ bucket: "no-policy", public_read_policy: false }), logger }).prepare();
    expect(lines.filter((line) => line.level === 40)).toEqual([]);
  });

  it("builds public URLs from public_base_url + bucket + key, or from the endpoint", async () => {
    const withBase = new MinioStore({
      minio: minioConfig({ public_base_url: "https://cdn.example.com/files/" }),
      logger: pino({ level: "silent" }),
    });
    expect(await withBase.url("images/2024/01/02/t/0.png")).toBe("https://cdn.example.com/files/sd-images/images/2024/01/02/t/0.png");
    const fromEndpoint = new MinioStore({ minio: minioConfig(), logger: pino({ level: "silent" }) });
    expect(await fromEndpoint.url("a/b.png")).toBe(`http://${s3.endpoint}/sd-images/a/b.png`);
  });

  it("presigns with the configured expiry", async () => {
    const store = new MinioStore({
      minio: minioConfig({ bucket: "presign-expiry", url_mode: "presigned", presign_expiry_seconds: 600 }),
      logger: pino({ level: "silent" }),
    });
    const stored = await store.put({ taskId: "p", index: 0, ext: "png", contentType: "image/png", bytes: new Uint8Array([9]) });
    const url = new URL(stored.url);
    expect(url.searchParams.get("X-Amz-Expires")).toBe("600");
    expect(url.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    expect(sigV4Valid(url, { host: s3.endpoint, path: url.pathname })).toBe(true);
    expect(sigV4Valid(url, { host: s3.endpoint, path: url.pathname }, "another secret")).toBe(false);
    expect((await fetch(stored.url)).status).toBe(200);
  });

  it("signs presigned URLs for public_base_url's host, its path in front, fetchable through a proxy that strips it", async () => {
    const proxy = await startStrippingProxy("/s3");
    try {
      const store = new MinioStore({
        minio: minioConfig({ bucket: "presign-public", url_mode: "presigned", public_base_url: `${proxy.origin}/s3/` }),
        logger: pino({ level: "silent" }),
      });
      const bytes = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 7]);
      const stored = await store.put({ taskId: "pub", index: 1, ext: "png", contentType: "image/png", bytes });
      const url = new URL(stored.url);
      expect(url.origin).toBe(proxy.origin);
      expect(url.pathname).toBe(`/s3/presign-public/${stored.key}`);
      // What the S3 server sees: the public Host, the path without the proxy's prefix. Not the internal host.
      const seenPath = url.pathname.slice("/s3".length);
      expect(sigV4Valid(url, { host: url.host, path: seenPath })).toBe(true);
      expect(sigV4Valid(url, { host: s3.endpoint, path: seenPath })).toBe(false);
      const res = await fetch(stored.url);
      expect(res.status).toBe(200);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes);
    } finally {
      proxy.server.close();
    }
  });

  it("retries, then fails with a clear storage_error when the server is down", async () => {
    const downDir = mkdtempSync(join(tmpdir(), "minio-down-"));
    const down = await startS3rver({ directory: downDir });
    await down.close();
    const { logger, lines } = captureLogs();
    const store = new MinioStore({
      minio: minioConfig({ endpoint: down.endpoint }),
      logger,
      retries: 2,
      backoffMs: 10,
    });
    const error = await store
      .put({ taskId: "t", index: 0, ext: "png", contentType: "image/png", bytes: new Uint8Array([1]) })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "storage_error", retryable: true });
    expect((error as Error).message).toMatch(new RegExp(`could not prepare the bucket \\(bucket "sd-images" at http://${down.endpoint}\\) after 3 attempts: .*ECONNREFUSED`));
    expect(lines.filter((line) => String(line.msg).includes("retrying"))).toHaveLength(2);
    rmSync(downDir, { recursive: true, force: true });
  });

  it("fails an upload the same way when the server dies after the bucket was prepared", async () => {
    const dyingDir = mkdtempSync(join(tmpdir(), "minio-dying-"));
    const dying = await startS3rver({ directory: dyingDir });
    const store = new MinioStore({ minio: minioConfig({ endpoint: dying.endpoint }), logger: pino({ level: "silent" }), retries: 1, backoffMs: 10 });
    await store.prepare();
    await dying.close();
    await expect(store.put({ taskId: "t", index: 0, ext: "png", contentType: "image/png", bytes: new Uint8Array([1]) })).rejects.toMatchObject({
      code: "storage_error",
      message: expect.stringMatching(/could not store images\/.+\/t\/0\.png .* after 2 attempts/),
    });
    rmSync(dyingDir, { recursive: true, force: true });
  });
});

describe("objectKey and parseEndpoint", () => {
  it("files keys by UTC day and trims the prefix's slashes", () => {
    const date = new Date(Date.UTC(2025, 11, 31, 23, 30));
    expect(objectKey("/images/", { taskId: "t", index: 0, ext: "png", date })).toBe("images/2025/12/31/t/0.png");
    expect(objectKey("", { taskId: "t", index: 3, ext: "jpg", date })).toBe("2025/12/31/t/3.jpg");
  });

  it("reads host[:port] with an optional scheme", () => {
    expect(parseEndpoint("127.0.0.1:9000", false)).toEqual({ host: "127.0.0.1", port: 9000, secure: false, origin: "http://127.0.0.1:9000" });
    expect(parseEndpoint("minio.example.com", true)).toEqual({ host: "minio.example.com", port: undefined, secure: true, origin: "https://minio.example.com" });
    expect(parseEndpoint("http://s3.local:8333", true).secure).toBe(false);
  });
});
