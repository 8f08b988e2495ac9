// Maps kohya module names to the ONNX initializers they modify.
//
// torch.onnx names nodes after the module path (`/down_blocks.0/attentions.0/transformer_blocks.0/attn1/to_q/MatMul`),
// but not always the full one: the tiny model's CLIP export says `/text_model/layers.0/self_attn/q_proj/MatMul`
// while the module (and kohya's key) is text_model.encoder.layers.0.self_attn.q_proj. So each weight node gets
// several candidate names: its scope, the name of a `<module>.weight` initializer it reads, and the name of any
// `<module>.bias` / `<module>.weight` initializer read by a node in the same scope (the bias Add beside a MatMul).
// The weight itself is found by following the node's input, never guessed from initializer names
// (exporters call MatMul weights `onnx::MatMul_1234`).
import type { OnnxInitializer, OnnxModel, OnnxNode } from "./onnx-graph.js";

/** How the initializer stores W (torch's [out, in, kh, kw]). */
export type WeightLayout =
  /** Conv: [out, in, kh, kw] as torch. */
  | "conv"
  /** Gemm with transB = 1, or MatMul fed through Transpose(perm [1, 0]): [out, in]. */
  | "out_in"
  /** MatMul, Gemm with transB = 0: [in, out]. */
  | "in_out";

export interface ModuleTarget {
  /** Candidate names this target answered to (normalized: "." and "/" → "_"). */
  names: string[];
  nodeName: string;
  opType: string;
  initializer: OnnxInitializer;
  layout: WeightLayout;
  out: number;
  in: number;
  kh: number;
  kw: number;
  /** Weight nodes reading this initializer; a delta for a shared one would leak into the others. */
  sharedBy: number;
}

export interface ModuleMap {
  /** Normalized module name → target. */
  targets: Map<string, ModuleTarget>;
  /** Names that more than one initializer answered to: not applied, reported instead. */
  ambiguous: Set<string>;
}

/** "down_blocks.0/attentions.0" → "down_blocks_0_attentions_0". */
export function normalizeModuleName(path: string): string {
  return path
    .split(/[./]/)
    .filter((s) => s.length > 0)
    .join("_");
}

function scopeOf(nodeName: string): string | null {
  const cut = nodeName.lastIndexOf("/");
  if (cut <= 0) return null;
  return nodeName.slice(0, cut);
}

function moduleOfParam(name: string): string | null {
  const m = /^(.+)\.(weight|bias)$/.exec(name);
  return m && !name.startsWith("onnx::") && !name.startsWith("/") ? m[1] : null;
}

function lastSegment(path: string): string {
  const parts = path.split(/[./]/).filter((s) => s.length > 0);
  return parts.slice(-1)[0] ?? "";
}

/** Follows Identity nodes back to an initializer (exporters dedupe equal constants through Identity). */
function resolveValue(name: string, model: OnnxModel, producers: Map<string, OnnxNode>): { init: OnnxInitializer | null; via: OnnxNode | null } {
  let current = name;
  for (let hops = 0; hops < 8; hops++) {
    const init = model.initializers.get(current);
    if (init) return { init, via: null };
    const producer = producers.get(current);
    if (producer?.opType !== "Identity") return { init: null, via: producer ?? null };
    current = producer.inputs[0] ?? "";
  }
  return { init: null, via: null };
}

/** The weight initializer of a MatMul / Gemm / Conv node, and its layout. */
function weightOf(node: OnnxNode, model: OnnxModel, producers: Map<string, OnnxNode>): { init: OnnxInitializer; layout: WeightLayout } | null {
  const input = node.inputs[1];
  if (!input) return null;
  let { init, via } = resolveValue(input, model, producers);
  let transposed = false;
  if (!init) {
    // A weight stored as torch's [out, in] and transposed in the graph.
    if (via?.opType !== "Transpose") return null;
    const perm = via.ints.get("perm");
    if (Array.isArray(perm) && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) return null;
    init = resolveValue(via.inputs[0] ?? "", model, producers).init;
    transposed = true;
  }
  if (!init) return null;
  if (node.opType === "Conv") return init.dims.length === 4 ? { init, layout: "conv" } : null;
  if (init.dims.length !== 2) return null;
  if (node.opType === "Gemm") {
    const transB = node.ints.get("transB") === 1;
    return { init, layout: transB !== transposed ? "out_in" : "in_out" };
  }
  return { init, layout: transposed ? "out_in" : "in_out" };
}

export function buildModuleMap(model: OnnxModel): ModuleMap {
  const producers = new Map<string, OnnxNode>();
  for (const node of model.nodes) for (const out of node.outputs) producers.set(out, node);

  // Parameter names read by nodes of each scope (for the bias-beside-MatMul alias).
  const scopeParams = new Map<string, Set<string>>();
  for (const node of model.nodes) {
    const scope = scopeOf(node.name);
    if (!scope) continue;
    // By value name, not by initializer: deduplicated biases arrive through Identity nodes under their own names.
    for (const input of node.inputs) {
      const module = moduleOfParam(input);
      if (!module) continue;
      let set = scopeParams.get(scope);
      if (!set) scopeParams.set(scope, (set = new Set()));
      set.add(module);
    }
  }

  const targets = new Map<string, ModuleTarget>();
  const ambiguous = new Set<string>();
  const all: ModuleTarget[] = [];
  for (const node of model.nodes) {
    if (node.opType !== "MatMul" && node.opType !== "Gemm" && node.opType !== "Conv") continue;
    const weight = weightOf(node, model, producers);
    if (!weight) continue;
    const { init, layout } = weight;
    const names = new Set<string>();
    const scope = scopeOf(node.name);
    if (scope) {
      const scoped = normalizeModuleName(scope);
      names.add(scoped);
      // torch.onnx drops CLIPEncoder's scope (see above); kohya keeps it. Covers exports whose biases are unnamed.
      if (scoped.startsWith("text_model_layers_")) names.add(scoped.replace("text_model_layers_", "text_model_encoder_layers_"));
      for (const module of scopeParams.get(scope) ?? []) {
        if (lastSegment(module) === lastSegment(scope)) names.add(normalizeModuleName(module));
      }
    }
    const own = moduleOfParam(init.name);
    if (own) names.add(normalizeModuleName(own));
    if (names.size === 0) continue;

    const [d0, d1, kh = 1, kw = 1] = init.dims;
    const out = layout === "in_out" ? d1 : d0;
    const inDim = layout === "in_out" ? d0 : d1;
    const target: ModuleTarget = { names: [...names], nodeName: node.name, opType: node.opType, initializer: init, layout, out, in: inDim, kh, kw, sharedBy: 0 };
    all.push(target);
    for (const name of names) {
      const prior = targets.get(name);
      if (prior && prior.initializer !== init) ambiguous.add(name);
      else targets.set(name, target);
    }
  }
  for (const name of ambiguous) targets.delete(name);
  const readers = new Map<OnnxInitializer, number>();
  for (const t of all) readers.set(t.initializer, (readers.get(t.initializer) ?? 0) + 1);
  for (const t of all) t.sharedBy = readers.get(t.initializer)!;
  return { targets, ambiguous };
}
