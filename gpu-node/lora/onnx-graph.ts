// A minimal protobuf wire-format reader and writer for ONNX ModelProto: just the graph's nodes and
// initializers, enough to find weights and swap some of them for patched copies. Field numbers are the ones in
// onnx/onnx.proto (ModelProto.graph = 7; GraphProto.node = 1, initializer = 5; NodeProto.input = 1, output = 2,
// name = 3, op_type = 4, attribute = 5; AttributeProto.name = 1, i = 3, ints = 8; TensorProto.dims = 1,
// data_type = 2, float_data = 4, name = 8, raw_data = 9, external_data = 13, data_location = 14;
// StringStringEntryProto.key = 1, value = 2).
// Unknown fields are carried over byte for byte, so a rewritten model differs only where a tensor was replaced.

export const OnnxDataType = { FLOAT: 1, FLOAT16: 10, DOUBLE: 11, BFLOAT16: 16 } as const;

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;
const NODE_INPUT = 1;
const NODE_OUTPUT = 2;
const NODE_NAME = 3;
const NODE_OP_TYPE = 4;
const NODE_ATTRIBUTE = 5;
const ATTR_NAME = 1;
const ATTR_I = 3;
const ATTR_INTS = 8;
const TENSOR_DIMS = 1;
const TENSOR_DATA_TYPE = 2;
const TENSOR_FLOAT_DATA = 4;
const TENSOR_NAME = 8;
const TENSOR_RAW_DATA = 9;
const TENSOR_EXTERNAL_DATA = 13;
const TENSOR_DATA_LOCATION = 14;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;
const DATA_LOCATION_EXTERNAL = 1;

export class OnnxFormatError extends Error {
  constructor(label: string, problem: string) {
    super(`${label}: ${problem}`);
    this.name = "OnnxFormatError";
  }
}

/** One field of a message: where it sits (tag included) and where its value sits. */
interface WireField {
  field: number;
  wire: number;
  start: number;
  valueStart: number;
  end: number;
  /** Varint value (wire type 0); lengths and fixed values are read from the bytes when needed. */
  varint: number;
}

export interface OnnxNode {
  name: string;
  opType: string;
  inputs: string[];
  outputs: string[];
  /** Integer and integer-list attributes (transB, perm, group, …); others are not needed here. */
  ints: Map<string, number | number[]>;
}

export type TensorData =
  | { kind: "raw"; start: number; end: number }
  /** Packed float_data: little-endian float32 values, like raw_data of a FLOAT tensor. */
  | { kind: "float_data"; start: number; end: number }
  | { kind: "external"; location: string; offset: number; length: number | null }
  | { kind: "none" }
  | { kind: "unsupported"; reason: string };

export interface OnnxInitializer {
  name: string;
  dims: number[];
  dataType: number;
  data: TensorData;
  /** The TensorProto field inside the graph message (absolute byte range in the model). */
  start: number;
  end: number;
}

export interface OnnxModel {
  label: string;
  bytes: Uint8Array;
  nodes: OnnxNode[];
  initializers: Map<string, OnnxInitializer>;
  /** The graph field inside ModelProto. */
  graph: { start: number; valueStart: number; end: number };
}

const utf8 = new TextDecoder("utf-8");

