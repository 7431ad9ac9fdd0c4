// Primitive and recipe: split-K. A matmul whose K sum is a declared tree of W partials (reduction_trees.ts; lowered
// by tree_reduce.ts: partial p sums k = p, p + W, ... in order, then the levels) becomes two nests: a batched matmul
// over the W partials (`for p < W { for rows { acc = 0; for k' < K/W { acc = acc + a*b at k = k'*W + p };
// G[p*rows + row] = acc } }`), which gpu_grid tiles in shared memory like any matmul (gpu_matmul.ts), then a nest
// that loads each output's W partials back into its register array and runs the declared levels and the row's tail
// (bias, activation, an optimizer's update). Each partial is the tree's partial, summed in the same order, and the
// levels are the declared ones: bit for bit with the interpreters. The recipe splits where the cost model
// (gpu.ts matmulPlan) finds the split cheaper than the tree's partials on a block's threads (both declare `tree: W`).
// A conv weight gradient's nest (its rows the taps kh, kw, ci and the channels co; a padded conv's term guarded,
// `P[p] = select(c, P[p] + a*b, P[p])`, which the partials keep) splits the same way where gpu.ts convPlan finds it
// cheaper; gpu_conv.ts flattens the partials' rows into M so they tile as one batched matmul over the partials.
import { MAX_SPLIT, convPlan, matmulPlan } from '../gpu.js';
import { E, type Expr, S, type Stmt } from '../ir.js';
import { someExpr } from '../visit.js';
import { type Tree, treeParts } from './gpu_reduce.js';
import type { Recipe } from './index.js';
import { type For, substExpr, substStmts } from './loops.js';
import { primitive } from './primitive.js';

export interface SplitKArgs {
  /** a top-level serial nest whose row (inside its perfectly nested loops) is one sum tree of products, then a tail */
  readonly nest: string;
}

/** The perfectly nested serial loops at the top of a nest. */
function chainOf(top: For): For[] {
  const out = [top];
  for (let l = top; l.body.length === 1 && l.body[0]!.k === 'for' && l.body[0]!.kind === 'serial';) out.push((l = l.body[0] as For));
  return out;
}

/** The nest's loops, tree and tail, or why it is no split-K nest. */
function parse(k: { body: readonly Stmt[] }, a: SplitKArgs) {
  const top = k.body.find((s): s is For => s.k === 'for' && s.v === a.nest);
  if (top?.kind !== 'serial') return `no top-level serial nest '${a.nest}'`;
  const chain = chainOf(top), tp = treeParts(chain[chain.length - 1]!.body);
  if (!tp || tp.parts.length !== 1 || tp.parts[0]!.k !== 'tree') return `the row of nest '${a.nest}' is not one tree and its tail`;
  const t = (tp.parts[0] as { t: Tree }).t, P = t.local.name, W = t.local.size;
  const init = t.init.body[0]!, update = t.inner.body[t.inner.body.length - 1]!;
  const zero = init.k === 'store' && init.value.k === 'const' && init.value.t === 'f32' && Object.is(init.value.v, 0);
  if (t.local.t !== 'f32' || !zero) return 'the tree is no float sum from +0';
  // the partial's update P[p] = P[p] + a*b (a and b decls of the step), everything before it decls reading no partial
  const own = (e: Expr) => e.k === 'load' && e.buf === P && e.idx.k === 'var' && e.idx.name === t.inner.v;
  const readsP = (e: Expr) => someExpr(e, (x) => x.k === 'load' && x.buf === P);
  if (update.k !== 'store' || !own(E.load(P, update.idx, 'f32'))) return 'the partials do not add a term';
  // a guarded update (a padded conv's tap: `select(c, P[p] + a*b, P[p])`) skips the term where c is false
  const v = update.value, guard = v.k === 'select' && v.c.k === 'var' && own(v.b) ? v.c : undefined;
  const sum = guard && v.k === 'select' ? v.a : v;
  if (sum.k !== 'binary' || sum.op !== 'add' || !own(sum.a)) return 'the partials do not add a term';
  const term = sum.b;
  if (term.k !== 'binary' || term.op !== 'mul' || term.a.k !== 'var' || term.b.k !== 'var') return 'the term is no product of two values';
  const step = t.inner.body.slice(0, -1);
  if (!step.every((s: Stmt) => s.k === 'decl' && !readsP(s.init))) return 'the partial loop holds more than decls and the update';
  if (t.levels.some((l: Stmt) => { const st = (l.k === 'for' ? l.body[0] : l) as Stmt; return st.k !== 'store' || st.value.k !== 'binary' || st.value.op !== 'add'; })) return 'the levels do not add';
  if (tp.tail.some((s) => someStmtReads(s, P))) return 'the tail reads the partials';
  return { top, chain, t, tail: tp.tail, W, K: W * t.outer.extent, step, term, guard };
}

/** Whether s (or a statement inside it) loads from P. */
function someStmtReads(s: Stmt, P: string): boolean {
  const reads = (e: Expr) => someExpr(e, (x) => x.k === 'load' && x.buf === P);
  switch (s.k) {
    case 'for': return s.body.some((x) => someStmtReads(x, P));
    case 'if': return reads(s.cond) || s.body.some((x) => someStmtReads(x, P));
    case 'decl': return reads(s.init);
    case 'assign': return reads(s.value);
    case 'store': return reads(s.idx) || reads(s.value);
    default: return false;
  }
}

