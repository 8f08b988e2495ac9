// Splits UNet and VAE batches so one run's working set fits config.onnx.memory_budget_mb.
//
// The exports use naive attention: each attention layer materialises [heads, T, T] float32 maps per sample
// (T = tokens at that resolution). At 512x512 the first UNet attention sees 64x64 = 4096 tokens, so one head's
// map is 64 MiB; that, not the weights or the convs, is what exhausted memory at batch 8. Estimates err high:
// the only risk of a low one is the process dying, while a high one only costs some speed.
//
// Measured on models/tiny-sd (onnxruntime-node 1.30, CPU): the UNet adds 2.1 GB per sample at 512x512 and
// 134 MB at 256x256 (about 8 maps of 4 heads), the VAE decoder 271 MB per sample at 512x512.

const FLOAT_BYTES = 4;
/** diffusers' attention as exported: q·kᵀ, x scale, + (baddbmm's beta term), softmax: four maps in a chain. */
const ATTENTION_COPIES = 4;
/** The UNet's full-resolution attention layers whose buffers the planner keeps apart (down and up path). */
const UNET_ATTENTION_LAYERS = 2;
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

/**
 * Past this much attention-map memory per run, a bigger batch no longer runs faster per sample (the maps
 * outgrow the caches; on the tiny model at 256x256 one sample per call was as fast as eight, with a fifth of
 * the memory), so UNet runs are kept under it even when the budget would allow more.
 */
const EFFICIENT_ATTENTION_BYTES_PER_RUN = 256 * 1024 * 1024;

function unetAttentionBytes(latentHeight: number, latentWidth: number, info: UnetMemoryInfo): number {
  const tokens = latentHeight * latentWidth;
  return info.heads * tokens * tokens * FLOAT_BYTES * ATTENTION_COPIES * UNET_ATTENTION_LAYERS;
}

/** Bytes one UNet sample needs at a latent of latentHeight x latentWidth. */
export function unetBytesPerSample(latentHeight: number, latentWidth: number, info: UnetMemoryInfo): number {
  const tokens = latentHeight * latentWidth;
  const convs = info.channelsAtFullLatent * tokens * FLOAT_BYTES * CONV_COPIES;
  return unetAttentionBytes(latentHeight, latentWidth, info) + convs + PER_SAMPLE_SLACK;
}

/** UNet samples per run: within the budget, and not past the size where batching stops paying. */
export function unetSamplesPerRun(latentHeight: number, latentWidth: number, info: UnetMemoryInfo, budgetMb: number): number {
  const byBudget = samplesPerRun(unetBytesPerSample(latentHeight, latentWidth, info), budgetMb);
  const attention = unetAttentionBytes(latentHeight, latentWidth, info);
  const byEfficiency = Math.max(1, Math.floor(EFFICIENT_ATTENTION_BYTES_PER_RUN / attention));
  return Math.min(byBudget, byEfficiency);
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

/**
 * How many samples one run may take. At least 1: a sample cannot be split, so one over the budget still runs
 * alone (the caller refuses sizes beyond the machine's memory, see fitsMemory).
 */
export function samplesPerRun(bytesPerSample: number, budgetMb: number): number {
  return Math.max(1, Math.floor((budgetMb * 1024 * 1024) / bytesPerSample));
}

/** Whether a single sample can run at all within `limitBytes` (a share of the machine's memory). */
export function fitsMemory(bytesPerSample: number, limitBytes: number): boolean {
  return bytesPerSample <= limitBytes;
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
