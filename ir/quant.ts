// Integer semantics of int8 quantization (TFLite / gemmlowp reference kernels): the one definition every evaluator follows.
import { INT32_MAX, INT32_MIN } from './types.js';

export const INT8_MIN = -128;
export const INT8_MAX = 127;

const TWO31 = 2n ** 31n;

/**
 * gemmlowp SaturatingRoundingDoublingHighMul: the high 32 bits of 2·a·b (a·b / 2^31) rounded to nearest, ties
 * upward (the nudge, then C's int64 division truncating toward zero); INT32_MIN·INT32_MIN saturates to INT32_MAX.
 */
export function srdhm(a: number, b: number): number {
  if (a === INT32_MIN && b === INT32_MIN) return INT32_MAX;
  const ab = BigInt(a) * BigInt(b);
  const nudge = ab >= 0n ? 1n << 30n : 1n - (1n << 30n);
  return Number((ab + nudge) / TWO31); // BigInt division truncates toward zero, as C does
}

/** gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero; exponent in 0..31. */
export function roundingDivideByPOT(x: number, exponent: number): number {
  if (!Number.isInteger(exponent) || exponent < 0 || exponent > 31) throw new Error(`rounding shift ${exponent} is not in 0..31`);
  const mask = exponent === 31 ? 0x7fffffff : (1 << exponent) - 1;
  const remainder = x & mask;
  const threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/**
 * TFLite MultiplyByQuantizedMultiplier: x · multiplier · 2^(shift - 31) in fixed point. A positive shift is a left
 * shift of x first (wrapping as int32, as the 32-bit multiply does on every target), a negative one a rounding
 * right shift of the product; shifts beyond 31 either way are clamped to 31.
 */
export function multiplyByQuantizedMultiplier(x: number, multiplier: number, shift: number): number {
  const left = Math.min(31, Math.max(0, shift)), right = Math.min(31, Math.max(0, -shift));
  return roundingDivideByPOT(srdhm(Math.imul(x, 2 ** left | 0), multiplier), right);
}

/**
 * TFLite QuantizeMultiplier: a real multiplier m > 0 as [q, shift] with m ≈ q · 2^(shift - 31), q in [2^30, 2^31);
 * frexp's mantissa rounded half away from zero (std::round); below 2^-32 it is [0, 0].
 */
export function quantizeMultiplier(m: number): [number, number] {
  if (!(m >= 0) || !Number.isFinite(m)) throw new Error(`quantized multiplier ${m} must be finite and >= 0`);
  if (m === 0) return [0, 0];
  let shift = Math.floor(Math.log2(m)) + 1;
  let frac = m / 2 ** shift; // frexp: frac in [0.5, 1)
  if (frac >= 1) { frac /= 2; shift++; }
  if (frac < 0.5) { frac *= 2; shift--; }
  let q = Math.round(frac * 2 ** 31); // frac > 0, so Math.round is half away from zero here
  if (q === 2 ** 31) { q /= 2; shift++; }
  if (shift < -31) return [0, 0];
  return [q, shift];
}

/** Round half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The `quantize` op on one float32 value: round(x / scale) half to even (in float32) + zero point, saturated to int8; NaN gives the zero point. */
export function quantizeValue(x: number, scale: number, zeroPoint: number): number {
  const q = Math.fround(x / Math.fround(scale));
  if (Number.isNaN(q)) return zeroPoint;
  return Math.max(INT8_MIN, Math.min(INT8_MAX, roundHalfEven(q) + zeroPoint));
}

/**
 * The float clamp [a, b] that makes quantize's integer clamp dead: for every x but NaN, round(clamp(x, a, b) / scale)
 * (the float quotient rounded half to even) is in lo..hi = -128 - zeroPoint..127 - zeroPoint and equals
 * quantizeValue(x) - zeroPoint. Why: q(x) = roundHalfEven(fround(x / scale)) is non-decreasing in x for a scale > 0
 * (a correctly rounded quotient and a rounding to integers both are), and q(a) = lo, q(b) = hi: below a, q(x) <= lo,
 * which the integer clamp makes lo = q(a); above b the same; between, nothing changes. a is the least float >= lo·scale,
 * b the greatest <= hi·scale (both products exact in double: 9 bits by 24), so a / scale >= lo and b / scale <= hi
 * as reals too, and a bound on the quotient taken from a and b (range.ts valueRange) is lo..hi. q(a) and q(b) are
 * checked here for the scale given, not assumed: where they miss (a subnormal or huge scale, whose products round
 * far), or the scale is not positive, undefined (the caller keeps the integer clamp).
 */
export function quantizeBounds(scale: number, zeroPoint: number): [number, number] | undefined {
  const s = Math.fround(scale), lo = INT8_MIN - zeroPoint, hi = INT8_MAX - zeroPoint;
  if (!(s > 0 && s < Infinity) || !Number.isInteger(zeroPoint) || lo > 0 || hi < 0) return undefined;
  const f = new Float32Array(1), u = new Int32Array(f.buffer);
  const next = (v: number, up: boolean) => { f[0] = v; u[0] = v === 0 ? (up ? 1 : -2147483647) : u[0]! + ((v > 0) === up ? 1 : -1); return f[0]!; };
  let a = Math.fround(lo * s), b = Math.fround(hi * s);
  if (a < lo * s) a = next(a, true);
  if (b > hi * s) b = next(b, false);
  const q = (v: number) => roundHalfEven(Math.fround(v / s));
  return Number.isFinite(a) && Number.isFinite(b) && q(a) === lo && q(b) === hi ? [a + 0, b + 0] : undefined;
}

/** The `dequantize` op on one int8 value: (q - zero point) · scale in float32. */
export function dequantizeValue(q: number, scale: number, zeroPoint: number): number {
  return Math.fround((q - zeroPoint) * Math.fround(scale));
}

/**
 * Asymmetric int8 parameters covering [min, max] (widened to include 0, so 0 is exact): scale (float32) and zero
 * point, as TFLite's converter chooses them.
 */
export function asymmetricParams(min: number, max: number): { scale: number; zeroPoint: number } {
  const lo = Math.min(0, min), hi = Math.max(0, max);
  if (hi === lo) return { scale: 1, zeroPoint: 0 };
  const scale = Math.fround((hi - lo) / (INT8_MAX - INT8_MIN));
  const zeroPoint = Math.max(INT8_MIN, Math.min(INT8_MAX, Math.round(INT8_MIN - lo / scale)));
  return { scale, zeroPoint };
}
