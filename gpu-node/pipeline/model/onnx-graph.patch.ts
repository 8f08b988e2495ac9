// A minimal reader/writer for the few parts of an ONNX ModelProto we need, so the pipeline can reach the VAE
// posterior's mean and std inside an encoder that samples on its own.
//
// Why: diffusers' export script traces `vae.encode(x).latent_dist.sample()`, which bakes a RandomNormalLike node
// into the graph. onnxruntime seeds it from the clock, so the encoder's output differs on every run and can
// never equal diffusers' `latent_dist.sample(generator)`. We expose the two tensors feeding that sample
// (mean, std) as extra graph outputs and draw eps from the request's torch generator ourselves.
//
// Protobuf merges repeated occurrences of an embedded message field, so appending a second `graph` field that
// holds only extra `output` entries adds those outputs without re-encoding the (possibly large) model.

const MODEL_GRAPH = 7; // ModelProto.graph
const GRAPH_NODE = 1; // GraphProto.node
const GRAPH_OUTPUT = 12; // GraphProto.output
const NODE_INPUT = 1;
const NODE_OUTPUT = 2;
const NODE_OP_TYPE = 4;
const VALUE_INFO_NAME = 1;
const GRAPH_INITIALIZER = 5; // GraphProto.initializer (TensorProto)
const TENSOR_EXTERNAL_DATA = 13; // TensorProto.external_data (StringStringEntryProto)

export interface GraphNode {
  opType: string;
  inputs: string[];
  outputs: string[];
}

interface Field {
  field: number;
  wire: number;
  start: number;
  end: number;
}

function readVarint(buf: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (pos >= buf.length) throw new Error("truncated protobuf varint");
    const byte = buf[pos++];
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) return [value, pos];
  }
}

function* readFields(buf: Uint8Array, start: number, end: number): Generator<Field> {
  let pos = start;
  while (pos < end) {
    const [key, afterKey] = readVarint(buf, pos);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    pos = afterKey;
    if (wire === 0) {
      const [, next] = readVarint(buf, pos);
      yield { field, wire, start: pos, end: next };
      pos = next;
    } else if (wire === 2) {
      const [length, next] = readVarint(buf, pos);
      if (next + length > end) throw new Error("truncated protobuf field");
      yield { field, wire, start: next, end: next + length };
      pos = next + length;
    } else if (wire === 1) {
      yield { field, wire, start: pos, end: pos + 8 };
      pos += 8;
    } else if (wire === 5) {
      yield { field, wire, start: pos, end: pos + 4 };
      pos += 4;
    } else {
      throw new Error(`unsupported protobuf wire type ${wire}`);
    }
  }
  if (pos !== end) throw new Error("protobuf field overruns its message");
}

const utf8 = new TextDecoder();

/** The graph's nodes in file order (initializers and attributes are skipped, not decoded). */
export function readGraphNodes(model: Uint8Array): GraphNode[] {
  const nodes: GraphNode[] = [];
  for (const top of readFields(model, 0, model.length)) {
    if (top.field !== MODEL_GRAPH || top.wire !== 2) continue;
    for (const entry of readFields(model, top.start, top.end)) {
      if (entry.field !== GRAPH_NODE || entry.wire !== 2) continue;
      const node: GraphNode = { opType: "", inputs: [], outputs: [] };
      for (const f of readFields(model, entry.start, entry.end)) {
        if (f.wire !== 2) continue;
        const text = () => utf8.decode(model.subarray(f.start, f.end));
        if (f.field === NODE_INPUT) node.inputs.push(text());
        else if (f.field === NODE_OUTPUT) node.outputs.push(text());
        else if (f.field === NODE_OP_TYPE) node.opType = text();
      }
      nodes.push(node);
    }
  }
  return nodes;
}

/** Files named by initializers stored as external data (`location` entries), relative to the model's folder. */
export function readExternalDataLocations(model: Uint8Array): string[] {
  const locations = new Set<string>();
  for (const top of readFields(model, 0, model.length)) {
    if (top.field !== MODEL_GRAPH || top.wire !== 2) continue;
    for (const entry of readFields(model, top.start, top.end)) {
      if (entry.field !== GRAPH_INITIALIZER || entry.wire !== 2) continue;
      for (const f of readFields(model, entry.start, entry.end)) {
        if (f.field !== TENSOR_EXTERNAL_DATA || f.wire !== 2) continue;
        let key = "";
        let value = "";
        for (const kv of readFields(model, f.start, f.end)) {
          if (kv.wire !== 2) continue;
          if (kv.field === 1) key = utf8.decode(model.subarray(kv.start, kv.end));
          else if (kv.field === 2) value = utf8.decode(model.subarray(kv.start, kv.end));
        }
        if (key === "location") locations.add(value);
      }
    }
  }
  return [...locations];
}

/**
 * Finds `sample = mean + std * eps` with eps from a RandomNormal(Like) node (possibly through Casts).
 * Returns the names of the mean and std tensors, or null when the graph does not sample that way.
 */
export function findPosteriorSample(nodes: readonly GraphNode[]): { mean: string; std: string } | null {
  const consumers = new Map<string, GraphNode[]>();
  for (const node of nodes) {
    for (const input of node.inputs) {
      const list = consumers.get(input) ?? [];
      list.push(node);
      consumers.set(input, list);
    }
  }
  const random = nodes.filter((n) => n.opType === "RandomNormalLike" || n.opType === "RandomNormal");
  if (random.length !== 1) return null;
  let eps = random[0].outputs[0];
  for (;;) {
    const next = consumers.get(eps) ?? [];
    if (next.length !== 1) return null;
    const node = next[0];
    if (node.opType === "Cast") {
      eps = node.outputs[0];
      continue;
    }
    if (node.opType !== "Mul" || node.inputs.length !== 2) return null;
    const std = node.inputs[0] === eps ? node.inputs[1] : node.inputs[0];
    const scaled = node.outputs[0];
    const adds = consumers.get(scaled) ?? [];
    if (adds.length !== 1 || adds[0].opType !== "Add" || adds[0].inputs.length !== 2) return null;
    const mean = adds[0].inputs[0] === scaled ? adds[0].inputs[1] : adds[0].inputs[0];
    return { mean, std };
  }
}

function encodeVarint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) byte |= 0x80;
    out.push(byte);
  } while (v > 0);
  return out;
}

function lengthDelimited(field: number, payload: readonly number[]): number[] {
  return [...encodeVarint(field * 8 + 2), ...encodeVarint(payload.length), ...payload];
}

/** Returns a copy of the model with extra graph outputs (tensor names already produced by nodes). */
export function appendGraphOutputs(model: Uint8Array, names: readonly string[]): Uint8Array {
  const encoder = new TextEncoder();
  const outputs = names.flatMap((name) =>
    lengthDelimited(GRAPH_OUTPUT, lengthDelimited(VALUE_INFO_NAME, [...encoder.encode(name)])),
  );
  const extra = Uint8Array.from(lengthDelimited(MODEL_GRAPH, outputs));
  const out = new Uint8Array(model.length + extra.length);
  out.set(model, 0);
  out.set(extra, model.length);
  return out;
}
