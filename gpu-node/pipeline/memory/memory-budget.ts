// Splits UNet and VAE batches so one run's working set fits config.onnx.memory_budget_mb.
//
// The exports use naive attention: each attention layer materialises a [heads, T, T] float32 score matrix per
// sample (T = tokens at that resolution), then its softmax, and the matmul reads both. At 512x512 the first
// UNet attention sees 64x64 = 4096 tokens, so one head's map is 64 MiB; that, not the weights or the convs,
// is what exhausted memory at batch 8. Estimates err high: a sample is never split, so the only risk of a
// low estimate is the process dying, while a high one only costs some speed.

const FLOAT_BYTES = 4;
/** Scores, softmax output and the matmul's temporary are alive together. */
const ATTENTION_COPIES = 3;
/** Input, output, normalisation temporary and skip connection of a conv block. */
const CONV_COPIES = 4;
/** Everything else onnxruntime keeps per sample (small tensors, arena slack). */
const PER_SAMPLE_SLACK = 16 * 1024 * 1024;

export interface UnetMemoryInfo {
  /** Attention heads at the highest-resolution attention (SD 1.x: 8). */
  heads: number;
  /** Widest feature map of the UNet (SD 1.x: 1280 channels at 1/8 of the latent; 320 at full latent size). */
  channelsAtFullLatent: number;
}

export interface VaeMemoryInfo {
  /** diffusers' block_out_channels (SD 1.x: 128, 256, 512, 512). */
  blockOutChannels: readonly number[];
}

export const SD1_UNET_MEMORY: UnetMemoryInfo = { heads: 8, channelsAtFullLatent: 320 };
export const SD1_VAE_MEMORY: VaeMemoryInfo = { blockOutChannels: [128, 256, 512, 512] };

/** Bytes one UNet sample needs at a latent of latentHeight x latentWidth. */
export function unetBytesPerSample(latentHeight: number, latentWidth: number, info: UnetMemoryInfo): number {
  const tokens = latentHeight * latentWidth;
  const attention = info.heads * tokens * tokens * FLOAT_BYTES * ATTENTION_COPIES;
  const convs = info.channelsAtFullLatent * tokens * FLOAT_BYTES * CONV_COPIES;
  return attention + convs + PER_SAMPLE_SLACK;
}

/** Bytes one VAE (encoder or decoder) sample needs for an image of height x width pixels. */
export function vaeBytesPerSample(height: number, width: number, info: VaeMemoryInfo): number {
  const channels = info.blockOutChannels.length > 0 ? info.blockOutChannels : SD1_VAE_MEMORY.blockOutChannels;
  const factor = 2 ** (channels.length - 1);
  // The mid block has one single-head attention over the latent's tokens.
  const tokens = Math.ceil(height / factor) * Math.ceil(width / factor);
  const attention = tokens * tokens * FLOAT_BYTES * ATTENTION_COPIES;
  let widest = 0;
  channels.forEach((c, level) => {
    const scale = 2 ** level;
    widest = Math.max(widest, c * Math.ceil(height / scale) * Math.ceil(width / scale));
  });
  return attention + widest * FLOAT_BYTES * CONV_COPIES + PER_SAMPLE_SLACK;
}

/** How many samples one run may take; at least 1 (a single sample over budget is refused by checkFits). */
export function samplesPerRun(bytesPerSample: number, budgetMb: number): number {
  return Math.max(1, Math.floor((budgetMb * 1024 * 1024) / bytesPerSample));
}

/** Whether a single sample fits the budget at all. */
export function fitsBudget(bytesPerSample: number, budgetMb: number): boolean {
  return bytesPerSample <= budgetMb * 1024 * 1024;
}

/** Splits `total` samples into consecutive chunks of at most `size`. */
export function chunkRanges(total: number, size: number): Array<{ start: number; count: number }> {
  const ranges: Array<{ start: number; count: number }> = [];
  for (let start = 0; start < total; start += size) ranges.push({ start, count: Math.min(size, total - start) });
  return ranges;
}

export function megabytes(bytes: number): number {
  return Math.ceil(bytes / (1024 * 1024));
}
