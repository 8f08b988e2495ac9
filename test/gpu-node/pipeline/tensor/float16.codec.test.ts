import { describe, expect, it } from "vitest";
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from "../../../../gpu-node/pipeline/tensor/float16.codec.js";

describe("float16 codec", () => {
  it("decodes IEEE half bit patterns", () => {
    const bits = Uint16Array.of(0x0000, 0x8000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x3555);
    const f = float16ToFloat32(bits);
    expect(Array.from(f.subarray(0, 9))).toEqual([0, -0, 1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, Infinity, -Infinity]);
    expect(f[9]).toBeCloseTo(1 / 3, 3);
    expect(Number.isNaN(float16ToFloat32(Uint16Array.of(0x7e00))[0])).toBe(true);
  });

  it("encodes with round-to-nearest-even, overflow to infinity and subnormals", () => {
    const input = Float32Array.of(1, -2, 1 / 3, 65504, 65520, 2 ** -24, 2 ** -26, 1 + 2 ** -11, 1 + 3 * 2 ** -11, NaN);
    const h = float32ToFloat16(input);
    expect(Array.from(h.subarray(0, 9))).toEqual([0x3c00, 0xc000, 0x3555, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x3c00, 0x3c02]);
    expect(h[9] & 0x7c00).toBe(0x7c00);
    expect(h[9] & 0x3ff).not.toBe(0);
  });

  it("round-trips every finite half exactly", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = float32ToFloat16(float16ToFloat32(all));
    const wrong: number[] = [];
    for (let i = 0; i < 65536; i++) {
      const exp = (i >> 10) & 0x1f;
      if (exp === 31 && (i & 0x3ff) !== 0) continue; // NaN payloads may change
      if (back[i] !== i) wrong.push(i);
    }
    expect(wrong).toEqual([]);
  });

  it("converts bfloat16 both ways with round-to-nearest-even", () => {
    expect(Array.from(bfloat16ToFloat32(Uint16Array.of(0x3f80, 0xc000, 0x7f80)))).toEqual([1, -2, Infinity]);
    // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties to even (1); 1 + 3·2^-8 ties up to 1 + 2^-6.
    expect(Array.from(float32ToBfloat16(Float32Array.of(1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2)))).toEqual([0x3f80, 0x3f80, 0x3f82, 0xc000]);
  });
});
