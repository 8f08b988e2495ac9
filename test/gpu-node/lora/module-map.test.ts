import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildModuleMap, normalizeModuleName } from "../../../gpu-node/lora/module-map.js";
import { parseOnnxModel } from "../../../gpu-node/lora/onnx-graph.js";
import { buildOnnxModel, TINY_MODULES } from "../../helpers/lora-fixtures.js";

const MODEL = join(process.cwd(), "models/tiny-sd");

async function mapOf(component: string) {
  return buildModuleMap(parseOnnxModel(await readFile(join(MODEL, component, "model.onnx")), component));
}

describe("module map", () => {
  it("maps every kohya module of the fixtures to the initializer its node reads", async () => {
    const unet = await mapOf("unet");
    const te = await mapOf("text_encoder");
    for (const [map, prefix, modules] of [
      [unet, "lora_unet_", TINY_MODULES.unet],
      [te, "lora_te_", TINY_MODULES.text_encoder],
    ] as const) {
      for (const m of Object.values(modules)) {
        const target = map.targets.get(m.key.slice(prefix.length));
        expect(target, m.key).toBeDefined();
        expect(target).toMatchObject({ layout: m.layout, out: m.out, in: m.in, kh: m.kh, kw: m.kw, sharedBy: 1 });
        expect(target!.initializer.name).toBe(m.initializer);
      }
    }
    expect(unet.targets.get("down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q")?.nodeName).toBe(
      "/down_blocks.0/attentions.0/transformer_blocks.0/attn1/to_q/MatMul",
    );
    // Nodes without weights (attention's Q·Kᵀ MatMul) are not targets.
    expect(unet.targets.has("down_blocks_0_attentions_0_transformer_blocks_0_attn1")).toBe(false);
    expect(unet.ambiguous.size).toBe(0);
  });

  it("finds text-encoder weights under kohya's name although the export dropped the `encoder` scope", async () => {
    const te = await mapOf("text_encoder");
    const viaKohya = te.targets.get("text_model_encoder_layers_2_mlp_fc2");
    expect(viaKohya?.nodeName).toBe("/text_model/layers.2/mlp/fc2/MatMul");
    expect(te.targets.get("text_model_layers_2_mlp_fc2")).toBe(viaKohya);
    // 3 layers × (q, k, v, out, fc1, fc2)
    expect(new Set(te.targets.values()).size).toBe(18);
  });

  it("follows Transpose-fed MatMul weights, Gemm transB=0 and Identity-shared weights", () => {
    const f = (n: number) => new Float32Array(n);
    const { model } = buildOnnxModel({
      nodes: [
        { name: "/blk/lin_t/Transpose", opType: "Transpose", inputs: ["blk.lin_t.weight"], outputs: ["wt"], ints: { perm: [1, 0] } },
        { name: "/blk/lin_t/MatMul", opType: "MatMul", inputs: ["x", "wt"], outputs: ["h1"] },
        { name: "/blk/gemm/Gemm", opType: "Gemm", inputs: ["h1", "onnx::Gemm_9", "blk.gemm.bias"], outputs: ["h2"], ints: { transB: 0 } },
        { name: "/blk/gemm_t/Gemm", opType: "Gemm", inputs: ["h1", "blk.gemm_t.weight"], outputs: ["h3"], ints: { transB: 1 } },
        { name: "Identity_1", opType: "Identity", inputs: ["onnx::MatMul_7"], outputs: ["shared_copy"] },
        { name: "/blk/a/MatMul", opType: "MatMul", inputs: ["h2", "shared_copy"], outputs: ["y1"] },
        { name: "/blk/b/MatMul", opType: "MatMul", inputs: ["h2", "onnx::MatMul_7"], outputs: ["y2"] },
      ],
      initializers: [
        { name: "blk.lin_t.weight", dims: [3, 4], dataType: 1, values: f(12), storage: "raw" },
        { name: "onnx::Gemm_9", dims: [3, 5], dataType: 1, values: f(15), storage: "raw" },
        { name: "blk.gemm.bias", dims: [5], dataType: 1, values: f(5), storage: "raw" },
        { name: "blk.gemm_t.weight", dims: [6, 3], dataType: 1, values: f(18), storage: "raw" },
        { name: "onnx::MatMul_7", dims: [5, 2], dataType: 1, values: f(10), storage: "raw" },
      ],
      inputs: [{ name: "x", dims: [1, 4] }],
      outputs: [{ name: "y1", dims: [1, 2] }],
    });
    const map = buildModuleMap(parseOnnxModel(model, "synthetic"));
    expect(map.targets.get("blk_lin_t")).toMatchObject({ layout: "out_in", out: 3, in: 4 });
    expect(map.targets.get("blk_gemm")).toMatchObject({ layout: "in_out", out: 5, in: 3 });
    expect(map.targets.get("blk_gemm")?.initializer.name).toBe("onnx::Gemm_9");
    expect(map.targets.get("blk_gemm_t")).toMatchObject({ layout: "out_in", out: 6, in: 3 });
    expect(map.targets.get("blk_a")).toMatchObject({ sharedBy: 2 });
    expect(map.targets.get("blk_a")?.initializer.name).toBe("onnx::MatMul_7");
  });

  it("normalizes module paths the way kohya flattens them", () => {
    expect(normalizeModuleName("/down_blocks.0/attentions.1/transformer_blocks.0/ff/net.0/proj")).toBe("down_blocks_0_attentions_1_transformer_blocks_0_ff_net_0_proj");
    expect(normalizeModuleName("text_model.encoder.layers.11.self_attn.out_proj")).toBe("text_model_encoder_layers_11_self_attn_out_proj");
  });
});
