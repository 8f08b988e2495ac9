import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { encodeExternalTensor, encodeRawTensorSlot, OnnxFormatError, parseOnnxModel, rewriteInitializers } from "../../../gpu-node/lora/onnx-graph.js";
import { buildOnnxModel } from "../../helpers/lora-fixtures.js";

const MODEL = join(process.cwd(), "models/tiny-sd");

describe("ONNX graph reader", () => {
  it("reads the tiny UNet's nodes and external initializers", async () => {
    const model = parseOnnxModel(await readFile(join(MODEL, "unet/model.onnx")), "unet");
    const toQ = model.nodes.find((n) => n.name === "/down_blocks.0/attentions.0/transformer_blocks.0/attn1/to_q/MatMul");
    expect(toQ).toMatchObject({ opType: "MatMul", inputs: ["/down_blocks.0/attentions.0/transformer_blocks.0/norm1/Add_1_output_0", "onnx::MatMul_3661"] });
    expect(model.initializers.get("onnx::MatMul_3661")).toMatchObject({ dims: [32, 32], dataType: 1, data: { kind: "external", location: "weights.pb", offset: 3670016, length: 4096 } });
    const conv = model.nodes.find((n) => n.name === "/conv_in/Conv");
    expect(conv?.ints.get("kernel_shape")).toEqual([3, 3]);
    expect(model.nodes.find((n) => n.opType === "Gemm")?.ints.get("transB")).toBe(1);
  });

  it("reads the text encoder's embedded raw_data", async () => {
    const bytes = await readFile(join(MODEL, "text_encoder/model.onnx"));
    const model = parseOnnxModel(bytes, "te");
    const init = model.initializers.get("onnx::MatMul_422")!;
    expect(init.data.kind).toBe("raw");
    if (init.data.kind === "raw") expect(init.data.end - init.data.start).toBe(32 * 32 * 4);
  });

  it("rewrites chosen initializers and copies everything else byte for byte", async () => {
    const bytes = await readFile(join(MODEL, "unet/model.onnx"));
    const model = parseOnnxModel(bytes, "unet");
    const { bytes: out, slots } = rewriteInitializers(
      model,
      new Map([
        ["onnx::MatMul_3661", encodeRawTensorSlot({ name: "onnx::MatMul_3661", dims: [32, 32], dataType: 1, byteLength: 4096 })],
        ["conv_in.weight", encodeExternalTensor({ name: "conv_in.weight", dims: [32, 4, 3, 3], dataType: 1, location: "patch.bin", offset: 64, length: 4608 })],
      ]),
    );
    slots.get("onnx::MatMul_3661")!.set(new Uint8Array(new Float32Array(1024).fill(0.25).buffer));
    const again = parseOnnxModel(out, "rewritten");
    expect(again.nodes.length).toBe(model.nodes.length);
    expect(again.nodes.map((n) => n.name)).toEqual(model.nodes.map((n) => n.name));
    const q = again.initializers.get("onnx::MatMul_3661")!;
    expect(q.dims).toEqual([32, 32]);
    expect(q.data.kind).toBe("raw");
    if (q.data.kind === "raw") expect(new Float32Array(new Uint8Array(out.subarray(q.data.start, q.data.end)).buffer)[7]).toBe(0.25);
    expect(again.initializers.get("conv_in.weight")?.data).toEqual({ kind: "external", location: "patch.bin", offset: 64, length: 4608 });
    for (const [name, init] of model.initializers) {
      if (name === "onnx::MatMul_3661" || name === "conv_in.weight") continue;
      const other = again.initializers.get(name)!;
      expect(new Uint8Array(out.subarray(other.start, other.end))).toEqual(new Uint8Array(bytes.subarray(init.start, init.end)));
    }
  });

  it("reads float_data, negative int attributes and float16 initializers", () => {
    const { model } = buildOnnxModel({
      nodes: [{ name: "/s/Transpose", opType: "Transpose", inputs: ["w"], outputs: ["wt"], ints: { perm: [1, 0], axis: -1 } }],
      initializers: [
        { name: "w", dims: [2, 2], dataType: 1, values: Float32Array.of(1, 2, 3, 4), storage: "float_data" },
        { name: "h", dims: [2], dataType: 10, values: Uint16Array.of(0x3c00, 0x4000), storage: "raw" },
      ],
      inputs: [],
      outputs: [{ name: "wt", dims: [2, 2] }],
    });
    const parsed = parseOnnxModel(model, "synthetic");
    expect(parsed.nodes[0].ints.get("perm")).toEqual([1, 0]);
    expect(parsed.nodes[0].ints.get("axis")).toBe(-1);
    const w = parsed.initializers.get("w")!;
    expect(w.data.kind).toBe("float_data");
    if (w.data.kind === "float_data") expect(Array.from(new Float32Array(model.slice(w.data.start, w.data.end).buffer))).toEqual([1, 2, 3, 4]);
    expect(parsed.initializers.get("h")).toMatchObject({ dataType: 10, dims: [2] });
  });

  it("names the file when the bytes are not a model", async () => {
    const bytes = await readFile(join(MODEL, "unet/model.onnx"));
    expect(() => parseOnnxModel(bytes.subarray(0, bytes.byteLength - 1000), "cut.onnx")).toThrow(OnnxFormatError);
    expect(() => parseOnnxModel(bytes.subarray(0, bytes.byteLength - 1000), "cut.onnx")).toThrow(/^cut\.onnx: .*(runs past|truncated)/);
    expect(() => parseOnnxModel(new TextEncoder().encode("not a model at all"), "text.onnx")).toThrow(/^text\.onnx: /);
  });
});
