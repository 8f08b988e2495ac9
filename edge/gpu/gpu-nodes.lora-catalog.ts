import type { LoraInfo } from "../../shared/gen/sd/v1/gpu_pb.js";
import type { Clock } from "../ports/clock.port.js";
import type { LoraCatalog, LoraCatalogSnapshot, LoraListing } from "../ports/lora-catalog.port.js";
import type { GpuClient } from "./gpu-client.port.js";

// The adapters the GPU nodes offer, for both edges: ListLoras on every configured node (answered from the node's
// memory), the union over those that answer within the deadline. A node scans its adapters once at start-up, so
// the answer is kept for a few seconds and requests naming adapters do not each fan out to every node. Only
// the value is kept, never a pending call: on Workers no request may wait on another request's fetch.

export interface GpuNodesLoraCatalogOptions {
  /** How long an answer from at least one node is kept. */
  ttlMs?: number;
  /** How long "no node answered" is kept: shorter, so a node that comes up is seen soon. */
  emptyTtlMs?: number;
  /** A node that does not answer within this is left out. */
  timeoutMs?: number;
}

function listing(info: LoraInfo): LoraListing {
  return {
    name: info.name,
    kind: info.kind,
    triggerWords: [...info.triggerWords],
    startupWeight: info.startupWeight ?? null,
    matchedModules: info.matchedModules,
    unmatchedKeys: info.unmatchedKeys,
    unmatchedKeyExamples: [...info.unmatchedKeyExamples],
    unsupportedKeys: info.unsupportedKeys,
    sizeBytes: info.sizeBytes,
    error: info.error ?? null,
  };
}

/** One entry per name; where nodes disagree, a usable copy wins over a broken one (a task may land on either). */
export function mergeLoraListings(perNode: readonly (readonly LoraInfo[])[]): LoraListing[] {
  const byName = new Map<string, LoraListing>();
  for (const infos of perNode) {
    for (const info of infos) {
      const known = byName.get(info.name);
      if (!known || (known.error !== null && !info.error)) byName.set(info.name, listing(info));
    }
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function createGpuNodesLoraCatalog(clients: readonly GpuClient[], clock: Clock, options: GpuNodesLoraCatalogOptions = {}): LoraCatalog {
  const ttlMs = options.ttlMs ?? 5_000;
  const emptyTtlMs = options.emptyTtlMs ?? 1_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  let cached: { value: LoraCatalogSnapshot; at: number } | undefined;
  return {
    async snapshot() {
      const now = clock.now().getTime();
      if (cached && now - cached.at < (cached.value.nodesAnswered > 0 ? ttlMs : emptyTtlMs)) return cached.value;
      const answers = await Promise.allSettled(clients.map((client) => client.loras(AbortSignal.timeout(timeoutMs))));
      const lists = answers.flatMap((a) => (a.status === "fulfilled" ? [a.value.loras] : []));
      const value: LoraCatalogSnapshot = { nodesTotal: clients.length, nodesAnswered: lists.length, loras: mergeLoraListings(lists) };
      cached = { value, at: clock.now().getTime() };
      return value;
    },
  };
}
