// The node's task table and queue: bounded FIFO, `concurrency` jobs at a time, idempotent by task id.
// Every task keeps a compact state (started, last progress, stored images, outcome) so a caller that attaches
// later gets a snapshot of the task so far and then its live events; finished tasks stay for the result TTL
// and replay their outcome. Subscribers come and go without touching the job: only cancel() stops one.
import { create } from "@bufbuild/protobuf";
import {
  CancelOutcome,
  FailedSchema,
  GenerateEventSchema,
  QueuedSchema,
  type Completed,
  type Failed,
  type GenerateEvent,
  type Image,
  type Progress,
  type Started,
} from "../../shared/gen/sd/v1/gpu_pb.js";
import { DomainError, ERROR_TABLE } from "../../shared/errors/error-codes.js";
import { EventChannel } from "./event-channel.js";

export type JobState = "queued" | "running" | "completed" | "failed";

/** The events a job emits while it runs; the queue itself emits `queued` and the terminal one. */
export type LiveEvent =
  | { case: "started"; value: Started }
  | { case: "progress"; value: Progress }
  | { case: "image"; value: Image };

type Outcome = { case: "completed"; value: Completed } | { case: "failed"; value: Failed };

export interface JobContext {
  readonly taskId: string;
  /** Aborted by cancel() (reason: DomainError cancelled) or a shutdown past its timeout (unavailable). */
  readonly signal: AbortSignal;
  /** Clock readings (ms) when the task was accepted and when it left the queue. */
  readonly acceptedAt: number;
  readonly startedAt: number;
  emit(event: LiveEvent): void;
}

/** Runs one task; a rejection (ideally a DomainError) becomes its `failed` event. */
export type JobWork = (ctx: JobContext) => Promise<Completed>;

export interface JobQueueOptions {
  /** Most tasks that may wait (running ones not counted). */
  capacity: number;
  concurrency: number;
  resultTtlMs: number;
  /** Monotonic milliseconds. */
  now?: () => number;
  onDepthChange?: (depth: number) => void;
  onFinished?: (taskId: string, outcome: Outcome) => void;
}

interface Job {
  readonly taskId: string;
  state: JobState;
  /** Dropped once started, so a finished job kept for replay does not hold its request (an init image). */
  work: JobWork | null;
  readonly acceptedAt: number;
  /** 1-based while queued. */
  position: number;
  started: Started | null;
  progress: Progress | null;
  readonly images: Image[];
  outcome: Outcome | null;
  readonly subscribers: Set<EventChannel<GenerateEvent>>;
  readonly abort: AbortController;
  done: Promise<void>;
  expiry: ReturnType<typeof setTimeout> | null;
}

export interface QueueSnapshot {
  queueDepth: number;
  capacity: number;
  concurrency: number;
  runningTaskIds: string[];
  accepting: boolean;
}

/** The `failed` payload for any error: DomainErrors keep their code, anything else is `internal`. */
export function failedFrom(error: unknown): Failed {
  const domain =
    error instanceof DomainError
      ? error
      : new DomainError("internal", error instanceof Error ? error.message : String(error), { cause: error });
  const spec = ERROR_TABLE[domain.code];
  return create(FailedSchema, {
    code: domain.code,
    grpcCode: spec.grpc,
    message: domain.message,
    retryable: spec.retryable,
  });
}

export class JobQueue {
  private readonly jobs = new Map<string, Job>();
  private readonly waiting: Job[] = [];
  private readonly running = new Set<Job>();
  private accepting = true;
  private readonly now: () => number;

  constructor(private readonly options: JobQueueOptions) {
    if (options.capacity < 1 || options.concurrency < 1) throw new RangeError("capacity and concurrency must be >= 1");
    this.now = options.now ?? (() => performance.now());
  }

  /** The events of a known task (snapshot, then live), or null when the node holds no such task. */
  attach(taskId: string): AsyncIterableIterator<GenerateEvent> | null {
    const job = this.jobs.get(taskId);
    return job ? this.subscribe(job) : null;
  }

