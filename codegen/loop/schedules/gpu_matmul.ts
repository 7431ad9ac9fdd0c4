// The GPU matmul's tiles, as primitives: a plain matmul nest (`for batch.., i, j { acc = 0; for k { a; b; acc = acc +
// a*b }; epilogue; stores }`, f32, every root of the nest's full shape) becomes one block per bm x bn tile of the
// output (matmulTiles' choice); per step of bk along K the block's threads stage A's and B's tiles in shared memory
// (each thread a strided share, consecutive threads on consecutive elements), then each thread adds the step into
// its tm x tn register tile; the epilogue stores the roots. Each output is still the sum over k in ascending order.
// gpu_grid.ts runs it on each matmul nest of a kernel, in three parts around the one bind of the whole kernel (the
// verifier wants a kernel's top level all launches or none): tileMatmul, then bind, finishMatmul and renameMatmul.
import { type GpuCaps, type MatmulTiles, chooseTiles } from '../gpu.js';
import type { Expr, Stmt } from '../ir.js';
import { bind, privatize } from './bind.js';
import { cacheShared, distribute } from './cache_shared.js';
import { cacheWrite } from './cache_write.js';
import { computeAt } from './compute_at.js';
import { fission } from './fission.js';
import { fuse } from './fuse.js';
import { dropUnitLoops, simplifyIndices } from './cleanup.js';
import { addUnitLoop, expand, renumberNests, scaleDecl } from './gpu_loops.js';
import { hoist } from './hoist.js';
import { merge } from './merge.js';
import { dropDeadDecls } from './dead_decls.js';
import { pad } from './pad.js';
import { unroll } from './kinds.js';
import { type For, affineOf, readsOf, varsOf } from './loops.js';
import { outerChain } from './nests.js';
import type { Schedule } from './primitive.js';
import { reorder } from './reorder.js';
import { split } from './split.js';
import { pureDecls } from '../analysis.js';
import { walkStmts } from '../visit.js';

/** A plain matmul nest: its loops, accumulator, reduction loop (absent when K is 1) and operand decls. */
export interface MatmulNest {
  readonly batch: readonly For[];
  readonly i: For;
  readonly j: For;
  readonly acc: string;
  readonly k?: For;
  readonly K: number;
  /** the decls holding A's and B's values in the update `acc + a*b` */
  readonly a: string;
  readonly b: string;
  /** whether A's value is the first operand of the product */
  readonly aFirst: boolean;
  /** whether A's and B's tiles are staged with consecutive threads along k (where the operand is contiguous) */
  readonly aAlongK: boolean;
  readonly bAlongK: boolean;
  /**
   * the decl of a guarded update's condition (`acc = select(c, acc + a*b, acc)`: a conv's taps outside the input
   * add nothing, gpu_conv.ts), computed from A's side like A's value, or absent
   */
  readonly cond?: string;
}

const isVar = (e: Expr, name: string) => e.k === 'var' && e.name === name;

/** The decls of a step body a value is computed from (it included), by name. */
function closure(step: readonly Stmt[], name: string): Set<string> {
  const decls = new Map(step.flatMap((s) => (s.k === 'decl' ? [[s.name, s.init] as const] : [])));
  const out = new Set<string>();
  const visit = (n: string): void => {
    if (out.has(n) || !decls.has(n)) return;
    out.add(n);
    for (const v of varsOf(decls.get(n)!)) visit(v);
  };
  visit(name);
  return out;
}

/**
 * The value of an i32 index with loop variable v at 1 and every other at 0, through the step's decls (NaN where
 * it is no integer arithmetic): its value at v = 0 subtracted, v's stride at the origin, also across the floor
 * divisions and remainders of a reshape (`k // 8 * 256 + k % 8 * 32`), where affineOf gives up.
 */
function strideOf(idx: Expr, v: string, decls: ReadonlyMap<string, Expr>): number {
  const at = (one: boolean) => {
    const ev = (e: Expr): number => {
      if (e.k === 'const') return e.v;
      if (e.k === 'var') return decls.has(e.name) ? ev(decls.get(e.name)!) : e.name === v && one ? 1 : 0;
      if (e.k !== 'binary' || e.t !== 'i32') return NaN;
      const a = ev(e.a), b = ev(e.b);
      switch (e.op) {
        case 'add': return a + b;
        case 'sub': return a - b;
        case 'mul': return a * b;
        case 'idiv': return Math.floor(a / b);
        case 'mod': return ((a % b) + b) % b;
        case 'min': return Math.min(a, b);
        case 'max': return Math.max(a, b);
        default: return NaN;
      }
    };
    return ev(idx);
  };
  return at(true) - at(false);
}

