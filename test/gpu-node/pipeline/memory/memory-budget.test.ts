import { describe, expect, it } from "vitest";
import {
  SD1_UNET_MEMORY,
  SD1_VAE_MEMORY,
  chunkRanges,
  fitsMemory,
  samplesPerRun,
  unetBytesPerSample,
  unetSamplesPerRun,
  vaeBytesPerSample,
} from "../../../../gpu-node/pipeline/memory/memory-budget.js";

const MB = 1024 * 1024;

describe("memory budget", () => {
  it("charges the attention maps: heads x tokens^2 x 4 bytes, four maps in two layers", () => {
    // 512x512 → 64x64 latent → 4096 tokens; 8 heads x 4096^2 x 4 B = 512 MiB per map.
    const bytes = unetBytesPerSample(64, 64, SD1_UNET_MEMORY);
    expect(bytes).toBeGreaterThan(8 * 512 * MB);
    expect(bytes).toBeLessThan(8 * 512 * MB + 64 * MB);
    // Above what the tiny model was measured to need (2.1 GB at 512x512, 134 MB at 256x256 per sample).
    expect(bytes).toBeGreaterThan(2.1 * 1024 * MB);
    expect(unetBytesPerSample(32, 32, SD1_UNET_MEMORY)).toBeGreaterThan(134 * MB);
    // Quartering the tokens divides the attention part by 16.
    expect(unetBytesPerSample(32, 32, SD1_UNET_MEMORY)).toBeLessThan(bytes / 10);
  });

  it("runs 512x512 one sample at a time under the default 2 GB budget, 64x64 all at once", () => {
    expect(samplesPerRun(unetBytesPerSample(64, 64, SD1_UNET_MEMORY), 2048)).toBe(1);
    expect(samplesPerRun(unetBytesPerSample(8, 8, SD1_UNET_MEMORY), 2048)).toBeGreaterThanOrEqual(20);
    // 1024x1024 needs 64 GB per image by this estimate: refused on a 24 GB machine.
    expect(fitsMemory(unetBytesPerSample(128, 128, SD1_UNET_MEMORY), 18 * 1024 * MB)).toBe(false);
    expect(fitsMemory(unetBytesPerSample(64, 64, SD1_UNET_MEMORY), 18 * 1024 * MB)).toBe(true);
  });

  it("keeps UNet runs small where batching stops paying, within the budget otherwise", () => {
    expect(unetSamplesPerRun(32, 32, SD1_UNET_MEMORY, 2048)).toBe(1); // 256x256: 256 MB of maps per sample
    expect(unetSamplesPerRun(16, 16, SD1_UNET_MEMORY, 2048)).toBe(16);
    expect(unetSamplesPerRun(8, 8, SD1_UNET_MEMORY, 2048)).toBeGreaterThanOrEqual(20);
    expect(unetSamplesPerRun(8, 8, SD1_UNET_MEMORY, 1)).toBe(1);
  });

  it("sizes the VAE by its widest feature map and mid-block attention", () => {
    const sd = vaeBytesPerSample(512, 512, SD1_VAE_MEMORY);
    // 128 channels x 512 x 512 x 4 B = 128 MiB per map, four alive; 4096^2 x 4 B x 4 for attention.
    expect(sd).toBeGreaterThan(4 * 128 * MB + 4 * 64 * MB);
    const tiny = vaeBytesPerSample(512, 512, { blockOutChannels: [8, 8, 16, 16] });
    expect(tiny).toBeLessThan(sd);
    expect(tiny).toBeGreaterThan(271 * MB); // measured on models/tiny-sd
  });

  it("splits a batch into consecutive chunks", () => {
    expect(chunkRanges(5, 2)).toEqual([
      { start: 0, count: 2 },
      { start: 2, count: 2 },
      { start: 4, count: 1 },
    ]);
    expect(chunkRanges(3, 8)).toEqual([{ start: 0, count: 3 }]);
    expect(samplesPerRun(10 * MB * 1024, 1)).toBe(1);
  });
});