  /** Queues a new task. Throws DomainError unavailable (shutting down) or queue_full. */
  enqueue(taskId: string, work: JobWork): AsyncIterableIterator<GenerateEvent> {
    this.assertAccepting();
    if (this.jobs.has(taskId)) throw new DomainError("conflict", `task ${taskId} is already known to this node`);
    if (this.waiting.length >= this.options.capacity) {
      throw new DomainError("queue_full", `the node's queue is full (${this.options.capacity} waiting)`);
    }
    const job = this.newJob(taskId, work);
    this.waiting.push(job);
    job.position = this.waiting.length;
    const channel = this.subscribe(job);
    this.pump();
    return channel;
  }

  /** Records a task that failed before it could queue (bad input), so a repeat call replays the failure. */
  reject(taskId: string, failed: Failed): AsyncIterableIterator<GenerateEvent> {
    this.assertAccepting();
    if (this.jobs.has(taskId)) throw new DomainError("conflict", `task ${taskId} is already known to this node`);
    const job = this.newJob(taskId, null);
    this.finish(job, { case: "failed", value: failed });
    return this.subscribe(job);
  }

  cancel(taskId: string): CancelOutcome {
    const job = this.jobs.get(taskId);
    if (!job) return CancelOutcome.NOT_FOUND;
    switch (job.state) {
      case "completed":
      case "failed":
        return CancelOutcome.ALREADY_FINISHED;
      case "queued":
        this.removeWaiting(job);
        this.finish(job, { case: "failed", value: failedFrom(new DomainError("cancelled", "cancelled while queued")) });
        this.pump();
        return CancelOutcome.CANCELLED;
      case "running":
        // The pipeline checks the signal between denoising steps.
        if (!job.abort.signal.aborted) job.abort.abort(new DomainError("cancelled", "cancelled while running"));
        return CancelOutcome.CANCELLING;
    }
  }

  snapshot(): QueueSnapshot {
    return {
      queueDepth: this.waiting.length,
      capacity: this.options.capacity,
      concurrency: this.options.concurrency,
      runningTaskIds: [...this.running].map((job) => job.taskId),
      accepting: this.accepting,
    };
  }

  /**
   * Stops accepting, fails queued tasks as retryable (unavailable), lets running ones finish within
   * `timeoutMs`, then aborts the rest (they fail as unavailable too). Resolves when no job runs.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    this.accepting = false;
    for (const job of this.waiting.splice(0)) {
      this.finish(job, {
        case: "failed",
        value: failedFrom(new DomainError("unavailable", "the node is shutting down; the task was not started")),
      });
    }
    this.options.onDepthChange?.(0);
    const running = [...this.running];
    if (running.length === 0) return;
    const settled = Promise.all(running.map((job) => job.done));
    if (await finishesWithin(settled, timeoutMs)) return;
    const reason = new DomainError("unavailable", "the node shut down before the task finished");
    for (const job of running) job.abort.abort(reason);
    // Between two steps the pipeline notices the abort; a step stuck past this grace is abandoned.
    if (await finishesWithin(settled, ABORT_GRACE_MS)) return;
    for (const job of running) this.finish(job, { case: "failed", value: failedFrom(reason) });
  }

  /** Drops the result timers (tests, process exit). */
  dispose(): void {
    for (const job of this.jobs.values()) if (job.expiry) clearTimeout(job.expiry);
  }

  private assertAccepting(): void {
    if (!this.accepting) throw new DomainError("unavailable", "the node is shutting down");
  }

  private newJob(taskId: string, work: JobWork | null): Job {
    const job: Job = {
      taskId,
      state: "queued",
      work,
      acceptedAt: this.now(),
      position: 0,
      started: null,
      progress: null,
      images: [],
      outcome: null,
      subscribers: new Set(),
      abort: new AbortController(),
      done: Promise.resolve(),
      expiry: null,
    };
    this.jobs.set(taskId, job);
    return job;
  }