/**
 * How a value's first load that moves along both k and the loop `other` compares their strides: < 0 when k's is
 * the smaller (the operand is contiguous along k), > 0 when other's is, 0 when no load says.
 */
function strideOrder(step: readonly Stmt[], names: ReadonlySet<string>, k: string, other: string): number {
  const decls = new Map(step.flatMap((s) => (s.k === 'decl' && s.t === 'i32' ? [[s.name, s.init] as const] : [])));
  for (const s of step) {
    if (s.k !== 'decl' || !names.has(s.name) || s.init.k !== 'load') continue;
    const ck = Math.abs(strideOf(s.init.idx, k, decls)), co = Math.abs(strideOf(s.init.idx, other, decls));
    if (ck && co) return ck - co;
  }
  return 0;
}

/** The plain matmul nest rooted at a top-level loop, or undefined. */
export function matmulNest(top: For, outside: ReadonlySet<string> = new Set(), locals: ReadonlySet<string> = new Set()): MatmulNest | undefined {
  const chain = outerChain(top);
  if (chain.length < 2) return undefined;
  const [i, j] = chain.slice(-2) as [For, For];
  const body = j.body, d = body[0];
  if (d?.k !== 'decl' || d.t !== 'f32' || d.init.k !== 'const' || d.init.v !== 0 || !Object.is(d.init.v, 0)) return undefined;
  // the reduction: one k loop of decls and the update, or (K = 1) the decls and update inline
  const loop = body[1]?.k === 'for' ? body[1] : undefined;
  const updateAt = loop ? 1 : body.findIndex((s) => s.k === 'assign');
  if (updateAt < 1) return undefined;
  const step = loop ? loop.body : body.slice(1, updateAt + 1);
  if (loop && (loop.kind !== 'serial' || step.some((s) => s.k === 'for'))) return undefined;
  const u = step[step.length - 1];
  if (u?.k !== 'assign' || u.name !== d.name || !step.slice(0, -1).every((s) => s.k === 'decl')) return undefined;
  // a guarded update: the sum skips the step where the condition is false
  const guard = u.value.k === 'select' && u.value.c.k === 'var' && isVar(u.value.b, d.name) ? u.value.c.name : undefined;
  const v = guard && u.value.k === 'select' ? u.value.a : u.value;
  if (v.k !== 'binary' || v.op !== 'add' || !isVar(v.a, d.name) || v.b.k !== 'binary' || v.b.op !== 'mul' || v.b.a.k !== 'var' || v.b.b.k !== 'var') return undefined;
  let [a, b] = [v.b.a.name, v.b.b.name];
  const ca = closure(step, a), cb = closure(step, b);
  // an operand is computed in the step, or is a loop-invariant scalar of the kernel (computed in later)
  if (!(ca.has(a) || outside.has(a)) || !(cb.has(b) || outside.has(b)) || a === b) return undefined;
  const uses = (c: Set<string>, x: string) => step.some((s) => s.k === 'decl' && c.has(s.name) && varsOf(s.init).has(x));
  if (uses(ca, j.v) || uses(cb, i.v)) {
    if (uses(ca, i.v) || uses(cb, j.v)) return undefined;
    [a, b] = [b, a];
  }
  const [cA, cB] = a === v.b.a.name ? [ca, cb] : [cb, ca];
  // the condition is staged with A (it must not vary along j) and read nothing B's side computes
  if (guard && (!closure(step, guard).has(guard) || uses(closure(step, guard), j.v))) return undefined;
  // the epilogue: decls and stores only (a padded tail's stores guarded), at the row-major index of the nest's full shape
  const epi = body.slice(updateAt + 1);
  const guarded = (s: Stmt): Stmt[] | undefined => (s.k === 'store' ? [s] : s.k !== 'if' ? undefined : s.body.every((x) => guarded(x)) ? s.body.flatMap((x) => guarded(x)!) : undefined);
  const stores = epi.flatMap((s) => (s.k === 'decl' ? [] : guarded(s) ?? [s]));
  // a padded loop's (pad.ts) stores are guarded by `v < n`: its extent in the nest's shape is n
  const bounds = new Map<string, number>();
  walkStmts(epi, (s) => { if (s.k === 'if' && s.cond.k === 'binary' && s.cond.op === 'lt' && s.cond.a.k === 'var' && s.cond.b.k === 'const') bounds.set(s.cond.a.name, s.cond.b.v); });
  const extent = (l: For) => Math.min(l.extent, bounds.get(l.v) ?? l.extent);
  if (!stores.every((s) => s.k === 'store') || !stores.length || readsOf(step.slice(0, -1)).has(d.name)) return undefined;
  let stride = 1;
  const want = new Map<string, number>();
  for (let x = chain.length - 1; x >= 0; x--) { if (extent(chain[x]!) > 1) want.set(chain[x]!.v, stride); stride *= extent(chain[x]!); }
  for (const s of stores) {
    if (s.k !== 'store') continue;
    if (locals.has(s.buf)) return undefined; // a row cache, not a root
    const f = affineOf(s.idx);
    if (!f || f.c !== 0) return undefined;
    const terms = [...f.terms].filter(([x]) => chain.find((l) => l.v === x)?.extent !== 1);
    if (terms.length !== want.size || !terms.every(([x, c]) => want.get(x) === c)) return undefined;
  }
  const kv = loop?.v ?? '';
  return {
    batch: chain.slice(0, -2), i, j, acc: d.name, ...(loop ? { k: loop } : {}), K: loop?.extent ?? 1, a, b, aFirst: a === v.b.a.name,
    // as lower.ts chose: along k for A and along j for B, unless the operand is transposed (contiguous the other way)
    aAlongK: !(strideOrder(step, cA, kv, i.v) > 0), bAlongK: strideOrder(step, cB, kv, j.v) < 0, ...(guard ? { cond: guard } : {}),
  };
}

