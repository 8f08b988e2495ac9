// The dispatcher core over a real libSQL file, with scripted GPU nodes standing in for real ones (the
// end-to-end suite runs the real thing): claims and leases, event writes, retries, re-attach, cancel, timeouts.
import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../edge/adapters/silent.logger.js";
import { tasks } from "../../../edge/db/schema.js";
import { DispatchRepo } from "../../../edge/dispatch/dispatch.repo.js";
import { Dispatcher, type DispatchSettings } from "../../../edge/dispatch/dispatcher.js";
import { NodePool } from "../../../edge/dispatch/node-pool.js";
import { TaskOutcomes } from "../../../edge/dispatch/task-outcomes.js";
import { noopMetrics, type EdgeMetrics } from "../../../edge/metrics/metrics.port.js";
import { OutboxRepo } from "../../../edge/webhooks/outbox.repo.js";
import { parseConfig } from "../../../shared/config/config.schema.js";
import { ManualClock } from "../edge-test-app.js";
import { ScriptedNode } from "./scripted.gpu-client.js";
import { openTestDb, type TestDb } from "./test-db.js";

let db: TestDb;
let clock: ManualClock;
const dispatchers: Dispatcher[] = [];

beforeEach(async () => {
  db = await openTestDb();
  clock = new ManualClock(Date.UTC(2024, 0, 1, 12, 0, 0));
});
afterEach(async () => {
  for (const d of dispatchers.splice(0)) await d.stop();
  db.close();
});

function settings(overrides: Partial<DispatchSettings> = {}): DispatchSettings {
  return { ...parseConfig({}).dispatch, progress_interval_ms: 0, ...overrides };
}

function dispatcher(
  nodes: ScriptedNode[],
  options: {
    id?: string;
    settings?: Partial<DispatchSettings>;
    metrics?: EdgeMetrics;
    finished?: string[];
    repo?: DispatchRepo;
    retentionDays?: number | null;
  } = {},
) {
  const pool = new NodePool(
    nodes.map((n) => ({ name: n.name, client: n })),
    { prefetch: options.settings?.prefetch ?? 1, backoffMinMs: 60_000 },
  );
  const d = new Dispatcher({
    repo: options.repo ?? new DispatchRepo(db.db),
    outcomes: new TaskOutcomes(db.db),
    nodes: pool,
    clock,
    logger: silentLogger,
    metrics: options.metrics ?? noopMetrics,
    instanceId: options.id ?? "edge-a",
    settings: settings(options.settings),
    onFinished: (id, status) => options.finished?.push(`${id}:${status}`),
    retentionDays: options.retentionDays,
  });
  dispatchers.push(d);
  return { d, pool };
}

async function row(id: string) {
  const [r] = await db.db.select().from(tasks).where(eq(tasks.id, id));
  return r;
}

