// The register-blocked micro-kernel both CPU recipes build (cpu_matmul.ts, cpu_conv.ts): an mr x nr tile of
// accumulators in a register array (mr rows unrolled, nr columns as vector lanes); per reduction step the nr values
// of the column operand loaded once into a register array and reused by every row. Sums keep their order.
import type { Expr, Scalar } from '../ir.js';
import type { TargetCaps } from '../schedule.js';
import { cacheRead } from './cache_read.js';
import { cacheWrite } from './cache_write.js';
import { simplifyIndices } from './cleanup.js';
import { fission } from './fission.js';
import { hoist } from './hoist.js';
import { unroll } from './kinds.js';
import type { For } from './loops.js';
import { type Reduction, outerChain, reductionAt, storesFullShape, straightLine } from './nests.js';
import { pack } from './pack.js';
import type { Schedule } from './primitive.js';
import { reorder } from './reorder.js';
import { tile } from './tile.js';
import { vectorizeLanes } from './vectorize.js';

/** A plain nest computing one full-shape f32 contraction, then an elementwise epilogue storing full-shape roots. */
export interface ContractionNest {
  readonly chain: readonly For[];
  readonly r: Reduction;
  /** the decl of the column operand (read once per step and column) */
  readonly b: string;
  /** statements of the epilogue's decls, plus one (sizes the micro-kernel's unrolled code) */
  readonly epilogue: number;
}

/** The nest's contraction (of type t) when its update has the form `operands` recognizes and the column operand is a step decl. */
export function contractionNest(top: For, locals: ReadonlySet<string>, operands: (r: Reduction) => [Expr, Expr] | undefined, t: Scalar = 'f32'): ContractionNest | undefined {
  const chain = outerChain(top);
  if (chain.length < 2) return undefined;
  const body = chain[chain.length - 1]!.body;
  const r = reductionAt(body, 0);
  if (!r || r.t !== t) return undefined;
  const b = operands(r)?.[1];
  if (b?.k !== 'var' || !r.step.some((s) => s.k === 'decl' && s.name === b.name)) return undefined;
  const epi = body.slice(r.end + 1);
  if (!straightLine(epi) || !storesFullShape(epi, chain, locals)) return undefined;
  return { chain, r, b: b.name, epilogue: 1 + epi.filter((s) => s.k === 'decl').length };
}

export interface MicroKernelArgs {
  readonly mr: number;
  readonly nr: number;
  /** tiles over columns outside tiles over rows (a matmul's B panel stays in cache while every row tile reads it) */
  readonly columnsOuter: boolean;
  /** pack the column operand into panels, laid out along these loops (the column tiles and the reduction) */
  readonly pack: boolean;
}

/**
 * Blocks the nest's last two loops (rows, columns) into a register-tiled micro-kernel; the column loops become
 * vector lanes where the target renders them so (else unrolled over the register tile, or serial: vectorizeLanes).
 */
export function microKernel(s: Schedule, n: ContractionNest, a: MicroKernelArgs, caps: TargetCaps): void {
  const chain = n.chain, i = chain[chain.length - 2]!.v, j = chain[chain.length - 1]!.v;
  const [it, jt, m, c] = [s.fresh('o'), s.fresh('o'), s.fresh('m'), s.fresh('c')];
  s.apply(tile, { loops: [i, j], factors: [a.mr, a.nr], outer: [it, jt], inner: [m, c], order: a.columnsOuter ? [jt, it, m, c] : [it, jt, m, c] });
  const at = a.columnsOuter ? it : jt;
  s.apply(cacheWrite, { acc: n.r.acc, loops: [m, c], local: s.fresh('acc'), read: { decl: s.fresh('v') }, place: 'before' });
  // init; the reduction; the epilogue: each over the whole tile
  const [c1, c2, m1, m2] = [s.fresh('c'), s.fresh('c'), s.fresh('m'), s.fresh('m')];
  s.apply(fission, { loop: c, at: [1, 1 + n.r.end - n.r.start], names: [c1, c2] });
  s.apply(fission, { loop: m, at: [1, 2], names: [m1, m2] });
  const ks = n.r.loops.map((l) => l.v);
  if (ks.length) s.apply(reorder, { loops: [...ks, m1, c1] });
  const fill = s.fresh('c');
  s.apply(cacheRead, { outer: m1, inner: c1, value: n.b, local: s.fresh('b'), fill, at });
  // what the row operand reads of the column index folds away once simplified (a conv's group of the tile)
  s.apply(simplifyIndices, {});
  s.try(hoist, { loop: c1 });
  const vectors = [c, fill, c1, c2];
  // the column operand in panels of nr columns, each contiguous down the reduction (measured on 1024³ with
  // AVX-512: 3.1x faster than reading B's rows 4 KiB apart)
  if (a.pack) {
    const names = [s.fresh('p'), ...ks.map(() => s.fresh('p')), s.fresh('c')];
    // row tiles outside: packed over B's rows outermost (pack.ts's order)
    s.apply(pack, { fill, over: [jt, ...ks], order: a.columnsOuter ? undefined : [...ks, jt], buffer: s.freshBuffer(`pack_${s.name}`), names });
    vectors.push(names[names.length - 1]!);
  }
  s.apply(unroll, { loops: [m, m1, m2] });
  vectorizeLanes(s, vectors, caps);
}
