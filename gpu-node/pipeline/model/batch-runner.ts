// Runs a model whose samples are independent over a batch in chunks and stitches the outputs back together.
import { chunkRanges } from "../memory/memory-budget.js";

export interface BatchInput {
  data: Float32Array;
  /** Shape of one sample (without the batch dimension). */
  sampleShape: readonly number[];
}

export interface BatchOutput {
  data: Float32Array;
  dims: number[];
}

/**
 * Calls `run` once per chunk of at most `chunkSize` samples with the chunk's inputs (views, no copies); returns
 * each named output concatenated in batch order.
 */
export async function runInChunks(
  batch: number,
  chunkSize: number,
  inputs: readonly BatchInput[],
  run: (chunk: Float32Array[], count: number) => Promise<Record<string, BatchOutput>>,
): Promise<Record<string, BatchOutput>> {
  const ranges = chunkRanges(batch, chunkSize);
  const sizes = inputs.map((input) => input.sampleShape.reduce((a, b) => a * b, 1));
  if (ranges.length === 1) return run(inputs.map((input) => input.data), batch);
  const stitched: Record<string, BatchOutput> = {};
  for (const { start, count } of ranges) {
    const views = inputs.map((input, i) => input.data.subarray(start * sizes[i], (start + count) * sizes[i]));
    const result = await run(views, count);
    for (const [name, out] of Object.entries(result)) {
      const perSample = out.data.length / count;
      stitched[name] ??= { data: new Float32Array(perSample * batch), dims: [batch, ...out.dims.slice(1)] };
      stitched[name].data.set(out.data, start * perSample);
    }
  }
  return stitched;
}