class WireReader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    readonly label: string,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  varint(): number {
    const start = this.pos;
    let result = 0;
    let scale = 1;
    // Up to 7 bytes (49 bits) fits a double exactly; longer ones (negative int64s) take the BigInt path.
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) throw new OnnxFormatError(this.label, `truncated varint at byte ${this.pos}`);
      const b = this.bytes[this.pos++];
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    this.pos = start;
    let big = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new OnnxFormatError(this.label, `truncated varint at byte ${this.pos}`);
      const b = this.bytes[this.pos++];
      big |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) {
        const signed = BigInt.asIntN(64, big);
        if (signed > BigInt(Number.MAX_SAFE_INTEGER) || signed < BigInt(Number.MIN_SAFE_INTEGER)) {
          throw new OnnxFormatError(this.label, `varint out of range at byte ${start}`);
        }
        return Number(signed);
      }
    }
    throw new OnnxFormatError(this.label, `malformed varint at byte ${start}`);
  }

  next(): WireField | null {
    if (this.pos >= this.end) return null;
    const start = this.pos;
    const tag = this.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    let varint = 0;
    let valueStart = this.pos;
    switch (wire) {
      case WIRE_VARINT:
        varint = this.varint();
        break;
      case WIRE_FIXED64:
        this.pos += 8;
        break;
      case WIRE_FIXED32:
        this.pos += 4;
        break;
      case WIRE_LEN: {
        const length = this.varint();
        valueStart = this.pos;
        this.pos += length;
        break;
      }
      default:
        throw new OnnxFormatError(this.label, `unsupported wire type ${wire} (field ${field}) at byte ${start}`);
    }
    if (this.pos > this.end) throw new OnnxFormatError(this.label, `field ${field} at byte ${start} runs past its message (truncated file?)`);
    return { field, wire, start, valueStart, end: this.pos, varint };
  }
}

function fields(bytes: Uint8Array, label: string, start: number, end: number): WireField[] {
  const reader = new WireReader(bytes, label, start, end);
  const out: WireField[] = [];
  for (let f = reader.next(); f; f = reader.next()) out.push(f);
  return out;
}

function str(bytes: Uint8Array, f: WireField): string {
  return utf8.decode(bytes.subarray(f.valueStart, f.end));
}

/** Repeated int64: packed (one length-delimited field) or not (one varint field per element). */
function pushInts(bytes: Uint8Array, label: string, f: WireField, into: number[]): void {
  if (f.wire === WIRE_VARINT) {
    into.push(f.varint);
    return;
  }
  const reader = new WireReader(bytes, label, f.valueStart, f.end);
  while (reader.pos < f.end) into.push(reader.varint());
}

function parseNode(bytes: Uint8Array, label: string, start: number, end: number): OnnxNode {
  const node: OnnxNode = { name: "", opType: "", inputs: [], outputs: [], ints: new Map() };
  for (const f of fields(bytes, label, start, end)) {
    if (f.field === NODE_INPUT) node.inputs.push(str(bytes, f));
    else if (f.field === NODE_OUTPUT) node.outputs.push(str(bytes, f));
    else if (f.field === NODE_NAME) node.name = str(bytes, f);
    else if (f.field === NODE_OP_TYPE) node.opType = str(bytes, f);
    else if (f.field === NODE_ATTRIBUTE && f.wire === WIRE_LEN) {
      let name = "";
      let single: number | null = null;
      const list: number[] = [];
      for (const a of fields(bytes, label, f.valueStart, f.end)) {
        if (a.field === ATTR_NAME) name = str(bytes, a);
        else if (a.field === ATTR_I && a.wire === WIRE_VARINT) single = a.varint;
        else if (a.field === ATTR_INTS) pushInts(bytes, label, a, list);
      }
      if (single !== null) node.ints.set(name, single);
      else if (list.length > 0) node.ints.set(name, list);
    }
  }
  return node;
}

