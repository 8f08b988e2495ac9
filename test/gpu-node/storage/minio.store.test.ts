import { mkdtempSync, rmSync } from "node:fs";
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
    expect((await fetch(stored.url)).status).toBe(200);
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
