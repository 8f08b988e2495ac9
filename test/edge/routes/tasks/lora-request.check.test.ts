import { describe, expect, it } from "vitest";
import type { LoraCatalogSnapshot, LoraListing } from "../../../../edge/ports/lora-catalog.port.js";
import { loraRequestErrors } from "../../../../edge/routes/tasks/lora-request.check.js";

function listing(name: string, error: string | null = null): LoraListing {
  return { name, kind: "lora", triggerWords: [], startupWeight: null, matchedModules: 1, unmatchedKeys: 0, unmatchedKeyExamples: [], unsupportedKeys: 0, sizeBytes: 1, error };
}

const snapshot = (loras: LoraListing[], nodesAnswered = 1): LoraCatalogSnapshot => ({ nodesTotal: 1, nodesAnswered, loras });

describe("loraRequestErrors", () => {
  it("passes names the nodes offer, whatever the weight", () => {
    expect(loraRequestErrors([{ name: "a", weight: 0 }, { name: "b", weight: -3 }], snapshot([listing("a"), listing("b")]))).toEqual([]);
  });

  it("lists at most 20 usable names, leaving out broken ones", () => {
    const names = Array.from({ length: 25 }, (_, i) => `l${String(i).padStart(2, "0")}`);
    const [error] = loraRequestErrors([{ name: "x", weight: 1 }], snapshot([listing("aaa-broken", "bad header"), ...names.map((n) => listing(n))]));
    expect(error).toMatchObject({ type: "value_error", loc: ["body", "loras", 0, "name"], input: "x" });
    expect(error.msg).toBe(`Value error, unknown LoRA 'x'; available: ${names.slice(0, 20).join(", ")}, …`);
  });

  it("checks nothing when no node answered", () => {
    expect(loraRequestErrors([{ name: "x", weight: 1 }], snapshot([], 0))).toEqual([]);
  });
});
