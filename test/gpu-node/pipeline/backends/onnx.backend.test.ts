import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { OnnxBackend } from "../../../../gpu-node/pipeline/backends/onnx.backend.js";
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
});
