// The only file that touches sharp: decoding init images, diffusers' VaeImageProcessor resize, PNG/JPEG output.
import sharp from "sharp";
import { DomainError } from "../../../shared/errors/error-codes.js";
import { insertPngChunk, textChunk } from "./png-text.chunk.js";

export interface RgbImage {
  /** Interleaved 8-bit RGB, row-major (HWC). */
  data: Uint8Array;
  width: number;
  height: number;
}

const ACCEPTED_FORMATS = new Set(["png", "jpeg"]);

/**
 * Decodes a PNG/JPEG init image to RGB and resizes it as diffusers' VaeImageProcessor.preprocess does by
 * default: both sides rounded down to a multiple of `multiple`, Lanczos resampling (PIL's LANCZOS; libvips'
 * lanczos3 widens the kernel on downscale the same way). Alpha is dropped, as PIL's convert("RGB") does.
 */
export async function decodeInitImage(bytes: Uint8Array, multiple: number): Promise<RgbImage> {
  let format: string | undefined;
  let width = 0;
  let height = 0;
  try {
    const meta = await sharp(bytes).metadata();
    format = meta.format;
    width = meta.width ?? 0;
    height = meta.height ?? 0;
  } catch (err) {
    throw new DomainError("invalid_argument", "init_image is not a decodable PNG or JPEG image", { cause: err });
  }
  if (!format || !ACCEPTED_FORMATS.has(format)) {
    throw new DomainError("invalid_argument", `init_image must be a PNG or JPEG image (got ${format ?? "unknown"})`);
  }
  const targetWidth = width - (width % multiple);
  const targetHeight = height - (height % multiple);
  if (targetWidth <= 0 || targetHeight <= 0) {
    throw new DomainError(
      "invalid_argument",
      `init_image is ${width}x${height}; both sides must be at least ${multiple} pixels`,
    );
  }
  try {
    let pipeline = sharp(bytes).removeAlpha().toColourspace("srgb");
    if (targetWidth !== width || targetHeight !== height) {
      pipeline = pipeline.resize(targetWidth, targetHeight, { fit: "fill", kernel: "lanczos3" });
    }
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
  } catch (err) {
    throw new DomainError("invalid_argument", `init_image could not be decoded: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

export async function encodePng(image: RgbImage, parameters: string | null): Promise<Uint8Array> {
  const png = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .png()
    .toBuffer();
  // A fresh, exactly sized copy: the bytes are transferred out of the worker, which detaches their buffer.
  return parameters === null ? new Uint8Array(png) : insertPngChunk(png, textChunk("parameters", parameters));
}

export async function encodeJpeg(image: RgbImage, quality: number): Promise<Uint8Array> {
  const jpeg = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .jpeg({ quality })
    .toBuffer();
  return new Uint8Array(jpeg);
}

/** For tests and tooling: decodes any image sharp reads into RGB plus its PNG text chunks. */
export async function readImage(bytes: Uint8Array): Promise<RgbImage & { format: string; comments: Record<string, string> }> {
  const image = sharp(bytes);
  const meta = await image.metadata();
  const { data, info } = await image.removeAlpha().toColourspace("srgb").raw().toBuffer({ resolveWithObject: true });
  const comments: Record<string, string> = {};
  for (const c of meta.comments ?? []) comments[c.keyword] = c.text;
  return {
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    width: info.width,
    height: info.height,
    format: meta.format ?? "unknown",
    comments,
  };
}
