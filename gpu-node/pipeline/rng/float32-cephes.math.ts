// Float32 log and sin/cos computed the way PyTorch's AVX2 normal kernel computes them (avx_mathfun.h: Cephes
// polynomials evaluated in single precision). torch.randn for >= 16 floats on an AVX2 CPU goes through these, and
// their results differ from correctly rounded logf/sinf/cosf in the last bit often enough (about 1% of samples)
// that a bit-exact port has to replay every single-precision step.
//
// The x86 builds are compiled with GCC, -mfma and fp contraction on, so a multiply whose only use is an add or
// subtract becomes one fused multiply-add (a single rounding). Where an add has two products as operands, GCC fuses
// the product computed first in source order; the other product is rounded on its own. The goldens pin this down:
// every fused step below is needed to reproduce torch 1.13's bits.

const f32 = Math.fround;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/**
 * a*b + c with one float32 rounding, for float32 a, b, c. The product is exact in a double (24+24 bits); the sum
 * rounded to double and then to float can round twice, which matters only when the double lands exactly halfway
 * between two floats, so that case is resolved from the sum's exact error term.
 */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = f32(s);
  const d = s - r;
  if (d === 0) return r;
  const other = r + 2 * d;
  if (f32(other) !== other) return r; // s was not a halfway point: the single rounding is r
  // Two-sum error of p + c: the part of the exact sum the double s lost.
  const bv = s - p;
  const err = p - (s - bv) + (c - bv);
  if (err === 0) return r;
  return err > 0 === d > 0 ? other : r;
}

const LOG_P0 = f32(7.0376836292e-2);
const LOG_P1 = f32(-1.151461031e-1);
const LOG_P2 = f32(1.167699874e-1);
const LOG_P3 = f32(-1.2420140846e-1);
const LOG_P4 = f32(1.4249322787e-1);
const LOG_P5 = f32(-1.6668057665e-1);
const LOG_P6 = f32(2.0000714765e-1);
const LOG_P7 = f32(-2.4999993993e-1);
const LOG_P8 = f32(3.3333331174e-1);
const LOG_Q1 = f32(-2.1219444e-4);
const LOG_Q2 = f32(0.693359375);
const SQRT_HALF = f32(0.707106781186547524);
const MIN_NORMAL_BITS = 0x00800000;

/** Natural log of a positive float32 as avx_mathfun's log256_ps computes one lane (x <= 0 is not needed here). */
export function cephesLogf(x: number): number {
  scratchF32[0] = x;
  let bits = scratchU32[0];
  if (bits < MIN_NORMAL_BITS) bits = MIN_NORMAL_BITS; // log256_ps clamps denormals to the smallest normal
  // Split x = m * 2^e with m in [0.5, 1).
  let e = (bits >>> 23) - 126;
  scratchU32[0] = (bits & 0x807fffff) | 0x3f000000;
  let m = scratchF32[0];
  if (m < SQRT_HALF) {
    e -= 1;
    m = f32(f32(m - 1) + m);
  } else {
    m = f32(m - 1);
  }
  const z = f32(m * m);
  let y = fma32(LOG_P0, m, LOG_P1);
  y = fma32(y, m, LOG_P2);
  y = fma32(y, m, LOG_P3);
  y = fma32(y, m, LOG_P4);
  y = fma32(y, m, LOG_P5);
  y = fma32(y, m, LOG_P6);
  y = fma32(y, m, LOG_P7);
  y = fma32(y, m, LOG_P8);
  y = f32(y * m);
  y = fma32(y, z, f32(e * LOG_Q1));
  y = fma32(z, -0.5, y);
  m = f32(m + y);
  return fma32(e, LOG_Q2, m);
}

const FOUR_OVER_PI = f32(1.27323954473516);
const MINUS_DP1 = f32(-0.78515625);
const MINUS_DP2 = f32(-2.4187564849853515625e-4);
const MINUS_DP3 = f32(-3.77489497744594108e-8);
const SIN_P0 = f32(-1.9515295891e-4);
const SIN_P1 = f32(8.3321608736e-3);
const SIN_P2 = f32(-1.6666654611e-1);
const COS_P0 = f32(2.443315711809948e-5);
const COS_P1 = f32(-1.388731625493765e-3);
const COS_P2 = f32(4.166664568298827e-2);

/** Results of the last cephesSinCosf call (two outputs without allocating per call). */
export const sinCosOut = { sin: 0, cos: 0 };

/**
 * sin and cos of a float32 x as avx_mathfun's sincos256_ps computes one lane; accurate for |x| < 8192, and the
 * normal kernel only passes [0, 2*pi).
 */
export function cephesSinCosf(x: number): void {
  const negative = x < 0;
  const ax = Math.abs(x);
  // Octant j (rounded up to even) and the reduced argument x - j*pi/4 in three float parts.
  let j = Math.trunc(f32(ax * FOUR_OVER_PI));
  j = (j + 1) & ~1;
  let r = fma32(j, MINUS_DP1, ax);
  r = fma32(j, MINUS_DP2, r);
  r = fma32(j, MINUS_DP3, r);

  const z = f32(r * r);
  let c = fma32(COS_P0, z, COS_P1);
  c = fma32(c, z, COS_P2);
  c = f32(c * z);
  c = fma32(c, z, -0.5 * z);
  c = f32(c + 1);

  let s = fma32(SIN_P0, z, SIN_P1);
  s = fma32(s, z, SIN_P2);
  s = f32(s * z);
  s = fma32(s, r, r);

  const sinUsesSinPoly = (j & 2) === 0;
  let sinV = sinUsesSinPoly ? s : c;
  let cosV = sinUsesSinPoly ? c : s;
  if (((j & 4) !== 0) !== negative) sinV = -sinV;
  if ((~(j - 2) & 4) !== 0) cosV = -cosV;
  sinCosOut.sin = sinV;
  sinCosOut.cos = cosV;
}
