import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { OnnxBackend } from "../../../../gpu-node/pipeline/backends/onnx.backend.js";
import { float16ToFloat32 as fromHalf, float32ToFloat16 as toHalf } from "../../../../gpu-node/pipeline/tensor/float16.codec.js";
import { TINY_SD_DIR } from "../../../helpers/goldens.js";

describe("OnnxBackend", () => {
  it("reports metadata and counts the time spent inside run()", async () => {
    const backend = new OnnxBackend({ intraOpThreads: 1, graphOptimizationLevel: "basic", device: "cpu" });
    const session = await backend.createSession({ path: join(TINY_SD_DIR, "text_encoder", "model.onnx") });
    expect(session.inputs).toEqual([{ name: "input_ids", type: "int32", shape: ["batch", "sequence"] }]);
    expect(session.outputs.map((o) => o.name)).toEqual(["last_hidden_state", "pooler_output"]);
    expect(backend.runMs).toBe(0);
    // Floats fed to an integer input are truncated, as numpy's astype does.
    const ids = Float32Array.from({ length: 77 }, (_, i) => (i === 0 ? 49406.0 : 49407.9));
    const out = await session.run({ input_ids: { data: ids, dims: [1, 77] } }, ["last_hidden_state"]);
    expect(Object.keys(out)).toEqual(["last_hidden_state"]);
    expect(out.last_hidden_state.dims).toEqual([1, 77, 32]);
    expect(backend.runMs).toBeGreaterThan(0);
    await expect(session.run({ nope: { data: ids, dims: [1, 77] } })).rejects.toThrow(/no input named nope/);
    await session.release();
  });

  it("loads a model from patched bytes with its external weights beside the original file", async () => {
    const { readFileSync } = await import("node:fs");
    const backend = new OnnxBackend({ intraOpThreads: 1, graphOptimizationLevel: "all", device: "cpu" });
    const dir = join(TINY_SD_DIR, "unet");
    const session = await backend.createSession({ bytes: readFileSync(join(dir, "model.onnx")), externalDataDir: dir });
    expect(session.inputs.map((i) => i.name)).toEqual(["sample", "timestep", "encoder_hidden_states"]);
    await session.release();
  });

  it("loads a model whose external weights come as in-memory buffers (externalData), and reads those", async () => {
    const { readFileSync } = await import("node:fs");
    const backend = new OnnxBackend({ intraOpThreads: 1, graphOptimizationLevel: "all", device: "cpu" });
    const dir = join(TINY_SD_DIR, "unet");
    const bytes = readFileSync(join(dir, "model.onnx"));
    const weights = new Uint8Array(readFileSync(join(dir, "weights.pb")));
    const feeds = {
      sample: { data: Float32Array.from({ length: 4 * 8 * 8 }, (_, i) => Math.sin(i)), dims: [1, 4, 8, 8] },
      timestep: { data: Float32Array.of(500), dims: [1] },
      encoder_hidden_states: { data: Float32Array.from({ length: 77 * 32 }, (_, i) => Math.cos(i)), dims: [1, 77, 32] },
    };
    const run = async (source: Parameters<OnnxBackend["createSession"]>[0]) => {
      const session = await backend.createSession(source);
      const out = (await session.run(feeds)).out_sample.data;
      await session.release();
      return out;
    };
    const fromDisk = await run({ path: join(dir, "model.onnx") });
    const fromBuffers = await run({ bytes, externalDataDir: null, externalData: [{ path: "weights.pb", data: weights }] });
    expect(fromBuffers).toEqual(fromDisk);
    // A changed buffer changes the output: the session took its weights from memory, not from the file.
    const scaled = new Float32Array(weights.slice().buffer);
    for (let i = 0; i < scaled.length; i++) scaled[i] *= 0.5;
    const fromScaled = await run({ bytes, externalDataDir: null, externalData: [{ path: "weights.pb", data: new Uint8Array(scaled.buffer) }] });
    expect(fromScaled).not.toEqual(fromDisk);
  });
});

describe("float16 conversion (fp16 exports)", () => {
  it("rounds to nearest even like numpy's astype(float16), with subnormals and overflow", () => {
    const values = [0, 1, -2.5, 0.1, 65504, 65520, 6.103515625e-5, 5.960464477539063e-8, 2.9e-8, Infinity, 1 + 2 ** -11];
    const bits = [0x0000, 0x3c00, 0xc100, 0x2e66, 0x7bff, 0x7c00, 0x0400, 0x0001, 0x0000, 0x7c00, 0x3c00];
    expect([...toHalf(values)]).toEqual(bits);
    expect([...fromHalf(Uint16Array.from([0x3c00, 0xc100, 0x7bff, 0x0001, 0xfc00]))]).toEqual([
      1, -2.5, 65504, 5.960464477539063e-8, -Infinity,
    ]);
    expect(Number.isNaN(fromHalf(toHalf([NaN]))[0])).toBe(true);
  });
});
