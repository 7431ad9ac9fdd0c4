// Recipe: a CPU matmul nest (one full-shape matmul and its elementwise epilogue) as a register-blocked
// micro-kernel (BLIS, micro_kernel.ts), column panels outside row tiles or row tiles outside column panels (a
// cost model of the bytes each order reads from beyond a core's L2: panelOrder), B packed into contiguous panels when
// several row tiles read them. Each output is still its sum over k in ascending order.
import { type TargetCaps, registerTile } from '../schedule.js';
import type { Recipe } from './index.js';
import { type For, findLoop } from './loops.js';
import { contractionNest, microKernel } from './micro_kernel.js';
import { cpuQmatmul } from './cpu_qmatmul.js';
import { localArrays, matmulOperands } from './nests.js';
import type { Schedule } from './primitive.js';

/** The L2 cache one core has to itself: 512 KiB on Zen 2 and Zen 3 (1 MiB on Zen 4 and 5, 2 MiB on recent Intel). */
export const L2_BYTES = 512 * 1024;

/** The bytes of a cache line. */
const LINE = 64;

/**
 * Whether column panels go outside row tiles in an M x K · K x N matmul of mr x nr register tiles (elements of
 * `bytes`), the outer loop shared by `threads`. Columns outside read the row operand (M x K) once per panel of nr
 * columns, rows outside read the column operand (K x N) once per tile of mr rows; an operand that fits in L2 comes
 * from beyond it once, one that does not every time. Columns outside unless rows outside reads less from beyond L2:
 * the first layer of an MLP at batch 256 (256 x 784 · 784 x 64: A is 800 KB, B 200 KB) streamed A from L3 8 times
 * in column order; in row order, each thread of a parallel row loop reads its part of A once. Threads sharing column
 * panels narrower than a cache line write parts of the same output lines, which then move between cores at every
 * store (wasm's panels of 8 floats are half a line: the seed MLP's 256 x 10 · 10 x 64 backward matmul took 2.4x its
 * one-thread CPU time on 2 threads): that counts as 8 transfers per output byte, where rows give as many pieces.
 */
export function columnsOuter(M: number, K: number, N: number, reg: { mr: number; nr: number }, threads = 1, bytes = 4): boolean {
  const a = M * K * bytes, b = K * N * bytes;
  let cols = (a <= L2_BYTES ? a : (a * N) / reg.nr) + b;
  const rows = (b <= L2_BYTES ? b : (b * M) / reg.mr) + a;
  if (threads > 1 && (reg.nr * bytes) % LINE !== 0 && N > reg.nr && M / reg.mr >= N / reg.nr) cols += 8 * M * N * bytes;
  return cols <= rows;
}

export const cpuMatmul: Recipe = {
  name: 'cpu-matmul',
  run: (s: Schedule, caps: TargetCaps) => {
    if (caps.gpu) return;
    cpuQmatmul(s, caps);
    const locals = localArrays(s.body);
    for (const top of s.body.filter((x): x is For => x.k === 'for')) {
      const n = findLoop(s.body, top.v) && contractionNest(top, locals, matmulOperands);
      if (!n) continue;
      const M = n.chain[n.chain.length - 2]!.extent, N = n.chain[n.chain.length - 1]!.extent;
      const reg = registerTile(M, N, caps, n.epilogue);
      if (!reg) continue;
      const K = n.r.loops.reduce((k, l) => k * l.extent, 1);
      const pack = n.chain.length === 2 && N > reg.nr && M / reg.mr >= 4;
      s.attempt(() => microKernel(s, n, { ...reg, columnsOuter: columnsOuter(M, K, N, reg, n.chain.length === 2 ? caps.threads : 1), pack }, caps));
    }
  },
};