/** A matmul nest tiled up to its binding: the loops bind makes blocks and threads, and what finishMatmul needs. */
export interface TiledMatmul {
  readonly blocks: readonly string[];
  readonly threads: readonly string[];
  /** lowering's number of the nest's first name (its outermost loop's), for renumberNest */
  readonly from: number;
  readonly batch: readonly string[];
  readonly tiles: MatmulTiles;
  readonly names: Readonly<Record<'gi' | 'gj' | 'mi' | 'ni' | 'C' | 'n2' | 'n3' | 'm2' | 'm3' | 'ti2' | 'tj2' | 'ti3' | 'tj3' | 'k0' | 'kk' | 't2' | 'opA' | 'opB', string>>;
  readonly aAlongK: boolean;
  readonly bAlongK: boolean;
  /** a guarded update's condition, as the step reads it (staged beside A's tile) */
  readonly cond?: string;
}

/**
 * The steps before binding, on serial loops: blocks of bm x bn outputs, each thread's tm x tn accumulators in a
 * register array indexed by thread, the steps of bk along K outside the thread loops (with matmulTiles' tiles
 * unless given).
 */
export function tileMatmul(s: Schedule, top: string, g: GpuCaps, tiles?: MatmulTiles): TiledMatmul {
  const nest = () => matmulNest(s.body.find((x): x is For => x.k === 'for' && x.v === top)!, new Set(pureDecls(s.body).keys()), localsOf(s.body))!;
  let m = nest();
  const from = Number(/\d+$/.exec(top)?.[0] ?? 0);
  // K padded to the step's multiple where both operands are computed in the step (zeroed past K: pad.ts); M and N
  // padded too (stores guarded by `v < n`; reorder reads the guards, so an update in place `p = p + x @ w` pads too)
  // (a guarded update's steps are not padded: pad zeroes operands, not conditions)
  const padK = !!m.k && !m.cond && [m.a, m.b].every((x) => m.k!.body.some((d) => d.k === 'decl' && d.name === x));
  const chosen = tiles ?? paddedTiles(m.i.extent, m.j.extent, m.K, m.batch.reduce((n, l) => n * l.extent, 1), g, padK);
  if (m.k && m.K % chosen.bk) s.apply(pad, { loop: m.k.v, to: Math.ceil(m.K / chosen.bk) * chosen.bk, zero: [m.a, m.b] });
  if (m.i.extent % chosen.bm) s.apply(pad, { loop: m.i.v, to: Math.ceil(m.i.extent / chosen.bm) * chosen.bm });
  if (m.j.extent % chosen.bn) s.apply(pad, { loop: m.j.v, to: Math.ceil(m.j.extent / chosen.bn) * chosen.bn });
  m = nest();
  const { i, j, acc } = m;
  const { bm, bn, bk, tm, tn } = chosen;
  const f = (p: string) => s.fresh(p);
  const [gi, ii, ti, mi, gj, jj, tj, ni] = ['g', 'ii', 'ty', 'm', 'g', 'jj', 'tx', 'n'].map(f) as [string, string, string, string, string, string, string, string];
  // blocks of bm x bn outputs, each thread's tm x tn tile inside
  s.apply(split, { loop: i.v, factor: bm, outer: gi, inner: ii });
  s.apply(split, { loop: ii, factor: tm, outer: ti, inner: mi });
  s.apply(split, { loop: j.v, factor: bn, outer: gj, inner: jj });
  s.apply(split, { loop: jj, factor: tn, outer: tj, inner: ni });
  s.apply(reorder, { loops: [gi, gj, ti, tj, mi, ni] });
  // the accumulators in a register array indexed by thread and tile position; init, sum and epilogue apart
  const C = f('acc'), v = f('v');
  s.apply(cacheWrite, { acc, loops: [ti, tj, mi, ni], local: C, read: { decl: v }, place: 'before' });
  let k = m.k?.v;
  if (!k) {
    k = f('k');
    const nb = findFor(s.body, ni).body;
    s.apply(addUnitLoop, { parent: ni, start: 1, count: nb.findIndex((x) => x.k === 'decl' && x.name === v) - 1, v: k });
  }
  const [n2, n3, m2, m3, tj2, tj3, ti2, ti3] = ['n', 'n', 'm', 'm', 'tx', 'tx', 'ty', 'ty'].map(f) as [string, string, string, string, string, string, string, string];
  s.apply(fission, { loop: ni, at: [1, 2], names: [n2, n3] });
  s.apply(fission, { loop: mi, at: [1, 2], names: [m2, m3] });
  s.apply(fission, { loop: tj, at: [1, 2], names: [tj2, tj3] });
  s.apply(fission, { loop: ti, at: [1, 2], names: [ti2, ti3] });
  // steps of bk along K outside the threads, the step's k inside each thread's loop
  const k0 = f('k'), kk = f('kk');
  s.apply(reorder, { loops: [k, ti2, tj2, m2, n2] });
  s.apply(split, { loop: k, factor: bk, outer: k0, inner: kk });
  s.apply(reorder, { loops: [ti2, tj2, kk, m2, n2] });
  const [t1, t2, t3] = ['t', 't', 't'].map(f) as [string, string, string];
  // the thread's row and column (declared unless a constant or the thread index itself, as lower.ts did)
  s.apply(fuse, { loops: [ti, tj], name: t1, outerMod: false, elide: true });
  s.apply(fuse, { loops: [ti2, tj2], name: t2, outerMod: false, elide: true });
  s.apply(fuse, { loops: [ti3, tj3], name: t3, outerMod: false, elide: true });
  // the nest's loop-invariant scalars, computed where each thread uses them (so they go with A's and B's values)
  const pure = [...pureDecls(s.body).keys()];
  const readers = [t1, t2, t3].filter((t) => pure.some((d) => readsOf(findFor(s.body, t).body).has(d)));
  if (readers.length) s.apply(computeAt, { decls: pure, loops: readers, place: 'use' });
  // the operands' names now (a scalar operand computed in is a copy, renamed where the kernel still reads it)
  const update = findFor(s.body, n2).body.find((x): x is Extract<Stmt, { k: 'store' }> => x.k === 'store' && x.buf === C)!;
  type Update = { b: { a: { name: string }; b: { name: string } } };
  const guarded = update.value.k === 'select' ? update.value : undefined;
  const prod = ((guarded ? guarded.a : update.value) as Update).b;
  const [opA, opB] = m.aFirst ? [prod.a.name, prod.b.name] : [prod.b.name, prod.a.name];
  s.apply(hoist, { loop: n2 });
  return {
    blocks: [...m.batch.map((l) => l.v), gi, gj], threads: [t1, t2, t3], from, batch: m.batch.map((l) => l.v), tiles: chosen,
    names: { gi, gj, mi, ni, C, n2, n3, m2, m3, ti2, tj2, ti3, tj3, k0, kk, t2, opA, opB }, aAlongK: m.aAlongK, bAlongK: m.bAlongK,
    ...(guarded?.c.k === 'var' ? { cond: guarded.c.name } : {}),
  };
}

