import type { LoraWeight } from "../../../shared/api/generate.schema.js";
import { valueError, type PydanticError } from "../../../shared/api/pydantic-errors.js";
import type { LoraCatalogSnapshot } from "../../ports/lora-catalog.port.js";

// The names of a request's `loras` against what the GPU nodes offer: one value_error at ["body", "loras", i,
// "name"] per name no node offers or no node can use. When no node answered there is nothing to check against:
// the task is accepted and waits like any other, and a node that cannot apply a name fails it with the same
// message (failed{invalid_argument}) before it runs.

// Enough to recognise a typo; the full list is GET /api/v1/loras.
const SHOWN_NAMES = 20;

function unknownMessage(name: string, snapshot: LoraCatalogSnapshot): string {
  const usable = snapshot.loras.filter((l) => l.error === null).map((l) => l.name);
  if (usable.length === 0) return `unknown LoRA '${name}': the GPU nodes offer no usable LoRA adapters`;
  const shown = usable.length > SHOWN_NAMES ? [...usable.slice(0, SHOWN_NAMES), "…"] : usable;
  return `unknown LoRA '${name}'; available: ${shown.join(", ")}`;
}

export function loraRequestErrors(loras: readonly LoraWeight[], snapshot: LoraCatalogSnapshot): PydanticError[] {
  if (snapshot.nodesAnswered === 0) return [];
  const byName = new Map(snapshot.loras.map((l) => [l.name, l]));
  const errors: PydanticError[] = [];
  loras.forEach(({ name }, i) => {
    const known = byName.get(name);
    const loc = ["body", "loras", i, "name"];
    if (!known) errors.push(valueError(loc, name, unknownMessage(name, snapshot)));
    else if (known.error !== null) errors.push(valueError(loc, name, `LoRA '${name}' cannot be used: ${known.error}`));
  });
  return errors;
}
