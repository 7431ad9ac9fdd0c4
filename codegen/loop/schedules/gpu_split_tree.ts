// Primitive: a declared reduction tree (codegen/loop/tree_reduce.ts) too wide for one block, over B blocks of T
// threads each and a second launch (split-K). Partial i = b + t*B of the tree's W = B*T runs on thread t of block b,
// so the first log2(T) levels (s >= B: partials i and i + s share their block) run in the block's shared memory;
// each block writes its partial b to a scratch buffer, and the next launch runs the last log2(B) levels over
// those B values on one thread per row, then the row's tail. The order is the declared one: bit for bit.
import { treeLevels } from '../../../ir/ops.js';
import { E, type Expr, S, type Stmt } from '../ir.js';
import { type Tree, treeParts, unitLaunch } from './gpu_reduce.js';
import { type For, readsOf, substStmts } from './loops.js';
import { mapExpr, someExpr } from '../visit.js';
import { primitive } from './primitive.js';

export interface SplitTreeArgs {
  /** a top-level launch (its outermost block loop) of one-thread blocks whose row holds one tree */
  readonly launch: string;
  /** threads per block of the first launch (the tree's width W is split into W / threads blocks) */
  readonly threads: number;
}

/** The decls (in order) that `body` reads, directly or through a later kept decl: a launch keeps only its own. */
function neededDecls(decls: readonly Stmt[], body: readonly Stmt[]): Stmt[] {
  const reads = readsOf(body), kept: Stmt[] = [];
  for (let i = decls.length - 1; i >= 0; i--) {
    const d = decls[i]!;
    if (d.k !== 'decl' || !reads.has(d.name)) continue;
    kept.unshift(d);
    for (const v of readsOf([d])) reads.add(v);
  }
  return kept;
}

/** The launch's block loops, outermost first, down to the unit thread loop's block. */
function blockChain(top: For, inner: For): For[] {
  const out: For[] = [top];
  for (let b = top; b !== inner; b = b.body[0] as For) out.push(b.body[0] as For);
  return out;
}

/** The one tree of the launch's row and the decls before it, or why not. */
function parse(k: { body: readonly Stmt[] }, a: SplitTreeArgs) {
  const top = k.body.find((s): s is For => s.k === 'for' && s.v === a.launch);
  if (!top) return `no top-level launch '${a.launch}'`;
  const u = unitLaunch(top);
  if (!u) return `launch '${a.launch}' is not of one-thread blocks`;
  const zero = new Map<string, Expr>([[u.thread.v, E.i32(0)]]);
  const tp = treeParts(substStmts(u.thread.body, zero));
  const trees = tp?.parts.filter((p) => p.k === 'tree') ?? [];
  if (!tp || trees.length !== 1) return `the row of launch '${a.launch}' does not hold exactly one tree`;
  const t = (trees[0] as { t: Tree }).t, W = t.local.size, T = a.threads;
  if (T < 2 || W % T !== 0 || W / T < 2) return `a tree of ${W} partials does not split into blocks of ${T} threads`;
  const level = t.levels[0]!, store = (level.k === 'for' ? level.body[0] : level) as Extract<Stmt, { k: 'store' }>;
  if (store.value.k !== 'binary') return 'the tree levels do not combine two partials';
  const P = t.local.name;
  // inside the partial loop the partials are read and written only at the partial's own index
  const own = (e: Expr): boolean => e.k !== 'load' || e.buf !== P || (e.idx.k === 'var' && e.idx.name === t.inner.v);
  const ok = (ss: readonly Stmt[]): boolean => ss.every((s) => {
    if (s.k === 'for') return ok(s.body);
    if (s.k === 'store' && s.buf === P && !(s.idx.k === 'var' && s.idx.name === t.inner.v)) return false;
    const es: Expr[] = s.k === 'decl' ? [s.init] : s.k === 'assign' || s.k === 'store' ? [s.value] : [];
    return es.every((e) => !someExpr(e, (x) => !own(x)));
  });
  if (!ok(t.inner.body)) return 'the partial loop reads a partial other than its own';
  return { top, u, decls: tp.parts.filter((p) => p.k === 'decl').map((p) => (p as { s: Stmt }).s), tree: t, tail: tp.tail, op: store.value.op };
}

