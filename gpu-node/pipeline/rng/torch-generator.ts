// A port of torch.Generator("cpu") as far as torch.randn(n, generator=g, dtype=float32) uses it, so a seed gives
// the same latents (and ancestral/img2img noise) as diffusers on CPU. What torch does, and this file replays:
// - manual_seed(seed): mt19937 seeded from the seed's low 32 bits; the cached normal sample is cleared.
// - n < 16: torch's scalar normal_distribution<double> per element (Box-Muller on two 53-bit uniforms; the sine
//   half is cached in the generator and returned by the next scalar draw, even one in a later call).
// - n >= 16: all n float uniforms (24-bit) first, then Box-Muller on each block of 16 (lane j pairs with j+8) in
//   float32 with the AVX2 kernel's Cephes log/sincos; when n % 16 != 0 the last 16 slots are refilled with 16
//   fresh uniforms and transformed again (so they overlap the previous block). This path leaves the cache alone.
import type { NoiseSource } from "../schedulers/scheduler.types.js";
import { cephesLogf, cephesSinCosf, sinCosOut } from "./float32-cephes.math.js";
import { Mt19937 } from "./mt19937.engine.js";

/** Seeds accepted (and drawn by randomSeed): 0..2^53-1, what JSON numbers carry exactly. */
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

const f32 = Math.fround;
const TWO_POW_M24 = 2 ** -24;
const TWO_POW_M53 = 2 ** -53;
const TWO_POW_32 = 2 ** 32;
const TWO_PI = 2 * Math.PI;
/** The AVX2 kernel's 2*pi, rounded to float. */
const TWO_PI_F32 = f32(2 * Math.PI);
/** torch.randn switches to the vectorised 16-wide Box-Muller at this size (float32, contiguous). */
const VECTOR_MIN = 16;

export class TorchGenerator implements NoiseSource {
  readonly seed: number;
  private readonly engine: Mt19937;
  /** torch's next_double_normal_sample_: the second Box-Muller output of the scalar path. */
  private cachedNormal: number | null = null;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`seed must be an integer in 0..${MAX_SEED}, got ${seed}`);
    }
    this.seed = seed;
    this.engine = new Mt19937(seed);
  }

  randn(count: number): Float32Array {
    if (!Number.isSafeInteger(count) || count < 0) {
      throw new RangeError(`randn count must be a non-negative integer, got ${count}`);
    }
    const out = new Float32Array(count);
    if (count >= VECTOR_MIN) this.fillVectorised(out);
    else this.fillScalar(out);
    return out;
  }

  /** at::uniform_real_distribution<float>(0, 1): the low 24 bits of one 32-bit draw, over 2^24. */
  private uniformFloat(): number {
    return (this.engine.nextUint32() & 0xffffff) * TWO_POW_M24;
  }

  /** at::uniform_real_distribution<double>(0, 1): random64() = (first << 32) | second, low 53 bits over 2^53. */
  private uniformDouble(): number {
    const hi = this.engine.nextUint32() & 0x1fffff;
    const lo = this.engine.nextUint32();
    return (hi * TWO_POW_32 + lo) * TWO_POW_M53;
  }

  private fillScalar(out: Float32Array): void {
    for (let i = 0; i < out.length; i++) {
      if (this.cachedNormal !== null) {
        out[i] = this.cachedNormal;
        this.cachedNormal = null;
        continue;
      }
      const u1 = this.uniformDouble();
      const u2 = this.uniformDouble();
      // 1 - u2 is exact for a 53-bit u2, so this equals torch's log(1 - u2) (newer torch: log1p(-u2)).
      const radius = Math.sqrt(-2 * Math.log(1 - u2));
      const theta = TWO_PI * u1;
      this.cachedNormal = radius * Math.sin(theta);
      out[i] = radius * Math.cos(theta);
    }
  }

  private fillVectorised(out: Float32Array): void {
    const n = out.length;
    for (let i = 0; i < n; i++) out[i] = this.uniformFloat();
    for (let i = 0; i + VECTOR_MIN <= n; i += VECTOR_MIN) boxMuller16(out, i);
    if (n % VECTOR_MIN !== 0) {
      const start = n - VECTOR_MIN;
      for (let i = start; i < n; i++) out[i] = this.uniformFloat();
      boxMuller16(out, start);
    }
  }
}

/** normal_fill_16_AVX2 on data[o..o+16): uniforms in, standard normals out, lane j with lane j+8. */
function boxMuller16(data: Float32Array, o: number): void {
  for (let j = o; j < o + 8; j++) {
    // 1 - u maps [0, 1) to (0, 1] so the log is finite.
    const radius = f32(Math.sqrt(-2 * cephesLogf(f32(1 - data[j]))));
    cephesSinCosf(f32(TWO_PI_F32 * data[j + 8]));
    // The kernel's final fmadd(n, std=1, mean=0) turns a -0 (radius 0) into +0; `+ 0` does the same.
    data[j] = f32(radius * sinCosOut.cos) + 0;
    data[j + 8] = f32(radius * sinCosOut.sin) + 0;
  }
}

/** A seed for a request that came without one: uniform over 0..MAX_SEED (53 bits from the platform CSPRNG). */
export function randomSeed(): number {
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  return (words[0] & 0x1fffff) * TWO_POW_32 + words[1];
}
