// Runs the SD pipeline in a worker thread and drives it for the gpu-node service. The model loads once per
// worker; jobs run one at a time in arrival order; progress and cancellation cross the thread boundary (the
// cancel flag is shared memory, because the worker's event loop is busy for the whole run); images come back
// as transferred buffers. If the worker dies (out of memory, a crash), the job it was running fails with a
// clear message, a new worker loads the model, and the jobs that were waiting run there.
import { Worker } from "node:worker_threads";
import type { Config } from "../../shared/config/config.schema.js";
import { DomainError, isErrorCode } from "../../shared/errors/error-codes.js";
import { ModelLoadError } from "./model/model-load.error.js";
import { PipelinePool } from "./pipeline.pool.js";
import type {
  GenerateOutput,
  GenerateParams,
  LoraAdapterInfo,
  LoraCacheStats,
  PipelineRunner,
  PipelineStatus,
  ProgressEvent,
  RunnerHooks,
  StartEvent,
} from "./pipeline.types.js";
import { pipelineSettings, type PipelineSettings } from "./sd-pipeline.factory.js";
import { CANCEL_FLAG, type HostMessage, type WorkerData, type WorkerMessage } from "./worker/worker.protocol.js";

export interface PipelineHostOptions {
  /** Lets tests make the worker die on purpose (injectCrash). Off in the service. */
  faultInjection?: boolean;
  /** First wait before loading the model again after a failed restart; doubles up to 30 s. Default 1 s. */
  restartBackoffMs?: number;
  /**
   * After a job, with no other job waiting and the process's RSS above this, the worker is replaced by a fresh
   * one (gpu_node.recycle_rss_mb). onnxruntime keeps its memory pools at their peak for a session's life (4.5 GB
   * after 2 images at 512x512 on the tiny model); ending the worker is what gives them back. Null: never.
   */
  recycleRssBytes?: number | null;
}

const RESTART_BACKOFF_MAX_MS = 30_000;

interface Job {
  id: number;
  params: GenerateParams;
  cancel: Int32Array<SharedArrayBuffer>;
  onStart?: (event: StartEvent) => void;
  onProgress?: (event: ProgressEvent) => void;
  /** Last step reported to onProgress; the worker may skip steps, which are replayed in order. */
  reportedStep: number;
  resolve: (output: GenerateOutput) => void;
  reject: (err: Error) => void;
}

const WORKER_ENTRY = new URL("./worker/pipeline.worker.ts", import.meta.url);
// Source (.ts) runs through tsx, which a worker only gets from a JS bootstrap that registers it.
const TS_BOOTSTRAP = new URL("./worker/ts-worker.bootstrap.mjs", import.meta.url);

function spawnWorker(settings: PipelineSettings): Worker {
  const workerData: WorkerData & { entry?: string } = { settings };
  if (WORKER_ENTRY.pathname.endsWith(".ts")) {
    return new Worker(TS_BOOTSTRAP, { workerData: { ...workerData, entry: WORKER_ENTRY.href } });
  }
  return new Worker(WORKER_ENTRY, { workerData });
}

export class PipelineHost implements PipelineRunner {
  #worker: Worker | null = null;
  #ready: Promise<void> | null = null;
  #status: PipelineStatus;
  #loras: { adapters: LoraAdapterInfo[]; cache: LoraCacheStats } = { adapters: [], cache: { entries: 0, bytes: 0, limitBytes: 0 } };
  #jobs = new Map<number, Job>();
  #nextId = 1;
  #closed = false;
  #restarts = 0;
  #loadFailures = 0;
  #recycles = 0;
  /** A planned replacement is loading: the host still counts as loaded (the next job just waits for it). */
  #recycling = false;

  constructor(
    private readonly settings: PipelineSettings,
    private readonly options: PipelineHostOptions = {},
  ) {
    this.#status = { modelLoaded: false, modelName: settings.modelName ?? "", nativeWidth: 0, nativeHeight: 0 };
  }

  /** How many times a dead worker was replaced. */
  get restarts(): number {
    return this.#restarts;
  }

  /** How many times the worker was replaced to give memory back (recycleRssBytes). */
  get recycles(): number {
    return this.#recycles;
  }

  /** How many times loading the model in a worker failed. */
  get loadFailures(): number {
    return this.#loadFailures;
  }

