import sharp from "sharp";
import { describe, expect, it } from "vitest";
import type { DomainError } from "../../../../shared/errors/error-codes.js";
import {
  decodeInitImage,
  encodeJpeg,
  encodePng,
  readImage,
  type RgbImage,
} from "../../../../gpu-node/pipeline/image/image.codec.js";
import { domainError } from "../../../helpers/domain-error.js";

function gradient(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = (x * 255) / Math.max(1, width - 1);
      data[i + 1] = (y * 255) / Math.max(1, height - 1);
      data[i + 2] = (x * y) % 256;
    }
  }
  return { data, width, height };
}

async function invalid(promise: Promise<unknown>): Promise<DomainError> {
  const err = await domainError(promise);
  expect(err.code).toBe("invalid_argument");
  return err;
}

describe("decodeInitImage", () => {
  it("keeps an image whose sides are multiples of 8 pixel for pixel", async () => {
    const source = gradient(64, 48);
    const decoded = await decodeInitImage(await encodePng(source, null), 8);
    expect([decoded.width, decoded.height]).toEqual([64, 48]);
    expect(Buffer.from(decoded.data).equals(Buffer.from(source.data))).toBe(true);
  });

  it("resizes to the sides rounded down to multiples of 8, as diffusers' VaeImageProcessor", async () => {
    const decoded = await decodeInitImage(await encodePng(gradient(67, 45), null), 8);
    expect([decoded.width, decoded.height]).toEqual([64, 40]);
    expect(decoded.data.length).toBe(64 * 40 * 3);
    // A resize, not a crop: the right edge still holds the source's last column (red = 255).
    expect(decoded.data[(0 * 64 + 63) * 3]).toBeGreaterThan(245);
  });

  it("decodes JPEG and drops alpha", async () => {
    const jpeg = await decodeInitImage(await encodeJpeg(gradient(32, 16), 90), 8);
    expect([jpeg.width, jpeg.height, jpeg.data.length]).toEqual([32, 16, 32 * 16 * 3]);
    const rgba = await sharp(Buffer.alloc(16 * 16 * 4, 200), { raw: { width: 16, height: 16, channels: 4 } })
      .png()
      .toBuffer();
    const decoded = await decodeInitImage(rgba, 8);
    expect(decoded.data.length).toBe(16 * 16 * 3);
  });

  it("converts greyscale to RGB", async () => {
    const grey = await sharp(Buffer.alloc(16 * 8, 77), { raw: { width: 16, height: 8, channels: 1 } })
      .png()
      .toBuffer();
    const decoded = await decodeInitImage(grey, 8);
    expect(decoded.data.length).toBe(16 * 8 * 3);
    expect(decoded.data[0]).toBe(77);
  });

  it("refuses undecodable bytes, other formats and images under 8 pixels", async () => {
    expect((await invalid(decodeInitImage(new TextEncoder().encode("not an image"), 8))).message).toMatch(
      /not a decodable PNG or JPEG/,
    );
    const webp = await sharp(Buffer.alloc(16 * 16 * 3), { raw: { width: 16, height: 16, channels: 3 } })
      .webp()
      .toBuffer();
    expect((await invalid(decodeInitImage(webp, 8))).message).toMatch(/must be a PNG or JPEG image \(got webp\)/);
    expect((await invalid(decodeInitImage(await encodePng(gradient(7, 20), null), 8))).message).toMatch(/7x20/);
    const png = await encodePng(gradient(16, 16), null);
    await invalid(decodeInitImage(png.subarray(0, 60), 8));
  });
});

describe("encodePng / encodeJpeg", () => {
  it("writes the A1111 parameters text chunk, Latin-1 and Unicode", async () => {
    for (const text of ["a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a", "一只猫 café\nSteps: 5"]) {
      const png = await encodePng(gradient(16, 8), text);
      const read = await readImage(png);
      expect(read.format).toBe("png");
      expect([read.width, read.height]).toEqual([16, 8]);
      expect(read.comments.parameters).toBe(text);
      expect(Buffer.from(read.data).equals(Buffer.from(gradient(16, 8).data))).toBe(true);
    }
  });

  it("encodes JPEG that decodes to the same size", async () => {
    const jpeg = await encodeJpeg(gradient(24, 16), 95);
    expect([jpeg[0], jpeg[1]]).toEqual([0xff, 0xd8]);
    const read = await readImage(jpeg);
    expect([read.format, read.width, read.height]).toEqual(["jpeg", 24, 16]);
  });
});
