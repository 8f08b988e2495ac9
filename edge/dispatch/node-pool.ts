// The GPU nodes one edge dispatches to: their last GetStatus, which are up, and how many of this edge's tasks
// each holds. Runtime-agnostic (the Node edge gives it grpc-js clients, the Workers edge fetch-based ones).
import type { NodeStatus } from "../../shared/gen/sd/v1/gpu_pb.js";
import type { GpuClient } from "../gpu/gpu-client.port.js";
import type { Logger } from "../ports/logger.port.js";

export interface PoolNode {
  /** config.gpu_nodes[].name, else its address; recorded in tasks.node. */
  readonly name: string;
  readonly client: GpuClient;
}

export interface NodePoolOptions {
  /** A status younger than this is used as it is; older ones are probed again. */
  statusTtlMs?: number;
  /** Deadline of one GetStatus probe. */
  probeTimeoutMs?: number;
  /** A node that errors is left alone this long, doubling per failure up to backoffMaxMs. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Tasks held beyond a node's concurrency (queued on it, ready to start the moment a slot frees). */
  prefetch?: number;
  /** Monotonic milliseconds. */
  now?: () => number;
  logger?: Logger;
}

interface NodeState {
  readonly node: PoolNode;
  status: NodeStatus | null;
  statusAt: number;
  /** Set while the node is considered down; no tasks go to it until a probe succeeds. */
  downUntil: number | null;
  failures: number;
  lastError: string | null;
  /** This edge's open streams to it. */
  inFlight: number;
  /** When it last received a task (ties go to the node idle the longest). */
  lastAssignedAt: number;
  /** After a queue_full refusal: no tasks go to it before this, whatever its status says. */
  fullUntil: number;
  probing: Promise<void> | null;
}

export interface NodeView {
  name: string;
  up: boolean;
  modelLoaded: boolean;
  inFlight: number;
  limit: number;
  lastError: string | null;
}

// How long a node that answered queue_full gets no new task.
const FULL_PAUSE_MS = 1_000;

export class NodePool {
  readonly #states: NodeState[];
  readonly #byName = new Map<string, NodeState>();
  readonly #ttl: number;
  readonly #probeTimeout: number;
  readonly #backoffMin: number;
  readonly #backoffMax: number;
  readonly #prefetch: number;
  readonly #now: () => number;
  readonly #logger: Logger | undefined;

