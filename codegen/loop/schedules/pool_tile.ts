// poolTile: the register tile of an int8 conv pooled before its requantize (lower.ts: a max reduce_window over a qconv,
// fuse.ts pooledQconv), once pairDot has made its taps' sums dot products:
// `for rows, pw, j { mx = MIN; for window { sum = 0; for k2 { sum += dot(x, w) }; acc = init + sum; mx = max(mx, acc) };
// post(mx) }` becomes, per tile of pr pooled positions (pw) x nr columns (j), the accumulators of every tap of their
// windows in a register array A[tap][p][c] (rows: the taps x pr, as the micro-kernel's, micro_kernel.ts), one column
// vector B per step shared by them all, then per pooled position and column the taps' maxima in window order and
// post once: one requantize per pooled output instead of one per conv output, and no conv output in memory. The
// same sums (i32 additions wrap: any order gives the same bits) and the same maxima in the same order: bit for bit.
import { E, type Expr, S, type Stmt } from '../ir.js';
import { type For, substExpr, varsOf } from './loops.js';
import { mapStmtExprs, stmtExprs } from '../visit.js';
import { outerChain } from './nests.js';
import { type KernelView, primitive } from './primitive.js';
import { instance } from './pair_dot.js';

export interface PoolTileArgs {
  /** the nest's top loop (its chain: rows, pooled positions, columns) */
  readonly loop: string;
  /** pooled positions per tile (divides the last row loop's extent) */
  readonly pr: number;
  /** columns per tile (divides the columns loop's extent) */
  readonly nr: number;
  /** the new loops' and arrays' names: tiles of pooled positions and of columns, init's rows and lanes, the step, the
   * column fill, per tap its pooled positions and lanes, the epilogue's pooled positions and lanes; A and B */
  readonly names: {
    readonly po: string; readonly jt: string; readonly i: string; readonly ci: string; readonly k2: string; readonly cb: string;
    readonly p: readonly string[]; readonly c: readonly string[]; readonly ep: string; readonly ec: string; readonly A: string; readonly B: string;
  };
}

type Decl = Extract<Stmt, { k: 'decl' }>;

/** The nest poolTile takes apart. */
export interface PooledNest {
  readonly top: For;
  readonly rows: readonly For[];
  readonly j: For;
  readonly mx: Decl;
  readonly window: readonly For[];
  /** per tap: the step's decls and its dot (`sum = sum + dot(x, w)`), the decls before the accumulator, the accumulator, the max */
  readonly k2: For;
  readonly sum: Decl;
  readonly pre: readonly Decl[];
  readonly acc: Decl;
  readonly combine: Extract<Stmt, { k: 'assign' }>;
  readonly post: readonly Stmt[];
}

/** The pooled nest at top-level loop v, or why not. */
export function pooledNest(body: readonly Stmt[], v: string): PooledNest | string {
  const top = body.find((s): s is For => s.k === 'for' && s.v === v);
  if (!top) return `no top-level loop '${v}'`;
  const chain = outerChain(top), j = chain[chain.length - 1]!, rows = chain.slice(0, -1);
  if (rows.length < 1) return 'no rows';
  const [mx, w0, ...post] = j.body;
  if (mx?.k !== 'decl' || w0?.k !== 'for') return 'not a max before a window';
  const window = outerChain(w0), tap = window[window.length - 1]!.body;
  const [sum, k2, ...rest] = tap;
  const combine = rest[rest.length - 1], acc = rest[rest.length - 2], pre = rest.slice(0, -2);
  if (sum?.k !== 'decl' || k2?.k !== 'for' || k2.body.some((s) => s.k === 'for') || acc?.k !== 'decl' || combine?.k !== 'assign' || combine.name !== mx.name) return 'the window is not of dot-product taps';
  if (!pre.every((s): s is Decl => s.k === 'decl')) return 'the tap computes more than decls after its sum';
  const u = k2.body[k2.body.length - 1];
  if (u?.k !== 'assign' || u.name !== sum.name || u.value.k !== 'binary' || u.value.op !== 'add' || u.value.b.k !== 'binary' || (u.value.b.op !== 'dot4' && u.value.b.op !== 'dot2')) return 'the step is not sum + dot';
  if (!k2.body.slice(0, -1).every((s) => s.k === 'decl')) return 'the step computes more than decls';
  if (post.some((s) => s.k !== 'decl' && s.k !== 'store')) return 'the epilogue is not straight-line';
  return { top, rows, j, mx, window, k2, sum: sum as Decl, pre, acc, combine, post };
}

