// The S3 object store through the `minio` client: MinIO in production, s3rver in development and tests.
// Objects go up as Buffers of known length (one PUT, no multipart: s3rver cannot list multipart uploads).
import { Client } from "minio";
import type { Logger } from "pino";
import type { Config } from "../../shared/config/config.schema.js";
import { DomainError } from "../../shared/errors/error-codes.js";
import { objectKey, type ObjectStore, type ObjectToStore, type StoredObject } from "./object-store.port.js";

export interface MinioStoreOptions {
  minio: Config["minio"];
  logger: Logger;
  /** Attempts after the first failed one (per operation). */
  retries?: number;
  /** First backoff delay; doubles each attempt, with jitter. */
  backoffMs?: number;
}

interface Endpoint {
  host: string;
  port: number | undefined;
  secure: boolean;
  /** scheme://host[:port], the default public base URL. */
  origin: string;
}

/** `endpoint` is host[:port] as in the original config; a scheme, when present, wins over `secure`. */
export function parseEndpoint(endpoint: string, secure: boolean): Endpoint {
  const withScheme = /^[a-z]+:\/\//i.test(endpoint) ? endpoint : `${secure ? "https" : "http"}://${endpoint}`;
  const url = new URL(withScheme);
  const isSecure = url.protocol === "https:";
  return {
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port ? Number(url.port) : undefined,
    secure: isSecure,
    origin: url.origin,
  };
}

function publicReadPolicy(bucket: string, prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, "");
  const resource = trimmed ? `arn:aws:s3:::${bucket}/${trimmed}/*` : `arn:aws:s3:::${bucket}/*`;
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Principal: { AWS: ["*"] }, Action: ["s3:GetObject"], Resource: [resource] }],
  });
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

export class MinioStore implements ObjectStore {
  private readonly client: Client;
  /**
   * Signs presigned URLs for the host clients fetch from. A SigV4 signature covers the Host header, so a URL
   * signed for the internal endpoint (minio:9000) is refused when fetched through a public host in front of it.
   */
  private readonly presigner: { client: Client; pathPrefix: string };
  private readonly endpoint: Endpoint;
  private readonly retries: number;
  private readonly backoffMs: number;
  private prepared: Promise<void> | null = null;

  constructor(private readonly options: MinioStoreOptions) {
    const { minio } = options;
    this.endpoint = parseEndpoint(minio.endpoint, minio.secure);
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 250;
    const clientFor = (endpoint: Endpoint) =>
      new Client({
        endPoint: endpoint.host,
        port: endpoint.port,
        useSSL: endpoint.secure,
        accessKey: minio.access_key,
        secretKey: minio.secret_key,
        // A known region keeps presigning local (no GetBucketLocation round trip).
        region: minio.region,
        pathStyle: true,
        // Retries are ours: bounded, logged, and ending in one clear storage_error.
        retryOptions: { disableRetry: true },
      });
    this.client = clientFor(this.endpoint);
    if (minio.public_base_url === null) {
      this.presigner = { client: this.client, pathPrefix: "" };
    } else {
      // Signed for the public host; a path in the base URL goes in front of the signed path, for a proxy that
      // strips it (and passes the Host header through, as SigV4 behind a proxy always needs).
      const base = new URL(minio.public_base_url);
      this.presigner = {
        client: clientFor(parseEndpoint(base.origin, base.protocol === "https:")),
        pathPrefix: base.pathname.replace(/\/+$/, ""),
      };
    }
  }

  /** Creates the bucket if missing and applies the public-read policy when configured. Memoised once it works. */
  prepare(): Promise<void> {
    this.prepared ??= this.withRetries("prepare the bucket", () => this.prepareOnce()).catch((error: unknown) => {
      this.prepared = null;
      throw error;
    });
    return this.prepared;
  }

  async put(object: ObjectToStore): Promise<StoredObject> {
    await this.prepare();
    const { bucket, prefix } = this.options.minio;
    const key = objectKey(prefix, object);
    const body = Buffer.from(object.bytes.buffer, object.bytes.byteOffset, object.bytes.byteLength);
    await this.withRetries(`store ${key}`, () =>
      this.client.putObject(bucket, key, body, body.byteLength, { "Content-Type": object.contentType }),
    );
    return { key, url: await this.url(key) };
  }

  async remove(keys: readonly string[]): Promise<void> {
    const { bucket } = this.options.minio;
    // One DELETE per key: a task has at most 10 images, and every S3 server has DeleteObject.
    for (const key of keys) await this.withRetries(`remove ${key}`, () => this.client.removeObject(bucket, key));
  }

  /** The URL clients fetch the object from: public base URL + bucket + key, or presigned. */
  async url(key: string): Promise<string> {
    const { bucket, url_mode, presign_expiry_seconds, public_base_url } = this.options.minio;
    if (url_mode === "presigned") {
      const signed = new URL(await this.presigner.client.presignedGetObject(bucket, key, presign_expiry_seconds));
      return `${signed.origin}${this.presigner.pathPrefix}${signed.pathname}${signed.search}`;
    }
    const base = (public_base_url ?? this.endpoint.origin).replace(/\/+$/, "");
    const path = [bucket, ...key.split("/")].map(encodeURIComponent).join("/");
    return `${base}/${path}`;
  }

  private async prepareOnce(): Promise<void> {
    const { bucket, region, public_read_policy, prefix } = this.options.minio;
    if (!(await this.client.bucketExists(bucket))) {
      try {
        await this.client.makeBucket(bucket, region);
        this.options.logger.info({ bucket }, "created the image bucket");
      } catch (error) {
        // Another node may have created it between the check and here.
        const code = (error as { code?: string }).code;
        if (code !== "BucketAlreadyOwnedByYou" && code !== "BucketAlreadyExists") throw error;
      }
    }
    if (public_read_policy) {
      try {
        await this.client.setBucketPolicy(bucket, publicReadPolicy(bucket, prefix));
      } catch (error) {
        // s3rver and some S3 servers have no bucket policies; public URLs then depend on the server's defaults.
        this.options.logger.warn(
          { bucket, err: describe(error) },
          "could not apply the public-read bucket policy (the S3 server may not support policies); continuing",
        );
      }
    }
  }

  private async withRetries<T>(what: string, operation: () => Promise<T>): Promise<T> {
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) {
        const delay = this.backoffMs * 2 ** (attempt - 1) * (1 + Math.random() * 0.5);
        this.options.logger.warn({ attempt, err: describe(lastError) }, `S3: failed to ${what}; retrying`);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
      try {
        return await operation();
      } catch (error) {
        lastError = error;
      }
    }
    const { bucket } = this.options.minio;
    throw new DomainError(
      "storage_error",
      `could not ${what} (bucket "${bucket}" at ${this.endpoint.origin}) after ${this.retries + 1} attempts: ${describe(lastError)}`,
      { cause: lastError },
    );
  }
}
