// The fixed-point helpers of ir/quant.ts against exact BigInt arithmetic, on the edge cases of TFLite's reference kernels.
import { describe, expect, it } from 'vitest';
import {
  asymmetricParams, dequantizeValue, multiplyByQuantizedMultiplier, quantizeBounds, quantizeMultiplier, quantizeValue, roundHalfEven,
  roundingDivideByPOT, srdhm,
} from '../../ir/quant.js';
import { rng } from '../ir/helpers.js';

const MIN = -2147483648, MAX = 2147483647;
const floorDiv = (a: bigint, b: bigint): bigint => (a >= 0n ? a / b : -((-a + b - 1n) / b));
/** a·b / 2^31 rounded to nearest, ties toward +inf, saturated (what SRDHM computes). */
const refSrdhm = (a: number, b: number): number => {
  const r = floorDiv(BigInt(a) * BigInt(b) + (1n << 30n), 1n << 31n);
  return Number(r > BigInt(MAX) ? BigInt(MAX) : r);
};
/** x / 2^e rounded to nearest, ties away from zero. */
const refRdbpot = (x: number, e: number): number => {
  if (e === 0) return x;
  const ax = BigInt(Math.abs(x)), r = (ax + (1n << BigInt(e - 1))) >> BigInt(e);
  return Number(x < 0 ? -r : r);
};

const EDGES = [MIN, MIN + 1, -1073741824, -65536, -3, -2, -1, 0, 1, 2, 3, 65535, 1073741824, MAX - 1, MAX];

