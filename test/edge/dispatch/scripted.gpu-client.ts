// A GpuClient the dispatcher unit tests drive by hand: each generate() call opens a "stream" the test feeds
// (events, an error, an end). Only for isolating the dispatcher core; the end-to-end suite uses real nodes.
import { create } from "@bufbuild/protobuf";
import {
  CancelOutcome,
  CompletedSchema,
  FailedSchema,
  GenerateEventSchema,
  ListLorasResponseSchema,
  NodeStatusSchema,
  ProgressSchema,
  QueuedSchema,
  StartedSchema,
  type GenerateEvent,
  type ListLorasResponse,
  type NodeStatus,
} from "../../../shared/gen/sd/v1/gpu_pb.js";
import { abortedByCaller, gpuCallError, type GenerateRequestInit, type GpuClient } from "../../../edge/gpu/gpu-client.port.js";

export interface ScriptedStream {
  request: GenerateRequestInit;
  signal: AbortSignal | undefined;
  push(event: GenerateEvent["event"]): void;
  queued(position: number): void;
  started(totalSteps?: number): void;
  progress(step: number, total: number): void;
  completed(urls?: string[]): void;
  failed(code: string, message: string, retryable: boolean): void;
  /** The stream breaks (connection dropped). */
  error(grpcCode?: number, trailer?: string): void;
  /** Ends without an outcome. */
  end(): void;
  readonly closed: boolean;
}

export class ScriptedNode implements GpuClient {
  readonly streams: ScriptedStream[] = [];
  readonly cancels: string[] = [];
  statusCalls = 0;
  status_: Partial<Omit<NodeStatus, "$typeName" | "$unknown">> = {};
  down = false;
  /** Refuse generate() calls with this (gRPC code, domain trailer) instead of opening a stream. */
  refuse: { grpcCode: number; trailer: string } | null = null;
  #waiters: Array<() => void> = [];

  constructor(readonly name: string) {}

  streamsFor(taskId: string): ScriptedStream[] {
    return this.streams.filter((s) => s.request.taskId === taskId);
  }

  /** Resolves once `n` streams have been opened in total. */
  async waitForStreams(n: number): Promise<void> {
    while (this.streams.length < n) await new Promise<void>((r) => this.#waiters.push(r));
  }

  async status(): Promise<NodeStatus> {
    this.statusCalls++;
    if (this.down) throw gpuCallError(14, `gpu node ${this.name}: connect ECONNREFUSED`, null);
    return create(NodeStatusSchema, {
      nodeId: this.name,
      modelLoaded: true,
      accepting: true,
      concurrency: 1,
      capacity: 64,
      queueDepth: 0,
      ...this.status_,
    });
  }

  async cancel(taskId: string): Promise<CancelOutcome> {
    this.cancels.push(taskId);
    return CancelOutcome.CANCELLING;
  }

  async loras(): Promise<ListLorasResponse> {
    return create(ListLorasResponseSchema, {});
  }

  generate(request: GenerateRequestInit, signal?: AbortSignal): AsyncIterable<GenerateEvent> {
    const buffer: Array<{ event?: GenerateEvent; error?: Error; end?: true }> = [];
    let wake: (() => void) | null = null;
    let closed = false;
    const feed = (item: { event?: GenerateEvent; error?: Error; end?: true }) => {
      buffer.push(item);
      wake?.();
    };
    const taskId = request.taskId ?? "";
    const ev = (event: GenerateEvent["event"]) => feed({ event: create(GenerateEventSchema, { taskId, event }) });
    const stream: ScriptedStream = {
      request,
      signal,
      push: ev,
      queued: (position) => ev({ case: "queued", value: create(QueuedSchema, { position }) }),
      started: (totalSteps = 10) =>
        ev({ case: "started", value: create(StartedSchema, { seed: 42, totalSteps, width: 64, height: 64, numImages: 1, scheduler: "EulerDiscreteScheduler" }) }),
      progress: (step, total) => ev({ case: "progress", value: create(ProgressSchema, { step, total }) }),
      completed: (urls = [`http://s3/${taskId}/0.png`]) => ev({ case: "completed", value: create(CompletedSchema, { urls, seed: 42 }) }),
      failed: (code, message, retryable) => ev({ case: "failed", value: create(FailedSchema, { code, message, retryable }) }),
      error: (grpcCode = 14, trailer) => feed({ error: gpuCallError(grpcCode, `gpu node ${this.name}: Connection dropped`, trailer ?? null) }),
      end: () => feed({ end: true }),
      get closed() {
        return closed;
      },
    };
    const refuse = this.refuse;
    if (!refuse) {
      this.streams.push(stream);
      for (const w of this.#waiters.splice(0)) w();
    }
    const name = this.name;
    return {
      async *[Symbol.asyncIterator]() {
        if (refuse) throw gpuCallError(refuse.grpcCode, `gpu node ${name}: refused`, refuse.trailer);
        const onAbort = () => wake?.();
        signal?.addEventListener("abort", onAbort);
        try {
          for (;;) {
            if (signal?.aborted) throw abortedByCaller(name);
            const item = buffer.shift();
            if (!item) {
              await new Promise<void>((r) => (wake = r));
              wake = null;
              continue;
            }
            if (item.error) throw item.error;
            if (item.end) return;
            yield item.event!;
          }
        } finally {
          closed = true;
          signal?.removeEventListener("abort", onAbort);
        }
      },
    };
  }

  close(): void {}
}