/**
 * The steps after binding: the accumulators one slice per thread; A's and B's tiles in shared memory, staged by all
 * threads (coalesced: consecutive threads along memory); B's tn values of a step loaded once for the thread's rows.
 */
export function finishMatmul(s: Schedule, t: TiledMatmul): void {
  const { gj, mi, ni, C, n2, n3, m2, m3, ti2, tj2, ti3, tj3, k0, kk, t2, opA, opB } = t.names;
  const { bn, tm, tn } = t.tiles, T = (t.tiles.bm / tm) * (bn / tn);
  const f = (p: string) => s.fresh(p);
  s.apply(privatize, { local: C });
  // A's and B's tiles in shared memory, staged by all threads (coalesced: consecutive threads along memory)
  // the variables the value still depends on (a unit tile dimension's are gone), and each row's first
  // (names as lowering gave them: i and j the tile's row and column, a and b the values read from the tiles)
  const stage = (value: string, dims: string[][], alongK: boolean, local: string, rowsFirst: boolean, read: string, width: number) => {
    const [r0, r1, e, w, r] = [rowsFirst ? 'j' : 'i', rowsFirst ? 'i' : 'j', 'e', 't', 'r'].map(f) as [string, string, string, string, string];
    const around = loopsAround(s.body, value), there = (v: string) => around.has(v) || declaredIn(s.body, v);
    // staged along k, consecutive threads store a row apart: an even row (width) would put several of a warp's
    // stores in one bank of shared memory (32 banks of 4 bytes), an odd one spreads them
    const pad = alongK && t.tiles.bk > 1 && width % 2 === 0 ? 1 : 0;
    s.apply(cacheShared, { value, at: k0, dims: dims.map((d) => d.filter(there)), local, scope: gj, fill: [r0, r1], read, pad });
    // staged along the tile's rows (contiguous in shared memory, unpadded), a thread copies 4 consecutive floats at
    // a time: an unrolled loop of 4 lanes, one float4 load and store where the renderer proves them aligned (else
    // scalar). Only where the threads share the 4-float groups evenly (fewer groups than threads: one each, the
    // others idle): a clamped share (distribute's `min(r*T + t, n - 1)`) would store some groups twice, which bind
    // proves harmless for one element but not for a lane loop
    const rows = findFor(s.body, r0).extent, cols = findFor(s.body, r1).extent, groups = (rows * cols) / 4;
    const lanes = !alongK && cols % 4 === 0 && (groups <= T || groups % T === 0) ? [f('c'), f('v')] as const : undefined;
    if (lanes) s.apply(split, { loop: r1, factor: 4, outer: lanes[0], inner: lanes[1] });
    const c1 = lanes?.[0] ?? r1;
    const order = alongK ? [c1, r0] : [r0, c1];
    if (order[0] !== r0) s.apply(reorder, { loops: order });
    // the decoded row index before the column index, as lower.ts declared them
    s.apply(fuse, { loops: order, name: e, decls: rowsFirst ? [c1, r0] : [r0, c1], outerMod: false, elide: true });
    s.apply(distribute, { loop: e, threads: lanes ? Math.min(T, groups) : T, outer: w, inner: r });
    if (lanes) s.apply(unroll, { loops: [lanes[1]] });
    return [w, r] as const;
  };
  // both tiles are stored k-major: As[kk*bm + i], Bs[kk*bn + j] (a row padded to bm + 1 where staged along k)
  // a thread's row and column: decoded decls, or (one column of threads) the thread index itself and 0
  const TX = bn / tn;
  const rows = [[kk], [TX === 1 ? t2 : ti2, m2]];
  const [tA, rA] = stage(opA, rows, t.aAlongK, f('As'), true, 'a', t.tiles.bm);
  // a guarded update's condition: a tile beside A's (read once per row and step, as A's value), filled by the same
  // loops from the same index arithmetic (merged)
  if (t.cond) {
    const [tC, rC] = stage(t.cond, rows, t.aAlongK, f('Cs'), true, 'c', t.tiles.bm);
    s.apply(merge, { loops: [tA, tC] });
    s.apply(merge, { loops: [rA, rC] });
  }
  const [tB] = stage(opB, [[kk], [tj2, n2]], t.bAlongK, f('Bs'), false, 'b', bn);
  // copies of decls a staged value was computed from that nothing reads now (a conv's flipped kernel index)
  s.try(dropDeadDecls, { loop: t.blocks[0]! });
  s.apply(bind, { blocks: [], threads: [tA, tB] });
  // a thread's first row and column in the tile, computed once (ti*tm, tj*tn)
  for (const [d, by] of [[ti2, tm], [tj2, tn], [ti3, tm], [tj3, tn]] as const) if (by > 1 && declaredIn(s.body, d)) s.apply(scaleDecl, { decl: d, by });
  // each thread's step: B's tn values loaded once, reused by its tm rows
  s.apply(expand, { loop: n2 });
  s.apply(hoist, { loop: m2 });
  s.apply(unroll, { loops: [mi, ni, m2, m3, n3] });
}

