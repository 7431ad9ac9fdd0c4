// pairDot: an int8 matmul or convolution nest (qmatmul / qconv as lowered: `acc = bias; for k.. { acc = acc + x·w }`,
// a convolution's taps `select(inside, acc + x·w, acc)`; then requantize) as a sum of
// int16 pair dot products: `for k2 { acc += dot2(xp[i, k2], pack16(w[k2, j], w[K2 + k2, j])) }` (loop/ir.ts), the
// row operand's pairs computed once per row by a nest placed before (its quantize no longer recomputed per column),
// the bias added after (odd K: a last pair of one term). The reduction's loops are one flat index k (a convolution's window
// (kh, kw, cin) in order), its outer loops but the last (columns) the rows; a tap outside the input is a row value 0. This reassociates the sum, which is exact here: i32 additions wrap,
// so any order gives the same bits (the interpreter's order included). A convolution's row groups are laid out
// [image][group][position] and packed with the positions' border apart from their branch-free (vector) interior, or,
// without padding and with input channels a multiple of the width, read in place (inPlace: no im2col). Each product is of two int16 halves: the
// row operand x - xZero is in -255..255 and w in -128..127, so neither a product nor the pair's sum can saturate or
// wrap (x86's vpmaddubsw, u8 x s8 summed into a saturating int16, could: 2 x 255 x 127 > 32767).
import { E, type Expr, S, type Scalar, type Stmt, type Buffer } from '../ir.js';
import { type For, affineOf, substExpr, varsOf } from './loops.js';
import { outerChain } from './nests.js';
import { type KernelView, primitive } from './primitive.js';
import { forEachExpr, mapStmtExprs, someExpr, stmtExprs } from '../visit.js';
import { fitsInt16, foldDecided, valueRange } from '../range.js';
import { simplify } from '../simplify.js';

export interface PairDotArgs {
  /** the nest's outer loop (its perfect chain: the rows' loops, then the columns loop) */
  readonly loop: string;
  /** the buffer the row pairs are packed into */
  readonly buffer: string;
  /** variables of the packing nest's loops (one per row loop, then the pairs) */
  readonly names: readonly string[];
  /**
   * Terms per group (default 2): 2 packs int16 pairs for dot2; 4 packs byte quads for dot4 (a target with
   * TargetCaps.dot4), which needs a row operand in 0..255 (u8: x - xZero with xZero = -128, the zero point of ReLU
   * outputs and of inputs calibrated on non-negative data) and a column one in -128..127.
   */
  readonly width?: 2 | 4;
  /**
   * A matmul's column groups packed once per call into a buffer of them all, as a convolution's always are (default:
   * packed in the step, per tile of rows: no such buffer, which a Cortex-M4's RAM may not hold).
   */
  readonly packColumns?: boolean;
  /** Groups per row rounded up to a multiple of this (default 1): whole vectors of lanes in the packing nest. */
  readonly pad?: number;
}

type Decl = Extract<Stmt, { k: 'decl' }>;

/** What pairDot reads of the nest, or why it does not apply. */
interface Match {
  readonly top: For;
  /** the rows' loops, the columns loop, the reduction's loops */
  readonly rows: readonly For[];
  readonly j: For;
  readonly ks: readonly For[];
  /** the statements before the accumulator's decl, and after the reduction loop */
  readonly pre: readonly Stmt[];
  readonly post: readonly Stmt[];
  readonly acc: Decl;
  /** the step decls each operand reads (in order), and the operands (a tap's condition in the row's) */
  readonly rowDecls: readonly Decl[];
  readonly colDecls: readonly Decl[];
  readonly row: Expr;
  readonly col: Expr;
  /** a convolution tap's condition (padding), in row */
  readonly inside: Expr | undefined;
  /**
   * A max pooling of the accumulators (lower.ts, fuse.ts pooledQconv): the pooling window's loops, the last rows (a
   * tap of the window is a position of its own), around the accumulator's decl and its reduction; `mx = max(mx, acc)`
   * after it (select-guarded where the window is padded); pre then holds the window body's statements before the
   * accumulator, post the column's after the window; jPre the column's before mx.
   */
  readonly win?: { readonly loops: readonly For[]; readonly mx: Decl; readonly combine: Stmt; readonly jPre: readonly Stmt[] };
}

/** The step decls e reads (transitively), in statement order, and the variables they and e read from outside. */
function closure(e: Expr, decls: readonly Decl[]): { decls: Decl[]; free: Set<string> } {
  const need = new Set<string>(), free = new Set<string>();
  const byName = new Map(decls.map((d) => [d.name, d]));
  const visit = (x: Expr) => {
    for (const v of varsOf(x)) {
      const d = byName.get(v);
      if (!d) free.add(v);
      else if (!need.has(v)) { need.add(v); visit(d.init); }
    }
  };
  visit(e);
  return { decls: decls.filter((d) => need.has(d.name)), free };
}

