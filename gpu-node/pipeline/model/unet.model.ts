// The denoising UNet. Exporters differ in the timestep: the diffusers script declares float32 or int64 of
// shape [batch], optimum a rank-0 float. Names, dtypes and ranks come from the session's metadata.
//
// Sizes: the torch UNet takes any latent size (when a side is not a multiple of 2^downsamplers it passes the
// skip connection's size to each upsampler), but an ONNX export froze the divisible branch it was traced with,
// so its Concat fails on such sizes. Those latents are padded (edge values repeated) up to the multiple and the
// prediction cropped back: exact for sizes the export supports, a close stand-in for the rest.
import type { ModelSession, TensorInfo } from "../backends/onnx.backend.js";
import { runInChunks } from "./batch-runner.js";
import { ModelLoadError } from "./model-load.error.js";
import { describe } from "./session-info.js";

export class UnetModel {
  private constructor(
    private readonly session: ModelSession,
    private readonly sample: TensorInfo,
    private readonly timestep: TensorInfo,
    private readonly hidden: TensorInfo,
    private readonly output: TensorInfo,
    /** Latent sides the export takes natively are multiples of this (2^number of downsamplers). */
    readonly latentMultiple: number,
  ) {}

  static from(session: ModelSession, label: string, latentMultiple = 8): UnetModel {
    const inputs = session.inputs;
    const byName = (name: string) => inputs.find((i) => i.name === name);
    const sample = byName("sample") ?? inputs.find((i) => i.shape.length === 4);
    const hidden = byName("encoder_hidden_states") ?? inputs.find((i) => i.shape.length === 3);
    const timestep = byName("timestep") ?? inputs.find((i) => i.shape.length <= 1);
    const known = [sample, hidden, timestep];
    if (!sample || !hidden || !timestep || inputs.length !== 3 || new Set(known).size !== 3) {
      throw new ModelLoadError(
        `${label}: expected inputs sample, timestep, encoder_hidden_states (an SD 1.x/2.x UNet), found ${describe(inputs)}`,
      );
    }
    if (timestep.shape.length > 1) {
      throw new ModelLoadError(`${label}: timestep must be a scalar or a [batch] vector, found ${describe([timestep])}`);
    }
    const output = session.outputs.find((o) => o.name === "out_sample") ?? session.outputs[0];
    if (!output) throw new ModelLoadError(`${label}: has no outputs`);
    return new UnetModel(session, sample, timestep, hidden, output, latentMultiple);
  }

  /** The latent channel count the export declares, when static. */
  get latentChannels(): number | null {
    const channels = this.sample.shape[1];
    return typeof channels === "number" ? channels : null;
  }

  /**
   * Noise prediction for `batch` samples [batch, C, h, w] at one timestep with their text embeddings
   * [batch, seq, hidden], run `chunkSize` samples at a time.
   */
  async predict(
    sample: Float32Array,
    sampleShape: readonly number[],
    timestep: number,
    hidden: Float32Array,
    hiddenShape: readonly number[],
    batch: number,
    chunkSize: number,
  ): Promise<Float32Array> {
    const scalar = this.timestep.shape.length === 0;
    const [channels, height, width] = sampleShape;
    const m = this.latentMultiple;
    const paddedHeight = Math.ceil(height / m) * m;
    const paddedWidth = Math.ceil(width / m) * m;
    const padded = paddedHeight !== height || paddedWidth !== width;
    const input = padded ? padEdges(sample, batch * channels, height, width, paddedHeight, paddedWidth) : sample;
    const inputShape = [channels, paddedHeight, paddedWidth];
    const result = await runInChunks(
      batch,
      chunkSize,
      [
        { data: input, sampleShape: inputShape },
        { data: hidden, sampleShape: hiddenShape },
      ],
      async ([x, h], count) => {
        const t = new Float32Array(scalar ? 1 : count).fill(timestep);
        const out = await this.session.run(
          {
            [this.sample.name]: { data: x, dims: [count, ...inputShape] },
            [this.timestep.name]: { data: t, dims: scalar ? [] : [count] },
            [this.hidden.name]: { data: h, dims: [count, ...hiddenShape] },
          },
          [this.output.name],
        );
        return out;
      },
    );
    const out = result[this.output.name].data;
    return padded ? cropPlanes(out, batch * channels, paddedHeight, paddedWidth, height, width) : out;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** Each [h, w] plane extended to [ph, pw] by repeating its last row and column. */
function padEdges(data: Float32Array, planes: number, h: number, w: number, ph: number, pw: number): Float32Array {
  const out = new Float32Array(planes * ph * pw);
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < ph; y++) {
      const src = p * h * w + Math.min(y, h - 1) * w;
      const dst = p * ph * pw + y * pw;
      out.set(data.subarray(src, src + w), dst);
      out.fill(data[src + w - 1], dst + w, dst + pw);
    }
  }
  return out;
}

function cropPlanes(data: Float32Array, planes: number, ph: number, pw: number, h: number, w: number): Float32Array {
  const out = new Float32Array(planes * h * w);
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < h; y++) {
      const src = p * ph * pw + y * pw;
      out.set(data.subarray(src, src + w), p * h * w + y * w);
    }
  }
  return out;
}