export const poolTile = primitive<PoolTileArgs>({
  name: 'poolTile',
  check: (k, a) => {
    const n = pooledNest(k.body, a.loop);
    if (typeof n === 'string') return n;
    const pw = n.rows[n.rows.length - 1]!;
    if (pw.extent % a.pr || n.j.extent % a.nr) return `${a.pr} x ${a.nr} does not tile ${pw.extent} x ${n.j.extent}`;
    // the step's decls: the row operand's read no column, the column operand's no row (each computed once per tile)
    const u = n.k2.body[n.k2.body.length - 1] as Extract<Stmt, { k: 'assign' }>, dot = (u.value as Extract<Expr, { k: 'binary' }>).b as Extract<Expr, { k: 'binary' }>;
    if (dot.a.k !== 'var' || dot.b.k !== 'var') return 'the dot\'s operands are not step decls';
    const own = new Set([...n.rows, ...n.window].map((l) => l.v));
    const decls = n.k2.body.slice(0, -1) as Decl[];
    const side = (x: string) => { const d = decls.find((s) => s.name === x); return d ? [...varsOf(d.init)] : []; };
    const closure = (x: string): Set<string> => {
      const out = new Set<string>(), stack = [x];
      while (stack.length) for (const v of side(stack.pop()!)) if (!out.has(v)) { out.add(v); stack.push(v); }
      return out;
    };
    if (closure(dot.a.name).has(n.j.v) || [...closure(dot.b.name)].some((v) => own.has(v))) return 'the row operand reads the column or the column operand a row';
    return undefined;
  },
  apply: (k, a) => {
    const n = pooledNest(k.body, a.loop) as PooledNest, t = 'i32' as const, { names: nm, pr, nr } = a;
    const pw = n.rows[n.rows.length - 1]!, u = n.k2.body[n.k2.body.length - 1] as Extract<Stmt, { k: 'assign' }>;
    const dot = (u.value as Extract<Expr, { k: 'binary' }>).b as Extract<Expr, { k: 'binary' }>;
    const [xName, wName] = [(dot.a as { name: string }).name, (dot.b as { name: string }).name];
    const decls = n.k2.body.slice(0, -1) as Decl[], taps = tapsOf(n.window);
    const pwAt = (pe: Expr) => E.add(E.mul(E.v(nm.po), E.i32(pr)), pe), jAt = (ce: Expr) => E.add(E.mul(E.v(nm.jt), E.i32(nr)), ce);
    // A[tap][p][c]: a pooled position's columns contiguous, as its outputs are (widened to whole vectors after)
    const aAt = (ti: number, pe: Expr, ce: Expr) => E.add(E.add(E.i32(ti * pr * nr), E.mul(pe, E.i32(nr))), ce);
    const init = S.for(nm.i, taps.length * pr, [S.for(nm.ci, nr, [S.store(nm.A, E.add(E.mul(E.v(nm.i), E.i32(nr)), E.v(nm.ci)), E.i32(0))])]);
    // per step: the column operand of the tile's columns, then each tap's row operand times it
    const cols = instance(decls.filter((d) => d.name !== xName), E.v(wName, t), new Map([[n.j.v, jAt(E.v(nm.cb))], [n.k2.v, E.v(nm.k2)]]), k.fresh);
    const fill = S.for(nm.cb, nr, [...cols.stmts, S.store(nm.B, E.v(nm.cb), cols.value)]);
    const products = taps.map((m, ti) => {
      const pv = nm.p[ti]!, cv = nm.c[ti]!, x = k.fresh('x'), idx = aAt(ti, E.v(pv), E.v(cv));
      const r = instance(decls.filter((d) => d.name !== wName), E.v(xName, t), new Map([...m, [pw.v, pwAt(E.v(pv))], [n.k2.v, E.v(nm.k2)]]), k.fresh);
      return S.for(pv, pr, [...r.stmts, S.decl(x, t, r.value),
        S.for(cv, nr, [S.store(nm.A, idx, E.binary('add', E.load(nm.A, idx, t), E.binary(dot.op, E.v(x, t), E.load(nm.B, E.v(cv), t))))])]);
    });
    const step = S.for(nm.k2, n.k2.extent, [fill, ...products]);
    // the epilogue: per pooled position and column, the taps' maxima in window order (as decls), then post once
    const at = new Map<string, Expr>([[pw.v, pwAt(E.v(nm.ep))], [n.j.v, jAt(E.v(nm.ec))]]);
    const seq: Stmt[] = [n.mx];
    const sums = new Map<string, Expr>();
    taps.forEach((m, ti) => {
      sums.set(`${ti}`, E.load(nm.A, aAt(ti, E.v(nm.ep), E.v(nm.ec)), t));
      seq.push(...n.pre.map((d) => withTap(d, m)), withTap({ ...n.acc, init: substExpr(n.acc.init, new Map([[n.sum.name, sums.get(`${ti}`)!]])) }, m), withTap(n.combine, m));
    });
    const epilogue = S.for(nm.ep, pr, [S.for(nm.ec, nr, live(ssa([...seq, ...n.post], at, k.fresh)))]);
    const tile = S.for(nm.po, pw.extent / pr, [S.for(nm.jt, n.j.extent / nr, [S.local(nm.A, t, taps.length * pr * nr), S.local(nm.B, t, nr), init, step, epilogue])]);
    let nest: Stmt = tile;
    for (let d = n.rows.length - 2; d >= 0; d--) nest = { ...n.rows[d]!, body: [nest] };
    return { body: k.body.map((s) => (s === n.top ? nest : s)) };
  },
});