/**
 * Whether loop `inner` (the last of a window's loops) is a max pooling's tap: `decls; acc = init; for k.. { .. };
 * mx = max(mx, acc)` (or that under a select keeping mx where the tap is padding),
 * mx being the decl before the window, read after it only (`after`).
 */
function pooling(inner: For, mx: Decl, after: readonly Stmt[]): { combine: Stmt } | undefined {
  const last = inner.body[inner.body.length - 1], acc = inner.body[inner.body.length - 3];
  if (last?.k !== 'assign' || last.name !== mx.name || acc?.k !== 'decl' || inner.body[inner.body.length - 2]?.k !== 'for') return undefined;
  const isVar = (e: Expr, n: string) => e.k === 'var' && e.name === n;
  let v = last.value;
  if (v.k === 'select' && isVar(v.b, mx.name)) v = v.a;
  const isMax = v.k === 'binary' && v.op === 'max' && isVar(v.a, mx.name) && isVar(v.b, acc.name);
  if (!isMax || after.some((s) => s.k === 'for')) return undefined;
  return { combine: last };
}

function match(body: readonly Stmt[], a: PairDotArgs): Match | string {
  const top = body.find((s): s is For => s.k === 'for' && s.v === a.loop);
  if (!top) return `no top-level loop '${a.loop}'`;
  const chain = outerChain(top);
  if (chain.length < 2) return `loop '${a.loop}' is not a nest of rows and columns`;
  let rows = chain.slice(0, -1), outer = chain[chain.length - 1]!.body, win: Match['win'];
  const j = chain[chain.length - 1]!;
  let at = outer.findIndex((s) => s.k === 'for');
  let kTop = outer[at] as For | undefined, acc = outer[at - 1];
  if (!kTop || acc?.k !== 'decl' || acc.t !== 'i32') return 'no i32 accumulator before a reduction loop';
  let ks = outerChain(kTop), inner = ks[ks.length - 1]!;
  const pooled = pooling(inner, acc, outer.slice(at + 1));
  if (pooled) {
    win = { loops: ks, mx: acc, combine: pooled.combine, jPre: outer.slice(0, at - 1) };
    rows = [...rows, ...ks];
    outer = inner.body.slice(0, -1);
    at = outer.findIndex((s) => s.k === 'for');
    [kTop, acc] = [outer[at] as For | undefined, outer[at - 1]];
    if (!kTop || acc?.k !== 'decl' || acc.t !== 'i32' || at !== outer.length - 1) return 'no i32 accumulator before a reduction loop in the pooling window';
    ks = outerChain(kTop);
    inner = ks[ks.length - 1]!;
  }
  if (inner.body.some((s) => s.k === 'for')) return `reduction loop '${inner.v}' is not innermost`;
  // (the pooling window's decls before the accumulator are steps too: the taps' positions)
  const steps = [...(win ? outer.slice(0, at - 1) : []), ...inner.body.slice(0, -1)], update = inner.body[inner.body.length - 1];
  if (!steps.every((s): s is Decl => s.k === 'decl')) return `reduction loop '${inner.v}' does more than compute decls and accumulate`;
  if (update?.k !== 'assign' || update.name !== acc.name) return `reduction loop '${inner.v}' does not end by accumulating into '${acc.name}'`;
  const isAcc = (e: Expr) => e.k === 'var' && e.name === acc.name;
  // acc + x*w, or a tap: select(inside, acc + x*w, acc)
  let u = update.value, inside: Expr | undefined;
  if (u.k === 'select' && isAcc(u.b)) [inside, u] = [u.c, u.a];
  if (u.k !== 'binary' || u.op !== 'add' || !isAcc(u.a) || u.b.k !== 'binary' || u.b.op !== 'mul') return `'${acc.name}' is not accumulated as acc + x*w`;
  const outside = new Set(body.slice(0, body.indexOf(top)).flatMap((s) => (s.k === 'decl' ? [s.name] : [])));
  const kVars = new Set(ks.map((l) => l.v)), rowVars = new Set(rows.map((l) => l.v));
  const side = (e: Expr, own: (v: string) => boolean) => {
    const c = closure(e, steps);
    return [...c.free].every((v) => own(v) || kVars.has(v) || outside.has(v)) ? c.decls : undefined;
  };
  for (const [x, col] of [[u.b.a, u.b.b], [u.b.b, u.b.a]] as const) {
    const row = inside ? E.select(inside, x, E.i32(0)) : x;
    const rowDecls = side(row, (v) => rowVars.has(v)), colDecls = side(col, (v) => v === j.v);
    if (!rowDecls || !colDecls) continue;
    const rest = win ? j.body.slice(j.body.indexOf(win.mx) + 2) : outer.slice(at + 1);
    if (rest.some((s) => s.k === 'assign' && (s.name === acc.name || s.name === win?.mx.name)) || rest.some((s) => s.k === 'for')) return 'the accumulator is updated after its loop';
    return { top, rows, j, ks, pre: outer.slice(0, at - 1), post: rest, acc, rowDecls, colDecls, row, col, inside, win };
  }
  return 'the product is not of a row operand (no column index) and a column operand (no row index)';
}

