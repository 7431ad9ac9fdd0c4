// Philox-4x32-10: Random123 known-answer vectors, an independent BigInt implementation, and philoxUniform's stream.
import { describe, expect, it } from 'vitest';
import { philox4x32, philoxUniform } from '../../ir/philox.js';
import { rng } from './helpers.js';

/** Philox-4x32-10 from its definition (Salmon et al. 2011) with exact BigInt products. */
function philoxRef(c: readonly number[], k: readonly number[]): number[] {
  const M = 0xffffffffn;
  let [c0, c1, c2, c3] = c.map(BigInt) as [bigint, bigint, bigint, bigint];
  let [k0, k1] = k.map(BigInt) as [bigint, bigint];
  for (let r = 0; r < 10; r++) {
    const p0 = 0xd2511f53n * c0, p1 = 0xcd9e8d57n * c2;
    [c0, c1, c2, c3] = [(p1 >> 32n) ^ c1 ^ k0, p1 & M, (p0 >> 32n) ^ c3 ^ k1, p0 & M];
    [k0, k1] = [(k0 + 0x9e3779b9n) & M, (k1 + 0xbb67ae85n) & M];
  }
  return [c0, c1, c2, c3].map(Number);
}

describe('philox4x32-10', () => {
  it.each([
    [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
    [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]],
    [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]],
  ])('Random123 known answer for counter %j key %j', (c, k, want) => {
    expect(philox4x32(c[0]!, c[1]!, c[2]!, c[3]!, k[0]!, k[1]!)).toEqual(want);
    expect(philoxRef(c, k)).toEqual(want);
  });

  it('matches the BigInt definition on random and extreme words', () => {
    const r = rng(99), edge = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
    const word = () => (r() < 0.3 ? edge[Math.floor(r() * edge.length)]! : Math.floor(r() * 2 ** 32));
    for (let i = 0; i < 2000; i++) {
      const c = [word(), word(), word(), word()], k = [word(), word()];
      expect(philox4x32(c[0]!, c[1]!, c[2]!, c[3]!, k[0]!, k[1]!)).toEqual(philoxRef(c, k));
    }
  });
});

describe('philoxUniform', () => {
  it('element i is the top 24 bits of word i%4 of block (i/4, counter, 0, 0) under key (seed, 0)', () => {
    const seed = 1234, counter = 77, u = philoxUniform(11, seed, counter);
    for (let i = 0; i < 11; i++) expect(u[i]).toBe(Math.floor(philoxRef([i >> 2, counter, 0, 0], [seed, 0])[i % 4]! / 256) / 2 ** 24);
    expect(Array.from(philoxUniform(7, seed, counter))).toEqual(Array.from(u.subarray(0, 7)));
    expect(Array.from(philoxUniform(5, -1, -2))).toEqual(Array.from(philoxUniform(5, 0xffffffff, 0xfffffffe)));
    expect(philoxUniform(0, 1, 1)).toHaveLength(0);
  });

  it('lies in [0, 1) with mean 1/2 and variance 1/12', () => {
    const n = 100_000, u = philoxUniform(n, 42, 0);
    let sum = 0, sq = 0;
    for (const v of u) {
      expect(v >= 0 && v < 1 && Number.isInteger(v * 2 ** 24)).toBe(true);
      sum += v;
      sq += v * v;
    }
    const mean = sum / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.005); // std of the mean is 0.0009
    expect(Math.abs(sq / n - mean * mean - 1 / 12)).toBeLessThan(0.002);
    const hist = new Array<number>(10).fill(0);
    for (const v of u) hist[Math.floor(v * 10)]!++;
    for (const h of hist) expect(Math.abs(h - n / 10)).toBeLessThan(600); // ~6 sigma
  });

  it('gives different streams for different seeds and counters', () => {
    const a = Array.from(philoxUniform(8, 1, 0));
    expect(Array.from(philoxUniform(8, 2, 0))).not.toEqual(a);
    expect(Array.from(philoxUniform(8, 1, 1))).not.toEqual(a);
    expect(Array.from(philoxUniform(8, 1, 0))).toEqual(a);
  });
});
