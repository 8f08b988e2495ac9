// CLIP text encoder: token ids in, last_hidden_state out. The diffusers script exports input_ids as int32,
// optimum as int64; the backend converts to whatever the session declares.
import type { ModelSession, TensorInfo } from "../backends/onnx.backend.js";
import { ModelLoadError } from "./model-load.error.js";
import { describe } from "./session-info.js";

export class TextEncoderModel {
  private constructor(
    private readonly session: ModelSession,
    private readonly input: TensorInfo,
    private readonly output: TensorInfo,
  ) {}

  static from(session: ModelSession, label: string): TextEncoderModel {
    const input = session.inputs.find((i) => i.name === "input_ids") ?? session.inputs[0];
    if (!input || session.inputs.length !== 1 || (input.type !== "int32" && input.type !== "int64")) {
      throw new ModelLoadError(`${label}: expected one integer input (input_ids), found ${describe(session.inputs)}`);
    }
    const output = session.outputs.find((o) => o.name === "last_hidden_state") ?? session.outputs[0];
    if (!output) throw new ModelLoadError(`${label}: has no outputs`);
    return new TextEncoderModel(session, input, output);
  }

  /** ids: batch x sequence token ids; returns the hidden states [batch, sequence, hidden]. */
  async encode(ids: Int32Array, batch: number): Promise<{ data: Float32Array; dims: number[] }> {
    const sequence = ids.length / batch;
    const result = await this.session.run({ [this.input.name]: { data: ids, dims: [batch, sequence] } }, [
      this.output.name,
    ]);
    return result[this.output.name];
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
