// The UNet and text encoder one request runs with: the base model's own when no adapter applies, else sessions
// created from weights with the request's adapter set merged in (gpu-node/lora/lora-merge.ts), cached per set.
//
// Isolation: a merged set gets sessions of its own, keyed by adapterSetKey (names, weights, file size and
// mtime); the base sessions are never patched, so a request that applies no adapter runs exactly the base
// model whatever ran before it.
//
// Memory: ORT copies a model's weights into each session it creates, so a cached set costs about the weights of
// every component it changes (3.4 GB for an SD 1.5 UNet), whatever few tensors the adapters touched. The cache
// counts that size against lora.cache_mb and drops the least recently used sets first. The start-up set (the
// lora.models adapters, applied to every request) is merged at start-up and never dropped; a set that does not
// fit beside it is merged for its request and released afterwards.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { DomainError } from "../../../shared/errors/error-codes.js";
import type { MatMulKernel } from "../../lora/adapter.js";
import { adapterSetKey, mergeAdapterSet } from "../../lora/lora-merge.js";
import type { MergedModel, ModelComponentName } from "../../lora/lora-merge.js";
import type { LoraRegistry, ResolvedLora } from "../../lora/lora-registry.js";
import type { ModelSession, SessionSource } from "../backends/onnx.backend.js";
import type { LoraAdapterInfo, LoraCacheStats, LoraRequest, LoraUsage } from "../pipeline.types.js";
import { readExternalDataLocations } from "./onnx-graph.patch.js";
import { TextEncoderModel } from "./text-encoder.model.js";
import { UnetModel } from "./unet.model.js";

/**
 * Resident memory of an ORT CPU session beyond its weights (thread pool, arenas, kernels). Measured with
 * bench:lora: the tiny UNet's 4.9 MB of weights cost 13-14 MB per session, the SD 1.5 sized synthetic block
 * (275 MB of weights) about its weights' size.
 */
const SESSION_OVERHEAD_BYTES = 8 * 1024 * 1024;

export interface AdaptedModels {
  unet: UnetModel;
  textEncoder: TextEncoderModel;
  /** Null when the base sessions run (no adapter, or every weight 0). */
  usage: LoraUsage | null;
  /** Call when the request is done with the models (frees sessions that were not cached). */
  done(): Promise<void>;
}

export interface LoraSessionCacheOptions {
  registry: LoraRegistry;
  /** The diffusers-layout model directory (unet/, text_encoder/). */
  modelDir: string;
  base: { unet: UnetModel; textEncoder: TextEncoderModel };
  createSession(source: SessionSource): Promise<ModelSession>;
  /** Kernel for ΔW products (onnxruntime's MatMul through the backend); the TypeScript loop when absent. */
  matmul?: MatMulKernel;
  /** lora.cache_mb in bytes. */
  limitBytes: number;
}

interface Entry {
  key: string;
  unet: UnetModel | null;
  textEncoder: TextEncoderModel | null;
  bytes: number;
  pinned: boolean;
}

export class LoraSessionCache {
  readonly #entries = new Map<string, Entry>();
  readonly #componentBytes = new Map<ModelComponentName, number>();

  constructor(private readonly options: LoraSessionCacheOptions) {}

  /** The request's adapter set: start-up adapters plus the requested ones (invalid_argument when unknown). */
  resolve(requests: readonly LoraRequest[]): ResolvedLora[] {
    return this.options.registry.forRequest(requests);
  }

  /** Every adapter the registry knows, as checked against the model (node-local paths left out). */
  adapters(): LoraAdapterInfo[] {
    return this.options.registry.list().map(({ path: _path, ...info }) => info);
  }