describe('int8 fixed-point helpers', () => {
  it('srdhm matches exact rounding on edge operands and random ones', () => {
    const r = rng(3), rand = () => Math.floor(r() * 2 ** 32) - 2 ** 31;
    const pairs: [number, number][] = EDGES.flatMap((a) => EDGES.map((b): [number, number] => [a, b]));
    for (let i = 0; i < 2000; i++) pairs.push([rand(), rand()]);
    for (const [a, b] of pairs) expect([a, b, srdhm(a, b)]).toEqual([a, b, refSrdhm(a, b)]);
    expect(srdhm(MIN, MIN)).toBe(MAX);
    expect(srdhm(-1, 1 << 30)).toBe(0); // -0.5 rounds up
    expect(srdhm(1, 1 << 30)).toBe(1); // 0.5 rounds up
    expect(srdhm(-3, 1 << 30)).toBe(-1); // -1.5 rounds up
  });

  it('roundingDivideByPOT rounds half away from zero for every shift 0..31', () => {
    const r = rng(5);
    const xs = [...EDGES, ...Array.from({ length: 200 }, () => Math.floor(r() * 2 ** 32) - 2 ** 31)];
    for (let e = 0; e <= 31; e++) {
      for (const x of xs) expect([x, e, roundingDivideByPOT(x, e)]).toEqual([x, e, refRdbpot(x, e)]);
      if (e > 0) {
        expect(roundingDivideByPOT(-(2 ** (e - 1)), e)).toBe(-1); // -0.5 -> -1
        expect(roundingDivideByPOT(2 ** (e - 1), e)).toBe(1);
      }
    }
    expect(() => roundingDivideByPOT(1, 32)).toThrow(/not in 0..31/);
  });

  it('quantizeMultiplier is frexp with a 31-bit mantissa, and MultiplyByQuantizedMultiplier scales by it', () => {
    for (const m of [2 ** -32, 1e-9, 0.000123, 0.25, 0.5, 0.7071, 0.9999999999, 1, 1.5, 3.999]) {
      const [q, shift] = quantizeMultiplier(m);
      expect(q).toBeGreaterThanOrEqual(2 ** 30);
      expect(q).toBeLessThan(2 ** 31);
      expect(Math.abs(q * 2 ** (shift - 31) - m)).toBeLessThanOrEqual(m * 2 ** -31);
      for (const x of [-100000, -12345, -1, 0, 7, 99999]) {
        // two roundings (SRDHM then the shift) stay within one unit of the exact product
        expect(Math.abs(multiplyByQuantizedMultiplier(x, q, shift) - x * q * 2 ** (shift - 31))).toBeLessThanOrEqual(1);
      }
    }
    expect(quantizeMultiplier(0)).toEqual([0, 0]);
    expect(quantizeMultiplier(2 ** -40)).toEqual([0, 0]);
    expect(quantizeMultiplier(1 - 2 ** -40)).toEqual([2 ** 30, 1]); // the mantissa rounds up to 2^31
    // x·0.5·0.5 rounds twice as TFLite does: 5·0.5 = 2.5 -> 3 (SRDHM, ties up), then 3/2 -> 2 (away from zero)
    expect(multiplyByQuantizedMultiplier(5, 2 ** 30, -1)).toBe(2);
    expect(multiplyByQuantizedMultiplier(-6, 2 ** 30, -1)).toBe(-2); // -1.5 -> -2
    expect(multiplyByQuantizedMultiplier(3, 2 ** 30, 2)).toBe(6); // left shift
  });

  it('quantize rounds half to even and saturates; dequantize is exact', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5].map((x) => quantizeValue(x, 1, 0))).toEqual([0, 2, 2, 0, -2, -2]);
    expect([1e9, Infinity, -Infinity, 127.5, -128.5, NaN].map((x) => quantizeValue(x, 1, 3))).toEqual([127, 127, -128, 127, -125, 3]);
    expect(quantizeValue(0.3, 0.1, -5)).toBe(-2); // float32 0.3 / 0.1 = 3 (rounded)
    expect(dequantizeValue(-128, 0.5, 127)).toBe(-127.5);
    const { scale, zeroPoint } = asymmetricParams(-1, 3);
    expect(scale).toBe(Math.fround(4 / 255));
    expect(dequantizeValue(zeroPoint, scale, zeroPoint)).toBe(0);
    expect(asymmetricParams(0.5, 2).zeroPoint).toBe(-128); // widened to include 0
  });

  it('quantizeBounds: x clamped to [a, b] quantizes as x, and the quotient is within the saturation bounds', () => {
    // (codegen/loop/lower.ts: the clamp after the rounding is then left out) scales from 2^-100 to 2^100, every
    // zero point; x at the ends, one float either side, and at and either side of every (n + 1/2)·scale
    const r = rng(18), f = new Float32Array(1), u = new Int32Array(f.buffer);
    const step = (x: number, d: number) => { // d floats up (through ±0 as one step)
      f[0] = x; const o = (u[0]! < 0 ? -(u[0]! & 0x7fffffff) : u[0]!) + d;
      u[0] = o < 0 ? -o | 0x80000000 : o; return f[0]!;
    };
    let checked = 0;
    const bad: string[] = [];
    for (let t = 0; t < 40; t++) {
      const s = Math.fround(t < 4 ? [1 / 255, 0.1, 3, 2 ** -20][t]! : 2 ** (200 * r() - 100));
      for (let zp = -128; zp <= 127; zp += t < 4 ? 1 : 17) {
        const [a, b] = quantizeBounds(s, zp)!, lo = -128 - zp, hi = 127 - zp, q = (x: number) => roundHalfEven(Math.fround(x / s));
        // (lo·s and hi·s are exact in double)
        if (q(a) !== lo || q(b) !== hi || !(a >= lo * s) || !(b <= hi * s) || Math.fround(a) !== a || Math.fround(b) !== b) bad.push(`scale ${s}, zero point ${zp}: [${a}, ${b}]`);
        const xs = [a, b, step(a, -1), step(a, 1), step(b, -1), step(b, 1), -Infinity, Infinity, 0, -0];
        for (let n = lo; n < hi; n++) for (const d of [-1, 0, 1]) xs.push(step(Math.fround((n + 0.5) * s), d));
        for (const x of xs) {
          const c = x < a ? a : x > b ? b : x;
          if (q(c) + zp !== quantizeValue(x, s, zp)) bad.push(`scale ${s}, zero point ${zp}, x ${x}`);
          checked++;
        }
      }
    }
    expect(bad.slice(0, 5)).toEqual([]);
    expect(checked).toBeGreaterThan(200_000);
    // an end at 0 for the zero points -128 and 127 (which NaN then takes), and no bounds where hi·scale is past
    // float32 (1e37: 255·scale is 2.55e39), or the scale is not a positive float
    expect([quantizeBounds(0.1, -128)![0], quantizeBounds(0.1, 127)![1]]).toEqual([0, 0]);
    expect([1e37, 0, -1, NaN, Infinity].map((sc) => quantizeBounds(sc, 0))).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(quantizeBounds(1, 128)).toBeUndefined();
  });
});
