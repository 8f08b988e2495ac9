// The dispatcher core (DESIGN.md, "Task lifecycle and durability"): claims tasks from the tasks table with a
// lease, sends each to a GPU node over the GpuClient port, and writes the node's events to the row as they
// arrive. Runtime-agnostic: it owns no timers. The Node edge drives it from in-process loops
// (edge/node/background.loops.ts); the Workers edge calls the same methods from a Queue consumer and a cron.
import type { SQL } from "drizzle-orm";
import type { Config } from "../../shared/config/config.schema.js";
import type { GenerateEvent } from "../../shared/gen/sd/v1/gpu_pb.js";
import type { TaskRow } from "../db/schema.js";
import { cancelOnNode, GpuCallError } from "../gpu/gpu-client.port.js";
import type { EdgeMetrics } from "../metrics/metrics.port.js";
import type { Clock } from "../ports/clock.port.js";
import type { Logger } from "../ports/logger.port.js";
import type { TerminalOutcome } from "../webhooks/webhook.payload.js";
import { heldBy, unheld, unleasedPending, type DispatchRepo } from "./dispatch.repo.js";
import { toGenerateRequest } from "./generate-request.js";
import type { NodePool, PoolNode } from "./node-pool.js";
import type { TaskOutcomes } from "./task-outcomes.js";

export type DispatchSettings = Config["dispatch"];

export interface DispatcherDeps {
  repo: DispatchRepo;
  outcomes: TaskOutcomes;
  nodes: NodePool;
  clock: Clock;
  logger: Logger;
  metrics: EdgeMetrics;
  /** This edge process; written to lease_owner. Unique per process, so a restarted edge is a new owner. */
  instanceId: string;
  settings: DispatchSettings;
  /** A task reached a terminal state here (its callback, if any, is now in the outbox). */
  onFinished?: (taskId: string, status: TerminalOutcome["status"]) => void;
  /**
   * Since when no GPU node has been healthy (null while one is): pending tasks time out against it. By default
   * the dispatcher keeps its own, counting from its construction; the Workers edge builds a dispatcher per
   * invocation and passes the one its isolate keeps.
   */
  noHealthySince?: NoHealthySince;
  /** task_db.retention_days: finished tasks older than this are deleted by the periodic pass; null keeps them. */
  retentionDays?: number | null;
}

export interface NoHealthySince {
  at: number | null;
}

type StopReason = "cancelled" | "lost" | "stopping" | "stalled";

interface Held {
  readonly row: TaskRow;
  readonly node: PoolNode;
  readonly abort: AbortController;
  stopReason: StopReason | null;
  started: boolean;
  lastEventAt: number;
}

/** Throttles progress writes per task: at most one per interval, and always the last step. */
class ProgressThrottle {
  #lastWriteAt = -Infinity;
  #pending: { step: number; total: number } | null = null;
  constructor(readonly intervalMs: number) {}

  /** The progress to write now, or null to hold it back. */
  offer(step: number, total: number, now: number): { step: number; total: number } | null {
    if (step >= total || now - this.#lastWriteAt >= this.intervalMs) {
      this.#lastWriteAt = now;
      this.#pending = null;
      return { step, total };
    }
    this.#pending = { step, total };
    return null;
  }

  /** What was held back, once another event makes it worth writing. */
  flush(now: number): { step: number; total: number } | null {
    const pending = this.#pending;
    this.#pending = null;
    if (pending) this.#lastWriteAt = now;
    return pending;
  }
}

export class Dispatcher {
  readonly #deps: DispatcherDeps;
  readonly #held = new Map<string, Held>();
  readonly #runs = new Set<Promise<void>>();
  #pumping: Promise<void> | null = null;
  /** A round asked for after a macrotask turn (see #kickSoon); idle() waits for it too. */
  #kickScheduled: Promise<void> | null = null;
  #pumpAgain = false;
  #stopped = false;
  readonly #noHealthySince: NoHealthySince;

