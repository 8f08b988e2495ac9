// GET /api/v1/loras over the real app and the real catalog, with test-double GPU nodes answering ListLoras.
import { afterEach, describe, expect, it } from "vitest";
import { createGpuNodesLoraCatalog } from "../../../../edge/gpu/gpu-nodes.lora-catalog.js";
import { KEY_1, ManualClock, createTestEdge, type TestEdge } from "../../edge-test-app.js";
import { LoraNode } from "../../gpu/lora-node.double.js";

let edge: TestEdge | undefined;
afterEach(() => edge?.close());

async function edgeWith(nodes: LoraNode[]): Promise<TestEdge> {
  edge = await createTestEdge({}, { loraCatalog: createGpuNodesLoraCatalog(nodes, new ManualClock()) });
  return edge;
}

const get = (e: TestEdge, headers: Record<string, string> = { "x-api-key": KEY_1 }) => e.request("/api/v1/loras", { headers });

describe("GET /api/v1/loras", () => {
  it("lists the nodes' adapters in the public shape, fields in order", async () => {
    const e = await edgeWith([
      new LoraNode([
        { name: "texture", kind: "loha", matchedModules: 3, sizeBytes: 2048 },
        { name: "ink", triggerWords: ["inkwash", "sumi-e"], startupWeight: 0.8, matchedModules: 2, sizeBytes: 512 },
        { name: "sdxl", matchedModules: 0, unmatchedKeys: 1, unmatchedKeyExamples: ["lora_unet_input_blocks_4_1_x"], error: "no module of this adapter matches a weight of the model" },
      ]),
    ]);
    const res = await get(e);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(
      JSON.stringify({
        loras: [
          { name: "ink", kind: "lora", trigger_words: ["inkwash", "sumi-e"], default_weight: 0.8, matched_modules: 2, unmatched_keys: 0, unmatched_key_examples: [], unsupported_keys: 0, size_bytes: 512, error: null },
          {
            name: "sdxl",
            kind: "lora",
            trigger_words: [],
            default_weight: null,
            matched_modules: 0,
            unmatched_keys: 1,
            unmatched_key_examples: ["lora_unet_input_blocks_4_1_x"],
            unsupported_keys: 0,
            size_bytes: 1000,
            error: "no module of this adapter matches a weight of the model",
          },
          { name: "texture", kind: "loha", trigger_words: [], default_weight: null, matched_modules: 3, unmatched_keys: 0, unmatched_key_examples: [], unsupported_keys: 0, size_bytes: 2048, error: null },
        ],
        nodes_total: 1,
        nodes_answered: 1,
      }),
    );
  });

  it("answers an empty list when no node answers, saying so in nodes_answered", async () => {
    const down = new LoraNode([{ name: "ink" }]);
    down.down = true;
    const e = await edgeWith([down, new LoraNode([])]);
    expect(await (await get(e)).json()).toEqual({ loras: [], nodes_total: 2, nodes_answered: 1 });
    const none = await createTestEdge({}, { loraCatalog: createGpuNodesLoraCatalog([down], new ManualClock()) });
    try {
      expect(await (await get(none)).json()).toEqual({ loras: [], nodes_total: 1, nodes_answered: 0 });
    } finally {
      none.close();
    }
  });

  it("needs an API key like the task routes", async () => {
    const node = new LoraNode([{ name: "ink" }]);
    const e = await edgeWith([node]);
    expect(await (await get(e, {})).json()).toEqual({ detail: "缺少API Key" });
    const wrong = await get(e, { "x-api-key": "nope" });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toEqual({ detail: "无效的API Key" });
    // Refused before the nodes are asked.
    expect(node.calls).toBe(0);
    expect((await e.request("/api/v1/loras", { headers: { authorization: `Bearer ${KEY_1}` } })).status).toBe(200);
  });
});
