// Recipe: an int8 matmul or convolution nest (qmatmul, qconv) on a CPU as int16 pair dot products (pair_dot.ts; byte
// quad ones, dot4, where the target has VNNI and the operands fit), then the register-blocked
// micro-kernel of float matmuls (micro_kernel.ts) over i32 lanes: per step one broadcast row pair and nr/V column
// vectors of pairs, each lane's dot2 one pmaddwd lane (LLVM), the column pairs packed into panels; an epilogue of
// fewer columns than a vector holds widened to whole vectors over the tile's rows (widen).
import { type Buffer, E, type Expr, S, type Scalar, type Stmt } from '../ir.js';
import { printExpr } from '../printer.js';
import { children, someExpr, stmtExprs, walkStmts } from '../visit.js';
import { unroll } from './kinds.js';
import { vectorize, vectorizeLanes } from './vectorize.js';
import { type TargetCaps, registerTile } from '../schedule.js';
import { type For, ScheduleError, affineOf, findLoop, mapExpr, replaceLoop, substExpr, varsOf } from './loops.js';
import { contractionNest, microKernel } from './micro_kernel.js';
import { expand } from './gpu_loops.js';
import { simplifyIndices } from './cleanup.js';
import { type Reduction, localArrays, outerChain } from './nests.js';
import { pairDot, pairRows } from './pair_dot.js';
import { poolTile, pooledNest } from './pool_tile.js';
import { split } from './split.js';
import { type KernelView, type Schedule, primitive } from './primitive.js';

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

interface WidenArgs {
  /** the epilogue's row loop (unrolled) and its column loop (vector lanes, fewer than a vector holds) */
  readonly outer: string;
  readonly inner: string;
  /** lanes of the new vector loop */
  readonly lanes: number;
  /** the new loops' variables, and a prefix for the column operands' replicas */
  readonly names: readonly [string, string];
  readonly replica: string;
}

/** The loop `for outer { for inner { ... } }` of WidenArgs, its extents, and the index rewrites widen makes. */
function widenMatch(k: KernelView, a: WidenArgs): { m: For; c: For } | string {
  const m = findLoop(k.body, a.outer), c = m?.body.length === 1 && m.body[0]!.k === 'for' ? m.body[0] as For : undefined;
  if (!m || !c || c.v !== a.inner) return `loop '${a.outer}' does not hold only loop '${a.inner}'`;
  if (c.body.some((x) => x.k !== 'decl' && x.k !== 'store')) return `loop '${a.inner}' is not straight-line`;
  if (a.lanes % c.extent || (m.extent * c.extent) % a.lanes) return `${m.extent} x ${c.extent} is not whole vectors of ${a.lanes}`;
  const units = unitLoops(k.body);
  // an access at (m, c) contiguous over the tile (m * extent + c: the accumulators, the output), or a column
  // operand read at c alone (replicated); the lanes' variables nowhere else
  const bad = (e: Expr): boolean => {
    if (e.k === 'load' && (tileIndex(e.idx, m, c) || columnIndex(e.idx, c, units))) return false;
    if (e.k === 'var') return e.name === m.v || e.name === c.v;
    return children(e).some(bad);
  };
  for (const x of c.body) {
    if (x.k === 'store' && (!tileIndex(x.idx, m, c) || bad(x.value))) return `a store of loop '${a.inner}' is not at the tile's element`;
    if (x.k === 'decl' && bad(x.init)) return `a value of loop '${a.inner}' reads its lanes other than at the tile's element or a column`;
  }
  return { m, c };
}

/** Whether idx is base + m * (c's extent) + c (base free of m and c). */
function tileIndex(idx: Expr, m: For, c: For): boolean {
  const f = affineOf(idx);
  return !!f && f.terms.get(c.v) === 1 && f.terms.get(m.v) === c.extent;
}

/** Whether idx reads c alone (a column operand: c + a constant, loops of one iteration aside: a single column tile). */
function columnIndex(idx: Expr, c: For, units: ReadonlySet<string>): boolean {
  const f = affineOf(idx);
  return !!f && f.terms.get(c.v) === 1 && [...f.terms.keys()].every((v) => v === c.v || units.has(v));
}

/** The variables of the loops of one iteration in the statements. */
function unitLoops(body: readonly Stmt[]): Set<string> {
  const out = new Set<string>();
  walkStmts(body, (x) => { if (x.k === 'for' && x.extent === 1) out.add(x.v); });
  return out;
}

/**
 * An epilogue over a tile of rows x fewer columns than a vector holds (the seed CNN's first conv: 8 channels, AVX-512's
 * 16 lanes) as whole vectors: the tile's elements (accumulators, outputs) are contiguous, so lane l of vector f is
 * element f * lanes + l; a column operand (bias, multiplier) is read from a replica of `lanes` values made once per
 * call (`rep[l] = col[l mod columns]`). Half the requantize instructions for 8 columns.
 */
