// warpTree: a declared tree's last levels, run as thread loops on a block (gpu_reduce.ts, gpu_split_tree.ts: `for i
// in 0..s thread { P[i] = P[i] op P[i + s] }` for s = 16, 8, ..., 1, a barrier after each), become one warp tree
// statement: the block's first warp combines them in registers with __shfl_down_sync, lane i adding lane i + s's
// value at level s, which is the same combination in the same order (bit for bit), with one barrier instead of five.
// Sums, products, maxima and minima (legalize gives the last two their select form). P[1..n) are left unspecified,
// so the block may read only P[0] afterwards.
import { E, type Expr, type Stmt } from '../ir.js';
import { blockThreads } from '../analysis.js';
import { type For, affineOf } from './loops.js';
import { primitive } from './primitive.js';
import { walkStmts, forEachExpr, stmtExprs } from '../visit.js';

export interface WarpTreeArgs {
  /** a top-level launch (its outermost block loop) */
  readonly launch: string;
}

type Level = { P: string; t: 'f32' | 'i32'; op: 'add' | 'mul' | 'max' | 'min'; s: number };

/** The tree level a statement is (`for i in 0..s thread { P[i] = P[i] op P[i + s] }`), or undefined. */
function levelOf(x: Stmt, shared: ReadonlyMap<string, 'f32' | 'i32'>): Level | undefined {
  if (x.k !== 'for' || x.kind !== 'thread' || x.body.length !== 1) return undefined;
  const st = x.body[0]!, s = x.extent;
  if (st.k !== 'store' || st.value.k !== 'binary' || !['add', 'mul', 'max', 'min'].includes(st.value.op)) return undefined;
  const t = shared.get(st.buf), { a, b } = st.value;
  // the element: the loop's own (or 0 for the unit loop of the last level), and the one s after it
  const at = (e: Expr, c: number) => {
    const f = affineOf(e);
    return !!f && f.c === c && (f.terms.size === 0 ? s === 1 : f.terms.size === 1 && f.terms.get(x.v) === 1);
  };
  if (!t || a.k !== 'load' || b.k !== 'load' || a.buf !== st.buf || b.buf !== st.buf || !at(st.idx, 0) || a.idx !== st.idx || !at(b.idx, s)) return undefined;
  if (affineOf(st.idx)!.terms.size !== affineOf(b.idx)!.terms.size) return undefined;
  return { P: st.buf, t, op: st.value.op as Level['op'], s };
}

/** Loads of P in the statements at an index other than the constant 0, or stores into P. */
function touchesRest(stmts: readonly Stmt[], P: string): boolean {
  let bad = false;
  walkStmts(stmts, (x) => {
    if (x.k === 'store' && x.buf === P) bad = true;
    if (x.k === 'warpTree' && x.local === P) bad = true;
    for (const e of stmtExprs(x)) forEachExpr(e, (y: Expr) => { if (y.k === 'load' && y.buf === P && !(y.idx.k === 'const' && y.idx.v === 0)) bad = true; });
  });
  return bad;
}

/** Each run of a tree's levels 16 (or fewer) down to 1 in the statement list, as [start, count, level]. */
function runs(body: readonly Stmt[], shared: ReadonlyMap<string, 'f32' | 'i32'>, threads: number): [number, number, Level][] {
  const out: [number, number, Level][] = [];
  for (let i = 0; i < body.length; i++) {
    const first = levelOf(body[i]!, shared);
    if (!first || first.s > 16 || 2 * first.s > threads) continue;
    let n = 1;
    for (let s = first.s >> 1; s >= 1; s >>= 1, n++) {
      const y = body[i + n], l = y && levelOf(y, shared);
      if (!l || l.s !== s || l.P !== first.P || l.op !== first.op) break;
    }
    if (2 ** n !== 2 * first.s || touchesRest(body.slice(i + n), first.P)) continue;
    out.push([i, n, first]);
    i += n - 1;
  }
  return out;
}

/** The launch's innermost block loop. */
function innerBlock(top: For): For {
  let b = top;
  while (b.body.length === 1 && b.body[0]!.k === 'for' && b.body[0]!.kind === 'block') b = b.body[0] as For;
  return b;
}

function sharedArrays(body: readonly Stmt[]): Map<string, 'f32' | 'i32'> {
  const out = new Map<string, 'f32' | 'i32'>();
  for (const x of body) if (x.k === 'local' && x.scope === 'shared' && (x.t === 'f32' || x.t === 'i32')) out.set(x.name, x.t);
  return out;
}

/** The block's statements with each run of levels one warp tree (statement lists outside thread loops searched). */
function rewrite(body: readonly Stmt[], shared: ReadonlyMap<string, 'f32' | 'i32'>, threads: number): Stmt[] {
  const mine = runs(body, shared, threads);
  const out: Stmt[] = [];
  for (let i = 0; i < body.length; i++) {
    const r = mine.find(([at]) => at === i);
    if (r) {
      const [, n, l] = r;
      out.push({ k: 'warpTree', local: l.P, t: l.t, op: l.op, size: 2 * l.s });
      i += n - 1;
      continue;
    }
    const x = body[i]!;
    out.push(x.k === 'if' || (x.k === 'for' && x.kind !== 'thread') ? { ...x, body: rewrite(x.body, shared, threads) } : x);
  }
  return out;
}

function found(top: For): number {
  const b = innerBlock(top), shared = sharedArrays(b.body), threads = blockThreads(b.body);
  let n = 0;
  const visit = (ss: readonly Stmt[]): void => {
    n += runs(ss, shared, threads).length;
    for (const x of ss) if (x.k === 'if' || (x.k === 'for' && x.kind !== 'thread')) visit(x.body);
  };
  visit(b.body);
  return n;
}

export const warpTree = primitive<WarpTreeArgs>({
  name: 'warpTree',
  check: (k, a) => {
    const top = k.body.find((x): x is For => x.k === 'for' && x.v === a.launch);
    if (!top || top.kind !== 'block') return `no top-level launch '${a.launch}'`;
    return found(top) ? undefined : `launch '${a.launch}' has no tree levels 16 to 1 on a shared array whose other elements are not read after`;
  },
  apply: (k, a) => ({
    body: k.body.map((x) => {
      if (x.k !== 'for' || x.v !== a.launch) return x;
      const b = innerBlock(x), shared = sharedArrays(b.body), threads = blockThreads(b.body);
      const swap = (l: For): For => (l === b ? { ...l, body: rewrite(l.body, shared, threads) } : { ...l, body: l.body.map((y) => (y.k === 'for' ? swap(y) : y)) });
      return swap(x);
    }),
  }),
});
