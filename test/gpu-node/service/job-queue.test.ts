import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { DomainError } from "../../../shared/errors/error-codes.js";
import {
  CancelOutcome,
  CompletedSchema,
  ImageSchema,
  ProgressSchema,
  StartedSchema,
  type Completed,
  type GenerateEvent,
} from "../../../shared/gen/sd/v1/gpu_pb.js";
import { JobQueue, type JobContext, type JobQueueOptions } from "../../../gpu-node/service/job-queue.js";

/** A job whose progress the test drives by hand. */
function manualJob() {
  let resolveCtx!: (ctx: JobContext) => void;
  const context = new Promise<JobContext>((resolve) => {
    resolveCtx = resolve;
  });
  let finish!: (value: Completed) => void;
  let fail!: (error: unknown) => void;
  const work = (ctx: JobContext) =>
    new Promise<Completed>((resolve, reject) => {
      finish = resolve;
      fail = reject;
      ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
      resolveCtx(ctx);
    });
  return {
    work,
    context,
    complete: (urls: string[] = ["u0"]) => finish(create(CompletedSchema, { urls, seed: 7 })),
    fail: (error: unknown) => fail(error),
  };
}

async function collect(events: AsyncIterable<GenerateEvent>): Promise<GenerateEvent["event"][]> {
  const out: GenerateEvent["event"][] = [];
  for await (const event of events) out.push(event.event);
  return out;
}

const cases = (events: GenerateEvent["event"][]) => events.map((e) => e.case);

async function nextEvent(events: AsyncIterator<GenerateEvent>): Promise<GenerateEvent["event"]> {
  const { value, done } = await events.next();
  if (done) throw new Error("stream ended");
  return value.event;
}

const queues: JobQueue[] = [];
function makeQueue(options: Partial<JobQueueOptions> = {}): JobQueue {
  const queue = new JobQueue({ capacity: 4, concurrency: 1, resultTtlMs: 60_000, ...options });
  queues.push(queue);
  return queue;
}
afterEach(() => {
  for (const queue of queues.splice(0)) queue.dispose();
});

