// The transport-agnostic core of the gpu-node: Generate (events as an async iterator), Cancel, GetStatus and
// shutdown, over the job queue, the pipeline runner and the object store. Both listeners call exactly this.
import { create } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import type { Config } from "../../shared/config/config.schema.js";
import { DomainError } from "../../shared/errors/error-codes.js";
import {
  CompletedSchema,
  ImageSchema,
  ListLorasResponseSchema,
  LoraCacheStatusSchema,
  LoraInfoSchema,
  NodeStatusSchema,
  ProgressSchema,
  StartedSchema,
  TimingsSchema,
  type CancelOutcome,
  type Completed,
  type GenerateEvent,
  type GenerateRequest,
  type ListLorasResponse,
  type NodeStatus,
} from "../../shared/gen/sd/v1/gpu_pb.js";
import type { ResolvedScheduler } from "../../shared/schedulers/scheduler-names.js";
import type { GenerateParams, PipelineRunner } from "../pipeline/pipeline.types.js";
import type { ObjectStore } from "../storage/object-store.port.js";
import { failedFrom, JobQueue, type JobContext } from "./job-queue.js";
import { drawSeed, isValidTaskId, resolveGenerateRequest } from "./request.resolver.js";

/** What the service reports for metrics (implemented with prom-client in gpu-node/observability). */
export interface GenerationObserver {
  queueDepth(depth: number): void;
  /** Pipeline wall time of one successful generation. */
  generationSeconds(seconds: number): void;
  stepSeconds(seconds: number): void;
  ortSeconds(seconds: number): void;
  failure(code: string): void;
}

export interface GenerationServiceOptions {
  runner: PipelineRunner;
  store: ObjectStore;
  config: Pick<Config, "generation_defaults" | "api" | "gpu_node">;
  /** config.default_scheduler, or the model's own scheduler when that is null. */
  defaultScheduler: ResolvedScheduler;
  logger: Logger;
  observer?: GenerationObserver;
  /** Read at each GetStatus (the listener's port may only be known after binding). */
  nodeId: () => string;
  version: string;
  /** Monotonic milliseconds. */
  now?: () => number;
  drawSeed?: () => number;
}

// An SDXL adapter on an SD 1.5 node has hundreds of unmatched keys; a few tell what kind of file it is.
const UNMATCHED_KEY_EXAMPLES = 10;

export class GenerationService {
  private readonly queue: JobQueue;
  private readonly now: () => number;

  constructor(private readonly options: GenerationServiceOptions) {
    this.now = options.now ?? (() => performance.now());
    const { gpu_node } = options.config;
    this.queue = new JobQueue({
      capacity: gpu_node.queue_capacity,
      concurrency: gpu_node.concurrency,
      resultTtlMs: gpu_node.result_ttl_seconds * 1000,
      now: this.now,
      onDepthChange: (depth) => options.observer?.queueDepth(depth),
      onFinished: (taskId, outcome) => {
        const log = options.logger.child({ task_id: taskId });
        if (outcome.case === "completed") {
          const { urls, seed, timings } = outcome.value;
          // Plain numbers: the generated message would carry protobuf-es's $typeName into the log line.
          log.info(
            { urls, seed, total_ms: timings?.totalMs, pipeline_ms: timings?.pipelineMs, ort_ms: timings?.ortMs, upload_ms: timings?.uploadMs },
            "task completed",
          );
        } else {
          options.observer?.failure(outcome.value.code);
          log.warn({ code: outcome.value.code, retryable: outcome.value.retryable }, `task failed: ${outcome.value.message}`);
        }
      },
    });
  }

  /**
   * The task's events: attaches to a known task, else validates and queues a new one. Throws a DomainError
   * when the call itself is refused (malformed task id, queue_full, unavailable while shutting down);
   * bad generation parameters instead give a stream with one failed{invalid_argument} event.
   */
  generate(request: GenerateRequest): AsyncIterableIterator<GenerateEvent> {
    const { taskId } = request;
    if (!isValidTaskId(taskId)) {
      throw new DomainError("invalid_argument", "task_id must be 1..128 characters of [A-Za-z0-9._-]");
    }
    const log = this.options.logger.child({ task_id: taskId });
    const attached = this.queue.attach(taskId);
    if (attached) {
      log.debug("attached to a known task");
      return attached;
    }
    const native = this.options.runner.status();
    const resolved = resolveGenerateRequest(request, {
      loras: new Map(this.options.runner.loras().adapters.map((a) => [a.name, a])),
      defaults: this.options.config.generation_defaults,
      limits: this.options.config.api.limits,
      native: { width: native.nativeWidth, height: native.nativeHeight },
      defaultScheduler: this.options.defaultScheduler,
      drawSeed: this.options.drawSeed ?? drawSeed,
    });
    if (!resolved.ok) {
      return this.queue.reject(taskId, failedFrom(resolved.error));
    }
    const { params } = resolved;
    const events = this.queue.enqueue(taskId, (ctx) => this.run(ctx, params));
    log.info(
      {
        width: params.width,
        height: params.height,
        steps: params.numInferenceSteps,
        scheduler: params.scheduler.name,
        img2img: params.initImage !== null,
        ...(params.loras.length > 0 ? { loras: params.loras } : {}),
      },
      "task accepted",
    );
    return events;
  }

  cancel(taskId: string): CancelOutcome {
    const outcome = this.queue.cancel(taskId);
    this.options.logger.info({ task_id: taskId, outcome }, "cancel requested");
    return outcome;
  }

