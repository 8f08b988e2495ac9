// The denoising UNet. Exporters differ in the timestep: the diffusers script declares float32 or int64 of
// shape [batch], optimum a rank-0 float. Names, dtypes and ranks come from the session's metadata.
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
  ) {}

  static from(session: ModelSession, label: string): UnetModel {
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
    return new UnetModel(session, sample, timestep, hidden, output);
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
    const result = await runInChunks(
      batch,
      chunkSize,
      [
        { data: sample, sampleShape },
        { data: hidden, sampleShape: hiddenShape },
      ],
      async ([x, h], count) => {
        const t = new Float32Array(scalar ? 1 : count).fill(timestep);
        const out = await this.session.run(
          {
            [this.sample.name]: { data: x, dims: [count, ...sampleShape] },
            [this.timestep.name]: { data: t, dims: scalar ? [] : [count] },
            [this.hidden.name]: { data: h, dims: [count, ...hiddenShape] },
          },
          [this.output.name],
        );
        return out;
      },
    );
    return result[this.output.name].data;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
