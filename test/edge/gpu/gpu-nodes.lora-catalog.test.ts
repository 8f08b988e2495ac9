import { describe, expect, it } from "vitest";
import { createGpuNodesLoraCatalog } from "../../../edge/gpu/gpu-nodes.lora-catalog.js";
import { ManualClock } from "../edge-test-app.js";
import { LoraNode } from "./lora-node.double.js";

describe("GPU nodes' LoRA catalog", () => {
  it("lists the union over the nodes that answer, one entry per name, by name, with every field", async () => {
    const a = new LoraNode([{ name: "style" }, { name: "ink", triggerWords: ["inkwash", "sumi-e"], startupWeight: 0.8 }]);
    const b = new LoraNode([{ name: "texture", kind: "loha", unmatchedKeys: 2, unmatchedKeyExamples: ["k1", "k2"], unsupportedKeys: 1 }, { name: "style" }]);
    const down = new LoraNode([{ name: "only-on-the-dead-node" }]);
    down.down = true;
    const catalog = createGpuNodesLoraCatalog([a, down, b], new ManualClock());
    const snapshot = await catalog.snapshot();
    expect(snapshot).toMatchObject({ nodesTotal: 3, nodesAnswered: 2 });
    expect(snapshot.loras.map((l) => l.name)).toEqual(["ink", "style", "texture"]);
    expect(snapshot.loras[0]).toEqual({
      name: "ink",
      kind: "lora",
      triggerWords: ["inkwash", "sumi-e"],
      startupWeight: 0.8,
      matchedModules: 5,
      unmatchedKeys: 0,
      unmatchedKeyExamples: [],
      unsupportedKeys: 0,
      sizeBytes: 1000,
      error: null,
    });
    expect(snapshot.loras[2]).toMatchObject({ kind: "loha", startupWeight: null, unmatchedKeys: 2, unmatchedKeyExamples: ["k1", "k2"], unsupportedKeys: 1 });
  });

  it("prefers a usable copy of a name over a broken one, whichever node answered first", async () => {
    const broken = new LoraNode([{ name: "ink", error: "truncated file" }, { name: "bad", error: "shape mismatch" }]);
    const fine = new LoraNode([{ name: "ink" }]);
    for (const order of [[broken, fine], [fine, broken]]) {
      const { loras } = await createGpuNodesLoraCatalog(order, new ManualClock()).snapshot();
      expect(loras.map((l) => [l.name, l.error])).toEqual([
        ["bad", "shape mismatch"],
        ["ink", null],
      ]);
    }
  });

  it("keeps an answer for ttlMs, and 'no node answered' only for emptyTtlMs", async () => {
    const clock = new ManualClock();
    const node = new LoraNode([{ name: "ink" }]);
    const catalog = createGpuNodesLoraCatalog([node], clock, { ttlMs: 5_000, emptyTtlMs: 1_000 });
    await catalog.snapshot();
    await catalog.snapshot();
    expect(node.calls).toBe(1);
    clock.advance(4_999);
    await catalog.snapshot();
    expect(node.calls).toBe(1);
    clock.advance(1);
    node.down = true;
    expect(await catalog.snapshot()).toEqual({ nodesTotal: 1, nodesAnswered: 0, loras: [] });
    expect(node.calls).toBe(2);
    clock.advance(999);
    await catalog.snapshot();
    expect(node.calls).toBe(2);
    clock.advance(1);
    node.down = false;
    expect((await catalog.snapshot()).loras.map((l) => l.name)).toEqual(["ink"]);
    expect(node.calls).toBe(3);
  });

  it("leaves out a node that does not answer within the deadline", async () => {
    const silent = new LoraNode([{ name: "never-seen" }]);
    silent.hang = true;
    const catalog = createGpuNodesLoraCatalog([silent, new LoraNode([{ name: "ink" }])], new ManualClock(), { timeoutMs: 50 });
    expect(await catalog.snapshot()).toMatchObject({ nodesTotal: 2, nodesAnswered: 1, loras: [{ name: "ink" }] });
  });

  it("with no node configured, knows nothing", async () => {
    expect(await createGpuNodesLoraCatalog([], new ManualClock()).snapshot()).toEqual({ nodesTotal: 0, nodesAnswered: 0, loras: [] });
  });
});
