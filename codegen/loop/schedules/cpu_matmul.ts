// Recipe: a CPU matmul nest (one full-shape matmul and its elementwise epilogue) as a register-blocked
// micro-kernel (BLIS): an MR x NR tile of accumulators in a register array (MR rows unrolled, NR columns as vector
// lanes); per step k, the NR values of B's row loaded once into a register array and reused by every row; B packed
// into contiguous panels when several row tiles read them. Each output is still its sum over k in ascending order.
import { type TargetCaps, registerTile } from '../schedule.js';
import { cacheRead } from './cache_read.js';
import { cacheWrite } from './cache_write.js';
import { fission } from './fission.js';
import { hoist } from './hoist.js';
import type { Recipe } from './index.js';
import { unroll } from './kinds.js';
import { type For, findLoop } from './loops.js';
import { localArrays, matmulOperands, outerChain, reductionAt, storesFullShape, straightLine } from './nests.js';
import { pack } from './pack.js';
import type { Schedule } from './primitive.js';
import { reorder } from './reorder.js';
import { tile } from './tile.js';
import { vectorize } from './vectorize.js';

/** The matmul of a plain nest: its loops, accumulator and operands, M x N x K. */
export interface MatmulNest {
  readonly chain: readonly For[];
  readonly acc: string;
  /** statements of the reduction (its k loop, or the step itself when K is 1) */
  readonly steps: number;
  readonly k?: For;
  /** the decl of B's value (read once per k and column) */
  readonly b: string;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  /** statements of the epilogue (sizes the micro-kernel's unrolled code) */
  readonly epilogue: number;
}

/** The nest's matmul when the nest is one full-shape matmul (f32) with an elementwise epilogue storing full-shape roots. */
export function matmulNest(top: For, locals: ReadonlySet<string>): MatmulNest | undefined {
  const chain = outerChain(top);
  if (chain.length < 2) return undefined;
  const body = chain[chain.length - 1]!.body;
  const r = reductionAt(body, 0);
  if (!r || r.t !== 'f32') return undefined;
  const ops = matmulOperands(r);
  if (!ops || ops[1].k !== 'var' || !r.step.some((s) => s.k === 'decl' && s.name === (ops[1] as { name: string }).name)) return undefined;
  const epi = body.slice(r.end + 1);
  if (!straightLine(epi) || !storesFullShape(epi, chain, locals)) return undefined;
  const i = chain[chain.length - 2]!, j = chain[chain.length - 1]!;
  return {
    chain, acc: r.acc, steps: r.end - r.start, k: r.loops[0], b: ops[1].name,
    M: i.extent, N: j.extent, K: r.loops[0]?.extent ?? 1, epilogue: 1 + epi.filter((s) => s.k === 'decl').length,
  };
}

/** Blocks one matmul nest with an mr x nr register tile. */
export function blockMatmul(s: Schedule, m: MatmulNest, mr: number, nr: number): void {
  const chain = m.chain, r = chain.length, i = chain[r - 2]!.v, j = chain[r - 1]!.v;
  const [it, jt, mm, c] = [s.fresh('o'), s.fresh('o'), s.fresh('m'), s.fresh('c')];
  // column panels outside, row tiles inside: a panel stays in cache while every row tile reads it
  s.apply(tile, { loops: [i, j], factors: [mr, nr], outer: [it, jt], inner: [mm, c], order: [jt, it, mm, c] });
  s.apply(cacheWrite, { acc: m.acc, loops: [mm, c], local: s.fresh('acc'), read: { decl: s.fresh('v') }, place: 'before' });
  // init; the reduction; the epilogue: each over the whole tile
  const [c1, c2, m1, m2] = [s.fresh('c'), s.fresh('c'), s.fresh('m'), s.fresh('m')];
  s.apply(fission, { loop: c, at: [1, 1 + m.steps], names: [c1, c2] });
  s.apply(fission, { loop: mm, at: [1, 2], names: [m1, m2] });
  if (m.k) s.apply(reorder, { loops: [m.k.v, m1, c1] });
  const fill = s.fresh('c');
  s.apply(cacheRead, { outer: m1, inner: c1, value: m.b, local: s.fresh('b'), fill, at: it });
  s.try(hoist, { loop: c1 });
  const vectors = [c, fill, c1, c2];
  // B in panels of NR columns, each contiguous down K, when the panels are read by several row tiles (measured
  // on 1024³ with AVX-512: 3.1x faster than reading B's rows 4 KiB apart)
  if (r === 2 && m.N > nr && m.M / mr >= 4) {
    const names = [s.fresh('p'), ...(m.k ? [s.fresh('p')] : []), s.fresh('c')];
    s.apply(pack, { fill, over: [jt, ...(m.k ? [m.k.v] : [])], buffer: s.freshBuffer(`pack_${s.name}`), names });
    vectors.push(names[names.length - 1]!);
  }
  s.apply(unroll, { loops: [mm, m1, m2] });
  s.apply(vectorize, { loops: vectors });
}

export const cpuMatmul: Recipe = {
  name: 'cpu-matmul',
  run: (s: Schedule, caps: TargetCaps) => {
    if (caps.gpu) return;
    for (const top of s.body.filter((x): x is For => x.k === 'for')) {
      const m = matmulNest(top, localArrays(s.body));
      const reg = m && registerTile(m.M, m.N, caps, m.epilogue);
      if (m && reg && findLoop(s.body, top.v)) s.attempt(() => blockMatmul(s, m, reg.mr, reg.nr));
    }
  },
};