/**
 * A convolution's row operand computed from its one load by a pointwise chain (the quantize of a float input fused
 * into the qconv): each input value is read by several taps, so the chain runs once per input value in a nest before
 * (`q[e] = chain(in[e])`) and the taps load q where they loaded in. Returns the row decls reading q, the nest and q,
 * or undefined where the row operand is not such a chain of more than its load.
 */
function hoistPointwise(rowDecls: readonly Decl[], row: Expr, k: KernelView, rows: readonly For[], buffer: string): { decls: Decl[]; nest: Stmt; q: Buffer } | undefined {
  const loads = rowDecls.filter((d) => someExpr(d.init, (e) => e.k === 'load'));
  const ld = loads[0]?.init;
  if (loads.length !== 1 || ld?.k !== 'load') return undefined;
  const src = k.buffers.find((b) => b.name === ld.buf), n0 = rows[0]!.extent;
  if (!src || src.size % n0 !== 0) return undefined;
  // the chain: the load and the decls that read only the chain
  const chain = new Set([loads[0]!.name]);
  for (const d of rowDecls) if (!chain.has(d.name) && !someExpr(d.init, (e) => e.k === 'load') && [...varsOf(d.init)].every((v) => chain.has(v))) chain.add(d.name);
  const used = new Set([...rowDecls.filter((d) => !chain.has(d.name)).flatMap((d) => [...varsOf(d.init)]), ...varsOf(row)]);
  const outs = rowDecls.filter((d) => chain.has(d.name) && used.has(d.name));
  if (chain.size < 2 || outs.length !== 1 || outs[0]!.name === loads[0]!.name) return undefined;
  const out = outs[0]!, q: Buffer = { name: buffer, dtype: 'int32', size: src.size, kind: 'temp' };
  if (out.t !== 'i32') return undefined;
  // the nest: per row of the input, its values (a flat index e = r * size/n0 + i)
  const r = k.fresh('hr'), i = k.fresh('hi'), per = src.size / n0, e = E.add(E.mul(E.v(r), E.i32(per)), E.v(i));
  const body = instance(rowDecls.filter((d) => chain.has(d.name)), E.v(out.name, out.t), new Map(), k.fresh);
  const first = body.stmts[0]!;
  const stmts = [S.decl(first.name, first.t, E.load(ld.buf, e, ld.t)) as Decl, ...body.stmts.slice(1), S.store(buffer, e, body.value)];
  const nest = S.for(r, n0, [S.for(i, per, stmts)]);
  // the taps: the chain's value loaded from q at the load's index
  const decls = rowDecls.flatMap((d) => (d === loads[0] ? [S.decl(out.name, out.t, E.load(buffer, ld.idx, 'i32')) as Decl] : chain.has(d.name) ? [] : [d]));
  return { decls, nest, q };
}

/** The i32 comparisons, mins and maxes in a nest's innermost loops: bounds and clamps that its ranges leave undecided. */
function undecided(s: Stmt): number {
  if (s.k === 'for') return s.body.reduce((n, b) => n + undecided(b), 0);
  let n = 0;
  for (const e of stmtExprs(s)) forEachExpr(e, (x) => { if (x.k === 'binary' && x.a.t === 'i32' && ['lt', 'le', 'gt', 'ge', 'min', 'max'].includes(x.op)) n++; });
  return n;
}

/** Straight-line statements with the decls that load nothing substituted into the statements after them. */
function inlineArithmetic(stmts: readonly Stmt[]): Stmt[] {
  const m = new Map<string, Expr>();
  return stmts.flatMap((s): Stmt[] => {
    if (s.k === 'decl' && !someExpr(s.init, (e) => e.k === 'load')) { m.set(s.name, substExpr(s.init, m)); return []; }
    return [mapStmtExprs(s, (e) => substExpr(e, m))];
  });
}