function parseTensor(bytes: Uint8Array, label: string, start: number, end: number): Omit<OnnxInitializer, "start" | "end"> {
  const dims: number[] = [];
  let name = "";
  let dataType = 0;
  let raw: WireField | null = null;
  let floats: WireField | null = null;
  let unpackedFloats = false;
  let external = false;
  const entries = new Map<string, string>();
  for (const f of fields(bytes, label, start, end)) {
    switch (f.field) {
      case TENSOR_DIMS:
        pushInts(bytes, label, f, dims);
        break;
      case TENSOR_DATA_TYPE:
        dataType = f.varint;
        break;
      case TENSOR_NAME:
        name = str(bytes, f);
        break;
      case TENSOR_RAW_DATA:
        raw = f;
        break;
      case TENSOR_FLOAT_DATA:
        // Writers emit packed float_data (proto3's default); one field per value is legal but never seen.
        if (f.wire === WIRE_LEN) floats = f;
        else unpackedFloats = true;
        break;
      case TENSOR_EXTERNAL_DATA: {
        let key = "";
        let value = "";
        for (const e of fields(bytes, label, f.valueStart, f.end)) {
          if (e.field === ENTRY_KEY) key = str(bytes, e);
          else if (e.field === ENTRY_VALUE) value = str(bytes, e);
        }
        entries.set(key, value);
        break;
      }
      case TENSOR_DATA_LOCATION:
        external = f.varint === DATA_LOCATION_EXTERNAL;
        break;
    }
  }
  let data: TensorData = { kind: "none" };
  if (external) {
    const location = entries.get("location");
    if (!location) throw new OnnxFormatError(label, `initializer "${name}" is external but names no location`);
    const offset = Number(entries.get("offset") ?? "0");
    const lengthText = entries.get("length");
    const length = lengthText === undefined ? null : Number(lengthText);
    if (!Number.isSafeInteger(offset) || offset < 0 || (length !== null && (!Number.isSafeInteger(length) || length < 0))) {
      throw new OnnxFormatError(label, `initializer "${name}" has a bad external offset/length`);
    }
    data = { kind: "external", location, offset, length };
  } else if (raw) {
    data = { kind: "raw", start: raw.valueStart, end: raw.end };
  } else if (floats) {
    data = { kind: "float_data", start: floats.valueStart, end: floats.end };
  } else if (unpackedFloats) {
    data = { kind: "unsupported", reason: "unpacked float_data" };
  }
  return { name, dims, dataType, data };
}

/** Parses the nodes and initializers of an ONNX model (top-level graph only; weights live there). */
export function parseOnnxModel(bytes: Uint8Array, label: string): OnnxModel {
  const graphField = fields(bytes, label, 0, bytes.byteLength).find((f) => f.field === MODEL_GRAPH && f.wire === WIRE_LEN);
  if (!graphField) throw new OnnxFormatError(label, "no graph in the model (not an ONNX ModelProto?)");
  const nodes: OnnxNode[] = [];
  const initializers = new Map<string, OnnxInitializer>();
  for (const f of fields(bytes, label, graphField.valueStart, graphField.end)) {
    if (f.wire !== WIRE_LEN) continue;
    if (f.field === GRAPH_NODE) nodes.push(parseNode(bytes, label, f.valueStart, f.end));
    else if (f.field === GRAPH_INITIALIZER) {
      const tensor = parseTensor(bytes, label, f.valueStart, f.end);
      initializers.set(tensor.name, { ...tensor, start: f.start, end: f.end });
    }
  }
  return { label, bytes, nodes, initializers, graph: { start: graphField.start, valueStart: graphField.valueStart, end: graphField.end } };
}

// ---- writer ----

type Chunk = Uint8Array | { slot: string; length: number };

/** Builds a message as a list of chunks; slots are regions filled in after the final buffer exists. */
export class WireWriter {
  private chunks: Chunk[] = [];
  length = 0;

  raw(bytes: Uint8Array): this {
    this.chunks.push(bytes);
    this.length += bytes.byteLength;
    return this;
  }

  /** Reserves `length` bytes, named `slot`, to be written in place after finish() (no intermediate copy). */
  slot(slot: string, length: number): this {
    this.chunks.push({ slot, length });
    this.length += length;
    return this;
  }