/** Polls until `check` passes (never a fixed sleep as an assertion). */
async function eventually(check: () => Promise<unknown> | unknown, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

describe("Dispatcher", () => {
  it("claims the oldest task, streams it to a node and writes queued/started/progress/completed to the row", async () => {
    const node = new ScriptedNode("n1");
    const finished: string[] = [];
    const latencies: number[] = [];
    const { d } = dispatcher([node], { finished, metrics: { ...noopMetrics, dispatchLatency: (s) => latencies.push(s) } });
    const older = await db.insertTask({ callbackUrl: "http://hooks/cb", width: null, height: null, scheduler: null });
    const newer = await db.insertTask();
    await d.pump();
    await node.waitForStreams(2);
    const [s1, s2] = node.streams;
    expect(s1.request).toMatchObject({ taskId: older, prompt: "a lighthouse", seed: 42, numImages: 1 });
    expect(s2.request.taskId).toBe(newer);
    expect(await row(older)).toMatchObject({ status: "pending", leaseOwner: "edge-a", attempts: 1, node: "n1" });
    expect((await row(older)).leaseUntil!.getTime()).toBe(clock.ms + 30_000);

    s2.queued(1);
    await eventually(async () => expect((await row(newer)).queuePosition).toBe(0));
    s1.started(10);
    clock.advance(1500);
    await eventually(async () => expect(await row(older)).toMatchObject({ status: "processing", progressStep: 0, progressTotal: 10, seed: 42, width: 64, height: 64, scheduler: "EulerDiscreteScheduler" }));
    expect(latencies).toEqual([1.5]);
    s1.progress(4, 10);
    await eventually(async () => expect((await row(older)).progressStep).toBe(4));
    s1.completed(["http://s3/a.png", "http://s3/b.png"]);
    await eventually(async () =>
      expect(await row(older)).toMatchObject({ status: "completed", resultUrls: ["http://s3/a.png", "http://s3/b.png"], progressStep: 10, leaseOwner: null, leaseUntil: null }),
    );
    expect((await row(older)).finishedAt).not.toBeNull();
    expect(finished).toEqual([`${older}:completed`]);
    expect(await new OutboxRepo(db.db).byTask(older)).toMatchObject({ state: "pending", url: "http://hooks/cb" });
  });

  it("keeps a node's in-flight tasks at its concurrency plus the prefetch; the rest stay in the database", async () => {
    const node = new ScriptedNode("n1");
    node.status_ = { concurrency: 2 };
    const { d } = dispatcher([node], { settings: { prefetch: 1 } });
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push(await db.insertTask());
    await d.pump();
    await node.waitForStreams(3);
    await d.pump();
    expect(node.streams).toHaveLength(3);
    expect(node.streams.map((s) => s.request.taskId)).toEqual(ids.slice(0, 3));
    expect((await row(ids[3])).leaseOwner).toBeNull();
    // A finished task frees a slot: the next one goes out without waiting for a tick.
    node.streams[0].completed();
    await node.waitForStreams(4);
    expect(node.streams[3].request.taskId).toBe(ids[3]);
  });

  it("spreads tasks over nodes by load", async () => {
    const a = new ScriptedNode("a");
    const b = new ScriptedNode("b");
    b.status_ = { queueDepth: 5 };
    const { d } = dispatcher([a, b], { settings: { prefetch: 3 } });
    for (let i = 0; i < 6; i++) await db.insertTask();
    await d.pump();
    await eventually(() => expect(a.streams.length + b.streams.length).toBe(6));
    // b reported 5 queued: a takes work until its own load (in flight) reaches b's.
    expect(a.streams.length).toBe(4);
    expect(b.streams.length).toBe(2);
  });

  it("throttles progress writes but always writes the last step", async () => {
    const node = new ScriptedNode("n1");
    const { d } = dispatcher([node], { settings: { progress_interval_ms: 60_000 } });
    const id = await db.insertTask();
    await d.pump();
    await node.waitForStreams(1);
    const s = node.streams[0];
    s.started(50);
    for (let step = 1; step <= 49; step++) s.progress(step, 50);
    await eventually(async () => expect((await row(id)).progressStep).toBe(1));
    // Steps 2..49 arrive within the interval: held back (the first one was written at once).
    s.push({ case: "image", value: { $typeName: "sd.v1.Image", index: 0, url: "u", key: "k", contentType: "image/png", width: 64, height: 64 } });
    await eventually(async () => expect((await row(id)).progressStep).toBe(49));
    s.progress(50, 50);
    await eventually(async () => expect((await row(id)).progressStep).toBe(50));
  });

  it("releases a task after a retryable failure and retries it elsewhere; fails it once the attempts run out", async () => {
    const a = new ScriptedNode("a");
    const b = new ScriptedNode("b");
    const { d } = dispatcher([a, b], { settings: { max_attempts: 2, prefetch: 0 } });
    const id = await db.insertTask({ callbackUrl: "http://hooks/cb" });
    await d.pump();
    await eventually(() => expect(a.streams.length + b.streams.length).toBe(1));
    const first = [...a.streams, ...b.streams][0];
    const firstNode = a.streams.length === 1 ? "a" : "b";
    first.failed("storage_error", "S3 is down", true);
    // Released (node forgotten: the node dropped a retryable failure), then claimed again at once.
    await eventually(() => expect(a.streams.length + b.streams.length).toBe(2));
    const second = [...a.streams, ...b.streams].find((s) => s !== first)!;
    expect((await row(id)).lastError).toBe(`${firstNode}: storage_error: S3 is down`);
    expect((await row(id)).attempts).toBe(2);
    second.failed("storage_error", "still down", true);
    await eventually(async () =>
      expect(await row(id)).toMatchObject({
        status: "failed",
        errorMessage: expect.stringMatching(/^generation gave up after 2 attempts: .*storage_error: still down$/),
      }),
    );
    expect(JSON.parse((await new OutboxRepo(db.db).byTask(id))!.payload)).toMatchObject({ status: "failed", error_message: expect.stringContaining("gave up after 2 attempts") });
  });

  it("fails at once on a non-retryable failure, and marks a node's own cancel as cancelled", async () => {
    const node = new ScriptedNode("n1");
    const { d } = dispatcher([node]);
    const bad = await db.insertTask();
    const gone = await db.insertTask();
    await d.pump();
    await node.waitForStreams(2);
    node.streams[0].failed("invalid_argument", "width must be a multiple of 8", false);
    node.streams[1].failed("cancelled", "cancelled while queued", false);
    await eventually(async () => expect(await row(bad)).toMatchObject({ status: "failed", errorMessage: "width must be a multiple of 8", attempts: 1 }));
    await eventually(async () => expect((await row(gone)).status).toBe("cancelled"));
  });

  it("a broken stream marks the node down and the task goes to another node; the row keeps its node for re-attach", async () => {
    const a = new ScriptedNode("a");
    const b = new ScriptedNode("b");
    b.status_ = { queueDepth: 1 };
    const { d, pool } = dispatcher([a, b], { settings: { prefetch: 0 } });
    const id = await db.insertTask();
    await d.pump();
    await a.waitForStreams(1);
    a.down = true;
    a.streams[0].error(14);
    await b.waitForStreams(1);
    expect(b.streams[0].request.taskId).toBe(id);
    expect(pool.views().find((v) => v.name === "a")).toMatchObject({ up: false, lastError: expect.stringContaining("Connection dropped") });
    expect(await row(id)).toMatchObject({ attempts: 2, node: "b", lastError: expect.stringContaining("Connection dropped") });
  });

  it("a stream that ends without an outcome counts as a failed attempt", async () => {
    const a = new ScriptedNode("a");
    const { d } = dispatcher([a], { settings: { max_attempts: 1 } });
    const id = await db.insertTask();
    await d.pump();
    await a.waitForStreams(1);
    a.streams[0].end();
    await eventually(async () => expect((await row(id)).errorMessage).toMatch(/gave up after 1 attempt: .*ended without an outcome/));
  });

  it("a node that refuses with queue_full does not use up an attempt", async () => {
    const a = new ScriptedNode("a");
    a.refuse = { grpcCode: 8, trailer: "queue_full" };
    const { d } = dispatcher([a], { settings: { max_attempts: 1 } });
    const id = await db.insertTask();
    await d.pump();
    await d.idle();
    expect(await row(id)).toMatchObject({ status: "pending", attempts: 0, leaseOwner: null, lastError: expect.stringContaining("refused") });
  });

  it("an expired lease (edge crash) is claimed by another edge, which re-attaches on the recorded node", async () => {
    const a = new ScriptedNode("a");
    const b = new ScriptedNode("b");
    const first = dispatcher([a, b], { id: "edge-1", settings: { prefetch: 0 } });
    const id = await db.insertTask();
    await first.d.pump();
    await eventually(() => expect(a.streams.length + b.streams.length).toBe(1));
    const ranOn = a.streams.length === 1 ? "a" : "b";
    const ranOnNode = ranOn === "a" ? a : b;
    ranOnNode.streams[0].started(10);
    await eventually(async () => expect((await row(id)).status).toBe("processing"));
    // edge-1 "crashes": it stops renewing; another edge sees the lease only once it has expired.
    const second = dispatcher([a, b], { id: "edge-2", settings: { prefetch: 0 } });
    await second.d.tick();
    expect(ranOnNode.streams).toHaveLength(1);
    clock.advance(30_001);
    await second.d.tick();
    await eventually(() => expect(ranOnNode.streams).toHaveLength(2));
    expect(ranOnNode.streams[1].request.taskId).toBe(id);
    expect(await row(id)).toMatchObject({ leaseOwner: "edge-2", attempts: 2, node: ranOn });
    // edge-1's next renewal finds the task gone and drops its stream; its writes change nothing.
    await first.d.renewLeases();
    await eventually(() => expect(ranOnNode.streams[0].closed).toBe(true));
    ranOnNode.streams[1].completed();
    await eventually(async () => expect((await row(id)).status).toBe("completed"));
  });

  it("renews leases of held tasks and fails tasks whose lease expired with no attempt left", async () => {
    const a = new ScriptedNode("a");
    const { d } = dispatcher([a], { settings: { max_attempts: 1 } });
    const id = await db.insertTask();
    await d.pump();
    await a.waitForStreams(1);
    clock.advance(20_000);
    await d.renewLeases();
    expect((await row(id)).leaseUntil!.getTime()).toBe(clock.ms + 30_000);
    // Another edge's view after this edge died: the lease expired, attempts are used up.
    const other = dispatcher([a], { id: "edge-b", settings: { max_attempts: 1 } });
    clock.advance(30_001);
    await other.d.reconcile();
    expect(await row(id)).toMatchObject({ status: "failed", errorMessage: expect.stringMatching(/gave up after 1 attempt: the lease expired/) });
  });

  it("fails an unleased pending task that has no attempt left (max_attempts lowered since it was tried)", async () => {
    const a = new ScriptedNode("a");
    a.down = true;
    const { d } = dispatcher([a], { settings: { max_attempts: 2 } });
    const id = await db.insertTask({ attempts: 2, lastError: "a: storage_error: S3 is down" });
    await d.reconcile();
    expect(await row(id)).toMatchObject({ status: "failed", errorMessage: "generation gave up after 2 attempts: a: storage_error: S3 is down" });
  });

  it("cancel stops the stream here and tells the node", async () => {
    const a = new ScriptedNode("a");
    const { d } = dispatcher([a]);
    const id = await db.insertTask();
    await d.pump();
    await a.waitForStreams(1);
    await new TaskOutcomes(db.db).finish(id, { status: "cancelled" }, clock.now());
    d.cancel(id, "a");
    await eventually(() => expect(a.streams[0].closed).toBe(true));
    await eventually(() => expect(a.cancels).toEqual([id]));
    expect((await row(id)).status).toBe("cancelled");
    // A cancel of a task streamed by another edge reaches its node too.
    d.cancel("other-task", "a");
    await eventually(() => expect(a.cancels).toContain("other-task"));
  });

  it("a held task cancelled through another edge is noticed at its next write and cancelled on the node", async () => {
    const a = new ScriptedNode("a");
    const { d } = dispatcher([a]);
    const id = await db.insertTask();
    await d.pump();
    await a.waitForStreams(1);
    await new TaskOutcomes(db.db).finish(id, { status: "cancelled" }, clock.now());
    a.streams[0].started(10);
    await eventually(() => expect(a.cancels).toEqual([id]));
    expect(a.streams[0].closed).toBe(true);
  });

  it("fails pending tasks that waited past the pending timeout while no node was healthy", async () => {
    const a = new ScriptedNode("a");
    a.down = true;
    const { d } = dispatcher([a], { settings: { pending_timeout_seconds: 60 } });
    const old = await db.insertTask({ createdAt: new Date(clock.ms - 120_000) });
    await d.tick();
    // The node has been down only since this edge started: not long enough yet.
    expect((await row(old)).status).toBe("pending");
    clock.advance(61_000);
    const young = await db.insertTask({ createdAt: new Date(clock.ms - 1_000) });
    await d.tick();
    expect(await row(old)).toMatchObject({ status: "failed", errorMessage: expect.stringContaining("no GPU node was available for 60 s") });
    expect((await row(young)).status).toBe("pending");
  });

  it("stop() hands held tasks over at once, refunding the attempt; the next edge re-attaches on the same node", async () => {
    const a = new ScriptedNode("a");
    const first = dispatcher([a], { id: "edge-1" });
    const id = await db.insertTask();
    await first.d.pump();
    await a.waitForStreams(1);
    await first.d.stop();
    expect(a.streams[0].closed).toBe(true);
    expect(await row(id)).toMatchObject({ status: "pending", attempts: 0, node: "a", leaseOwner: "edge-1" });
    expect((await row(id)).leaseUntil!.getTime()).toBe(clock.ms);
    const second = dispatcher([a], { id: "edge-2" });
    await second.d.tick();
    await a.waitForStreams(2);
    expect(await row(id)).toMatchObject({ leaseOwner: "edge-2", attempts: 1 });
  });

  it("a database error while writing an event drops the stream without blaming the node; the lease lapses and the task re-attaches", async () => {
    const a = new ScriptedNode("a");
    class FailingRepo extends DispatchRepo {
      override async started(): ReturnType<DispatchRepo["started"]> {
        throw new Error("SQLITE_BUSY: database is locked");
      }
    }
    const { d, pool } = dispatcher([a], { id: "edge-1", repo: new FailingRepo(db.db) });
    const id = await db.insertTask();
    await d.pump();
    await a.waitForStreams(1);
    a.streams[0].started(10);
    await eventually(() => expect(a.streams[0].closed).toBe(true));
    await d.idle();
    expect(pool.views()[0]).toMatchObject({ up: true, inFlight: 0 });
    expect(await row(id)).toMatchObject({ status: "pending", leaseOwner: "edge-1", node: "a", attempts: 1 });
    clock.advance(30_001);
    const other = dispatcher([a], { id: "edge-2" });
    await other.d.tick();
    await a.waitForStreams(2);
    expect(await row(id)).toMatchObject({ leaseOwner: "edge-2", node: "a" });
  });

  it("does not claim while no node is healthy", async () => {
    const a = new ScriptedNode("a");
    a.status_ = { modelLoaded: false };
    const { d } = dispatcher([a]);
    const id = await db.insertTask();
    await d.tick();
    expect((await row(id)).leaseOwner).toBeNull();
    expect(a.streams).toHaveLength(0);
  });
});

describe("Dispatcher retention (task_db.retention_days)", () => {
  it("deletes finished tasks created before the retention window in its periodic pass, and nothing when unset", async () => {
    const day = 86_400_000;
    const old = new Date(clock.now().getTime() - 31 * day);
    const recent = new Date(clock.now().getTime() - 29 * day);
    const oldDone = await db.insertTask({ status: "completed", createdAt: old });
    const oldFailed = await db.insertTask({ status: "failed", createdAt: old });
    const oldPending = await db.insertTask({ status: "pending", createdAt: old, attempts: 0 });
    const recentDone = await db.insertTask({ status: "completed", createdAt: recent });

    await dispatcher([], { retentionDays: null }).d.reconcile();
    expect(await row(oldDone)).toBeDefined();

    await dispatcher([], { retentionDays: 30 }).d.reconcile();
    expect(await row(oldDone)).toBeUndefined();
    expect(await row(oldFailed)).toBeUndefined();
    // A live task is never pruned, however old; a finished one inside the window stays.
    expect((await row(oldPending))?.status).toBe("pending");
    expect((await row(recentDone))?.status).toBe("completed");
  });
});
