// init_image arrives as a data URL ("data:image/png;base64,..."). We keep the decoded bytes (a quarter smaller
// than the text, and what the GPU tier needs) and check they really are PNG or JPEG before queueing any work.
// Runs anywhere: atob, no Buffer.

export type InitImageType = "png" | "jpeg";

export interface InitImage {
  type: InitImageType;
  bytes: Uint8Array;
}

export type InitImageResult = { ok: true; image: InitImage } | { ok: false; reason: string };

// "image/jpg" is not a registered type, but clients send it; the bytes decide anyway.
const DATA_URL_PREFIX = /^data:image\/(png|jpeg|jpg);base64,/i;
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_SIGNATURE = [0xff, 0xd8, 0xff];

function startsWith(bytes: Uint8Array, signature: readonly number[]): boolean {
  if (bytes.length < signature.length) return false;
  return signature.every((b, i) => bytes[i] === b);
}

function decodeBase64(text: string): Uint8Array | null {
  let binary: string;
  try {
    // atob is the WHATWG "forgiving" decoder: ASCII whitespace and missing padding are accepted, other
    // characters are refused (Python's b64decode would silently drop them).
    binary = atob(text);
  } catch {
    return null;
  }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Upper bound of the decoded size of a base64 text, to refuse oversized images before decoding them. */
function decodedSizeEstimate(text: string): number {
  return Math.floor((text.length * 3) / 4);
}

export function decodeInitImage(dataUrl: string, maxBytes: number): InitImageResult {
  const prefix = DATA_URL_PREFIX.exec(dataUrl);
  if (!prefix) {
    return { ok: false, reason: "init_image must be a data URL starting with data:image/png;base64, or data:image/jpeg;base64," };
  }
  const payload = dataUrl.slice(prefix[0].length);
  // Whitespace may pad the text (line-wrapped base64), so only a clearly oversized payload is refused early.
  if (decodedSizeEstimate(payload) > maxBytes + 4096) {
    return { ok: false, reason: `init_image is larger than ${maxBytes} bytes (api.limits.max_init_image_bytes)` };
  }
  const bytes = decodeBase64(payload);
  if (!bytes) return { ok: false, reason: "init_image is not valid base64" };
  if (bytes.length > maxBytes) {
    return { ok: false, reason: `init_image is ${bytes.length} bytes; the limit is ${maxBytes} bytes (api.limits.max_init_image_bytes)` };
  }
  if (startsWith(bytes, PNG_SIGNATURE)) return { ok: true, image: { type: "png", bytes } };
  if (startsWith(bytes, JPEG_SIGNATURE)) return { ok: true, image: { type: "jpeg", bytes } };
  return { ok: false, reason: "init_image is not a PNG or JPEG image" };
}