  constructor(deps: DispatcherDeps) {
    this.#deps = deps;
    this.#noHealthySince = deps.noHealthySince ?? { at: deps.clock.now().getTime() };
  }

  get instanceId(): string {
    return this.#deps.instanceId;
  }

  /** Whether some GPU node is healthy now (the periodic pass runs more often while none is). */
  hasHealthyNode(): boolean {
    return this.#deps.nodes.healthyCount() > 0;
  }

  /** Task ids this edge is streaming now. */
  heldTaskIds(): string[] {
    return [...this.#held.keys()];
  }

  /** Asks for a dispatch round without waiting for it (a new task, a freed slot). */
  kick(): void {
    void this.pump().catch((error: unknown) => this.#deps.logger.error({ err: errorMessage(error) }, "dispatch round failed"));
  }

  /**
   * Claims tasks while a healthy node has a free slot and starts streaming each. Rounds never overlap: a call
   * during a round makes that round run once more.
   */
  pump(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#pumping) {
      this.#pumpAgain = true;
      return this.#pumping;
    }
    this.#pumping = (async () => {
      try {
        do {
          this.#pumpAgain = false;
          await this.#round();
        } while (this.#pumpAgain && !this.#stopped);
      } finally {
        this.#pumping = null;
      }
    })();
    return this.#pumping;
  }

