import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { MAX_SEED, TorchGenerator, randomSeed } from "../../../../gpu-node/pipeline/rng/torch-generator.js";

interface RandnCase {
  seed: number;
  n?: number;
  shape?: number[];
  values: number[];
  values_f32_hex?: string;
}
interface RandnGoldens {
  cases: RandnCase[];
  sequential_draws: { seed: number; shapes: number[][]; first: number[]; second: number[] };
}

const goldens = JSON.parse(
  readFileSync(new URL("./fixtures/randn.json", import.meta.url), "utf8"),
) as RandnGoldens;

const product = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** Bit patterns, so -0/+0 and last-ulp differences count (the tolerance is zero: torch's float32 bits). */
function bits(values: Float32Array): number[] {
  return Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));
}

function hexToFloat32(hex: string): Float32Array {
  return new Float32Array(new Uint8Array(Buffer.from(hex, "hex")).buffer);
}

describe("TorchGenerator.randn matches torch.randn bit for bit", () => {
  for (const c of goldens.cases) {
    const count = c.n ?? product(c.shape ?? []);
    const label = c.n !== undefined ? `n=${c.n}` : `shape=[${c.shape?.join(",")}]`;
    it(`seed ${c.seed}, ${label}`, () => {
      const got = new TorchGenerator(c.seed).randn(count);
      expect(got.length).toBe(count);
      expect(bits(got)).toEqual(bits(Float32Array.from(c.values)));
      if (c.values_f32_hex !== undefined) expect(bits(got)).toEqual(bits(hexToFloat32(c.values_f32_hex)));
    });
  }

  it("keeps state across two successive draws from one generator", () => {
    const s = goldens.sequential_draws;
    const g = new TorchGenerator(s.seed);
    expect(bits(g.randn(product(s.shapes[0])))).toEqual(bits(Float32Array.from(s.first)));
    expect(bits(g.randn(product(s.shapes[1])))).toEqual(bits(Float32Array.from(s.second)));
  });

  it("takes each golden size through the branch torch takes (scalar < 16 <= vectorised, tail recomputed)", () => {
    const byKey = new Map(goldens.cases.filter((c) => c.n !== undefined).map((c) => [`${c.seed}/${c.n}`, c.values]));
    // Scalar draws are prefixes of each other; the vectorised path starts from different uniforms.
    expect(byKey.get("0/7")?.[0]).toBe(byKey.get("0/1")?.[0]);
    expect(byKey.get("0/16")?.[0]).not.toBe(byKey.get("0/7")?.[0]);
    // n = 17: the first block is n = 16's first 8 lanes; the last 16 slots are redrawn.
    expect(byKey.get("0/17")?.[0]).toBe(byKey.get("0/16")?.[0]);
    expect(byKey.get("0/17")?.[1]).not.toBe(byKey.get("0/16")?.[1]);
  });
});

describe("TorchGenerator scalar cache", () => {
  const seven = goldens.cases.find((c) => c.seed === 12345 && c.n === 7)?.values ?? [];

  it("returns the cached Box-Muller sine half on the next scalar call", () => {
    const g = new TorchGenerator(12345);
    expect(g.randn(1)[0]).toBe(Math.fround(seven[0]));
    expect(g.randn(1)[0]).toBe(Math.fround(seven[1]));
    expect(Array.from(g.randn(5))).toEqual(seven.slice(2).map(Math.fround));
  });

  it("keeps the cache through a vectorised draw, which does not use it", () => {
    const g = new TorchGenerator(12345);
    g.randn(1);
    g.randn(32);
    expect(g.randn(1)[0]).toBe(Math.fround(seven[1]));
  });

  it("splits an odd scalar draw across calls the same as one draw", () => {
    const split = new TorchGenerator(99);
    const joined = [...split.randn(7), ...split.randn(1)];
    expect(joined).toEqual(Array.from(new TorchGenerator(99).randn(8)));
  });
});

describe("TorchGenerator seeding", () => {
  it("uses only the low 32 bits of the seed, as torch's mt19937 does", () => {
    expect(bits(new TorchGenerator(2 ** 32 + 12345).randn(20))).toEqual(bits(new TorchGenerator(12345).randn(20)));
    expect(bits(new TorchGenerator(MAX_SEED).randn(20))).toEqual(bits(new TorchGenerator(2 ** 32 - 1).randn(20)));
  });

  it("rejects seeds outside 0..2^53-1 and bad counts", () => {
    for (const bad of [-1, 1.5, Number.NaN, MAX_SEED + 1, Number.POSITIVE_INFINITY]) {
      expect(() => new TorchGenerator(bad)).toThrow(RangeError);
    }
    const g = new TorchGenerator(0);
    expect(() => g.randn(-1)).toThrow(RangeError);
    expect(() => g.randn(2.5)).toThrow(RangeError);
    expect(g.randn(0)).toEqual(new Float32Array(0));
  });

  it("is deterministic per seed and independent between generators", () => {
    const a = new TorchGenerator(7);
    const b = new TorchGenerator(7);
    a.randn(100);
    const c = new TorchGenerator(7);
    expect(bits(b.randn(100))).toEqual(bits(c.randn(100)));
  });

  it("draws random seeds as integers in 0..MAX_SEED", () => {
    const seeds = Array.from({ length: 64 }, () => randomSeed());
    for (const s of seeds) {
      expect(Number.isSafeInteger(s)).toBe(true);
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s).toBeLessThanOrEqual(MAX_SEED);
    }
    expect(new Set(seeds).size).toBe(seeds.length);
    // 53 random bits: with 64 draws, some land above 2^32 (all below would have probability 2^-1344).
    expect(seeds.some((s) => s >= 2 ** 32)).toBe(true);
  });
});

describe("TorchGenerator large draws", () => {
  it("produces standard normal statistics for a latent-sized draw", () => {
    const x = new TorchGenerator(2024).randn(4 * 4 * 64 * 64);
    let sum = 0;
    let sq = 0;
    let nonFinite = 0;
    for (const v of x) {
      if (!Number.isFinite(v)) nonFinite++;
      sum += v;
      sq += v * v;
    }
    expect(nonFinite).toBe(0);
    const mean = sum / x.length;
    const variance = sq / x.length - mean * mean;
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(variance - 1)).toBeLessThan(0.02);
  });
});