  constructor(nodes: readonly PoolNode[], options: NodePoolOptions = {}) {
    this.#ttl = options.statusTtlMs ?? 2_000;
    this.#probeTimeout = options.probeTimeoutMs ?? 2_000;
    this.#backoffMin = options.backoffMinMs ?? 1_000;
    this.#backoffMax = options.backoffMaxMs ?? 30_000;
    this.#prefetch = options.prefetch ?? 1;
    this.#now = options.now ?? (() => performance.now());
    this.#logger = options.logger;
    this.#states = nodes.map((node) => ({
      node,
      status: null,
      statusAt: -Infinity,
      downUntil: null,
      failures: 0,
      lastError: null,
      inFlight: 0,
      lastAssignedAt: -Infinity,
      fullUntil: -Infinity,
      probing: null,
    }));
    for (const state of this.#states) {
      if (this.#byName.has(state.node.name)) throw new Error(`gpu_nodes: two nodes are named ${state.node.name}`);
      this.#byName.set(state.node.name, state);
    }
  }

  get size(): number {
    return this.#states.length;
  }

  node(name: string): PoolNode | undefined {
    return this.#byName.get(name)?.node;
  }

  /** Probes every node whose status is stale (or all, with force), except down nodes still in their backoff. */
  async refresh(force = false): Promise<void> {
    const now = this.#now();
    await Promise.all(
      this.#states.map((state) => {
        if (state.downUntil !== null && now < state.downUntil) return state.probing ?? Promise.resolve();
        if (!force && state.downUntil === null && now - state.statusAt < this.#ttl) return state.probing ?? Promise.resolve();
        return this.#probe(state);
      }),
    );
  }

  /** Whether any node has ever answered GetStatus (the first dispatch waits for one round of probes). */
  get probed(): boolean {
    return this.#states.some((s) => s.status !== null || s.downUntil !== null);
  }

  /** Nodes that answer, accept work and have their model loaded. */
  healthyCount(): number {
    return this.#states.filter((s) => this.#healthy(s)).length;
  }

  /** Free slots across healthy nodes (how many more tasks this edge may claim now). */
  freeSlots(): number {
    let free = 0;
    for (const state of this.#states) if (this.#healthy(state) && this.#hasRoom(state)) free += this.#limit(state) - state.inFlight;
    return free;
  }

  /**
   * The node for a task: `preferred` (the node recorded on the row) when it is healthy, whatever its load, so a
   * re-claimed task re-attaches where it already runs; else the healthy node with a free slot and the least
   * load per generation slot. null when none has room.
   */
  pick(preferred: string | null = null): PoolNode | null {
    if (preferred !== null) {
      const state = this.#byName.get(preferred);
      if (state && this.#healthy(state)) return state.node;
    }
    let best: NodeState | null = null;
    let bestScore = Infinity;
    for (const state of this.#states) {
      if (!this.#healthy(state) || !this.#hasRoom(state)) continue;
      const status = state.status as NodeStatus;
      const concurrency = Math.max(1, status.concurrency);
      // The node's own view counts other edges' work; ours counts what it has not reported yet.
      const nodeLoad = status.queueDepth + status.runningTaskIds.length;
      const score = Math.max(nodeLoad, state.inFlight) / concurrency;
      if (score < bestScore || (score === bestScore && best !== null && state.lastAssignedAt < best.lastAssignedAt)) {
        best = state;
        bestScore = score;
      }
    }
    return best?.node ?? null;
  }

  /** Names of the healthy nodes (a re-claimed task stays on its node when that is one of them). */
  healthyNames(): string[] {
    return this.#states.filter((s) => this.#healthy(s)).map((s) => s.node.name);
  }

  /** Counts a stream this edge opened to the node; call release() when it ends. */
  acquire(name: string): void {
    const state = this.#byName.get(name);
    if (!state) return;
    state.inFlight++;
    state.lastAssignedAt = this.#now();
  }

  release(name: string): void {
    const state = this.#byName.get(name);
    if (state && state.inFlight > 0) state.inFlight--;
  }

  /** A call to the node failed at the transport level: no tasks go to it until a probe succeeds again. */
  markDown(name: string, error: unknown): void {
    const state = this.#byName.get(name);
    if (state) this.#down(state, error);
  }

  /**
   * The node refused a task as full: nothing goes to it for a short while (so a node whose status lags its
   * queue cannot cause a claim-refuse-release spin), then only once a fresh status shows room.
   */
  markFull(name: string): void {
    const state = this.#byName.get(name);
    if (!state?.status) return;
    state.status = { ...state.status, queueDepth: Math.max(state.status.queueDepth, state.status.capacity) };
    state.statusAt = -Infinity;
    state.fullUntil = this.#now() + FULL_PAUSE_MS;
  }

  /** GET /health: whether a reachable node has its model loaded (probing nodes whose status is stale). */
  async modelLoaded(): Promise<boolean> {
    await this.refresh();
    return this.#states.some((s) => s.downUntil === null && s.status?.modelLoaded === true);
  }

  views(): NodeView[] {
    return this.#states.map((s) => ({
      name: s.node.name,
      up: this.#healthy(s),
      modelLoaded: s.status?.modelLoaded ?? false,
      inFlight: s.inFlight,
      limit: s.status ? this.#limit(s) : 0,
      lastError: s.lastError,
    }));
  }

  close(): void {
    for (const state of this.#states) state.node.client.close();
  }

  #healthy(state: NodeState): boolean {
    return state.downUntil === null && state.status !== null && state.status.accepting && state.status.modelLoaded;
  }

  /** Healthy with room: this edge's slots not all taken, and the node's own queue not full. */
  #hasRoom(state: NodeState): boolean {
    const status = state.status as NodeStatus;
    if (this.#now() < state.fullUntil) return false;
    return state.inFlight < this.#limit(state) && (status.capacity === 0 || status.queueDepth < status.capacity);
  }

  #limit(state: NodeState): number {
    return Math.max(1, state.status?.concurrency ?? 1) + this.#prefetch;
  }

  #probe(state: NodeState): Promise<void> {
    state.probing ??= (async () => {
      try {
        const status = await state.node.client.status(AbortSignal.timeout(this.#probeTimeout));
        const wasDown = state.downUntil !== null || state.status === null;
        state.status = status;
        state.statusAt = this.#now();
        state.downUntil = null;
        state.failures = 0;
        state.lastError = null;
        if (wasDown) {
          this.#logger?.info(
            { node: state.node.name, model_loaded: status.modelLoaded, accepting: status.accepting, concurrency: status.concurrency },
            "gpu node up",
          );
        }
      } catch (error) {
        this.#down(state, error);
      } finally {
        state.probing = null;
      }
    })();
    return state.probing;
  }

  #down(state: NodeState, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    const wasUp = state.downUntil === null;
    state.failures++;
    const backoff = Math.min(this.#backoffMax, this.#backoffMin * 2 ** Math.min(state.failures - 1, 16));
    state.downUntil = this.#now() + backoff;
    state.lastError = message;
    if (wasUp) this.#logger?.warn({ node: state.node.name, err: message, retry_in_ms: backoff }, "gpu node down");
  }
}