  /** The periodic pass (and the start-up one): fresh node status, reconcile, then dispatch. */
  async tick(): Promise<void> {
    if (this.#stopped) return;
    await this.#deps.nodes.refresh();
    await this.reconcile();
    await this.pump();
  }

  /**
   * Fails what can no longer succeed: tasks whose lease expired with no attempt left, and pending tasks that
   * waited longer than dispatch.pending_timeout_seconds while no node was healthy.
   */
  async reconcile(): Promise<void> {
    const { repo, clock, settings, nodes, logger } = this.#deps;
    const now = clock.now();
    for (const row of await repo.exhausted(now, settings.max_attempts)) {
      const message = gaveUpMessage(row.attempts, row.lastError ?? "the lease expired (edge or node stopped) before the task finished");
      await this.#finish(row.id, { status: "failed", errorMessage: message }, unheld(now));
    }
    const { retentionDays } = this.#deps;
    if (retentionDays) {
      const before = new Date(now.getTime() - retentionDays * 86_400_000);
      // One batch per pass: a backlog (retention turned on for an old database) drains over a few passes.
      const pruned = await repo.pruneFinished(before);
      if (pruned > 0) logger.info({ tasks: pruned, created_before: before.toISOString() }, "finished tasks past task_db.retention_days deleted");
    }
    if (nodes.healthyCount() > 0) {
      this.#noHealthySince.at = null;
      return;
    }
    this.#noHealthySince.at ??= now.getTime();
    const timeoutMs = settings.pending_timeout_seconds * 1000;
    if (now.getTime() - this.#noHealthySince.at < timeoutMs) return;
    for (const row of await repo.waitingSince(new Date(now.getTime() - timeoutMs))) {
      const message =
        `no GPU node was available for ${settings.pending_timeout_seconds} s; the task was not started` +
        (row.lastError ? ` (last error: ${row.lastError})` : "");
      if (await this.#finish(row.id, { status: "failed", errorMessage: message }, unleasedPending())) logger.warn({ task_id: row.id }, message);
    }
  }

  /**
   * Extends the leases of every task this edge streams (one statement per 500). A task no longer held (cancelled,
   * or taken by another edge after our lease lapsed) has its stream stopped; so has one whose node went
   * silent mid-generation for longer than dispatch.stall_timeout_seconds.
   */
  async renewLeases(): Promise<void> {
    const { repo, clock, settings, instanceId } = this.#deps;
    if (this.#held.size === 0) return;
    const now = clock.now();
    const ids = [...this.#held.keys()];
    const stillHeld = await repo.renew(instanceId, ids, new Date(now.getTime() + settings.lease_seconds * 1000));
    const mono = performance.now();
    for (const id of ids) {
      const held = this.#held.get(id);
      if (!held) continue;
      if (!stillHeld.has(id)) this.#stop(held, "lost");
      else if (held.started && mono - held.lastEventAt > settings.stall_timeout_seconds * 1000) this.#stop(held, "stalled");
    }
  }

  /**
   * A task was cancelled (its row is already `cancelled`): stop streaming it here and ask its node to stop.
   * `node` is the row's node, for a task another edge streams.
   */
  cancel(taskId: string, node: string | null): void {
    const held = this.#held.get(taskId);
    if (held) this.#stop(held, "cancelled");
    const target = held?.node ?? (node === null ? undefined : this.#deps.nodes.node(node));
    if (target) this.#cancelOnNode(target, taskId);
  }

  /** Stops dispatching, stops every stream and hands the held tasks over (leases expired now, attempts refunded). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#pumping?.catch(() => {});
    const ids = this.heldTaskIds();
    for (const held of this.#held.values()) this.#stop(held, "stopping");
    await Promise.allSettled([...this.#runs]);
    if (ids.length > 0) {
      try {
        const n = await this.#deps.repo.handOver(this.#deps.instanceId, ids, this.#deps.clock.now());
        this.#deps.logger.info({ tasks: n }, "handed held tasks over for another edge");
      } catch (error) {
        // Their leases expire on their own.
        this.#deps.logger.warn({ err: errorMessage(error) }, "could not hand held tasks over");
      }
    }
  }

  /** Resolves once no stream is open and no dispatch round is running or scheduled. */
  async idle(): Promise<void> {
    while (this.#runs.size > 0 || this.#pumping || this.#kickScheduled) {
      await Promise.allSettled([...this.#runs, this.#pumping ?? Promise.resolve(), this.#kickScheduled ?? Promise.resolve()]);
    }
  }

  #kickSoon(): void {
    this.#kickScheduled ??= new Promise<void>((resolve) =>
      setTimeout(() => {
        this.#kickScheduled = null;
        this.kick();
        resolve();
      }, 0),
    );
  }

  async #round(): Promise<void> {
    const { repo, nodes, clock, settings, instanceId, logger } = this.#deps;
    // With no healthy node, wait for the probes (nodes past their backoff): one may just have come back.
    // Otherwise refresh stale statuses in the background and decide on the cached ones.
    if (!nodes.probed || nodes.healthyCount() === 0) await nodes.refresh();
    else void nodes.refresh();
    while (!this.#stopped && nodes.freeSlots() > 0) {
      const candidate = nodes.pick();
      if (!candidate) return;
      const now = clock.now();
      const target = { candidate: candidate.name, healthy: nodes.healthyNames() };
      const row = await repo.claim(instanceId, now, new Date(now.getTime() + settings.lease_seconds * 1000), settings.max_attempts, target);
      if (!row) return;
      // The claim recorded the node: the row's own when healthy (re-attach), else the candidate.
      const node = nodes.node(row.node ?? candidate.name) ?? candidate;
      logger.debug({ task_id: row.id, node: node.name, attempt: row.attempts }, "task claimed");
      this.#start(row, node);
    }
  }

  #start(row: TaskRow, node: PoolNode): void {
    const held: Held = {
      row,
      node,
      abort: new AbortController(),
      stopReason: null,
      started: false,
      lastEventAt: performance.now(),
    };
    this.#held.set(row.id, held);
    this.#deps.nodes.acquire(node.name);
    const run = this.#run(held)
      .catch((error: unknown) => {
        // Only the database can fail here; the lease then lapses and the task is claimed again.
        this.#deps.logger.error({ task_id: row.id, err: errorMessage(error) }, "dispatch of a task failed; its lease will lapse");
      })
      .finally(() => {
        this.#held.delete(row.id);
        this.#deps.nodes.release(node.name);
        this.#runs.delete(run);
        // The freed slot goes to the next task, after a macrotask turn: whatever happens, a dispatch cycle
        // can never starve the event loop (timers, renewals) even when every call fails at once.
        if (!this.#stopped) this.#kickSoon();
      });
    this.#runs.add(run);
  }

  async #run(held: Held): Promise<void> {
    const { repo, instanceId, clock, logger, settings, metrics } = this.#deps;
    const { row, node } = held;
    const log = (obj: Record<string, unknown>, msg: string) => logger.info({ task_id: row.id, node: node.name, ...obj }, msg);
    const initImage = row.hasInitImage ? await repo.initImage(row.id) : undefined;
    const throttle = new ProgressThrottle(settings.progress_interval_ms);
    let terminal: GenerateEvent["event"] | null = null;
    try {
      for await (const { event } of node.client.generate(toGenerateRequest(row, initImage), held.abort.signal)) {
        held.lastEventAt = performance.now();
        const now = clock.now();
        let ok = true;
        switch (event.case) {
          case "queued":
            ok = await repo.queued(row.id, instanceId, event.value.position, now);
            break;
          case "started": {
            const result = await repo.started(
              row.id,
              instanceId,
              {
                seed: event.value.seed,
                totalSteps: event.value.totalSteps,
                // img2img takes the init image's size, which `started` does not carry; the first image does.
                width: row.hasInitImage ? null : event.value.width,
                height: row.hasInitImage ? null : event.value.height,
                scheduler: event.value.scheduler,
              },
              now,
            );
            ok = result !== null;
            held.started = true;
            if (result?.firstStart) {
              metrics.dispatchLatency((now.getTime() - row.createdAt.getTime()) / 1000);
              log({ attempt: row.attempts, seed: event.value.seed, steps: event.value.totalSteps }, "task started");
            }
            break;
          }
          case "progress": {
            const write = throttle.offer(event.value.step, event.value.total, held.lastEventAt);
            if (write) ok = await repo.progress(row.id, instanceId, write.step, write.total, now);
            break;
          }
          case "image": {
            const write = throttle.flush(held.lastEventAt);
            if (write) ok = await repo.progress(row.id, instanceId, write.step, write.total, now);
            if (ok && row.hasInitImage && event.value.index === 0 && event.value.width > 0) {
              ok = await repo.imageSize(row.id, instanceId, event.value.width, event.value.height, now);
            }
            break;
          }
          case "completed":
          case "failed":
            terminal = event;
            break;
        }
        if (!ok) {
          this.#stop(held, "lost");
          break;
        }
        if (terminal) break;
      }
    } catch (error) {
      if (held.stopReason !== null) return this.#afterStop(held);
      // Anything but the GPU call failing (the database, while writing an event) is not the node's fault: the
      // stream is dropped, the lease lapses, and the next claim re-attaches on the same node.
      if (!(error instanceof GpuCallError)) throw error;
      return this.#callFailed(held, error);
    }
    if (held.stopReason !== null) return this.#afterStop(held);

    if (terminal?.case === "completed") {
      const { urls, timings } = terminal.value;
      log({ urls: urls.length, pipeline_ms: timings ? Math.round(timings.pipelineMs) : undefined }, "task completed");
      await this.#finish(row.id, { status: "completed", resultUrls: urls }, this.#heldBy());
      return;
    }
    if (terminal?.case === "failed") {
      const { code, message, retryable } = terminal.value;
      if (code === "cancelled") {
        await this.#finish(row.id, { status: "cancelled" }, this.#heldBy());
      } else if (retryable) {
        await this.#retry(held, `${node.name}: ${code}: ${message}`, { refund: false, forgetNode: true });
      } else {
        logger.warn({ task_id: row.id, node: node.name, code }, `task failed: ${message}`);
        await this.#finish(row.id, { status: "failed", errorMessage: message }, this.#heldBy());
      }
      return;
    }
    // The stream ended without an outcome: the node went away mid-stream.
    this.#deps.nodes.markDown(node.name, new Error("the event stream ended without an outcome"));
    await this.#retry(held, `gpu node ${node.name}: the event stream ended without an outcome`, { refund: false, forgetNode: false });
  }

  /** The call failed before an outcome: refused by the node, or the connection broke. */
  async #callFailed(held: Held, error: GpuCallError): Promise<void> {
    const { node } = held;
    const message = error.message;
    if (error.code === "queue_full") {
      // Not the task's fault: another node (or this one, later) takes it without using up an attempt.
      this.#deps.nodes.markFull(node.name);
      await this.#retry(held, message, { refund: true, forgetNode: true });
      return;
    }
    if (error.code === "unavailable" || error.code === "deadline_exceeded" || error.code === "internal") {
      this.#deps.nodes.markDown(node.name, error);
    }
    await this.#retry(held, message, { refund: false, forgetNode: false });
  }

  /** Releases the task for another attempt, or fails it when it has none left. */
  async #retry(held: Held, lastError: string, options: { refund: boolean; forgetNode: boolean }): Promise<void> {
    const { repo, instanceId, clock, settings, logger, metrics } = this.#deps;
    const { row } = held;
    const attempts = options.refund ? row.attempts - 1 : row.attempts;
    if (attempts >= settings.max_attempts) {
      logger.warn({ task_id: row.id, node: held.node.name, attempts }, `task failed for good: ${lastError}`);
      await this.#finish(row.id, { status: "failed", errorMessage: gaveUpMessage(attempts, lastError) }, this.#heldBy());
      return;
    }
    if (await repo.release(row.id, instanceId, { lastError, ...options }, clock.now())) {
      metrics.taskRetried(options.refund ? "refused" : "failed");
      logger.warn({ task_id: row.id, node: held.node.name, attempt: row.attempts }, `task released for another attempt: ${lastError}`);
    }
  }

  async #afterStop(held: Held): Promise<void> {
    const { row, node } = held;
    switch (held.stopReason) {
      case "stalled": {
        const seconds = this.#deps.settings.stall_timeout_seconds;
        this.#deps.nodes.markDown(node.name, new Error(`no event for ${seconds} s`));
        await this.#retry(held, `gpu node ${node.name}: no event for ${seconds} s while generating`, { refund: false, forgetNode: true });
        return;
      }
      case "lost": {
        // Someone else moved the row. If it was a cancel made through another edge, make sure the node stops.
        const status = await this.#deps.repo.statusOf(row.id);
        if (status === "cancelled") this.#cancelOnNode(node, row.id);
        this.#deps.logger.info({ task_id: row.id, node: node.name, status }, "task no longer held by this edge");
        return;
      }
      default:
        // cancelled: the route wrote the row and the node was asked to stop; stopping: stop() hands over.
        return;
    }
  }

  /** Whether the task moved to `outcome` here (false: `guard` failed, or it had already finished). */
  async #finish(taskId: string, outcome: TerminalOutcome, guard: SQL | undefined): Promise<boolean> {
    const finished = await this.#deps.outcomes.finish(taskId, outcome, this.#deps.clock.now(), guard);
    if (!finished) return false;
    this.#deps.metrics.taskFinished(outcome.status);
    this.#deps.onFinished?.(taskId, outcome.status);
    return true;
  }

  #heldBy(): SQL | undefined {
    return heldBy(this.#deps.instanceId);
  }

  #stop(held: Held, reason: StopReason): void {
    if (held.stopReason !== null) return;
    held.stopReason = reason;
    held.abort.abort();
  }

  #cancelOnNode(node: PoolNode, taskId: string): void {
    void cancelOnNode(node.client, node.name, taskId, this.#deps.logger);
  }
}

export function gaveUpMessage(attempts: number, lastError: string): string {
  return `generation gave up after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${lastError}`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
