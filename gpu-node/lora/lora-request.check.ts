// Checks a request's adapter list against the adapters a node knows. Shared by the service (which refuses a bad
// list when the task arrives, before it waits in the queue) and the registry in the pipeline's worker (which
// resolves the list it is given); both give the same message.
import type { LoraRequest } from "../pipeline/pipeline.types.js";

export interface KnownLora {
  name: string;
  /** Why the adapter cannot be used; null when it can. */
  error: string | null;
}

/** The first problem with `requests`, or null when every entry names a usable adapter once, with a finite weight. */
export function loraRequestProblem(requests: readonly LoraRequest[], known: ReadonlyMap<string, KnownLora>): string | null {
  const seen = new Set<string>();
  for (const r of requests) {
    if (r.name.trim() === "") return "a LoRA entry has an empty name";
    if (seen.has(r.name)) return `LoRA "${r.name}" is listed twice`;
    seen.add(r.name);
    if (!Number.isFinite(r.weight)) return `LoRA "${r.name}" has a weight that is not a number`;
    const info = known.get(r.name);
    if (!info) return unknownLora(r.name, known);
    if (info.error) return `LoRA "${r.name}" cannot be used: ${info.error}`;
  }
  return null;
}

function unknownLora(name: string, known: ReadonlyMap<string, KnownLora>): string {
  const usable = [...known.values()].filter((e) => !e.error).map((e) => e.name).sort();
  if (usable.length === 0) return `unknown LoRA "${name}": this node has no usable LoRA adapters`;
  const shown = usable.length > 20 ? [...usable.slice(0, 20), "…"] : usable;
  return `unknown LoRA "${name}"; available: ${shown.join(", ")}`;
}
