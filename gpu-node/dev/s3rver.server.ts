// Starts s3rver (an S3 API server on the local disk) for `npm run dev` and the tests: loopback only, data in a
// directory, a fixed port or an ephemeral one (port 0). Development tooling, never used in production.
import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import S3rver from "s3rver";

export interface S3rverOptions {
  /** Where buckets and objects live on disk. */
  directory: string;
  /** 0 picks a free port. */
  port?: number;
  host?: string;
  /** Buckets to create before serving. */
  buckets?: string[];
}

export interface RunningS3rver {
  host: string;
  port: number;
  /** host:port, the form config.minio.endpoint takes. */
  endpoint: string;
  close(): Promise<void>;
}

export async function startS3rver(options: S3rverOptions): Promise<RunningS3rver> {
  mkdirSync(options.directory, { recursive: true });
  const host = options.host ?? "127.0.0.1";
  const server = new S3rver({
    address: host,
    port: options.port ?? 0,
    directory: options.directory,
    silent: true,
    // Path-style URLs only: the minio client addresses loopback endpoints that way.
    vhostBuckets: false,
    configureBuckets: (options.buckets ?? []).map((name) => ({ name })),
  });
  const address: AddressInfo = await server.run();
  let closed: Promise<void> | null = null;
  return {
    host,
    port: address.port,
    endpoint: `${host}:${address.port}`,
    close: () => {
      // Keep-alive sockets from S3 clients would hold close() open until they time out.
      server.httpServer?.closeAllConnections();
      closed ??= server.close();
      return closed;
    },
  };
}
