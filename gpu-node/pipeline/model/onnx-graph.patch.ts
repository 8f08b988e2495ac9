// What the model loader reads from and adds to an ONNX graph (the protobuf wire format is lora/onnx-graph.ts's):
// node lists, external data files, and the VAE posterior's mean and std inside an encoder that samples on its own.
//
// Why: diffusers' export script traces `vae.encode(x).latent_dist.sample()`, which bakes a RandomNormalLike node
// into the graph. onnxruntime seeds it from the clock, so the encoder's output differs on every run and can
// never equal diffusers' `latent_dist.sample(generator)`. We expose the two tensors feeding that sample
// (mean, std) as extra graph outputs and draw eps from the request's torch generator ourselves.
//
// Protobuf merges repeated occurrences of an embedded message field, so appending a second `graph` field that
// holds only extra `output` entries adds those outputs without re-encoding the (possibly large) model.
import { parseOnnxModel, WireWriter, type OnnxNode } from "../../lora/onnx-graph.js";

const MODEL_GRAPH = 7; // ModelProto.graph
const GRAPH_OUTPUT = 12; // GraphProto.output
const VALUE_INFO_NAME = 1; // ValueInfoProto.name

export type GraphNode = Pick<OnnxNode, "opType" | "inputs" | "outputs">;

/** The graph's nodes in file order. */
export function readGraphNodes(model: Uint8Array, label = "model.onnx"): GraphNode[] {
  return parseOnnxModel(model, label).nodes;
}

/** Files named by initializers stored as external data (`location` entries), relative to the model's folder. */
export function readExternalDataLocations(model: Uint8Array, label = "model.onnx"): string[] {
  const locations = new Set<string>();
  for (const { data } of parseOnnxModel(model, label).initializers.values()) {
    if (data.kind === "external") locations.add(data.location);
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

/** Returns a copy of the model with extra graph outputs (tensor names already produced by nodes). */
export function appendGraphOutputs(model: Uint8Array, names: readonly string[]): Uint8Array {
  const graph = new WireWriter();
  for (const name of names) graph.message(GRAPH_OUTPUT, new WireWriter().string(VALUE_INFO_NAME, name));
  return new WireWriter().raw(model).message(MODEL_GRAPH, graph).finish().bytes;
}