  status(): NodeStatus {
    const pipeline = this.options.runner.status();
    const queue = this.queue.snapshot();
    return create(NodeStatusSchema, {
      nodeId: this.options.nodeId(),
      version: this.options.version,
      modelLoaded: pipeline.modelLoaded,
      modelName: pipeline.modelName,
      queueDepth: queue.queueDepth,
      capacity: queue.capacity,
      concurrency: queue.concurrency,
      runningTaskIds: queue.runningTaskIds,
      busy: queue.runningTaskIds.length >= queue.concurrency,
      accepting: queue.accepting,
      nativeWidth: pipeline.nativeWidth,
      nativeHeight: pipeline.nativeHeight,
    });
  }

  /** The adapters a task may name (GenerateRequest.loras), as the pipeline checked them at start-up. */
  listLoras(): ListLorasResponse {
    const { adapters, cache } = this.options.runner.loras();
    return create(ListLorasResponseSchema, {
      loras: adapters.map((a) =>
        create(LoraInfoSchema, {
          name: a.name,
          kind: a.kind,
          matchedModules: a.matchedModules,
          unmatchedKeys: a.unmatchedKeys.length,
          unmatchedKeyExamples: a.unmatchedKeys.slice(0, UNMATCHED_KEY_EXAMPLES),
          unsupportedKeys: a.unsupportedKeys.length,
          triggerWords: a.triggerWords,
          startupWeight: a.startupWeight ?? undefined,
          error: a.error ?? undefined,
          sizeBytes: a.sizeBytes,
        }),
      ),
      cache: create(LoraCacheStatusSchema, { entries: cache.entries, bytes: cache.bytes, limitBytes: cache.limitBytes }),
    });
  }

  /** Refuses new tasks, fails queued ones as retryable, lets running ones finish within the timeout. */
  shutdown(timeoutMs: number): Promise<void> {
    return this.queue.shutdown(timeoutMs);
  }

  dispose(): void {
    this.queue.dispose();
  }

  /** Removes a cancelled task's uploaded images (best effort: a failure is logged), then ends it cancelled. */
  private async abandonUploads(ctx: JobContext, keys: readonly string[]): Promise<never> {
    if (keys.length > 0) {
      await this.options.store.remove(keys).catch((error: unknown) => {
        this.options.logger.warn({ task_id: ctx.taskId, keys, err: String(error) }, "could not remove a cancelled task's images");
      });
    }
    throw ctx.signal.reason;
  }

  private async run(ctx: JobContext, params: GenerateParams): Promise<Completed> {
    const { observer, runner, store } = this.options;
    const log = this.options.logger.child({ task_id: ctx.taskId });
    log.info({ queue_ms: Math.round(ctx.startedAt - ctx.acceptedAt) }, "task started");

    const pipelineStart = this.now();
    // The pipeline host may deliver several steps at once (it batches progress across the thread boundary);
    // the time since the last delivery is shared among the steps delivered together.
    let lastStepAt = pipelineStart;
    let stepsPending = 0;
    const recordSteps = () => {
      const at = this.now();
      const perStep = (at - lastStepAt) / 1000 / stepsPending;
      for (let i = 0; i < stepsPending; i++) observer?.stepSeconds(perStep);
      lastStepAt = at;
      stepsPending = 0;
    };
    const output = await runner.generate(params, {
      signal: ctx.signal,
      // `started` carries the run's real shape, which only the pipeline knows: img2img's size is the init
      // image's, and its steps are the tail of the schedule (PLMS and 2nd-order schedulers run more).
      onStart: ({ totalSteps, width, height }) => {
        ctx.emit({
          case: "started",
          value: create(StartedSchema, {
            seed: params.seed,
            totalSteps,
            width,
            height,
            numImages: params.numImages,
            scheduler: params.scheduler.name,
          }),
        });
      },
      onProgress: ({ step, total }) => {
        if (stepsPending++ === 0) queueMicrotask(recordSteps);
        ctx.emit({ case: "progress", value: create(ProgressSchema, { step, total }) });
      },
    });
    const pipelineMs = this.now() - pipelineStart;
    // A cancel that lands during the last step or the encode still wins: nothing is stored.
    if (ctx.signal.aborted) throw ctx.signal.reason;
    observer?.generationSeconds(output.timings.totalMs / 1000);
    observer?.ortSeconds(output.timings.ortMs / 1000);

    const uploadStart = this.now();
    const filedOn = new Date();
    const urls: string[] = [];
    const keys: string[] = [];
    for (const image of output.images) {
      // A cancel during the uploads: what went up already is taken down again (its URLs were never reported
      // as a result), and the task ends cancelled, as the edge has already recorded it.
      if (ctx.signal.aborted) await this.abandonUploads(ctx, keys);
      const stored = await store.put({
        taskId: ctx.taskId,
        index: image.index,
        ext: image.ext,
        contentType: image.contentType,
        bytes: image.bytes,
        date: filedOn,
      });
      urls.push(stored.url);
      keys.push(stored.key);
      ctx.emit({
        case: "image",
        value: create(ImageSchema, {
          index: image.index,
          url: stored.url,
          key: stored.key,
          contentType: image.contentType,
          width: image.width,
          height: image.height,
        }),
      });
    }
    if (ctx.signal.aborted) await this.abandonUploads(ctx, keys);
    const end = this.now();
    return create(CompletedSchema, {
      urls,
      keys,
      seed: output.seed,
      stepsRun: output.stepsRun,
      promptTruncated: output.promptTruncated,
      timings: create(TimingsSchema, {
        totalMs: end - ctx.acceptedAt,
        queueMs: ctx.startedAt - ctx.acceptedAt,
        pipelineMs,
        ortMs: output.timings.ortMs,
        encodeMs: output.timings.encodeMs,
        uploadMs: end - uploadStart,
        loraMs: output.lora?.mergeMs ?? 0,
      }),
    });
  }
}
