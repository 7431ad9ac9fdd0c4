// Philox-4x32-10 counter-based RNG: the same bits on every target for a (seed, counter, element) triple.

const M0 = 0xd2511f53, M1 = 0xcd9e8d57, W0 = 0x9e3779b9, W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32 values, computed exactly with 16-bit halves. */
function mulhi(a: number, b: number): number {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (hh + (lh >>> 16) + (hl >>> 16) + Math.floor(mid / 65536)) >>> 0;
}

/** One Philox-4x32-10 block: counter (c0..c3) under key (k0, k1) -> four uint32 words. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): [number, number, number, number] {
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

/**
 * Uniform float32 values in [0, 1) for elements first..first+n-1 under (seed, counter):
 * element i is word i%4 of block (i/4, counter, 0, 0) keyed by (seed, 0), as 24 high bits * 2^-24.
 */
export function philoxUniform(n: number, seed: number, counter: number, first = 0): Float32Array {
  const out = new Float32Array(n);
  let block = -1, w: number[] = [];
  for (let i = 0; i < n; i++) {
    const e = first + i;
    if (e >>> 2 !== block) w = philox4x32((block = e >>> 2), counter >>> 0, 0, 0, seed >>> 0, 0);
    out[i] = (w[e & 3]! >>> 8) * 5.9604644775390625e-8;
  }
  return out;
}