/**
 * A convolution whose groups can be read in place: no tap condition (no padding), a row operand that is a pointwise
 * function u of one load whose index is affine, its innermost window loop (the input channels) of coefficient 1 and
 * a multiple of W, every other coefficient a multiple of W. Group g is then terms W g .. W g + W - 1: W adjacent
 * channels of one tap, W adjacent input values. The nest packs each W input values once into q (`q[e] =
 * pack(u(in[W e + b]))`, a quarter of the input's values for quads), and the micro-kernel reads a group at its tap's
 * index / W: no im2col (the seed CNN's second conv packed 9 groups per input quad).
 */
function inPlace(m: Match, k: KernelView, W: number, buffer: string, names: readonly string[]): { nest: Stmt; q: Buffer; at: (rows: readonly Expr[], g: Expr) => Expr } | undefined {
  if (m.inside || m.rows.length < 2) return undefined;
  const arith = new Map<string, Expr>(), loads = m.rowDecls.filter((d) => someExpr(d.init, (e) => e.k === 'load'));
  for (const d of m.rowDecls) if (!loads.includes(d)) arith.set(d.name, substExpr(d.init, arith));
  const ld = loads[0]?.init;
  if (loads.length !== 1 || ld?.k !== 'load') return undefined;
  const src = k.buffers.find((b) => b.name === ld.buf), n0 = m.rows[0]!.extent, cin = m.ks[m.ks.length - 1]!;
  const f = affineOf(substExpr(ld.idx, arith)), u = substExpr(m.row, arith), loaded = loads[0]!.name;
  if (!src || !f || src.size % (n0 * W) !== 0 || cin.extent % W !== 0 || f.terms.get(cin.v) !== 1 || f.c % W !== 0) return undefined;
  const own = new Set([...m.rows, ...m.ks].map((l) => l.v));
  if (![...f.terms].every(([v, c]) => own.has(v) && (v === cin.v || c % W === 0)) || ![...varsOf(u)].every((v) => v === loaded)) return undefined;
  // q[r, e] = pack(u(in[r, W e + b])): per row of the input (image), its values W at a time
  const per = src.size / n0 / W, r = names[0]!, e = names[names.length - 1]!, flat = E.add(E.mul(E.v(r), E.i32(per)), E.v(e));
  const value = (b: number) => substExpr(u, new Map([[loaded, E.load(src.name, E.add(E.mul(flat, E.i32(W)), E.i32(b)), ld.t)]]));
  const vs = Array.from({ length: W }, (_, b) => value(b));
  const word = W === 2 ? E.binary('pack16', vs[0]!, vs[1]!) : E.binary('pack16', E.binary('pack8', vs[0]!, vs[1]!), E.binary('pack8', vs[2]!, vs[3]!));
  const nest = S.for(r, n0, [S.for(e, per, [S.store(buffer, flat, word)])]);
  // group g of a position: tap g / (cin / W) (the outer window loops), channels W (g mod cin / W) on
  const at = (rows: readonly Expr[], g: Expr) => {
    const sub = unflatten(m.ks.slice(0, -1), E.idiv(g, cin.extent / W));
    m.rows.forEach((l, d) => sub.set(l.v, rows[d]!));
    return [...f.terms].reduce((acc: Expr, [v, c]) => (v === cin.v ? acc : E.add(acc, E.mul(sub.get(v)!, E.i32(c / W)))), E.add(E.i32(f.c / W), E.mod(g, cin.extent / W)));
  };
  return { nest, q: { name: buffer, dtype: 'int32', size: src.size / W, kind: 'temp' }, at };
}

/** The decls at step k = at, renamed (fresh names), and e there. */
export function instance(decls: readonly Decl[], e: Expr, m: Map<string, Expr>, fresh: (p: string) => string): { stmts: Decl[]; value: Expr } {
  const subst = new Map(m);
  const stmts = decls.map((d) => {
    const name = fresh(d.name.replace(/\d+$/, ''));
    const init = substExpr(d.init, subst);
    subst.set(d.name, E.v(name, d.t));
    return S.decl(name, d.t, init) as Decl;
  });
  return { stmts, value: substExpr(e, subst) };
}

/** The reduction's loop variables at flat index f (row-major over their extents). */
function unflatten(ks: readonly For[], f: Expr): Map<string, Expr> {
  const m = new Map<string, Expr>();
  let inner = 1;
  for (let d = ks.length - 1; d >= 0; d--) {
    const q = E.idiv(f, inner);
    m.set(ks[d]!.v, d === 0 ? q : E.mod(q, ks[d]!.extent));
    inner *= ks[d]!.extent;
  }
  return m;
}