/**
 * The cheapest tiles by the cost model on the sizes padded to them (M and N always may be; K where padK): tails
 * guarded, so K = 787 or N = 10 keep a large tile (gpu.ts chooseTiles).
 */
export function paddedTiles(M: number, N: number, K: number, batch: number, g: GpuCaps, padK: boolean): MatmulTiles {
  return chooseTiles(M, N, K, batch, g, true, padK);
}

/** After finishMatmul: each nest's unit loops dropped and indices simplified, then lowering's names for all. */
export function renameMatmuls(s: Schedule, tiled: readonly TiledMatmul[]): void {
  for (const t of tiled) {
    s.try(dropUnitLoops, { loop: t.blocks[0]! });
    s.apply(simplifyIndices, { loop: t.blocks[0]! });
  }
  // the batch loops, now blocks too, named as the grid's
  const nests = tiled.map((t) => ({ loop: t.blocks[0]!, from: t.from, prefixes: Object.fromEntries(t.batch.map((v) => [v, 'g'])) }));
  if (s.check(renumberNests, { nests }) === undefined) s.apply(renumberNests, { nests });
}

/** One matmul nest of a kernel that holds nothing else, scheduled for the GPU (gpu_grid runs the same steps). */
export function scheduleMatmul(s: Schedule, top: string, g: GpuCaps, tiles?: MatmulTiles): void {
  const t = tileMatmul(s, top, g, tiles);
  s.apply(bind, { blocks: t.blocks, threads: t.threads });
  finishMatmul(s, t);
  renameMatmuls(s, [t]);
}

