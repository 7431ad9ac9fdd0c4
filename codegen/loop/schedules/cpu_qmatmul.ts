// Recipe: an int8 matmul or convolution nest (qmatmul, qconv) on a CPU as int16 pair dot products (pair_dot.ts; byte
// quad ones, dot4, where the target has VNNI and the operands fit), then the register-blocked
// micro-kernel of float matmuls (micro_kernel.ts) over i32 lanes: per step one broadcast row pair and nr/V column
// vectors of pairs, each lane's dot2 one pmaddwd lane (LLVM), the column pairs packed into panels.
import type { Expr } from '../ir.js';
import { type TargetCaps, registerTile } from '../schedule.js';
import { type For, findLoop } from './loops.js';
import { contractionNest, microKernel } from './micro_kernel.js';
import { type Reduction, localArrays, outerChain } from './nests.js';
import { pairDot } from './pair_dot.js';
import { split } from './split.js';
import type { Schedule } from './primitive.js';

/** `acc + dot2(x, w)` (or dot4): the operands of a pair-dot reduction's update. */
function dotOperands(r: Reduction): [Expr, Expr] | undefined {
  const u = r.update;
  if (r.init !== 0 || r.loops.length !== 1 || u.k !== 'binary' || u.op !== 'add' || u.a.k !== 'var' || u.a.name !== r.acc || u.b.k !== 'binary' || (u.b.op !== 'dot2' && u.b.op !== 'dot4')) return undefined;
  return [u.b.a, u.b.b];
}

/**
 * registerTile's tile, else for a few columns that no tile divides (the seed MLP's 10 outputs) one tile of all of
 * them: up to 4 rows by N columns as vector lanes (dot2 pads its lanes to whole pmaddwd chunks).
 */
function tileOf(M: number, N: number, caps: TargetCaps, epilogue: number): { mr: number; nr: number } | undefined {
  const reg = registerTile(M, N, caps, epilogue);
  if (reg || N > 2 * caps.vectorWidth || N < 2) return reg;
  const mr = [4, 2, 1].find((r) => M % r === 0 && r * Math.ceil(N / caps.vectorWidth) * epilogue <= (caps.tileCode ?? Infinity))!;
  return { mr, nr: N };
}

/** Run by cpu_matmul.ts before its float nests. */
export function cpuQmatmul(s: Schedule, caps: TargetCaps): void {
  if (caps.gpu || !(caps.vector?.values === 'any' || caps.vector?.ints?.has('dot2'))) return;
  // pairDot's check takes only operands that fit int16 halves: a plain int32 matmul's need not (fuzz reproducers
  // tests/fuzz/repro/int32-matmul-not-pair-dot.ir, tests/quant/pair_legal.test.ts)
  for (const top of s.body.filter((x): x is For => x.k === 'for')) {
    const chain = outerChain(top), rows = chain.slice(0, -1), j = chain[chain.length - 1]!;
    const names = [...rows.map(() => s.fresh('pi')), s.fresh('pk')];
    // byte quads (vpdpbusd: twice the products of pmaddwd per instruction) where the target has them and the operands fit
    const width = caps.dot4 && s.check(pairDot, { loop: top.v, buffer: '_', names, width: 4 }) === undefined ? 4 : 2;
    if (s.check(pairDot, { loop: top.v, buffer: '_', names, width }) !== undefined) continue;
    // only where the micro-kernel's tile fits: dot2 as scalar shifts and multiplies costs more than two products
    const epilogue = 1 + j.body.slice(j.body.findIndex((x) => x.k === 'for') + 1).filter((x) => x.k === 'decl').length;
    if (!tileOf(rows[rows.length - 1]!.extent, j.extent, caps, epilogue)) continue;
    // the columns' groups packed once per call where the target has RAM to spare: per tile of rows, packing them
    // cost more instructions than the tile's dot products (seed MLP b256, 1 thread: AVX-512 VNNI 220 -> 175 us,
    // AVX-512 pmaddwd 305 -> 240 us)
    // a matmul's groups per row padded to whole vectors where more than two (K = 784 in quads: 196 -> 208, the packing
    // nest as 16-lane vectors, not two of 98 lanes that spill)
    const V = caps.vectorWidth, groups = Math.ceil(j.body.filter((x): x is For => x.k === 'for').flatMap((l) => outerChain(l)).reduce((n, l) => n * l.extent, 1) / width);
    const pad = rows.length === 1 && groups > 2 * V && groups % V ? V : 1;
    s.apply(pairDot, { loop: top.v, buffer: s.freshBuffer(`pairs_${s.name}`), names, width, packColumns: caps.packColumns === true, pad });
    // the packing nest's pairs in chunks that cpu_kinds makes vector lanes (an extent the target renders as one vector)
    // (a convolution's pairs loop is outside its positions: not split)
    const pk = findLoop(s.body, names[names.length - 1]!)!;
    const lanes = [4, 2, 1].map((f) => f * caps.vectorWidth).find((f) => pk.extent % f === 0 && pk.extent > f && f <= (caps.vector?.maxExtent ?? 0));
    if (lanes && rows.length === 1) s.apply(split, { loop: pk.v, factor: lanes, outer: s.fresh('pk'), inner: s.fresh('pc') });
    const nest = s.body.find((x): x is For => x.k === 'for' && x.v === top.v)!;
    const n = contractionNest(nest, localArrays(s.body), dotOperands, 'i32');
    if (!n) continue;
    const M = n.chain[n.chain.length - 2]!.extent, N = n.chain[n.chain.length - 1]!.extent;
    const reg = tileOf(M, N, caps, n.epilogue);
    if (!reg) continue;
    // (a convolution's panels are not packed: pack.ts lays them out along one row loop)
    const pack = n.chain.length === 2 && N > reg.nr && M / reg.mr >= 4;
    s.attempt(() => microKernel(s, n, { ...reg, columnsOuter: true, pack }, caps));
  }
}