  private subscribe(job: Job): EventChannel<GenerateEvent> {
    const channel: EventChannel<GenerateEvent> = new EventChannel(() => job.subscribers.delete(channel));
    for (const event of this.snapshotEvents(job)) channel.push(this.event(job, event));
    if (job.outcome) {
      channel.end();
    } else {
      job.subscribers.add(channel);
    }
    return channel;
  }

  /** What a late subscriber needs to know: where the task is now, not every step it went through. */
  private snapshotEvents(job: Job): GenerateEvent["event"][] {
    if (job.state === "queued") return [{ case: "queued", value: create(QueuedSchema, { position: job.position }) }];
    const events: GenerateEvent["event"][] = [];
    if (job.started) events.push({ case: "started", value: job.started });
    if (job.progress && !job.outcome) events.push({ case: "progress", value: job.progress });
    for (const image of job.images) events.push({ case: "image", value: image });
    if (job.outcome) events.push(job.outcome);
    return events;
  }

  private event(job: Job, event: GenerateEvent["event"]): GenerateEvent {
    return create(GenerateEventSchema, { taskId: job.taskId, event });
  }

  private broadcast(job: Job, event: GenerateEvent["event"]): void {
    if (job.subscribers.size === 0) return;
    const message = this.event(job, event);
    for (const channel of job.subscribers) channel.push(message);
  }

  private pump(): void {
    while (this.running.size < this.options.concurrency && this.waiting.length > 0) {
      this.start(this.waiting.shift() as Job);
    }
    this.waiting.forEach((job, i) => {
      if (job.position !== i + 1) {
        job.position = i + 1;
        this.broadcast(job, { case: "queued", value: create(QueuedSchema, { position: job.position }) });
      }
    });
    this.options.onDepthChange?.(this.waiting.length);
  }

  private start(job: Job): void {
    job.state = "running";
    this.running.add(job);
    const work = job.work as JobWork;
    job.work = null;
    const ctx: JobContext = {
      taskId: job.taskId,
      signal: job.abort.signal,
      acceptedAt: job.acceptedAt,
      startedAt: this.now(),
      emit: (event) => {
        if (job.outcome) return;
        if (event.case === "started") job.started = event.value;
        else if (event.case === "progress") job.progress = event.value;
        else job.images.push(event.value);
        this.broadcast(job, event);
      },
    };
    job.done = (async () => {
      let outcome: Outcome;
      try {
        outcome = { case: "completed", value: await work(ctx) };
      } catch (error) {
        // An abort explains the failure better than whatever the interrupted work threw.
        const cause = job.abort.signal.aborted ? job.abort.signal.reason : error;
        outcome = { case: "failed", value: failedFrom(cause) };
      }
      this.finish(job, outcome);
    })();
  }

  private finish(job: Job, outcome: Outcome): void {
    if (job.outcome) return;
    job.outcome = outcome;
    job.state = outcome.case;
    this.broadcast(job, outcome);
    for (const channel of job.subscribers) channel.end();
    job.subscribers.clear();
    const wasRunning = this.running.delete(job);
    // A retryable failure is forgotten so the edge's retry (same task id) runs it again; anything else is
    // kept for the result TTL and replayed.
    if (outcome.case === "failed" && outcome.value.retryable) {
      if (this.jobs.get(job.taskId) === job) this.jobs.delete(job.taskId);
    } else {
      job.expiry = setTimeout(() => {
        if (this.jobs.get(job.taskId) === job) this.jobs.delete(job.taskId);
      }, this.options.resultTtlMs);
      job.expiry.unref?.();
    }
    this.options.onFinished?.(job.taskId, outcome);
    if (wasRunning && this.accepting) this.pump();
  }

  private removeWaiting(job: Job): void {
    const index = this.waiting.indexOf(job);
    if (index >= 0) this.waiting.splice(index, 1);
  }
}

const ABORT_GRACE_MS = 10_000;

async function finishesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