const widen = primitive<WidenArgs>({
  name: 'widenLanes',
  check: (k, a) => {
    const r = widenMatch(k, a);
    return typeof r === 'string' ? r : undefined;
  },
  apply: (k, a) => {
    const { m, c } = widenMatch(k, a) as { m: For; c: For }, units = unitLoops(k.body);
    const [f, l] = a.names, flat = E.add(E.mul(E.v(f), E.i32(a.lanes)), E.v(l));
    const reps = new Map<string, { buf: string; idx: Expr; t: Scalar }>(), nests: Stmt[] = [], buffers: Buffer[] = [];
    const element = (idx: Expr) => E.add(substExpr(idx, new Map([[m.v, E.i32(0)], [c.v, E.i32(0)]])), flat);
    const rewrite = (e: Expr): Expr => mapExpr(e, (x) => {
      if (x.k !== 'load') return x;
      if (tileIndex(x.idx, m, c)) return E.load(x.buf, element(x.idx), x.t);
      const key = `${x.buf}|${printExpr(x.idx)}`;
      let r = reps.get(key);
      if (!r) {
        const buf = k.fresh(a.replica), i = k.fresh('r');
        r = { buf, idx: x.idx, t: x.t };
        reps.set(key, r);
        const at = new Map([[c.v, E.mod(E.v(i), c.extent)], ...[...units].map((u): [string, Expr] => [u, E.i32(0)])]);
        nests.push(S.for(i, a.lanes, [S.store(buf, E.v(i), E.load(x.buf, substExpr(x.idx, at), x.t))]));
        buffers.push({ name: buf, dtype: x.t === 'f32' ? 'float32' : 'int32', size: a.lanes, kind: 'temp' });
      }
      return E.load(r.buf, E.v(l), x.t);
    });
    const body = c.body.map((x) => (x.k === 'store' ? { ...x, idx: element(x.idx), value: rewrite(x.value) } : x.k === 'decl' ? { ...x, init: rewrite(x.init) } : x));
    const loop = S.for(f, (m.extent * c.extent) / a.lanes, [S.for(l, a.lanes, body)]);
    return { body: [...nests, ...replaceLoop(k.body, m.v, () => [loop])], buffers: [...k.buffers, ...buffers] };
  },
});

/** The last `for m unroll { for c vector { stores } }` in a nest (a micro-kernel's epilogue), if any. */
function lastEpilogue(nest: Stmt | undefined): { outer: string; inner: string } | undefined {
  let out: { outer: string; inner: string } | undefined;
  if (nest) walkStmts([nest], (x) => {
    if (x.k !== 'for' || x.kind !== 'unroll' || x.body.length !== 1) return;
    const c = x.body[0]!;
    if (c.k === 'for' && c.kind === 'vector' && c.body.some((y) => y.k === 'store')) out = { outer: x.v, inner: c.v };
  });
  return out;
}

/**
 * A conv pooled before its requantize (pool_tile.ts): tiles of pr pooled positions x nr columns whose accumulators
 * (the taps x pr rows, nr columns) leave 4 vector registers (the column vector, a row's broadcast), the most columns
 * first, then the most positions; the tile's epilogue as whole vectors where its columns are all of them and fewer than a vector holds.
 */
function poolTiles(s: Schedule, loop: string, caps: TargetCaps): void {
  const n = pooledNest(s.body, loop);
  if (typeof n === 'string') throw new ScheduleError(`schedule cpu-matmul: poolTile on kernel ${s.name}: ${n}`);
  const V = caps.vectorWidth, P = n.rows[n.rows.length - 1]!.extent, N = n.j.extent, T = n.window.reduce((m, l) => m * l.extent, 1);
  const fits = (pr: number, nr: number) => P % pr === 0 && N % nr === 0 && T * pr * Math.ceil(nr / V) <= caps.vectorRegisters - 4;
  const nrs = Array.from({ length: N }, (_, i) => N - i).filter((d) => N % d === 0);
  const tile = nrs.flatMap((nr) => [4, 2, 1].map((pr) => ({ pr, nr }))).find((x) => fits(x.pr, x.nr));
  if (!tile) throw new ScheduleError(`schedule cpu-matmul: poolTile on kernel ${s.name}: no tile of ${T} taps fits the registers`);
  const f = (p: string) => s.fresh(p), taps = Array.from({ length: T }, (_, i) => i);
  const names = { po: f('o'), jt: f('o'), i: f('m'), ci: f('c'), k2: f('k'), cb: f('c'), p: taps.map(() => f('m')), c: taps.map(() => f('c')), ep: f('m'), ec: f('c'), A: f('acc'), B: f('b') };
  s.apply(poolTile, { loop, ...tile, names });
  s.apply(unroll, { loops: [names.i, ...names.p] });
  vectorizeLanes(s, [names.ci, names.cb, ...names.c], caps);
  const wide = { outer: names.ep, inner: names.ec, lanes: V, names: [f('f'), f('l')] as const, replica: 'rep' };
  if (tile.nr === N && N < V && s.check(widen, wide) === undefined) {
    s.apply(widen, { ...wide, replica: s.freshBuffer(`rep_${s.name}`) });
    s.apply(unroll, { loops: [wide.names[0]] });
    s.apply(vectorize, { loops: [wide.names[1]], caps });
  } else {
    s.apply(unroll, { loops: [names.ep] });
    vectorizeLanes(s, [names.ec], caps);
  }
}

