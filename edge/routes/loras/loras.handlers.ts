import type { LoraInfo } from "../../../shared/api/loras.schema.js";
import type { AppRouteHandler } from "../../app.types.js";
import type { LoraListing } from "../../ports/lora-catalog.port.js";
import type { ListLorasRoute } from "./loras.routes.js";

function toLoraInfo(l: LoraListing): LoraInfo {
  return {
    name: l.name,
    kind: l.kind,
    trigger_words: l.triggerWords,
    default_weight: l.startupWeight,
    matched_modules: l.matchedModules,
    unmatched_keys: l.unmatchedKeys,
    unmatched_key_examples: l.unmatchedKeyExamples,
    unsupported_keys: l.unsupportedKeys,
    size_bytes: l.sizeBytes,
    error: l.error,
  };
}

export const listLoras: AppRouteHandler<ListLorasRoute> = async (c) => {
  const snapshot = await c.get("services").loraCatalog.snapshot();
  return c.json({ loras: snapshot.loras.map(toLoraInfo), nodes_total: snapshot.nodesTotal, nodes_answered: snapshot.nodesAnswered }, 200);
};