/** The row-major index of the chain's loops (each variable renamed by `name`). */
const rowIndex = (chain: readonly For[], name: (v: string) => string): Expr => chain.reduce((acc: Expr, l) => E.add(E.mul(acc, E.i32(l.extent)), E.v(name(l.v))), E.i32(0));

export const splitK = primitive<SplitKArgs>({
  name: 'splitK',
  check: (k, a) => {
    const r = parse(k, a);
    return typeof r === 'string' ? r : undefined;
  },
  apply: (k, a) => {
    const { top, chain, t, tail, W, step, term, guard } = parse(k, a) as Exclude<ReturnType<typeof parse>, string>;
    const rows = chain.reduce((n, l) => n * l.extent, 1), G = k.fresh('splitk'), p = k.fresh('p'), acc = k.fresh('acc');
    // the partials' matmul: the chain's loops under fresh names inside the loop over partials
    const names = new Map(chain.map((l) => [l.v, k.fresh(l.v.replace(/_?\d+$/, ''))]));
    const subst = new Map<string, Expr>([[t.inner.v, E.v(p)], ...[...names].map(([v, n]) => [v, E.v(n)] as const)]);
    const added = E.binary('add', E.v(acc, 'f32'), substExpr(term, subst));
    const kStep = [...substStmts(step, subst), S.assign(acc, guard ? E.select(guard, added, E.v(acc, 'f32')) : added)];
    let partials: Stmt[] = [S.decl(acc, 'f32', E.f32(0)), S.for(t.outer.v, t.outer.extent, kStep), S.store(G, E.add(E.mul(E.v(p), E.i32(rows)), rowIndex(chain, (v) => names.get(v)!)), E.v(acc, 'f32'))];
    for (let i = chain.length - 1; i >= 0; i--) partials = [S.for(names.get(chain[i]!.v)!, chain[i]!.extent, partials)];
    const nestA = S.for(p, W, partials);
    // the combine: each output's partials back into its register array, then the declared levels and the tail; past
    // MAX_SPLIT partials a declared tree of W/2 (lowering's form: gpu_reduce.ts runs it on a block's threads) whose
    // partial i sums G's partials i and i + W/2 from +0: the first level, exactly, as a partial is never -0 (it sums
    // from +0, and x + y is -0 only where both are), then the tree's other levels
    const tl = k.fresh('tl'), x = rowIndex(chain, (v) => v), at = (i: Expr) => E.load(G, E.add(E.mul(i, E.i32(rows)), x), 'f32');
    const P = t.local.name, half = W / 2, o = k.fresh('o'), cell = E.load(P, E.v(tl), 'f32');
    const init = (i: string) => S.for(i, half, [S.store(P, E.v(i), E.f32(0))]);
    const gather = W <= MAX_SPLIT ? [t.local, S.for(tl, W, [S.store(P, E.v(tl), at(E.v(tl)))]), ...t.levels] : [
      { ...t.local, size: half }, init(k.fresh('ti')), S.for(o, 2, [S.for(tl, half, [S.store(P, E.v(tl), E.binary('add', cell, at(E.add(E.mul(E.v(o), E.i32(half)), E.v(tl)))))])]),
      ...t.levels.slice(1),
    ];
    let combine: Stmt[] = [...gather, t.acc, ...tail];
    for (let i = chain.length - 1; i >= 0; i--) combine = [{ ...chain[i]!, body: combine }];
    const body = k.body.flatMap((s) => (s === top ? [nestA, combine[0]!] : [s]));
    return { body, buffers: [...k.buffers, { name: G, dtype: 'float32', size: W * rows, kind: 'temp' }] };
  },
});

/** Split-K on every nest it fits where the cost model prefers it to the tree on a block's threads. */
export const gpuSplitK: Recipe = {
  name: 'gpu-split-k',
  run: (s, caps) => {
    const g = caps.gpu;
    if (!g) return;
    for (const top of [...s.body]) {
      if (top.k !== 'for' || top.kind !== 'serial' || s.check(splitK, { nest: top.v }) !== undefined) continue;
      const r = parse(s, { nest: top.v }) as Exclude<ReturnType<typeof parse>, string>;
      if (r.chain.length < 2) continue;
      const [M, N] = r.chain.slice(-2).map((l) => l.extent) as [number, number];
      const batch = r.chain.slice(0, -2).reduce((n, l) => n * l.extent, 1);
      const plan = matmulPlan(M, N, r.K, batch, g);
      // a conv's nest (its output positions, or a weight gradient's taps, flattened into M: gpu_conv.ts) as
      // reduction_trees.ts planned it
      const conv = s.program.kernels[s.kernel]!.ops.includes('conv') && (r.guard !== undefined || r.chain.length > 2) ? convPlan(M * batch, N, r.K, r.guard !== undefined, g) : undefined;
      if ((plan.split && plan.W === r.W) || (conv?.split && conv.W === r.W)) s.apply(splitK, { nest: top.v });
    }
  },
};
