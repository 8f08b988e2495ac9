// The native gRPC listener (@grpc/grpc-js, h2c, insecure credentials: the tiers talk over a private network
// and authenticate with the tier secret). Serves sd.v1.GpuNode and grpc.health.v1.Health.
import { create } from "@bufbuild/protobuf";
import {
  Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  type ServiceError,
} from "@grpc/grpc-js";
import type { Logger } from "pino";
import {
  CancelResponseSchema,
  GpuNode,
  type CancelRequest,
  type CancelResponse,
  type GenerateEvent,
  type GenerateRequest,
  type GetStatusRequest,
  type ListLorasRequest,
  type ListLorasResponse,
  type NodeStatus,
} from "../../shared/gen/sd/v1/gpu_pb.js";
import { grpcServiceDefinition } from "../../shared/node/grpc-service.definition.js";
import type { GenerationService } from "../service/generation.service.js";
import { callStatus, ERROR_CODE_TRAILER, tierSecretCheck, TIER_SECRET_HEADER } from "./call-status.js";
import { HealthService, ServingStatus } from "./health.service.js";

export interface GrpcServerOptions {
  service: GenerationService;
  host: string;
  /** 0 picks a free port. */
  port: number;
  tierSecret: string | null;
  /** Largest request accepted (the init image dominates it). */
  maxRequestBytes: number;
  logger: Logger;
}

export interface RunningGrpcServer {
  port: number;
  health: HealthService;
  /** Stops taking calls; open streams get `graceMs` to end before they are cut. */
  close(graceMs: number): Promise<void>;
}

function toServiceError(error: unknown): Partial<ServiceError> {
  const status = callStatus(error);
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_TRAILER, status.code);
  return { code: status.grpc, details: status.message, metadata };
}

function firstValue(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === "string" ? value : undefined;
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const { service, logger } = options;
  const checkSecret = tierSecretCheck(options.tierSecret);
  const server = new Server({
    // grpc-js refuses messages over 4 MiB by default; an init image may be larger.
    "grpc.max_receive_message_length": options.maxRequestBytes,
    // Notices edges that vanished without closing their connection, so their subscriptions are dropped.
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
  });

  const health = new HealthService([GpuNode.typeName]);
  health.addToServer(server);

  server.addService(grpcServiceDefinition(GpuNode), {
    Generate: (call: ServerWritableStream<GenerateRequest, GenerateEvent>) => {
      const denied = checkSecret(firstValue(call.metadata, TIER_SECRET_HEADER));
      if (denied) {
        call.emit("error", toServiceError(denied));
        return;
      }
      let events: AsyncIterableIterator<GenerateEvent>;
      try {
        events = service.generate(call.request);
      } catch (error) {
        call.emit("error", toServiceError(error));
        return;
      }
      // The client went away: stop listening. The task itself goes on (only Cancel stops it).
      call.on("cancelled", () => {
        void events.return?.();
      });
      void (async () => {
        // Events are small and few, so writes are not paced by the socket's backpressure.
        for await (const event of events) {
          if (call.cancelled) break;
          call.write(event);
        }
        if (!call.cancelled) call.end();
      })().catch((error: unknown) => {
        logger.error({ err: error, task_id: call.request.taskId }, "grpc: Generate stream failed");
        if (!call.cancelled) call.emit("error", toServiceError(error));
      });
    },
    Cancel: (call: ServerUnaryCall<CancelRequest, CancelResponse>, callback: sendUnaryData<CancelResponse>) => {
      const denied = checkSecret(firstValue(call.metadata, TIER_SECRET_HEADER));
      if (denied) {
        callback(toServiceError(denied));
        return;
      }
      callback(null, create(CancelResponseSchema, { outcome: service.cancel(call.request.taskId) }));
    },
    GetStatus: (call: ServerUnaryCall<GetStatusRequest, NodeStatus>, callback: sendUnaryData<NodeStatus>) => {
      const denied = checkSecret(firstValue(call.metadata, TIER_SECRET_HEADER));
      if (denied) {
        callback(toServiceError(denied));
        return;
      }
      callback(null, service.status());
    },
    ListLoras: (call: ServerUnaryCall<ListLorasRequest, ListLorasResponse>, callback: sendUnaryData<ListLorasResponse>) => {
      const denied = checkSecret(firstValue(call.metadata, TIER_SECRET_HEADER));
      if (denied) {
        callback(toServiceError(denied));
        return;
      }
      callback(null, service.listLoras());
    },
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host}:${options.port}`, ServerCredentials.createInsecure(), (error, bound) => {
      if (error) {
        reject(error);
        return;
      }
      resolve(bound);
    });
  });
  logger.info({ port, host: options.host }, "grpc listener ready (h2c)");

  let closing: Promise<void> | null = null;
  return {
    port,
    health,
    close(graceMs) {
      closing ??= new Promise<void>((resolve) => {
        health.setAll(ServingStatus.NOT_SERVING);
        health.endWatches();
        const force = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return closing;
    },
  };
}
