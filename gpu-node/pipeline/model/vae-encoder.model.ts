// VAE encoder: image [N, 3, H, W] in [-1, 1] → the posterior diffusers samples from. Three shapes exist:
// - optimum: `latent_parameters` = mean ‖ logvar (2C channels), as diffusers' DiagonalGaussianDistribution;
// - the diffusers script: `latent_sample`, a sample drawn inside the graph; we patch the graph to also return
//   the mean and std that feed that sample (see onnx-graph.patch.ts), so the draw comes from our generator;
// - a sampling graph we cannot patch: its own sample is used (not reproducible, but the request's generator
//   still gives up the draw so the later noise stays aligned with diffusers).
import type { ModelSession, TensorInfo } from "../backends/onnx.backend.js";
import { runInChunks } from "./batch-runner.js";
import { ModelLoadError } from "./model-load.error.js";
import { describe } from "./session-info.js";

export type Posterior =
  | { kind: "gaussian"; mean: Float32Array; std: Float32Array; dims: number[] }
  | { kind: "sample"; sample: Float32Array; dims: number[] };

export type EncoderFlavour =
  | { kind: "parameters"; output: string }
  | { kind: "patched"; mean: string; std: string }
  | { kind: "sample"; output: string };

export class VaeEncoderModel {
  private constructor(
    private readonly session: ModelSession,
    private readonly input: TensorInfo,
    readonly flavour: EncoderFlavour,
  ) {}

  static from(session: ModelSession, label: string, patched: { mean: string; std: string } | null): VaeEncoderModel {
    const input = session.inputs.find((i) => i.name === "sample") ?? session.inputs[0];
    if (!input || session.inputs.length !== 1 || input.shape.length !== 4) {
      throw new ModelLoadError(`${label}: expected one rank-4 input (sample), found ${describe(session.inputs)}`);
    }
    if (patched) return new VaeEncoderModel(session, input, { kind: "patched", ...patched });
    const params = session.outputs.find((o) => o.name === "latent_parameters" || o.name === "latent_dist");
    if (params) return new VaeEncoderModel(session, input, { kind: "parameters", output: params.name });
    const output = session.outputs.find((o) => o.name === "latent_sample") ?? session.outputs[0];
    if (!output) throw new ModelLoadError(`${label}: has no outputs`);
    return new VaeEncoderModel(session, input, { kind: "sample", output: output.name });
  }

  async encode(image: Float32Array, imageShape: readonly number[], batch: number, chunkSize: number): Promise<Posterior> {
    const flavour = this.flavour;
    const names = flavour.kind === "patched" ? [flavour.mean, flavour.std] : [flavour.output];
    const out = await runInChunks(batch, chunkSize, [{ data: image, sampleShape: imageShape }], ([x], count) =>
      this.session.run({ [this.input.name]: { data: x, dims: [count, ...imageShape] } }, names),
    );
    if (flavour.kind === "patched") {
      const mean = out[flavour.mean];
      return { kind: "gaussian", mean: mean.data, std: out[flavour.std].data, dims: mean.dims };
    }
    const result = out[flavour.output];
    if (flavour.kind === "sample") return { kind: "sample", sample: result.data, dims: result.dims };
    return splitParameters(result.data, result.dims);
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** diffusers' DiagonalGaussianDistribution: chunk(2, dim=1), logvar clamped to [-30, 20], std = exp(logvar / 2). */
function splitParameters(params: Float32Array, dims: number[]): Posterior {
  const [batch, channels2, height, width] = dims;
  const channels = channels2 / 2;
  const plane = height * width;
  const half = channels * plane;
  const mean = new Float32Array(batch * half);
  const std = new Float32Array(batch * half);
  for (let n = 0; n < batch; n++) {
    const src = n * 2 * half;
    mean.set(params.subarray(src, src + half), n * half);
    for (let i = 0; i < half; i++) {
      const logvar = Math.min(20, Math.max(-30, params[src + half + i]));
      std[n * half + i] = Math.exp(Math.fround(0.5 * logvar));
    }
  }
  return { kind: "gaussian", mean, std, dims: [batch, channels, height, width] };
}
