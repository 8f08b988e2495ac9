import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  appendGraphOutputs,
  findPosteriorSample,
  readExternalDataLocations,
  readGraphNodes,
} from "../../../../gpu-node/pipeline/model/onnx-graph.patch.js";
import { TINY_SD_DIR } from "../../../helpers/goldens.js";

const encoder = new Uint8Array(readFileSync(join(TINY_SD_DIR, "vae_encoder", "model.onnx")));

describe("onnx graph patch", () => {
  it("finds mean + std * RandomNormalLike in the diffusers-script VAE encoder", () => {
    const nodes = readGraphNodes(encoder);
    expect(nodes.some((n) => n.opType === "RandomNormalLike")).toBe(true);
    const found = findPosteriorSample(nodes);
    expect(found).not.toBeNull();
    const producers = new Map(nodes.flatMap((n) => n.outputs.map((o) => [o, n.opType] as const)));
    expect(producers.get(found!.std)).toBe("Exp");
    expect(producers.get(found!.mean)).toBe("Slice");
  });

  it("finds nothing in a graph that does not sample", () => {
    const decoder = new Uint8Array(readFileSync(join(TINY_SD_DIR, "vae_decoder", "model.onnx")));
    expect(findPosteriorSample(readGraphNodes(decoder))).toBeNull();
  });

  it("appends outputs without touching the original bytes", () => {
    const patched = appendGraphOutputs(encoder, ["a", "b"]);
    expect(Buffer.from(patched.subarray(0, encoder.length)).equals(Buffer.from(encoder))).toBe(true);
    expect(readGraphNodes(patched).length).toBe(readGraphNodes(encoder).length);
  });

  it("lists external data files", () => {
    const unet = new Uint8Array(readFileSync(join(TINY_SD_DIR, "unet", "model.onnx")));
    expect(readExternalDataLocations(unet)).toEqual(["weights.pb"]);
    expect(readExternalDataLocations(encoder)).toEqual([]);
  });

  it("rejects bytes that are not protobuf", () => {
    expect(() => readGraphNodes(new TextEncoder().encode("not an onnx model at all"))).toThrow();
  });
});