/** How many loops pairDot packs rows over at top-level loop v (the rows', a pooling window's too), if it matches. */
export function pairRows(body: readonly Stmt[], v: string): number | undefined {
  const m = match(body, { loop: v, buffer: '_', names: [] });
  return typeof m === 'string' ? undefined : m.rows.length;
}

/** Statements simplified (simplify.ts) as the body of a kernel with these buffers. */
function simplified(buffers: readonly Buffer[], body: readonly Stmt[]): readonly Stmt[] {
  return simplify({ name: 'k', buffers: [...buffers], kernels: [{ name: 'k', ops: [], body }], inputs: [], params: [], outputs: [], updates: [] }).kernels[0]!.body;
}

/**
 * Whether a convolution's group g + 1 at grid position p is its group g at p + 1 along the last dimension, for every
 * p but the last and g < K2 - 1: the two packed values, in a nest over those ranges, simplified and their decided
 * bounds folded, are one expression (interned: equal forms are one object). `group` gives a grid position's packed
 * group (its decls and value).
 */
function slides(k: KernelView, dims: readonly number[], K2: number, names: readonly string[], pk: string, group: (vars: readonly Expr[], g: Expr) => { stmts: Decl[]; value: Expr }): boolean {
  const L = dims.length - 1, vars = dims.map((_, d) => E.v(names[d]!)), g = E.v(pk);
  const inline = (r: { stmts: Decl[]; value: Expr }) => {
    const m = new Map<string, Expr>();
    for (const d of r.stmts) m.set(d.name, substExpr(d.init, m));
    return substExpr(r.value, m);
  };
  const a = inline(group(vars, E.add(g, E.i32(1)))), b = inline(group(vars.map((v, d) => (d === L ? E.add(v, E.i32(1)) : v)), g));
  let body: Stmt[] = [S.for(pk, K2 - 1, [S.store('_slide', E.i32(0), a), S.store('_slide', E.i32(1), b)])];
  body = [S.for(names[L]!, dims[L]! - 1, body)];
  for (let d = L - 1; d >= 0; d--) body = [S.for(names[d]!, dims[d]!, body)];
  const buffers: Buffer[] = [...k.buffers, { name: '_slide', dtype: 'int32', size: 2, kind: 'temp' }];
  let stores: Stmt[] = [...simplified(buffers, foldDecided(simplified(buffers, body)))];
  while (stores.length === 1 && stores[0]!.k === 'for') stores = [...stores[0]!.body];
  return stores.length === 2 && stores[0]!.k === 'store' && stores[1]!.k === 'store' && stores[0]!.value === stores[1]!.value;
}

