// Reads .safetensors files: an 8-byte little-endian header length, a JSON header
// ({name: {dtype, shape, data_offsets: [begin, end]}, __metadata__: {string: string}}), then the tensor bytes.
// Offsets in the header are relative to the first byte after the header.
import { open, readFile } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { bfloat16ToFloat32, float16ToFloat32 } from "../pipeline/tensor/float16.codec.js";

export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "U16"
  | "U32"
  | "U64"
  | "BOOL"
  | "F8_E4M3"
  | "F8_E5M2";

const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range inside the data section (after the header). */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  /** Used in every error message, so a bad file names itself. */
  label: string;
  metadata: Record<string, string>;
  entries: Map<string, SafetensorsEntry>;
  /** Reads one tensor as float32 (F32, F16, BF16, F64). */
  readFloat32(name: string): Float32Array;
}

export class SafetensorsError extends Error {
  constructor(label: string, problem: string) {
    super(`${label}: ${problem}`);
    this.name = "SafetensorsError";
  }
}

// A header larger than this is not a LoRA file (safetensors itself caps headers at 100 MB).
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/**
 * Parses the header. `head` holds at least the first 8 + header-length bytes; `fileSize` is the whole file's
 * size, against which every tensor's data range is checked.
 */
export function parseSafetensorsHeader(
  head: Uint8Array,
  label: string,
  fileSize: number = head.byteLength,
): { metadata: Record<string, string>; entries: Map<string, SafetensorsEntry>; dataStart: number } {
  const n = headerLength(head, label, fileSize);
  if (8 + n > head.byteLength) throw new SafetensorsError(label, `header length ${n} runs past the bytes read`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(8, 8 + n)));
  } catch (err) {
    throw new SafetensorsError(label, `header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new SafetensorsError(label, "header is not a JSON object");
  }
  const dataStart = 8 + n;
  const dataLength = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const entries = new Map<string, SafetensorsEntry>();
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
        throw new SafetensorsError(label, "__metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") throw new SafetensorsError(label, `__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    entries.set(name, checkEntry(label, name, raw, dataLength));
  }
  return { metadata, entries, dataStart };
}

function headerLength(head: Uint8Array, label: string, fileSize: number): number {
  if (fileSize < 8 || head.byteLength < 8) {
    throw new SafetensorsError(label, `file is ${fileSize} bytes, shorter than the 8-byte header length`);
  }
  const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(label, `header length ${n} is implausible (over ${MAX_HEADER_BYTES} bytes)`);
  if (8n + n > BigInt(fileSize)) {
    throw new SafetensorsError(label, `header length ${n} runs past the end of the file (${fileSize} bytes)`);
  }
  return Number(n);
}

function checkEntry(label: string, name: string, raw: unknown, dataLength: number): SafetensorsEntry {
  if (raw === null || typeof raw !== "object") throw new SafetensorsError(label, `tensor "${name}": entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    throw new SafetensorsError(label, `tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(label, `tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw new SafetensorsError(label, `tensor "${name}": data_offsets ${JSON.stringify(offsets)} are not [begin, end]`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataLength) {
    throw new SafetensorsError(label, `tensor "${name}": data [${begin}, ${end}) runs past the end of the data (${dataLength} bytes; file truncated?)`);
  }
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const expected = elements * DTYPE_BYTES[dtype as SafetensorsDtype];
  if (end - begin !== expected) {
    throw new SafetensorsError(label, `tensor "${name}": ${end - begin} bytes of data for ${dtype} shape [${(shape as number[]).join(", ")}] (expected ${expected})`);
  }
  return { name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin, end };
}

/** Parses a whole file held in memory. */
export function parseSafetensors(bytes: Uint8Array, label: string): SafetensorsFile {
  const { metadata, entries, dataStart } = parseSafetensorsHeader(bytes, label);
  return {
    label,
    metadata,
    entries,
    readFloat32(name) {
      const entry = entries.get(name);
      if (!entry) throw new SafetensorsError(label, `no tensor named "${name}"`);
      const data = bytes.subarray(dataStart + entry.begin, dataStart + entry.end);
      return toFloat32(data, entry, label);
    },
  };
}

export async function readSafetensorsFile(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new SafetensorsError(path, `cannot read (${(err as Error).message})`);
  }
  return parseSafetensors(bytes, path);
}

/** Reads just the header from disk (lists an adapter's keys without loading its tensors). */
export async function readSafetensorsHeader(
  path: string,
): Promise<{ metadata: Record<string, string>; entries: Map<string, SafetensorsEntry> }> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (err) {
    throw new SafetensorsError(path, `cannot read (${(err as Error).message})`);
  }
  try {
    const { size } = await handle.stat();
    const first = new Uint8Array(Math.min(size, 8));
    await handle.read(first, 0, first.byteLength, 0);
    const n = headerLength(first, path, size);
    const head = new Uint8Array(8 + n);
    await handle.read(head, 0, head.byteLength, 0);
    const { metadata, entries } = parseSafetensorsHeader(head, path, size);
    return { metadata, entries };
  } finally {
    await handle.close();
  }
}

/** Copies little-endian bytes into an aligned typed array (tensor data in a file need not be aligned). */
function aligned(bytes: Uint8Array): ArrayBuffer {
  // Not bytes.slice(): on a Node Buffer that is a view, and .buffer would be the whole pool.
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy.buffer;
}

function toFloat32(bytes: Uint8Array, entry: SafetensorsEntry, label: string): Float32Array {
  switch (entry.dtype) {
    case "F32":
      return new Float32Array(aligned(bytes));
    case "F16":
      return float16ToFloat32(new Uint16Array(aligned(bytes)));
    case "BF16":
      return bfloat16ToFloat32(new Uint16Array(aligned(bytes)));
    case "F64":
      return Float32Array.from(new Float64Array(aligned(bytes)));
    default:
      throw new SafetensorsError(label, `tensor "${entry.name}": dtype ${entry.dtype} is not a float type (F32, F16, BF16 or F64 expected)`);
  }
}
