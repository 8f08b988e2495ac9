import type { TensorInfo } from "../backends/onnx.backend.js";

/** "name (type [dims])" for every tensor, for start-up errors about unexpected exports. */
export function describe(infos: readonly TensorInfo[]): string {
  if (infos.length === 0) return "none";
  return infos.map((i) => `${i.name} (${i.type} [${i.shape.join(", ")}])`).join(", ");
}
