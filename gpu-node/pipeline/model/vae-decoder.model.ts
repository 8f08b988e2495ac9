// VAE decoder: latents [N, C, h, w] (already divided by scaling_factor) → image [N, 3, H, W] in about [-1, 1].
import type { ModelSession, TensorInfo } from "../backends/onnx.backend.js";
import { runInChunks } from "./batch-runner.js";
import { ModelLoadError } from "./model-load.error.js";
import { describe } from "./session-info.js";

export class VaeDecoderModel {
  private constructor(
    private readonly session: ModelSession,
    private readonly input: TensorInfo,
    private readonly output: TensorInfo,
  ) {}

  static from(session: ModelSession, label: string): VaeDecoderModel {
    const input = session.inputs.find((i) => i.name === "latent_sample") ?? session.inputs[0];
    if (!input || session.inputs.length !== 1 || input.shape.length !== 4) {
      throw new ModelLoadError(`${label}: expected one rank-4 input (latent_sample), found ${describe(session.inputs)}`);
    }
    const output = session.outputs.find((o) => o.name === "sample") ?? session.outputs[0];
    if (!output) throw new ModelLoadError(`${label}: has no outputs`);
    return new VaeDecoderModel(session, input, output);
  }

  async decode(
    latents: Float32Array,
    latentShape: readonly number[],
    batch: number,
    chunkSize: number,
  ): Promise<{ data: Float32Array; dims: number[] }> {
    const result = await runInChunks(batch, chunkSize, [{ data: latents, sampleShape: latentShape }], ([x], count) =>
      this.session.run({ [this.input.name]: { data: x, dims: [count, ...latentShape] } }, [this.output.name]),
    );
    return result[this.output.name];
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
