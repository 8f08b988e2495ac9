// The GpuClient over gRPC-web on fetch (@connectrpc/connect-web), for the edge in Cloudflare Workers: no
// node: imports, no runtime code generation (protobuf-es works from the generated descriptors).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { CancelRequestSchema, GenerateRequestSchema, GpuNode, type GenerateEvent } from "../../shared/gen/sd/v1/gpu_pb.js";
import {
  ERROR_CODE_TRAILER,
  gpuCallError,
  GpuCallError,
  abortedByCaller,
  TIER_SECRET_HEADER,
  type GenerateRequestInit,
  type GpuClient,
} from "./gpu-client.port.js";

export interface ConnectGpuClientOptions {
  /** Base URL of the node's gRPC-web listener (config.gpu_nodes[].web). */
  baseUrl: string;
  tierSecret?: string | null;
  unaryTimeoutMs?: number;
  /** The fetch to wrap; globalThis.fetch when absent. */
  fetch?: typeof globalThis.fetch;
}

/**
 * connect-web sets `redirect`, `mode` and `credentials` on every request; Workers' fetch throws on `mode` and
 * `credentials` ("not implemented"), and none of them matters between servers. Drop them.
 */
export function workerSafeFetch(base: typeof globalThis.fetch): typeof globalThis.fetch {
  return (input, init) => {
    if (!init) return base(input);
    const { redirect: _redirect, mode: _mode, credentials: _credentials, ...rest } = init;
    return base(input, rest);
  };
}

function mapError(error: unknown, baseUrl: string): GpuCallError {
  if (error instanceof GpuCallError) return error;
  const connectError = ConnectError.from(error);
  // fetch rejects with a TypeError when the node cannot be reached; connect reports that as Unknown, but for
  // the dispatcher it is UNAVAILABLE (try another node), as grpc-js reports it.
  const unreachable = connectError.code === Code.Unknown && connectError.cause instanceof TypeError;
  // Connect's codes are the gRPC status codes.
  return gpuCallError(
    unreachable ? Code.Unavailable : connectError.code,
    `gpu node ${baseUrl}: ${connectError.rawMessage}`,
    connectError.metadata.get(ERROR_CODE_TRAILER),
    error,
  );
}

export function createConnectGpuClient(options: ConnectGpuClientOptions): GpuClient {
  const baseFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const addSecret: Interceptor = (next) => (request) => {
    if (options.tierSecret) request.header.set(TIER_SECRET_HEADER, options.tierSecret);
    return next(request);
  };
  const transport = createGrpcWebTransport({
    baseUrl: options.baseUrl,
    useBinaryFormat: true,
    fetch: workerSafeFetch(baseFetch),
    interceptors: [addSecret],
  });
  const client = createClient(GpuNode, transport);
  const unaryTimeoutMs = options.unaryTimeoutMs ?? 10_000;
  const unary = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      throw mapError(error, options.baseUrl);
    }
  };

  return {
    async *generate(request: GenerateRequestInit, signal?: AbortSignal): AsyncGenerator<GenerateEvent> {
      try {
        for await (const event of client.generate(create(GenerateRequestSchema, request), { signal })) {
          // An event already buffered when the caller aborted is not delivered.
          if (signal?.aborted) break;
          yield event;
        }
      } catch (error) {
        throw mapError(error, options.baseUrl);
      }
      if (signal?.aborted) throw abortedByCaller(options.baseUrl);
    },
    cancel: (taskId, signal) =>
      unary(async () => (await client.cancel(create(CancelRequestSchema, { taskId }), { signal, timeoutMs: unaryTimeoutMs })).outcome),
    status: (signal) => unary(() => client.getStatus({}, { signal, timeoutMs: unaryTimeoutMs })),
    loras: (signal) => unary(() => client.listLoras({}, { signal, timeoutMs: unaryTimeoutMs })),
    close() {
      // fetch holds no connection of its own to release.
    },
  };
}
