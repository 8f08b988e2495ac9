// gpu_node.concurrency > 1: N pipeline hosts side by side, each with its own worker thread and its own copy of
// the model, so model memory (weights, sessions, LoRA cache) is N times one host's. That is the price of real
// parallelism: one onnxruntime session per worker, and a worker runs one job at a time.
// A host whose worker dies restarts on its own (PipelineHost); meanwhile new jobs go to the hosts that are loaded.
import type {
  GenerateOutput,
  GenerateParams,
  LoraAdapterInfo,
  LoraCacheStats,
  PipelineRunner,
  PipelineStatus,
  RunnerHooks,
} from "./pipeline.types.js";

export class PipelinePool<R extends PipelineRunner = PipelineRunner> implements PipelineRunner {
  /** Jobs handed to each host and not yet settled (running, or queued inside that host). */
  readonly #inFlight: number[];

  constructor(readonly hosts: readonly R[]) {
    if (hosts.length === 0) throw new Error("a pipeline pool needs at least one host");
    this.#inFlight = hosts.map(() => 0);
  }

  /**
   * Name and native size from the first host (all load the same model). Loaded while ANY host is: the pool keeps
   * serving on the others while one restarts, and a node reported unloaded gets no work from the edge at all.
   * Every host is loaded when createPipelineRunner returns, so this only differs from "all" during a restart.
   */
  status(): PipelineStatus {
    const statuses = this.hosts.map((host) => host.status());
    const { reloading: _, ...first } = statuses[0];
    return { ...first, modelLoaded: statuses.some((s) => s.modelLoaded) };
  }

  /** The adapter list is the same in every host (same config and model); each host has its own cache. */
  loras(): { adapters: LoraAdapterInfo[]; cache: LoraCacheStats } {
    const all = this.hosts.map((host) => host.loras());
    const cache = { entries: 0, bytes: 0, limitBytes: 0 };
    for (const { cache: c } of all) {
      cache.entries += c.entries;
      cache.bytes += c.bytes;
      cache.limitBytes += c.limitBytes;
    }
    return { adapters: all[0].adapters, cache };
  }

  generate(params: GenerateParams, hooks: RunnerHooks = {}): Promise<GenerateOutput> {
    const index = this.#pick();
    this.#inFlight[index]++;
    return this.hosts[index].generate(params, hooks).finally(() => {
      this.#inFlight[index]--;
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.hosts.map((host) => host.close()));
  }

  /**
   * The host with the fewest jobs in flight (ties: the lowest index) among the loaded ones that are not reloading
   * (a recycled worker: a job would wait for its model), else among the loaded ones, else among all.
   */
  #pick(): number {
    const statuses = this.hosts.map((host) => host.status());
    const ready = statuses.flatMap((s, i) => (s.modelLoaded && !s.reloading ? [i] : []));
    const loaded = statuses.flatMap((s, i) => (s.modelLoaded ? [i] : []));
    const candidates = ready.length > 0 ? ready : loaded.length > 0 ? loaded : this.hosts.map((_, i) => i);
    let best = candidates[0];
    for (const i of candidates) if (this.#inFlight[i] < this.#inFlight[best]) best = i;
    return best;
  }
}
