import { describe, expect, it } from "vitest";
import { cephesLogf, cephesSinCosf, fma32, sinCosOut } from "../../../../gpu-node/pipeline/rng/float32-cephes.math.js";

const f32 = Math.fround;

describe("fma32", () => {
  it("rounds once where a double sum followed by a float rounding would round twice", () => {
    // Exact value: 256 + 2^-15 + 2^-16 - 2^-46, just below the midpoint between 256 + 2^-15 and 256 + 2^-14.
    const a = 1 + 2 ** -23;
    const b = 1 - 2 ** -23;
    const c = 255 + 3 * 2 ** -16;
    expect(f32(a * b + c)).toBe(256 + 2 ** -14); // double rounding lands on the midpoint, then ties to even
    expect(fma32(a, b, c)).toBe(256 + 2 ** -15);
    expect(fma32(-a, b, -c)).toBe(-(256 + 2 ** -15));
  });

  it("agrees with plain rounding when there is no midpoint", () => {
    expect(fma32(f32(0.1), f32(0.2), f32(0.3))).toBe(f32(f32(0.1) * f32(0.2) + f32(0.3)));
    expect(fma32(3, 5, 7)).toBe(22);
  });
});

describe("Cephes float32 log and sincos", () => {
  const ulp = (x: number): number => {
    const a = Math.abs(f32(x));
    return a === 0 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
  };

  it("stays within 2 ulp of the true log on (0, 1]", () => {
    for (let k = 1; k <= 1 << 24; k += 997) {
      const x = k * 2 ** -24;
      const got = cephesLogf(x);
      expect(got).toBe(f32(got));
      expect(Math.abs(got - Math.log(x))).toBeLessThanOrEqual(2 * ulp(Math.log(x)) + 1e-45);
    }
    expect(cephesLogf(1)).toBe(0);
  });

  it("stays close to the true sine and cosine on [0, 2*pi)", () => {
    for (let k = 0; k < 1 << 24; k += 1009) {
      const x = f32(f32(2 * Math.PI) * (k * 2 ** -24));
      cephesSinCosf(x);
      expect(Math.abs(sinCosOut.sin - Math.sin(x))).toBeLessThan(2e-7);
      expect(Math.abs(sinCosOut.cos - Math.cos(x))).toBeLessThan(2e-7);
    }
    cephesSinCosf(-1);
    expect(sinCosOut.sin).toBeCloseTo(Math.sin(-1), 6);
    expect(sinCosOut.cos).toBeCloseTo(Math.cos(-1), 6);
  });
});