/** The variables of the loops around decl name. */
function loopsAround(body: readonly Stmt[], name: string, out: string[] = []): Set<string> {
  for (const x of body) {
    if (x.k === 'decl' && x.name === name) return new Set(out);
    if (x.k === 'for') {
      const r = loopsAround(x.body, name, [...out, x.v]);
      if (r.size || declaredIn(x.body, name)) return r;
    }
  }
  return new Set();
}

function declaredIn(body: readonly Stmt[], v: string): boolean {
  return body.some((x) => (x.k === 'decl' && x.name === v) || (x.k === 'for' && declaredIn(x.body, v)));
}

function localsOf(body: readonly Stmt[], out = new Set<string>()): Set<string> {
  for (const x of body) {
    if (x.k === 'local') out.add(x.name);
    if (x.k === 'for') localsOf(x.body, out);
  }
  return out;
}

function findFor(body: readonly Stmt[], v: string): For {
  for (const x of body) {
    if (x.k !== 'for') continue;
    if (x.v === v) return x;
    try {
      return findFor(x.body, v);
    } catch {
      // not in this one
    }
  }
  throw new Error(`gpu_matmul: no loop '${v}'`);
}

/** The kernel's top-level loops that are plain matmul nests, which gpu_grid tiles (and row caches leave alone). */
export function matmulTops(body: readonly Stmt[]): string[] {
  const pure = new Set(pureDecls(body).keys()), locals = localsOf(body);
  return body.flatMap((x) => (x.k === 'for' && x.kind === 'serial' && matmulNest(x, pure, locals) ? [x.v] : []));
}