  stats(): LoraCacheStats {
    let bytes = 0;
    for (const entry of this.#entries.values()) bytes += entry.bytes;
    return { entries: this.#entries.size, bytes, limitBytes: this.options.limitBytes };
  }

  /** Merges the start-up set once, before the first request, and keeps it (errors stop start-up). */
  async prepareStartupSet(): Promise<void> {
    const set = this.options.registry.startup().filter((s) => s.weight !== 0);
    if (set.length === 0) return;
    const models = await this.#adapted(set, true, () => false);
    await models.done();
  }

  /** The models for a set; `isCancelled` is polled before the (long) merge. */
  async modelsFor(set: readonly ResolvedLora[], isCancelled: () => boolean = () => false): Promise<AdaptedModels> {
    const active = set.filter((s) => s.weight !== 0);
    if (active.length === 0) return { ...this.options.base, usage: null, done: async () => {} };
    return this.#adapted(active, false, isCancelled);
  }

  /** Releases every cached session (the base sessions belong to the model). */
  async release(): Promise<void> {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.allSettled(entries.map((e) => releaseEntry(e)));
  }

  async #adapted(active: readonly ResolvedLora[], pin: boolean, isCancelled: () => boolean): Promise<AdaptedModels> {
    const applied = active.map((s) => ({ name: s.name, weight: s.weight }));
    const key = await adapterSetKey(active).catch((err: unknown) => {
      throw new DomainError("internal", `LoRA ${names(active)}: cannot read the adapter files (${(err as Error).message})`, { cause: err });
    });
    const hit = this.#entries.get(key);
    if (hit) {
      // Most recently used last.
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      return this.#models(hit, { applied, cached: true, mergeMs: 0 }, async () => {});
    }
    if (isCancelled()) throw new DomainError("cancelled", "the generation was cancelled");

    const started = performance.now();
    let merged;
    try {
      merged = await mergeAdapterSet(this.options.modelDir, active, { matmul: this.options.matmul });
    } catch (err) {
      // Adapters were checked against the model at start-up; what fails now is unexpected (a file changed).
      throw new DomainError("internal", `LoRA ${names(active)}: merge failed: ${(err as Error).message}`, { cause: err });
    }
    const bytes =
      (merged.unet.strategy === "unchanged" ? 0 : this.#sessionBytes("unet")) +
      (merged.textEncoder.strategy === "unchanged" ? 0 : this.#sessionBytes("text_encoder"));
    const fits = pin || this.#makeRoom(bytes);
    const entry: Entry = { key, unet: null, textEncoder: null, bytes, pinned: pin };
    try {
      if (merged.unet.strategy !== "unchanged") {
        entry.unet = UnetModel.from(await this.#session(merged.unet, active), "unet/model.onnx (LoRA merged)", this.options.base.unet.latentMultiple);
      }
      if (merged.textEncoder.strategy !== "unchanged") {
        entry.textEncoder = TextEncoderModel.from(await this.#session(merged.textEncoder, active), "text_encoder/model.onnx (LoRA merged)");
      }
    } catch (err) {
      await releaseEntry(entry);
      throw err;
    }
    const usage: LoraUsage = { applied, cached: false, mergeMs: performance.now() - started };
    if (!fits) return this.#models(entry, usage, () => releaseEntry(entry));
    this.#entries.set(key, entry);
    return this.#models(entry, usage, async () => {});
  }

  #models(entry: Entry, usage: LoraUsage, done: () => Promise<void>): AdaptedModels {
    return {
      unet: entry.unet ?? this.options.base.unet,
      textEncoder: entry.textEncoder ?? this.options.base.textEncoder,
      usage,
      done,
    };
  }

  /** Drops least recently used unpinned sets until `bytes` more fit; false when they cannot fit at all. */
  #makeRoom(bytes: number): boolean {
    const limit = this.options.limitBytes;
    let held = this.stats().bytes;
    const pinned = [...this.#entries.values()].filter((e) => e.pinned).reduce((n, e) => n + e.bytes, 0);
    // A set that cannot fit even after dropping every other one leaves the cache as it is.
    if (pinned + bytes > limit) return false;
    for (const entry of [...this.#entries.values()]) {
      if (held + bytes <= limit) break;
      if (entry.pinned) continue;
      this.#entries.delete(entry.key);
      held -= entry.bytes;
      // Jobs run one at a time in this thread, so no request holds an evicted set's sessions.
      void releaseEntry(entry);
    }
    return true;
  }

  async #session(merged: MergedModel, active: readonly ResolvedLora[]): Promise<ModelSession> {
    const source: SessionSource = {
      bytes: merged.modelBytes,
      externalDataDir: merged.externalDataDir,
      externalData: merged.externalData,
    };
    try {
      return await this.options.createSession(source);
    } catch (err) {
      const message = (err as Error).message;
      const oom = /bad_alloc|out of memory|failed to allocate/i.test(message);
      throw new DomainError(
        oom ? "out_of_memory" : "internal",
        `LoRA ${names(active)}: creating the ${merged.component} session with merged weights failed: ${message}`,
        { cause: err },
      );
    }
  }

  /** What a session of this component holds: its initializers (in model.onnx or external files), plus ORT's own. */
  #sessionBytes(component: ModelComponentName): number {
    let bytes = this.#componentBytes.get(component);
    if (bytes === undefined) {
      const dir = join(this.options.modelDir, component);
      const model = join(dir, "model.onnx");
      bytes = statSync(model).size;
      for (const location of new Set(readExternalDataLocations(readFileSync(model)))) {
        const path = join(dir, location);
        if (existsSync(path)) bytes += statSync(path).size;
      }
      bytes += SESSION_OVERHEAD_BYTES;
      this.#componentBytes.set(component, bytes);
    }
    return bytes;
  }
}

function names(set: readonly ResolvedLora[]): string {
  return set.map((s) => `"${s.name}"`).join(", ");
}

async function releaseEntry(entry: Entry): Promise<void> {
  await Promise.allSettled([entry.unet?.release(), entry.textEncoder?.release()]);
}
