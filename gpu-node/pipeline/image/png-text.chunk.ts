// Adds a text chunk to an encoded PNG (sharp reads PNG text but cannot write it). Like PIL's
// PngInfo.add_text, which A1111 uses: tEXt when the text is Latin-1, else an uncompressed UTF-8 iTXt.
import { crc32 } from "node:zlib";

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function isLatin1(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return false;
  return true;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  const typeAndData = out.subarray(4, 8 + data.length);
  typeAndData.set(Buffer.from(type, "latin1"), 0);
  typeAndData.set(data, 4);
  view.setUint32(8 + data.length, crc32(typeAndData));
  return out;
}

export function textChunk(keyword: string, text: string): Uint8Array {
  if (!/^[\x20-\x7e]{1,79}$/.test(keyword)) throw new Error(`invalid PNG text keyword: ${keyword}`);
  if (isLatin1(text)) {
    return chunk("tEXt", Buffer.concat([Buffer.from(keyword, "latin1"), Buffer.from([0]), Buffer.from(text, "latin1")]));
  }
  // keyword \0 compression-flag compression-method language-tag \0 translated-keyword \0 text
  const header = Buffer.concat([Buffer.from(keyword, "latin1"), Buffer.from([0, 0, 0, 0, 0])]);
  return chunk("iTXt", Buffer.concat([header, Buffer.from(text, "utf8")]));
}

/** Returns the PNG with the chunk inserted right after IHDR (before any image data). */
export function insertPngChunk(png: Uint8Array, extra: Uint8Array): Uint8Array {
  if (png.length < 33 || SIGNATURE.some((b, i) => png[i] !== b)) throw new Error("not a PNG");
  const ihdrLength = new DataView(png.buffer, png.byteOffset, png.byteLength).getUint32(8);
  const afterIhdr = 8 + 12 + ihdrLength;
  const out = new Uint8Array(png.length + extra.length);
  out.set(png.subarray(0, afterIhdr), 0);
  out.set(extra, afterIhdr);
  out.set(png.subarray(afterIhdr), afterIhdr + extra.length);
  return out;
}
