// The HTTP/1.1 listener for edges that cannot speak HTTP/2 gRPC (Cloudflare Workers): gRPC-web and the
// Connect protocol through @connectrpc/connect-node, over the same service core and generated types.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { CancelResponseSchema, GpuNode, type GenerateEvent } from "../../shared/gen/sd/v1/gpu_pb.js";
import type { GenerationService } from "../service/generation.service.js";
import { callStatus, ERROR_CODE_TRAILER, tierSecretCheck, TIER_SECRET_HEADER } from "./call-status.js";

export interface ConnectServerOptions {
  service: GenerationService;
  host: string;
  /** 0 picks a free port. */
  port: number;
  tierSecret: string | null;
  maxRequestBytes: number;
  logger: Logger;
}

export interface RunningConnectServer {
  port: number;
  /** Stops taking connections; open streams get `graceMs` to end before they are cut. */
  close(graceMs: number): Promise<void>;
}

function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  const status = callStatus(error);
  // Connect's codes are the gRPC status codes.
  return new ConnectError(status.message, status.grpc as number as Code, { [ERROR_CODE_TRAILER]: status.code });
}

export async function startConnectServer(options: ConnectServerOptions): Promise<RunningConnectServer> {
  const { service, logger } = options;
  const checkSecret = tierSecretCheck(options.tierSecret);
  const requireSecret: Interceptor = (next) => async (request) => {
    const denied = checkSecret(request.header.get(TIER_SECRET_HEADER) ?? undefined);
    if (denied) throw toConnectError(denied);
    return next(request);
  };

  const handler = connectNodeAdapter({
    grpcWeb: true,
    connect: true,
    // Native gRPC has its own listener (grpc-js), which also serves health checks.
    grpc: false,
    readMaxBytes: options.maxRequestBytes,
    interceptors: [requireSecret],
    routes: (router) => {
      router.service(GpuNode, {
        async *generate(request, context) {
          let events: AsyncIterableIterator<GenerateEvent>;
          try {
            events = service.generate(request);
          } catch (error) {
            throw toConnectError(error);
          }
          // The client went away: stop listening at once, even while waiting for the next event. The task goes on.
          const detach = () => void events.return?.();
          context.signal.addEventListener("abort", detach, { once: true });
          try {
            yield* events;
          } finally {
            context.signal.removeEventListener("abort", detach);
          }
        },
        cancel(request) {
          return create(CancelResponseSchema, { outcome: service.cancel(request.taskId) });
        },
        getStatus() {
          return service.status();
        },
        listLoras() {
          return service.listLoras();
        },
      });
    },
  });

  const server: Server = createServer(handler);
  // Node's default 300 s request timeout would cut long generation streams (queue wait + run).
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, host: options.host }, "grpc-web/connect listener ready (HTTP/1.1)");

  let closing: Promise<void> | null = null;
  return {
    port,
    close(graceMs) {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
