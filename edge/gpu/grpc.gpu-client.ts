// The GpuClient over native gRPC (@grpc/grpc-js, h2c) for the Node edge. Uses the generated protobuf-es types
// through the same service definition as the node's grpc-js listener.
import { create } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, type CallOptions, type ServiceError } from "@grpc/grpc-js";
import {
  CancelRequestSchema,
  GenerateRequestSchema,
  GetStatusRequestSchema,
  GpuNode,
  ListLorasRequestSchema,
  type CancelOutcome,
  type CancelResponse,
  type GenerateEvent,
  type ListLorasResponse,
  type NodeStatus,
} from "../../shared/gen/sd/v1/gpu_pb.js";
import { GrpcCode } from "../../shared/errors/error-codes.js";
import { grpcServiceDefinition } from "../../shared/node/grpc-service.definition.js";
import {
  ERROR_CODE_TRAILER,
  gpuCallError,
  GpuCallError,
  abortedByCaller,
  TIER_SECRET_HEADER,
  type GenerateRequestInit,
  type GpuClient,
} from "./gpu-client.port.js";

export interface GrpcGpuClientOptions {
  /** host:port of the node's grpc listener (config.gpu_nodes[].grpc). */
  address: string;
  tierSecret?: string | null;
  /** Deadline of Cancel and GetStatus; Generate streams have none (a generation may wait in a queue). */
  unaryTimeoutMs?: number;
  /** Largest request sent (init images); grpc-js's own default is unlimited on send. */
  maxSendBytes?: number;
}

const definition = grpcServiceDefinition(GpuNode);

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as ServiceError).code === "number" && "metadata" in error;
}

function mapError(error: unknown, address: string): GpuCallError {
  if (error instanceof GpuCallError) return error;
  if (isServiceError(error)) {
    const trailer = error.metadata?.get(ERROR_CODE_TRAILER)[0];
    return gpuCallError(error.code, `gpu node ${address}: ${error.details || error.message}`, typeof trailer === "string" ? trailer : null, error);
  }
  // The node could not be reached or the stream broke.
  return gpuCallError(GrpcCode.UNAVAILABLE, `gpu node ${address}: ${error instanceof Error ? error.message : String(error)}`, null, error);
}

export function createGrpcGpuClient(options: GrpcGpuClientOptions): GpuClient {
  const client = new Client(options.address, credentials.createInsecure(), {
    // A generation stream can sit quiet for minutes in a queue; pings notice a node that vanished without
    // closing the connection, so the dispatcher is not left waiting on a dead stream.
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    ...(options.maxSendBytes ? { "grpc.max_send_message_length": options.maxSendBytes } : {}),
  });
  const unaryTimeoutMs = options.unaryTimeoutMs ?? 10_000;

  const metadata = (): Metadata => {
    const md = new Metadata();
    if (options.tierSecret) md.set(TIER_SECRET_HEADER, options.tierSecret);
    return md;
  };

  function unary<Res>(method: "Cancel" | "GetStatus" | "ListLoras", request: unknown, signal?: AbortSignal): Promise<Res> {
    const { path, requestSerialize, responseDeserialize } = definition[method];
    const callOptions: CallOptions = { deadline: Date.now() + unaryTimeoutMs };
    return new Promise<Res>((resolve, reject) => {
      const call = client.makeUnaryRequest<unknown, Res>(
        path,
        requestSerialize,
        responseDeserialize,
        request,
        metadata(),
        callOptions,
        (error, response) => {
          signal?.removeEventListener("abort", onAbort);
          if (error) {
            reject(mapError(error, options.address));
            return;
          }
          resolve(response as Res);
        },
      );
      const onAbort = () => call.cancel();
      if (signal?.aborted) call.cancel();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  return {
    async *generate(request: GenerateRequestInit, signal?: AbortSignal): AsyncGenerator<GenerateEvent> {
      const { path, requestSerialize, responseDeserialize } = definition.Generate;
      const call = client.makeServerStreamRequest<unknown, GenerateEvent>(
        path,
        requestSerialize,
        responseDeserialize,
        create(GenerateRequestSchema, request),
        metadata(),
      );
      const onAbort = () => call.cancel();
      if (signal?.aborted) call.cancel();
      else signal?.addEventListener("abort", onAbort, { once: true });
      try {
        for await (const event of call) {
          // An event already buffered when the caller aborted is not delivered.
          if (signal?.aborted) break;
          yield event as GenerateEvent;
        }
        if (signal?.aborted) throw abortedByCaller(options.address);
      } catch (error) {
        throw mapError(error, options.address);
      } finally {
        signal?.removeEventListener("abort", onAbort);
        // Stopping early (break, abort) ends the call; the node keeps the task.
        call.cancel();
      }
    },
    async cancel(taskId, signal): Promise<CancelOutcome> {
      const response = await unary<CancelResponse>("Cancel", create(CancelRequestSchema, { taskId }), signal);
      return response.outcome;
    },
    status(signal): Promise<NodeStatus> {
      return unary<NodeStatus>("GetStatus", create(GetStatusRequestSchema), signal);
    },
    loras(signal): Promise<ListLorasResponse> {
      return unary<ListLorasResponse>("ListLoras", create(ListLorasRequestSchema), signal);
    },
    close() {
      client.close();
    },
  };
}