/** Whether a loop's body divides its variable (or an expression of it) by a constant: `v // d`, `v % d`. */
function divides(l: For): boolean {
  let found = false;
  walkStmts(l.body, (x) => {
    for (const e of stmtExprs(x)) if (someExpr(e, (y) => y.k === 'binary' && (y.op === 'idiv' || y.op === 'mod') && varsOf(y.a).has(l.v))) found = true;
  });
  return found;
}

/** Run by cpu_matmul.ts before its float nests. */
export function cpuQmatmul(s: Schedule, caps: TargetCaps): void {
  if (caps.gpu || !(caps.vector?.values === 'any' || caps.vector?.ints?.has('dot2'))) return;
  // pairDot's check takes only operands that fit int16 halves: a plain int32 matmul's need not (fuzz reproducers
  // tests/fuzz/repro/int32-matmul-not-pair-dot.ir, tests/quant/pair_legal.test.ts)
  for (const top of s.body.filter((x): x is For => x.k === 'for')) {
    const chain = outerChain(top), rows = chain.slice(0, -1), j = chain[chain.length - 1]!;
    const count = pairRows(s.body, top.v);
    if (count === undefined) continue;
    const names = [...Array.from({ length: count }, () => s.fresh('pi')), s.fresh('pk')];
    const pooled = count > rows.length;
    // byte quads (vpdpbusd: twice the products of pmaddwd per instruction) where the target has them and the operands fit
    const width = caps.dot4 && s.check(pairDot, { loop: top.v, buffer: '_', names, width: 4 }) === undefined ? 4 : 2;
    if (s.check(pairDot, { loop: top.v, buffer: '_', names, width }) !== undefined) continue;
    // only where the micro-kernel's tile fits: dot2 as scalar shifts and multiplies costs more than two products
    const epilogue = 1 + j.body.slice(j.body.findIndex((x) => x.k === 'for') + 1).filter((x) => x.k === 'decl').length;
    if (!pooled && !tileOf(rows[rows.length - 1]!.extent, j.extent, caps, epilogue)) continue;
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
    // (and a convolution whose groups slide along its positions packs no pairs loop)
    const pk = rows.length === 1 ? findLoop(s.body, names[names.length - 1]!) : undefined;
    const lanes = pk && [4, 2, 1].map((f) => f * caps.vectorWidth).find((f) => pk.extent % f === 0 && pk.extent > f && f <= (caps.vector?.maxExtent ?? 0));
    if (pk && lanes) s.apply(split, { loop: pk.v, factor: lanes, outer: s.fresh('pk'), inner: s.fresh('pc') });
    if (pooled) {
      s.attempt(() => poolTiles(s, top.v, caps));
      continue;
    }
    const nest = s.body.find((x): x is For => x.k === 'for' && x.v === top.v)!;
    const n = contractionNest(nest, localArrays(s.body), dotOperands, 'i32');
    if (!n) continue;
    const M = n.chain[n.chain.length - 2]!.extent, N = n.chain[n.chain.length - 1]!.extent;
    const reg = tileOf(M, N, caps, n.epilogue);
    if (!reg) continue;
    // (a convolution's panels are not packed: pack.ts lays them out along one row loop)
    const pack = n.chain.length === 2 && N > reg.nr && M / reg.mr >= 4;
    const at = s.body.indexOf(nest), after = s.body.length - at;
    if (!s.attempt(() => microKernel(s, n, { ...reg, columnsOuter: true, pack }, caps))) continue;
    // a short reduction whose row index divides its step (a convolution read in place: group g's tap g / (cin / 4),
    // a multiply-high, shift and multiply per step before its loads) expanded, its copies' divisions folded: the
    // seed CNN's second conv, 18 steps (its indices then affine, so its packing nest can merge into it: cpu_kinds)
    const kl = n.r.loops.length === 1 ? findLoop(s.body, n.r.loops[0]!.v) : undefined;
    if (kl && kl.extent <= 32 && divides(kl) && s.attempt(() => s.apply(expand, { loop: kl.v }))) s.apply(simplifyIndices, {});
    // an epilogue of fewer columns than a vector's lanes as whole vectors (the requantize of 8 channels in 16 lanes)
    if (reg.nr < V) {
      // (the nest where it was: what the micro-kernel adds, it adds before)
      const epi = lastEpilogue(s.body[s.body.length - after]);
      const names = [s.fresh('f'), s.fresh('l')] as const;
      if (epi && s.check(widen, { ...epi, lanes: V, names, replica: 'rep' }) === undefined) {
        s.apply(widen, { ...epi, lanes: V, names, replica: s.freshBuffer(`rep_${s.name}`) });
        s.apply(unroll, { loops: [names[0]] });
        s.apply(vectorize, { loops: [names[1]], caps });
      }
    }
  }
}