export const splitTree = primitive<SplitTreeArgs>({
  name: 'splitTree',
  check: (k, a) => {
    const r = parse(k, a);
    return typeof r === 'string' ? r : undefined;
  },
  apply: (k, a) => {
    const { top, u, decls, tree, tail, op } = parse(k, a) as Exclude<ReturnType<typeof parse>, string>;
    const T = a.threads, W = tree.local.size, B = W / T, P = tree.local.name, t = tree.local.t;
    const dtype = t === 'f32' ? 'float32' : t === 'i32' ? 'int32' : 'bool';
    const chain = blockChain(top, u.block), rows = chain.reduce((n, b) => n * b.extent, 1);
    const G = k.fresh('split'), Sh = k.fresh('part'), gb = k.fresh('gb'), tv = k.fresh('tp'), ti = k.fresh('ti');
    const row = chain.reduce((acc: Expr, b) => E.add(E.mul(acc, E.i32(b.extent)), E.v(b.v)), E.i32(0));
    const bin = (x: Expr, y: Expr) => E.binary(op, x, y);
    const cell = (i: Expr) => E.load(Sh, i, t);
    // the partial loop with ki = gb + t*B, its partial P[ki] as the thread's own S[t]
    const ki = E.add(E.v(gb), E.mul(E.v(tv), E.i32(B)));
    const toShared = (ss: readonly Stmt[]): Stmt[] => ss.map((s): Stmt => {
      if (s.k === 'for') return { ...s, body: toShared(s.body) };
      const m = (e: Expr): Expr => mapExpr(e, (x) => (x.k === 'load' && x.buf === P ? cell(E.v(tv)) : x));
      if (s.k === 'store') return s.buf === P ? S.store(Sh, E.v(tv), m(s.value)) : { ...s, idx: m(s.idx), value: m(s.value) };
      if (s.k === 'decl') return { ...s, init: m(s.init) };
      if (s.k === 'assign') return { ...s, value: m(s.value) };
      return s;
    });
    const partial = toShared(substStmts(tree.inner.body, new Map([[tree.inner.v, ki]])));
    const init = tree.init.body[0] as Extract<Stmt, { k: 'store' }>;
    const first: Stmt[] = [
      { ...tree.local, name: Sh, size: T, scope: 'shared' },
      S.for(ti, T, [S.store(Sh, E.v(ti), init.value)], 'thread'),
      // each thread's partial: its elements in their order
      S.for(tv, T, [{ ...tree.outer, body: partial }], 'thread'),
    ];
    for (const s of treeLevels(T)) {
      const i = k.fresh('tl');
      first.push(S.for(i, s, [S.store(Sh, E.v(i), bin(cell(E.v(i)), cell(E.add(E.v(i), E.i32(s)))))], 'thread'));
    }
    first.push(S.for(k.fresh('tz'), 1, [S.store(G, E.add(E.mul(row, E.i32(B)), E.v(gb)), cell(E.i32(0)))], 'thread'));
    const launchA = rebuildChain(chain, [S.for(gb, B, [...neededDecls(decls, first), ...first], 'block')]);
    // the second launch: the last levels over the B block partials of the row, then the tail, on one thread
    const names = new Map<string, Expr>(), fresh2 = chain.map((b) => k.fresh(b.v.replace(/_?\d+$/, '')));
    chain.forEach((b, i) => names.set(b.v, E.v(fresh2[i]!)));
    const base = E.mul(row, E.i32(B)), at = (i: Expr) => E.load(G, E.add(base, i), t);
    const second: Stmt[] = [];
    for (const s of treeLevels(B)) {
      const i = k.fresh('tl');
      second.push(S.for(i, s, [S.store(G, E.add(base, E.v(i)), bin(at(E.v(i)), at(E.add(E.v(i), E.i32(s)))))]));
    }
    second.push(S.decl(tree.acc.name, t, at(E.i32(0))), ...tail);
    second.unshift(...neededDecls(decls, second));
    const launchB = rebuildChain(chain.map((b, i) => ({ ...b, v: fresh2[i]! })), [S.for(k.fresh('tz'), 1, substStmts(second, names), 'thread')]);
    const body = k.body.flatMap((s) => (s === top ? [launchA, launchB] : [s]));
    return { body, buffers: [...k.buffers, { name: G, dtype, size: rows * B, kind: 'temp' }] };
  },
});

/** The chain of block loops (outermost first) around `inner`. */
function rebuildChain(chain: readonly For[], inner: Stmt[]): Stmt {
  let body = inner;
  for (let i = chain.length - 1; i >= 0; i--) body = [{ ...chain[i]!, body }];
  return body[0]!;
}