describe("JobQueue", () => {
  it("runs jobs one at a time in FIFO order and tells waiting ones their position", async () => {
    const queue = makeQueue();
    const a = manualJob();
    const b = manualJob();
    const c = manualJob();
    const streamA = queue.enqueue("a", a.work);
    const streamB = queue.enqueue("b", b.work);
    const streamC = queue.enqueue("c", c.work);
    expect(await nextEvent(streamA)).toMatchObject({ case: "queued", value: { position: 1 } });
    expect(await nextEvent(streamB)).toMatchObject({ case: "queued", value: { position: 1 } });
    expect(await nextEvent(streamC)).toMatchObject({ case: "queued", value: { position: 2 } });
    expect(queue.snapshot()).toMatchObject({ queueDepth: 2, runningTaskIds: ["a"] });

    a.complete();
    await b.context;
    expect(queue.snapshot()).toMatchObject({ queueDepth: 1, runningTaskIds: ["b"] });
    // c moved up when b left the queue.
    expect(await nextEvent(streamC)).toMatchObject({ case: "queued", value: { position: 1 } });
    b.complete();
    await c.context;
    c.complete();
    expect(cases(await collect(streamA))).toEqual(["completed"]);
    expect(cases(await collect(streamB))).toEqual(["completed"]);
    expect(cases(await collect(streamC))).toEqual(["completed"]);
  });

  it("runs `concurrency` jobs at once", async () => {
    const queue = makeQueue({ concurrency: 2 });
    const a = manualJob();
    const b = manualJob();
    const c = manualJob();
    queue.enqueue("a", a.work);
    queue.enqueue("b", b.work);
    queue.enqueue("c", c.work);
    await Promise.all([a.context, b.context]);
    expect(queue.snapshot()).toMatchObject({ queueDepth: 1, runningTaskIds: ["a", "b"] });
    b.complete();
    await c.context;
    expect(queue.snapshot().runningTaskIds).toEqual(["a", "c"]);
    a.complete();
    c.complete();
  });

  it("refuses work beyond its capacity with queue_full (running jobs do not count)", async () => {
    const queue = makeQueue({ capacity: 1 });
    const a = manualJob();
    queue.enqueue("a", a.work);
    await a.context;
    queue.enqueue("b", manualJob().work);
    expect(() => queue.enqueue("c", manualJob().work)).toThrow(expect.objectContaining({ code: "queue_full" }));
    // The refused task left no trace: it can be sent again later.
    expect(queue.attach("c")).toBeNull();
    a.complete();
  });

  it("gives a late subscriber a snapshot of the running task, then live events", async () => {
    const queue = makeQueue();
    const a = manualJob();
    const first = queue.enqueue("a", a.work);
    const ctx = await a.context;
    ctx.emit({ case: "started", value: create(StartedSchema, { seed: 3, totalSteps: 4 }) });
    for (let step = 1; step <= 3; step++) ctx.emit({ case: "progress", value: create(ProgressSchema, { step, total: 4 }) });
    ctx.emit({ case: "image", value: create(ImageSchema, { index: 0, url: "u0" }) });

    const late = queue.attach("a");
    expect(late).not.toBeNull();
    const lateIterator = late as AsyncIterableIterator<GenerateEvent>;
    expect(await nextEvent(lateIterator)).toMatchObject({ case: "started", value: { seed: 3 } });
    // Only the latest progress, not every step so far.
    expect(await nextEvent(lateIterator)).toMatchObject({ case: "progress", value: { step: 3 } });
    expect(await nextEvent(lateIterator)).toMatchObject({ case: "image", value: { url: "u0" } });

    ctx.emit({ case: "progress", value: create(ProgressSchema, { step: 4, total: 4 }) });
    a.complete(["u0"]);
    expect(cases(await collect(lateIterator))).toEqual(["progress", "completed"]);
    expect(cases(await collect(first))).toEqual(["queued", "started", "progress", "progress", "progress", "image", "progress", "completed"]);
  });

  it("replays a finished task within the result TTL and forgets it after", async () => {
    const queue = makeQueue({ resultTtlMs: 100 });
    const a = manualJob();
    const stream = queue.enqueue("a", a.work);
    const ctx = await a.context;
    ctx.emit({ case: "started", value: create(StartedSchema, { seed: 3, totalSteps: 1 }) });
    ctx.emit({ case: "progress", value: create(ProgressSchema, { step: 1, total: 1 }) });
    ctx.emit({ case: "image", value: create(ImageSchema, { index: 0, url: "u0" }) });
    a.complete(["u0"]);
    await collect(stream);

    const replay = await collect(queue.attach("a") as AsyncIterable<GenerateEvent>);
    expect(cases(replay)).toEqual(["started", "image", "completed"]);
    expect(replay[2]).toMatchObject({ case: "completed", value: { urls: ["u0"], seed: 7 } });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(queue.attach("a")).toBeNull();
  });

  it("forgets a task that failed retryably so the same task id can run again", async () => {
    const queue = makeQueue();
    const a = manualJob();
    const stream = queue.enqueue("a", a.work);
    await a.context;
    a.fail(new DomainError("storage_error", "s3 down"));
    const events = await collect(stream);
    expect(events.at(-1)).toMatchObject({ case: "failed", value: { code: "storage_error", retryable: true, grpcCode: 14 } });
    expect(queue.attach("a")).toBeNull();
    const again = manualJob();
    queue.enqueue("a", again.work);
    await again.context;
    again.complete();
  });

  it("keeps a non-retryable failure and replays it", async () => {
    const queue = makeQueue();
    const stream = queue.reject("bad", {
      $typeName: "sd.v1.Failed",
      code: "invalid_argument",
      grpcCode: 3,
      message: "width must be a multiple of 8",
      retryable: false,
    });
    expect(cases(await collect(stream))).toEqual(["failed"]);
    const replay = await collect(queue.attach("bad") as AsyncIterable<GenerateEvent>);
    expect(replay).toEqual([expect.objectContaining({ case: "failed", value: expect.objectContaining({ code: "invalid_argument" }) })]);
  });

  it("turns an unexpected error into internal", async () => {
    const queue = makeQueue();
    const a = manualJob();
    const stream = queue.enqueue("a", a.work);
    await a.context;
    a.fail(new TypeError("boom"));
    expect((await collect(stream)).at(-1)).toMatchObject({ case: "failed", value: { code: "internal", message: "boom", grpcCode: 13 } });
  });

  it("lets a subscriber leave without touching the job", async () => {
    const queue = makeQueue();
    const a = manualJob();
    const stream = queue.enqueue("a", a.work);
    await nextEvent(stream);
    await stream.return?.();
    const ctx = await a.context;
    expect(ctx.signal.aborted).toBe(false);
    const other = queue.attach("a") as AsyncIterableIterator<GenerateEvent>;
    a.complete();
    expect(cases(await collect(other))).toEqual(["completed"]);
  });

  it("cancels queued tasks at once and running ones through the signal", async () => {
    const queue = makeQueue();
    const a = manualJob();
    const b = manualJob();
    const streamA = queue.enqueue("a", a.work);
    const streamB = queue.enqueue("b", b.work);
    const ctxA = await a.context;

    expect(queue.cancel("b")).toBe(CancelOutcome.CANCELLED);
    expect((await collect(streamB)).at(-1)).toMatchObject({ case: "failed", value: { code: "cancelled", retryable: false } });
    expect(queue.snapshot().queueDepth).toBe(0);

    expect(queue.cancel("a")).toBe(CancelOutcome.CANCELLING);
    expect(ctxA.signal.aborted).toBe(true);
    expect((await collect(streamA)).at(-1)).toMatchObject({ case: "failed", value: { code: "cancelled" } });
    expect(queue.cancel("a")).toBe(CancelOutcome.ALREADY_FINISHED);
    expect(queue.cancel("nobody")).toBe(CancelOutcome.NOT_FOUND);
  });

  it("on shutdown fails queued tasks as retryable, lets the running one finish and refuses new ones", async () => {
    const queue = makeQueue();
    const a = manualJob();
    const streamA = queue.enqueue("a", a.work);
    const streamB = queue.enqueue("b", manualJob().work);
    const ctxA = await a.context;
    const stopped = queue.shutdown(10_000);
    expect((await collect(streamB)).at(-1)).toMatchObject({ case: "failed", value: { code: "unavailable", retryable: true } });
    expect(() => queue.enqueue("c", manualJob().work)).toThrow(expect.objectContaining({ code: "unavailable" }));
    expect(queue.snapshot().accepting).toBe(false);
    expect(ctxA.signal.aborted).toBe(false);
    a.complete();
    await stopped;
    expect((await collect(streamA)).at(-1)).toMatchObject({ case: "completed" });
  });

  it("aborts a running task that outlasts the shutdown timeout, as retryable", async () => {
    const queue = makeQueue();
    const a = manualJob();
    const stream = queue.enqueue("a", a.work);
    const ctx = await a.context;
    await queue.shutdown(50);
    expect(ctx.signal.aborted).toBe(true);
    expect((await collect(stream)).at(-1)).toMatchObject({ case: "failed", value: { code: "unavailable", retryable: true } });
  });
});