/** The window's taps in order (row-major over its loops), each as its loops' constant indices. */
export function tapsOf(window: readonly For[]): Map<string, Expr>[] {
  let taps = [new Map<string, Expr>()];
  for (const l of window) taps = taps.flatMap((m) => Array.from({ length: l.extent }, (_, i) => new Map([...m, [l.v, E.i32(i)]])));
  return taps;
}

/** A statement at one tap: the window's variables replaced by its constants. */
function withTap<S extends Stmt>(s: S, m: ReadonlyMap<string, Expr>): S {
  return mapStmtExprs(s, (e) => substExpr(e, m)) as S;
}

/** Straight-line decls and stores without the decls no store reads (a padded window's tap positions, where it has none). */
function live(stmts: readonly Stmt[]): Stmt[] {
  const used = new Set<string>(), out: Stmt[] = [];
  for (let i = stmts.length - 1; i >= 0; i--) {
    const s = stmts[i]!;
    if (s.k === 'decl' && !used.has(s.name)) continue;
    for (const e of stmtExprs(s)) for (const v of varsOf(e)) used.add(v);
    out.unshift(s);
  }
  return out;
}

/** Straight-line statements with every decl renamed fresh and every assign a fresh decl (values unchanged), at `at`. */
function ssa(stmts: readonly Stmt[], at: ReadonlyMap<string, Expr>, fresh: (p: string) => string): Stmt[] {
  const m = new Map(at);
  return stmts.map((s) => {
    if (s.k === 'decl' || s.k === 'assign') {
      const t = s.k === 'decl' ? s.t : (m.get(s.name) as Extract<Expr, { k: 'var' }>).t;
      const name = fresh(s.name.replace(/\d+$/, '')), init = substExpr(s.k === 'decl' ? s.init : s.value, m);
      m.set(s.name, E.v(name, t));
      return S.decl(name, t, init);
    }
    return mapStmtExprs(s, (e) => substExpr(e, m));
  });
}