  /** Starts a worker and resolves once its model is loaded; rejects with the load error otherwise. */
  start(): Promise<void> {
    if (this.#ready) return this.#ready;
    this.#ready = new Promise<void>((resolve, reject) => {
      const worker = spawnWorker(this.settings);
      this.#worker = worker;
      let loaded = false;
      let crash: Error | null = null;
      worker.on("message", (message: WorkerMessage) => {
        if (message.type === "ready") {
          loaded = true;
          this.#recycling = false;
          this.#status = message.status;
          this.#loras = message.loras;
          // Jobs that waited for this worker (submitted meanwhile, or survivors of a dead one) go now.
          for (const job of this.#jobs.values()) this.#send(job);
          resolve();
        } else if (message.type === "load-failed") {
          const err = new ModelLoadError(message.error.message);
          err.name = message.error.name;
          crash = err;
        } else if (message.type === "lora-cache") {
          this.#loras = { ...this.#loras, cache: message.cache };
        } else {
          this.#onJobMessage(message);
        }
      });
      worker.on("error", (err) => {
        crash ??= err;
      });
      worker.on("exit", (code) => {
        if (this.#worker !== worker) return;
        this.#worker = null;
        this.#ready = null;
        this.#status = { ...this.#status, modelLoaded: false };
        if (this.#closed) return;
        if (!loaded) {
          this.#loadFailures++;
          this.#recycling = false;
          const err = crash ?? new ModelLoadError(`the pipeline worker exited with code ${code} while loading the model`);
          this.#failAll(
            new DomainError("unavailable", `the pipeline could not load its model: ${err.message}`, { cause: err }),
          );
          reject(err);
          return;
        }
        this.#onWorkerDeath(code, crash);
      });
    });
    // A failed start is reported to whoever awaits it; later generate() calls try again.
    this.#ready.catch(() => {});
    return this.#ready;
  }

  status(): PipelineStatus {
    if (!this.#recycling) return { ...this.#status };
    return { ...this.#status, modelLoaded: true, reloading: true };
  }

  /** As the worker reported them when it loaded the model (cache figures: after the last job). */
  loras(): { adapters: LoraAdapterInfo[]; cache: LoraCacheStats } {
    return { adapters: [...this.#loras.adapters], cache: { ...this.#loras.cache } };
  }

  generate(params: GenerateParams, hooks: RunnerHooks = {}): Promise<GenerateOutput> {
    if (this.#closed) return Promise.reject(new DomainError("unavailable", "the pipeline is closed"));
    const { signal } = hooks;
    if (signal?.aborted) return Promise.reject(new DomainError("cancelled", "the generation was cancelled"));
    return new Promise<GenerateOutput>((resolve, reject) => {
      const job: Job = {
        id: this.#nextId++,
        params,
        cancel: new Int32Array(new SharedArrayBuffer(4)),
        onStart: hooks.onStart,
        onProgress: hooks.onProgress,
        reportedStep: 0,
        resolve,
        reject,
      };
      const onAbort = () => {
        // The worker sees the flag between steps and answers with a `cancelled` failure.
        Atomics.store(job.cancel, CANCEL_FLAG, 1);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const settle = () => signal?.removeEventListener("abort", onAbort);
      job.resolve = (output) => {
        settle();
        resolve(output);
      };
      job.reject = (err) => {
        settle();
        reject(err);
      };
      this.#jobs.set(job.id, job);
      if (this.#worker && this.#status.modelLoaded) this.#send(job);
      else this.start().catch(() => {});
    });
  }

  /** Test hook: makes the worker die (exit or an uncaught exception) to exercise recovery. */
  injectCrash(how: "exit" | "throw"): void {
    if (!this.options.faultInjection) throw new Error("fault injection is disabled");
    this.#worker?.postMessage({ type: "crash", how } satisfies HostMessage);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#failAll(new DomainError("unavailable", "the pipeline is shutting down"));
    const worker = this.#worker;
    this.#worker = null;
    this.#ready = null;
    if (worker) await worker.terminate();
  }

  #send(job: Job): void {
    const message: HostMessage = {
      type: "generate",
      id: job.id,
      params: job.params,
      cancel: job.cancel.buffer,
    };
    this.#worker?.postMessage(message);
  }

  #onJobMessage(message: Exclude<WorkerMessage, { type: "ready" | "load-failed" | "lora-cache" }>): void {
    const job = this.#jobs.get(message.id);
    if (!job) return;
    if (message.type === "started") {
      job.onStart?.({ totalSteps: message.totalSteps, width: message.width, height: message.height });
      return;
    }
    if (message.type === "progress") {
      for (let step = job.reportedStep + 1; step <= message.step; step++) {
        job.onProgress?.({ step, total: message.total });
      }
      job.reportedStep = Math.max(job.reportedStep, message.step);
      return;
    }
    this.#jobs.delete(job.id);
    if (message.type === "done") {
      job.resolve(message.output);
    } else {
      const { code, message: text } = message.error;
      job.reject(new DomainError(isErrorCode(code) ? code : "internal", text));
    }
    this.#recycleIfBloated();
  }

  /** Replaces an idle worker whose memory pools grew past recycleRssBytes (see PipelineHostOptions). */
  #recycleIfBloated(): void {
    const limit = this.options.recycleRssBytes;
    const worker = this.#worker;
    if (!limit || !worker || this.#jobs.size > 0 || this.#closed) return;
    if (process.memoryUsage.rss() <= limit) return;
    // No longer the current worker: its exit handler ignores it, so the exit is not taken for a crash.
    this.#worker = null;
    this.#ready = null;
    this.#status = { ...this.#status, modelLoaded: false };
    this.#recycling = true;
    this.#recycles++;
    // A job submitted meanwhile starts the new worker itself; this then waits on the same load.
    // Whatever terminate() says, the next worker starts (a rejection here must not become an unhandled one).
    void worker
      .terminate()
      .catch(() => {})
      .then(() => {
        if (!this.#closed) this.#restartInBackground();
      });
  }

  /** The oldest unfinished job is the one the worker was running: it fails; the rest wait for a new worker. */
  #onWorkerDeath(exitCode: number, crash: Error | null): void {
    this.#restarts++;
    const running = this.#jobs.values().next().value as Job | undefined;
    if (running) {
      this.#jobs.delete(running.id);
      const oom = (crash as NodeJS.ErrnoException | null)?.code === "ERR_WORKER_OUT_OF_MEMORY";
      const reason = crash ? crash.message : `exit code ${exitCode}`;
      running.reject(
        new DomainError(
          oom ? "out_of_memory" : "internal",
          `the pipeline worker died while generating (${reason}); it has been restarted, the request was not completed`,
          { cause: crash ?? undefined },
        ),
      );
    }
    this.#restartInBackground();
  }

  /**
   * Loads the model in a new worker; if that fails (a file replaced mid-deploy, memory short), tries again with
   * backoff. Without this, a node whose reload failed would report its model unloaded, get no work from the edge,
   * and so never try again. Jobs do not wait for it: a failed load fails the jobs waiting for that worker.
   */
  #restartInBackground(attempt = 0): void {
    this.start().catch(() => {
      if (this.#closed) return;
      const delay = Math.min(RESTART_BACKOFF_MAX_MS, (this.options.restartBackoffMs ?? 1000) * 2 ** attempt);
      setTimeout(() => {
        if (!this.#closed) this.#restartInBackground(attempt + 1);
      }, delay).unref();
    });
  }

  #failAll(err: Error): void {
    const jobs = [...this.#jobs.values()];
    this.#jobs.clear();
    for (const job of jobs) job.reject(err);
  }
}

/**
 * Starts gpu_node.concurrency pipeline workers for this config (in parallel) and waits until each has loaded the
 * model. One slot: the single host; more: a pool over them. If any fails to load, all are stopped and its load
 * error is thrown.
 */
export async function createPipelineRunner(
  config: Config,
  options: PipelineHostOptions = {},
): Promise<PipelineHost | PipelinePool<PipelineHost>> {
  const settings = pipelineSettings(config);
  const recycleRssBytes = config.gpu_node.recycle_rss_mb === null ? null : config.gpu_node.recycle_rss_mb * 1024 * 1024;
  const hosts = Array.from({ length: config.gpu_node.concurrency }, () => new PipelineHost(settings, { recycleRssBytes, ...options }));
  // Every start settles (a host closed mid-load would leave its start() pending), then the failures are handled.
  const started = await Promise.allSettled(hosts.map((host) => host.start()));
  const failed = started.find((result) => result.status === "rejected");
  if (failed) {
    await Promise.all(hosts.map((host) => host.close()));
    throw failed.reason;
  }
  return hosts.length === 1 ? hosts[0] : new PipelinePool(hosts);
}
