import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSafetensors, readSafetensorsFile, readSafetensorsHeader, SafetensorsError } from "../../../gpu-node/lora/safetensors.reader.js";
import { encodeSafetensors, writeSafetensors } from "../../helpers/lora-fixtures.js";
import type { FixtureTensors } from "../../helpers/lora-fixtures.js";

const values = Float32Array.of(0.5, -0.25, 0.125, 3, -1.5, 0);
const tensors = (dtype: string): FixtureTensors => ({
  a: { dtype, shape: [2, 3], values },
  scalar: { dtype, shape: [], values: Float32Array.of(4) },
});

function header(obj: unknown): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(obj));
  const out = new Uint8Array(8 + json.byteLength + 16);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

describe("safetensors reader", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "safetensors-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const dtype of ["F32", "F16", "BF16"]) {
    for (const align of [true, false]) {
      it(`reads ${dtype} tensors${align ? "" : " at unaligned offsets"} and the metadata`, () => {
        const bytes = encodeSafetensors(tensors(dtype), { metadata: { ss_network_dim: "4" }, align });
        const file = parseSafetensors(bytes, "x.safetensors");
        expect(file.metadata).toEqual({ ss_network_dim: "4" });
        expect(file.entries.get("a")).toMatchObject({ dtype, shape: [2, 3] });
        expect(Array.from(file.readFloat32("a"))).toEqual(Array.from(values));
        expect(Array.from(file.readFloat32("scalar"))).toEqual([4]);
      });
    }
  }

  it("reads a file from disk, and its header alone", async () => {
    const path = await writeSafetensors(join(dir, "ok.safetensors"), tensors("F16"));
    const file = await readSafetensorsFile(path);
    expect(Array.from(file.readFloat32("a"))).toEqual(Array.from(values));
    const head = await readSafetensorsHeader(path);
    expect([...head.entries.keys()].sort()).toEqual(["a", "scalar"]);
  });

  const bad: [string, () => Uint8Array, RegExp][] = [
    ["a file shorter than 8 bytes", () => new Uint8Array(5), /shorter than the 8-byte header length/],
    [
      "a header length past the end",
      () => {
        const b = encodeSafetensors(tensors("F32"));
        new DataView(b.buffer).setBigUint64(0, BigInt(b.byteLength), true);
        return b;
      },
      /runs past the end of the file/,
    ],
    ["a header that is not JSON", () => { const b = header({}); b.set(new TextEncoder().encode("{nope"), 8); return b; }, /not valid UTF-8 JSON/],
    ["a header that is a JSON array", () => header([1, 2]), /not a JSON object/],
    ["an unknown dtype", () => header({ t: { dtype: "F12", shape: [1], data_offsets: [0, 2] } }), /tensor "t": unknown dtype "F12"/],
    ["truncated data", () => encodeSafetensors(tensors("F32")).subarray(0, -3), /tensor "(a|scalar)": data \[\d+, \d+\) runs past the end of the data .*truncated/],
    ["a shape that does not fit the data", () => header({ t: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }), /tensor "t": 8 bytes of data for F32 shape \[3\] \(expected 12\)/],
    ["bad offsets", () => header({ t: { dtype: "F32", shape: [1], data_offsets: [8, 4] } }), /data_offsets \[8,4\] are not \[begin, end\]/],
    ["a negative dimension", () => header({ t: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }), /shape \[-1\] is not a list/],
  ];
  for (const [what, make, message] of bad) {
    it(`names the file and the problem for ${what}`, () => {
      const attempt = () => parseSafetensors(make(), "bad.safetensors");
      expect(attempt).toThrow(SafetensorsError);
      expect(attempt).toThrow(/^bad\.safetensors: /);
      expect(attempt).toThrow(message);
    });
  }

  it("refuses to read an integer tensor as floats", () => {
    const file = parseSafetensors(encodeSafetensors({ steps: { dtype: "I64", shape: [1], values: Float32Array.of(7) } }), "i.safetensors");
    expect(() => file.readFloat32("steps")).toThrow(/i\.safetensors: tensor "steps": dtype I64 is not a float type/);
  });

  it("reports a truncated file on disk from the header reader too", async () => {
    const path = join(dir, "cut.safetensors");
    await writeFile(path, encodeSafetensors(tensors("F32")).subarray(0, -5));
    await expect(readSafetensorsHeader(path)).rejects.toThrow(/cut\.safetensors: tensor "(a|scalar)": data .* runs past the end/);
    await expect(readSafetensorsFile(join(dir, "missing.safetensors"))).rejects.toThrow(/missing\.safetensors: cannot read/);
  });
});
