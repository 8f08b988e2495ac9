// The optimum flavour (int64 ids, rank-0 timestep, latent_parameters) against sessions that only declare
// metadata: the adapters must read names, dtypes and ranks from it. The tiny model covers the diffusers flavour.
import { describe, expect, it } from "vitest";
import type { HostTensor, ModelSession, OutputTensor, TensorInfo } from "../../../../gpu-node/pipeline/backends/onnx.backend.js";
import { ModelLoadError } from "../../../../gpu-node/pipeline/model/model-load.error.js";
import { TextEncoderModel } from "../../../../gpu-node/pipeline/model/text-encoder.model.js";
import { UnetModel } from "../../../../gpu-node/pipeline/model/unet.model.js";
import { VaeEncoderModel } from "../../../../gpu-node/pipeline/model/vae-encoder.model.js";

class RecordingSession implements ModelSession {
  calls: Array<Record<string, HostTensor>> = [];
  constructor(
    readonly inputs: TensorInfo[],
    readonly outputs: TensorInfo[],
    private readonly respond: (feeds: Record<string, HostTensor>) => Record<string, OutputTensor>,
  ) {}
  async run(feeds: Record<string, HostTensor>): Promise<Record<string, OutputTensor>> {
    this.calls.push(feeds);
    return this.respond(feeds);
  }
  async release(): Promise<void> {}
}

const optimumUnetInputs: TensorInfo[] = [
  { name: "sample", type: "float32", shape: ["batch", 4, "height", "width"] },
  { name: "timestep", type: "float32", shape: [] },
  { name: "encoder_hidden_states", type: "float32", shape: ["batch", "sequence", 768] },
];

describe("exporter flavours", () => {
  it("text encoder: takes an int64 input_ids and reads last_hidden_state", async () => {
    const session = new RecordingSession(
      [{ name: "input_ids", type: "int64", shape: ["batch", "sequence"] }],
      [
        { name: "pooler_output", type: "float32", shape: ["batch", 4] },
        { name: "last_hidden_state", type: "float32", shape: ["batch", "sequence", 4] },
      ],
      (feeds) => ({ last_hidden_state: { data: new Float32Array(2 * 77 * 4).fill(1), dims: [2, 77, 4] } }),
    );
    const encoder = TextEncoderModel.from(session, "text_encoder/model.onnx");
    const out = await encoder.encode(new Int32Array(2 * 77), 2);
    expect(out.dims).toEqual([2, 77, 4]);
    expect(session.calls[0].input_ids.dims).toEqual([2, 77]);
  });

  it("unet: a rank-0 timestep is fed as a scalar, a [batch] one per sample, chunks stitched in order", async () => {
    const respond = (feeds: Record<string, HostTensor>) => {
      const x = feeds.sample.data as Float32Array;
      // Echo sample + timestep so the stitched result shows each sample went through once, in order.
      const t = feeds.timestep.data[0];
      return { out_sample: { data: x.map((v) => v + t), dims: [...feeds.sample.dims] } };
    };
    const scalar = new RecordingSession(optimumUnetInputs, [{ name: "out_sample", type: "float32", shape: [] }], respond);
    const unet = UnetModel.from(scalar, "unet/model.onnx");
    const sample = Float32Array.from({ length: 5 * 4 * 2 * 2 }, (_, i) => i);
    const hidden = new Float32Array(5 * 3 * 768);
    const out = await unet.predict(sample, [4, 2, 2], 999, hidden, [3, 768], 5, 2);
    expect(scalar.calls.map((c) => c.sample.dims[0])).toEqual([2, 2, 1]);
    expect(scalar.calls.every((c) => c.timestep.dims.length === 0 && c.timestep.data.length === 1)).toBe(true);
    expect([...out]).toEqual([...sample].map((v) => v + 999));

    const vectorInputs = optimumUnetInputs.map((i) => (i.name === "timestep" ? { ...i, type: "int64" as const, shape: ["batch"] } : i));
    const vector = new RecordingSession(vectorInputs, [{ name: "out_sample", type: "float32", shape: [] }], respond);
    await UnetModel.from(vector, "unet/model.onnx").predict(sample, [4, 2, 2], 500, hidden, [3, 768], 5, 8);
    expect(vector.calls[0].timestep.dims).toEqual([5]);
    expect([...vector.calls[0].timestep.data]).toEqual([500, 500, 500, 500, 500]);
  });

  it("unet: latent sides the export cannot take are padded with edge values and the prediction cropped", async () => {
    const session = new RecordingSession(optimumUnetInputs, [{ name: "out_sample", type: "float32", shape: [] }], (feeds) => ({
      out_sample: { data: (feeds.sample.data as Float32Array).map((v) => v * 2), dims: [...feeds.sample.dims] },
    }));
    const unet = UnetModel.from(session, "unet/model.onnx", 4);
    // One sample, one channel of 3 x 5 (shown as rows): padded to 4 x 8.
    const sample = Float32Array.from({ length: 4 * 3 * 5 }, (_, i) => i);
    const out = await unet.predict(sample, [4, 3, 5], 1, new Float32Array(3 * 768), [3, 768], 1, 1);
    expect(session.calls[0].sample.dims).toEqual([1, 4, 4, 8]);
    const fed = session.calls[0].sample.data;
    expect([...fed.subarray(0, 8)]).toEqual([0, 1, 2, 3, 4, 4, 4, 4]);
    expect([...fed.subarray(24, 32)]).toEqual([10, 11, 12, 13, 14, 14, 14, 14]); // last row repeated
    expect([...out]).toEqual([...sample].map((v) => v * 2));
  });

  it("unet: an SDXL-style export with extra inputs is refused at load", () => {
    const session = new RecordingSession(
      [...optimumUnetInputs, { name: "text_embeds", type: "float32", shape: ["batch", 1280] }],
      [{ name: "out_sample", type: "float32", shape: [] }],
      () => ({}),
    );
    expect(() => UnetModel.from(session, "unet/model.onnx")).toThrow(ModelLoadError);
    expect(() => UnetModel.from(session, "unet/model.onnx")).toThrow(/unet\/model\.onnx: expected inputs .*text_embeds/);
  });

  it("vae encoder: latent_parameters split into mean and std = exp(clamp(logvar) / 2)", async () => {
    const params = new Float32Array(8);
    params.set([1, 2, 3, 4], 0); // mean, 4 channels of 1x1
    params.set([0, Math.log(4), -100, 50], 4); // logvar; clamped to [-30, 20]
    const session = new RecordingSession(
      [{ name: "sample", type: "float32", shape: ["batch", 3, "height", "width"] }],
      [{ name: "latent_parameters", type: "float32", shape: ["batch", 8, "h", "w"] }],
      () => ({ latent_parameters: { data: params, dims: [1, 8, 1, 1] } }),
    );
    const encoder = VaeEncoderModel.from(session, "vae_encoder/model.onnx", null);
    expect(encoder.flavour.kind).toBe("parameters");
    const posterior = await encoder.encode(new Float32Array(3 * 8 * 8), [3, 8, 8], 1, 1);
    if (posterior.kind !== "gaussian") throw new Error("expected a gaussian posterior");
    expect(posterior.dims).toEqual([1, 4, 1, 1]);
    expect([...posterior.mean]).toEqual([1, 2, 3, 4]);
    expect(posterior.std[0]).toBeCloseTo(1, 6);
    expect(posterior.std[1]).toBeCloseTo(2, 6);
    expect(posterior.std[2]).toBeCloseTo(Math.exp(-15), 10);
    expect(posterior.std[3]).toBeCloseTo(Math.exp(10), 0);
  });
});
