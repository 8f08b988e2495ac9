// How the edge talks to one GPU node. Two adapters: grpc.gpu-client.ts (grpc-js, Node edge) and
// connect.gpu-client.ts (gRPC-web over fetch, Workers edge). The dispatcher sees only this port.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { DomainError, errorCodeFromGrpc, GrpcCode, isErrorCode, type ErrorCode } from "../../shared/errors/error-codes.js";
import type {
  CancelOutcome,
  GenerateEvent,
  GenerateRequestSchema,
  ListLorasResponse,
  NodeStatus,
} from "../../shared/gen/sd/v1/gpu_pb.js";
import type { Logger } from "../ports/logger.port.js";

export type GenerateRequestInit = MessageInitShape<typeof GenerateRequestSchema>;

/** Metadata / header carrying the shared secret between tiers. */
export const TIER_SECRET_HEADER = "x-tier-secret";
/** Trailer in which the node names the domain code of a refused call. */
export const ERROR_CODE_TRAILER = "x-error-code";

export interface GpuClient {
  /**
   * The task's events until `completed` or `failed`. Calling again with the same task id re-attaches (or
   * replays a finished task). Aborting `signal` only stops listening (the iteration rejects with a
   * GpuCallError `cancelled`, no event is delivered after the abort): the node keeps running the task.
   * Rejects with a GpuCallError when the node refuses the call (queue_full, unauthenticated, unavailable,
   * invalid_argument for a malformed task id) or the connection fails.
   */
  generate(request: GenerateRequestInit, signal?: AbortSignal): AsyncIterable<GenerateEvent>;
  cancel(taskId: string, signal?: AbortSignal): Promise<CancelOutcome>;
  status(signal?: AbortSignal): Promise<NodeStatus>;
  /** The LoRA adapters the node can apply (names for GenerateRequest.loras) and its merged-session cache. */
  loras(signal?: AbortSignal): Promise<ListLorasResponse>;
  close(): void;
}

/** A call the node refused or that never reached it; `code` is the domain code, `grpcCode` the raw status. */
export class GpuCallError extends DomainError {
  readonly grpcCode: number;
  constructor(code: ErrorCode, grpcCode: number, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "GpuCallError";
    this.grpcCode = grpcCode;
  }
}

/** The domain code from the node's trailer when it sent one, else the first one the table gives the status. */
export function gpuCallError(grpcCode: number, message: string, trailerCode: string | null | undefined, cause?: unknown): GpuCallError {
  const code = trailerCode && isErrorCode(trailerCode) ? trailerCode : errorCodeFromGrpc(grpcCode);
  return new GpuCallError(code, grpcCode, message, { cause });
}

/** What a generate() iteration rejects with once the caller's signal aborted it. */
export function abortedByCaller(node: string): GpuCallError {
  return new GpuCallError("cancelled", GrpcCode.CANCELLED, `gpu node ${node}: the caller stopped listening`);
}

/** Tells a node to stop a task (best effort): resolves once it answered or could not be reached, and logs which. */
export function cancelOnNode(client: GpuClient, node: string, taskId: string, logger: Logger): Promise<void> {
  // Cancel is one small unary call; a node that has not answered within this is not going to.
  return client.cancel(taskId, AbortSignal.timeout(10_000)).then(
    (outcome) => logger.info({ task_id: taskId, node, outcome }, "cancel sent to the node"),
    (error: unknown) => logger.warn({ task_id: taskId, node, err: error instanceof Error ? error.message : String(error) }, "cancel could not reach the node"),
  );
}