export const pairDot = primitive<PairDotArgs>({
  name: 'pairDot',
  check: (k, a) => {
    const m = match(k.body, a);
    if (typeof m === 'string') return m;
    if (m.ks.reduce((n, l) => n * l.extent, 1) < 2) return 'a reduction of one term has no pairs';
    if (m.row.t !== 'i32' || m.col.t !== 'i32') return 'the operands are not i32';
    // int8-sourced (an int8 load, a quantize, minus a zero point): values that fit the int16 halves pack16 keeps
    for (const [side, e, decls, lo, hi] of [['row', m.row, m.rowDecls, 0, 255], ['column', m.col, m.colDecls, -128, 127]] as const) {
      const env = new Map(decls.map((d) => [d.name, d.init]));
      if (!fitsInt16(e, env, k.buffers)) return `the ${side} operand may not fit an int16 half (not int8-sourced)`;
      const r = valueRange(e, env, k.buffers);
      if (a.width === 4 && (r.lo < lo || r.hi > hi)) return `the ${side} operand may not fit a ${lo < 0 ? 'signed' : 'unsigned'} byte (dot4 takes u8 rows and s8 columns)`;
    }
    if (a.names.length !== m.rows.length + 1) return `${a.names.length} loop names for ${m.rows.length + 1} loops`;
    return undefined;
  },
  apply: (k, a) => {
    // W K2 > K (K not a multiple of the width, or K2 padded): group i's terms i K2 + f reach past K. Such a group
    // reads terms K - K2 + f instead (in bounds, affine in f: contiguous vector loads), each a row value 0 but those
    // from i K2 on (the earlier groups have the others), so every term is summed once; where K2 > K, clamped loads
    const m = match(k.body, a) as Match, K = m.ks.reduce((n, l) => n * l.extent, 1), W = a.width ?? 2, pad = a.pad ?? 1;
    // a convolution's groups read in place (adjacent channels), else packed: strided groups below
    const direct = inPlace(m, k, W, a.buffer, a.names);
    const K2 = direct ? K / W : Math.ceil(Math.ceil(K / W) / pad) * pad, past = (i: number) => (i + 1) * K2 > K;
    const nth = (f: Expr, i: number) => (direct ? E.add(E.mul(f, E.i32(W)), E.i32(i)) : !past(i) ? (i === 0 ? f : E.add(f, E.i32(i * K2))) : K2 <= K ? E.add(f, E.i32(K - K2)) : E.binary('min', E.add(f, E.i32(i * K2)), E.i32(K - 1)));
    const zeroPast = (f: Expr, i: number, v: Expr) => (!past(i) ? v
      : E.select(K2 <= K ? E.binary('ge', E.add(f, E.i32(K - K2)), E.i32(i * K2)) : E.binary('lt', E.add(f, E.i32(i * K2)), E.i32(K)), v, E.i32(0)));
    // a group's values as one i32: two int16 halves, or four bytes (pack16 of two pack8s)
    const packed = (v: readonly Expr[]) => (W === 2 ? E.binary('pack16', v[0]!, v[1]!) : E.binary('pack16', E.binary('pack8', v[0]!, v[1]!), E.binary('pack8', v[2]!, v[3]!)));
    const terms = Array.from({ length: W }, (_, i) => i);
    const M = m.rows.reduce((n, l) => n * l.extent, 1), t: Scalar = 'i32';
    const rowIndex = (vars: readonly Expr[]) => vars.reduce((acc: Expr, v, d) => E.add(E.mul(acc, E.i32(m.rows[d]!.extent)), v), E.i32(0));
    // pair k2 is terms k2 and K2 + k2 (quad: k2, K2 + k2, 2 K2 + k2, 3 K2 + k2; any grouping sums the same): the row
    // pairs of a matmul are then contiguous in k2, so the packing nest (the quantize of a float input in it) runs as vectors
    const at = (f: Expr, rows: readonly Expr[]) => {
      const sub = unflatten(m.ks, f);
      m.rows.forEach((l, d) => sub.set(l.v, rows[d]!));
      return sub;
    };
    // the rows' pairs: xp[row, k2] = pack16(row at k2, row at K2 + k2)
    const names = a.names.slice(0, -1), pk = a.names[a.names.length - 1]!, rowVars = names.map((n) => E.v(n));
    const hoist = m.rows.length > 1 && !direct ? hoistPointwise(m.rowDecls, m.row, k, m.rows, k.fresh(`rowq_${a.buffer}`)) : undefined;
    const rowDecls = hoist?.decls ?? m.rowDecls;
    // a matmul's rows [row][k2]; a convolution's [image][k2][position] (P positions per image): its packing nest
    // stores a group's positions contiguously, and the micro-kernel broadcasts one row group per step either way
    const conv = m.rows.length > 1, P = m.rows.slice(1).reduce((n, l) => n * l.extent, 1);
    // a pooling's positions (the image's rows, then the window's taps) as a grid: per spatial dimension its row and
    // window loops as one (g = row * window + tap), which for a window as long as its stride is the conv's own output
    // position, so the packing nest reads the input as the conv's does (contiguous: vector lanes)
    const win = m.win?.loops ?? [], grid = win.length > 0 && m.rows.length === 1 + 2 * win.length;
    const dims = grid ? [m.rows[0]!.extent, ...win.map((w, d) => m.rows[d + 1]!.extent * w.extent)] : m.rows.map((l) => l.extent);
    const toRows = (g: readonly Expr[]): Expr[] => (grid ? [g[0]!, ...win.map((w, d) => E.idiv(g[d + 1]!, w.extent)), ...win.map((w, d) => E.mod(g[d + 1]!, w.extent))] : [...g]);
    const gridOf = (vars: readonly Expr[]): Expr[] => (grid ? [vars[0]!, ...win.map((w, d) => E.add(E.mul(vars[d + 1]!, E.i32(w.extent)), vars[d + 1 + win.length]!))] : [...vars]);
    const posIndex = (vars: readonly Expr[]) => gridOf(vars).slice(1).reduce((acc: Expr, v, d) => E.add(E.mul(acc, E.i32(dims[d + 1]!)), v), E.i32(0));
    let rowAt = (vars: readonly Expr[], g: Expr) => (conv ? E.add(E.mul(E.add(E.mul(vars[0]!, E.i32(K2)), g), E.i32(P)), posIndex(vars)) : E.add(E.mul(rowIndex(vars), E.i32(K2)), g));
    // (a tap's index arithmetic inlined into its load: an index affine in the lanes' loop, as vector loads need)
    const groupOf = (vars: readonly Expr[], g: Expr) => {
      const rs = terms.map((i) => instance(rowDecls, m.row, at(nth(g, i), vars), k.fresh));
      return { stmts: rs.flatMap((r) => r.stmts), value: packed(rs.map((r, i) => zeroPast(g, i, r.value))) };
    };
    const pack = (vars: readonly Expr[], g: Expr = E.v(pk), to = rowAt(vars, g)): Stmt[] => {
      const r = groupOf(vars, g);
      return inlineArithmetic([...r.stmts, S.store(a.buffer, to, r.value)]);
    };
    // a convolution whose group g + 1 at position p is group g at p + 1 along its last dimension (the seed CNN's
    // first conv: cin 1, a quad the 3 taps of one window column; stride 1) packs group 0 alone, its last dimension D
    // longer by K2 - 1: group g at p is then element p + g (past D - 1: group p + g - D + 1 at D - 1, packed apart),
    // a third of the packing for 3 groups
    const D = dims[dims.length - 1]!, slide = conv && !direct && K2 > 1 && D > 1 && slides(k, dims, K2, names, pk, (vars, g) => groupOf(toRows(vars), g));
    const P1 = (P / D) * (D + K2 - 1);
    if (slide) rowAt = (vars, g) => E.add(E.add(E.mul(vars[0]!, E.i32(P1)), gridOf(vars).slice(1).reduce((acc: Expr, v, d) => E.add(E.mul(acc, E.i32(d === dims.length - 2 ? D + K2 - 1 : dims[d + 1]!)), v), E.i32(0))), g);
    // a matmul's pairs innermost (contiguous: vector lanes); a convolution's window taps outside its positions, so
    // a tap's offsets (k2 unflattened: divisions) are computed once per input row, not per position; each
    // positions loop in three, its first and last `border` iterations apart from the interior, where the taps'
    // bounds and index clamps fold (foldDecided): branch-free, contiguous loads and stores, vector lanes
    const extents = new Map<string, number>([[names[0]!, m.rows[0]!.extent], [pk, K2]]);
    const positions = (d: number, vars: readonly Expr[], border: readonly number[], interior = -1): Stmt[] => {
      if (d === dims.length) return slide ? pack(toRows(vars), E.i32(0)) : pack(toRows(vars));
      const n = dims[d]!, b = border[d] ?? 0;
      const segs = b > 0 && n > 2 * b ? (d === interior ? [[b, n - b]] : [[0, b], [b, n - b], [n - b, n]]) : [[0, n]];
      return segs.map(([lo, hi], i) => {
        const v = i === 0 ? names[d]! : k.fresh(names[d]!);
        extents.set(v, hi! - lo!);
        return S.for(v, hi! - lo!, positions(d + 1, [...vars, lo ? E.add(E.v(v), E.i32(lo)) : E.v(v)], border, interior));
      });
    };
    // (a grid's row and tap, g / w and g mod w, simplified first: the tap's position row * w + tap is g again, whose
    // range the border decides; apart, their ranges' sum is looser and took a border of 2 for the seed CNN's 1)
    const tidy = (ss: Stmt[]) => (grid ? [...simplified(k.buffers, ss)] : ss);
    const nestOf = (border: readonly number[], interior = -1) => foldDecided(tidy([S.for(names[0]!, m.rows[0]!.extent, slide ? positions(1, [E.v(names[0]!)], border, interior) : [S.for(pk, K2, positions(1, [E.v(names[0]!)], border, interior))])]), extents)[0]!;
    // (slide: groups 1 .. K2 - 1 of the last position, at D .. D + K2 - 2, in the packing nest's loop over the images)
    const tail = (): Stmt[] => {
      const vars = dims.map((_, d) => (d === 0 ? names[0]! : d < dims.length - 1 ? k.fresh(names[d]!) : k.fresh(pk))), j = E.add(E.v(vars[dims.length - 1]!), E.i32(1));
      const rows = toRows(dims.map((_, d) => (d === dims.length - 1 ? E.i32(D - 1) : E.v(vars[d]!))));
      let body = [S.for(vars[dims.length - 1]!, K2 - 1, pack(rows, j, rowAt(rows, j)))];
      for (let d = dims.length - 2; d >= 1; d--) body = [S.for(vars[d]!, dims[d]!, body)];
      const image = foldDecided(tidy([S.for(names[0]!, dims[0]!, body)]), new Map(vars.map((v, d) => [v, d < dims.length - 1 ? dims[d]! : K2 - 1])))[0] as For;
      return [...image.body];
    };
    // each positions loop's border: the least that leaves the fewest undecided bounds and clamps in the interior
    const border = dims.map(() => 0);
    for (let d = 1; conv && !direct && d < dims.length; d++) {
      const cost = (b: number) => undecided(nestOf(border.map((x, e) => (e === d ? b : x)), d));
      let best = 0, least = cost(0);
      for (let b = 1; b <= 3 && 2 * b < dims[d]!; b++) if (cost(b) < least) [best, least] = [b, cost(b)];
      border[d] = best;
    }
    const rowsNest = direct?.nest ?? nestOf(border), packRows = slide ? { ...(rowsNest as For), body: [...(rowsNest as For).body, ...tail()] } : rowsNest;
    // the columns' pairs: a convolution's once per call in a nest before, wp[k2, j] = pack16(column at k2, column at
    // K2 + k2) (its micro-kernel would pack them again for every tile: as many pack16s as dot2 vectors); a matmul's
    // in the step, where the micro-kernel packs its panels once per call, with no buffer of them all (RAM: the seed
    // MLP's would be 100 KB on the Cortex-M4), unless packColumns asks for them once per call
    const N = m.j.extent, once = m.rows.length > 1 || a.packColumns === true, wb = k.fresh(`cols_${a.buffer}`), pk2 = k.fresh('pk'), pj = k.fresh('pj');
    const k2 = k.fresh('k'), sum = k.fresh('acc'), xv = k.fresh('x'), wv = k.fresh('w');
    const colAt = (f: Expr, j: Expr) => new Map([...unflatten(m.ks, f), [m.j.v, j]]);
    const pairOf = (f: Expr, j: Expr) => {
      const cs = terms.map((i) => instance(m.colDecls, m.col, colAt(nth(f, i), j), k.fresh));
      return { stmts: cs.flatMap((c) => c.stmts), value: packed(cs.map((c) => c.value)) };
    };
    const wp = once ? pairOf(E.v(pk2), E.v(pj)) : undefined;
    const packCols = wp && S.for(pk2, K2, [S.for(pj, N, [...wp.stmts, S.store(wb, E.add(E.mul(E.v(pk2), E.i32(N)), E.v(pj)), wp.value)])]);
    const col = once ? { stmts: [], value: E.load(wb, E.add(E.mul(E.v(k2), E.i32(N)), E.v(m.j.v)), t) } : pairOf(E.v(k2), E.v(m.j.v));
    // the reduction over pairs
    const here = m.rows.map((l) => E.v(l.v));
    const step: Stmt[] = [S.decl(xv, t, E.load(a.buffer, direct ? direct.at(here, E.v(k2)) : rowAt(here, E.v(k2)), t)), ...col.stmts,
      S.decl(wv, t, col.value), S.assign(sum, E.binary('add', E.v(sum, t), E.binary(W === 2 ? 'dot2' : 'dot4', E.v(xv, t), E.v(wv, t))))];
    // the accumulator's own init (the bias), added after the pairs
    const tap = [S.decl(sum, t, E.i32(0)), S.for(k2, K2, step), ...m.pre, S.decl(m.acc.name, t, E.binary('add', m.acc.init, E.v(sum, t)))];
    // a pooling's taps: the window's loops around each accumulator again, its max after it
    let jBody = [...tap, ...m.post], outer = m.rows;
    if (m.win) {
      let w: Stmt[] = [...tap, m.win.combine];
      for (let d = m.win.loops.length - 1; d >= 0; d--) w = [{ ...m.win.loops[d]!, body: w }];
      jBody = [...m.win.jPre, m.win.mx, ...w, ...m.post];
      outer = m.rows.slice(0, m.rows.length - m.win.loops.length);
    }
    let nest: For = { ...m.j, body: jBody };
    for (let d = outer.length - 1; d >= 0; d--) nest = { ...outer[d]!, body: [nest] };
    const buffer: Buffer = direct?.q ?? { name: a.buffer, dtype: 'int32', size: slide ? dims[0]! * P1 : M * K2, kind: 'temp' }, cols: Buffer = { name: wb, dtype: 'int32', size: K2 * N, kind: 'temp' };
    const idx = k.body.indexOf(m.top);
    return { body: [...k.body.slice(0, idx), ...(packCols ? [packCols] : []), ...(hoist ? [hoist.nest] : []), packRows, nest, ...k.body.slice(idx + 1)],
      buffers: [...k.buffers, ...(hoist ? [hoist.q] : []), buffer, ...(once ? [cols] : [])] };
  },
});
