import { describe, expect, it } from "vitest";
import { loraRequestProblem, type KnownLora } from "../../../gpu-node/lora/lora-request.check.js";

const known = (...entries: KnownLora[]) => new Map(entries.map((e) => [e.name, e]));

describe("loraRequestProblem", () => {
  const node = known({ name: "style", error: null }, { name: "broken", error: "bad header" }, { name: "ink", error: null });

  it("accepts usable names once each, with any finite weight (negative and zero included)", () => {
    expect(loraRequestProblem([], node)).toBeNull();
    expect(loraRequestProblem([{ name: "style", weight: -1.5 }, { name: "ink", weight: 0 }], node)).toBeNull();
  });

  it("names the first problem: empty, repeated, non-finite, unknown (listing usable names), unusable", () => {
    expect(loraRequestProblem([{ name: "  ", weight: 1 }], node)).toBe("a LoRA entry has an empty name");
    expect(loraRequestProblem([{ name: "ink", weight: 1 }, { name: "ink", weight: 2 }], node)).toBe('LoRA "ink" is listed twice');
    expect(loraRequestProblem([{ name: "ink", weight: Number.NaN }], node)).toBe('LoRA "ink" has a weight that is not a number');
    expect(loraRequestProblem([{ name: "nope", weight: 1 }], node)).toBe('unknown LoRA "nope"; available: ink, style');
    expect(loraRequestProblem([{ name: "broken", weight: 1 }], node)).toBe('LoRA "broken" cannot be used: bad header');
    expect(loraRequestProblem([{ name: "x", weight: 1 }], known({ name: "broken", error: "bad" }))).toBe('unknown LoRA "x": this node has no usable LoRA adapters');
  });

  it("shortens a long list of available names", () => {
    const many = known(...Array.from({ length: 25 }, (_, i) => ({ name: `a${String(i).padStart(2, "0")}`, error: null })));
    const message = loraRequestProblem([{ name: "zz", weight: 1 }], many)!;
    expect(message).toMatch(/^unknown LoRA "zz"; available: a00, a01, .*, a19, …$/);
  });
});