  varint(value: number): this {
    const out: number[] = [];
    let v = value;
    while (v >= 0x80) {
      out.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(v);
    return this.raw(Uint8Array.from(out));
  }

  tag(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  /** A non-negative varint field. */
  int(field: number, value: number): this {
    return this.tag(field, WIRE_VARINT).varint(value);
  }

  string(field: number, value: string): this {
    const encoded = new TextEncoder().encode(value);
    return this.tag(field, WIRE_LEN).varint(encoded.byteLength).raw(encoded);
  }

  message(field: number, body: WireWriter): this {
    this.tag(field, WIRE_LEN).varint(body.length);
    for (const c of body.chunks) this.chunks.push(c);
    this.length += body.length;
    return this;
  }

  finish(): { bytes: Uint8Array; slots: Map<string, Uint8Array> } {
    const bytes = new Uint8Array(this.length);
    const slots = new Map<string, Uint8Array>();
    let pos = 0;
    for (const c of this.chunks) {
      if (c instanceof Uint8Array) {
        bytes.set(c, pos);
        pos += c.byteLength;
      } else {
        slots.set(c.slot, bytes.subarray(pos, pos + c.length));
        pos += c.length;
      }
    }
    return { bytes, slots };
  }
}

/** A TensorProto whose data lives in an external file (by ONNX's `location`/`offset`/`length` convention). */
export function encodeExternalTensor(t: { name: string; dims: number[]; dataType: number; location: string; offset: number; length: number }): WireWriter {
  const w = new WireWriter();
  for (const d of t.dims) w.tag(TENSOR_DIMS, WIRE_VARINT).varint(d);
  w.tag(TENSOR_DATA_TYPE, WIRE_VARINT).varint(t.dataType);
  w.string(TENSOR_NAME, t.name);
  const entry = (key: string, value: string) => new WireWriter().string(ENTRY_KEY, key).string(ENTRY_VALUE, value);
  w.message(TENSOR_EXTERNAL_DATA, entry("location", t.location));
  w.message(TENSOR_EXTERNAL_DATA, entry("offset", String(t.offset)));
  w.message(TENSOR_EXTERNAL_DATA, entry("length", String(t.length)));
  w.tag(TENSOR_DATA_LOCATION, WIRE_VARINT).varint(DATA_LOCATION_EXTERNAL);
  return w;
}

/**
 * A TensorProto with its data inline as raw_data, left as a slot named after the tensor: the caller writes the
 * data straight into the final model bytes.
 */
export function encodeRawTensorSlot(t: { name: string; dims: number[]; dataType: number; byteLength: number }): WireWriter {
  const w = new WireWriter();
  for (const d of t.dims) w.tag(TENSOR_DIMS, WIRE_VARINT).varint(d);
  w.tag(TENSOR_DATA_TYPE, WIRE_VARINT).varint(t.dataType);
  w.string(TENSOR_NAME, t.name);
  w.tag(TENSOR_RAW_DATA, WIRE_LEN).varint(t.byteLength).slot(t.name, t.byteLength);
  return w;
}

/**
 * A copy of the model where the named initializers are replaced by new TensorProtos. Everything else is copied
 * byte for byte (only the graph's length prefix changes). Returns the slots the replacements reserved.
 */
export function rewriteInitializers(model: OnnxModel, replacements: Map<string, WireWriter>): { bytes: Uint8Array; slots: Map<string, Uint8Array> } {
  const { bytes } = model;
  for (const name of replacements.keys()) {
    if (!model.initializers.has(name)) throw new OnnxFormatError(model.label, `no initializer "${name}" to replace`);
  }
  const byStart = new Map<number, WireWriter>();
  for (const [name, w] of replacements) byStart.set(model.initializers.get(name)!.start, w);

  const graph = new WireWriter();
  for (const f of fields(bytes, model.label, model.graph.valueStart, model.graph.end)) {
    const replacement = f.field === GRAPH_INITIALIZER ? byStart.get(f.start) : undefined;
    if (replacement) graph.message(GRAPH_INITIALIZER, replacement);
    else graph.raw(bytes.subarray(f.start, f.end));
  }
  const out = new WireWriter();
  out.raw(bytes.subarray(0, model.graph.start));
  out.message(MODEL_GRAPH, graph);
  out.raw(bytes.subarray(model.graph.end));
  return out.finish();
}
