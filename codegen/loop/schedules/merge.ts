// merge: two adjacent sibling loops of the same extent become one (loop fusion of siblings: `for a {X}; for b {Y}`
// -> `for a {X; Y[b := a]}`), legal when neither assigns a scalar declared outside it and, for each array one
// writes and the other touches, every access of both to it stays in a slab of its own per iteration (s*a + inner
// parts spanning less than |s|: a producer's rows read by the consumer's same rows, a packed row block before the
// matmul nest reading it), so iteration a of Y sees what iteration a of X wrote there and nothing of any other. The merged body's decls that compute
// what an earlier decl of it computes (the same expression of unchanged values) are read from that one instead:
// two shared tiles filled from the same index arithmetic (a conv's input tile and its taps' conditions,
// gpu_matmul.ts) compute it once.
import { E, type Expr, type Stmt, loadedIndices } from '../ir.js';
import { type For, accesses, disjointIterations, fail, parentBody, replaceParent, substStmts, varsOf } from './loops.js';
import { primitive } from './primitive.js';
import { mapExpr, mapStmtExprs, mapStmts, someExpr } from '../visit.js';

export interface MergeArgs {
  /** two loops, the second directly after the first in one statement list */
  readonly loops: readonly [string, string];
}

type Decl = Extract<Stmt, { k: 'decl' }>;

function pair(body: readonly Stmt[], a: MergeArgs): [For, For, number] | string {
  const list = parentBody(body, a.loops[0]);
  const i = list?.findIndex((s) => s.k === 'for' && s.v === a.loops[0]) ?? -1;
  const x = list?.[i], y = list?.[i + 1];
  if (x?.k !== 'for' || y?.k !== 'for' || y.v !== a.loops[1]) return `loop '${a.loops[1]}' does not directly follow loop '${a.loops[0]}'`;
  if (x.kind !== 'serial' || y.kind !== 'serial') return 'only serial loops merge';
  if (x.extent !== y.extent) return `loops '${x.v}' and '${y.v}' have extents ${x.extent} and ${y.extent}`;
  return [x, y, i];
}

/** The statements with each quad load (ir.ts) as loads of its four elements, which accesses then lists each. */
function elementwise(stmts: readonly Stmt[]): readonly Stmt[] {
  const f = (e: Expr): Expr => mapExpr(e, (l) => (l.k === 'load' && l.quad ? loadedIndices(l).map((i) => E.load(l.buf, i, 'i32')).reduce((a, b) => E.binary('add', a, b)) : l));
  return mapStmts(stmts, (s) => mapStmtExprs(s, f));
}

/** Why an iteration of the merged loop may see another's accesses of the two loops, or undefined. */
function dependence(x: For, y: For): string | undefined {
  const ax = accesses(elementwise(x.body)), ay = accesses(elementwise(substStmts(y.body, new Map([[y.v, E.v(x.v)]]))));
  // decls of the bodies vary in ways an index's affine form does not show
  const inside = new Set([...ax.declared, ...ay.declared]);
  for (const [p, q] of [[ax, ay], [ay, ax]] as const) {
    const outer = [...p.assigned].find((n) => !p.declared.has(n));
    if (outer) return `a loop assigns '${outer}', declared outside it`;
    const written = new Set(p.arrays.filter((r) => r.write).map((r) => r.array));
    for (const array of new Set(q.arrays.filter((r) => written.has(r.array)).map((r) => r.array))) {
      const all = [...ax.arrays, ...ay.arrays].filter((r) => r.array === array);
      if (!disjointIterations(all, x.v, x.extent, inside)) return `both loops access '${array}', which one writes, beyond a slab per iteration`;
    }
  }
  return undefined;
}

/** The body with each decl that repeats an earlier decl's expression replaced by that decl (nothing assigned, loads of unwritten arrays). */
function dedupe(body: readonly Stmt[]): Stmt[] {
  const { arrays, assigned } = accesses(body);
  const written = new Set(arrays.filter((r) => r.write).map((r) => r.array));
  const stable = (d: Decl) => !assigned.has(d.name) && ![...varsOf(d.init)].some((v) => assigned.has(v)) && !someExpr(d.init, (e) => e.k === 'load' && written.has(e.buf));
  let out = [...body];
  for (let i = 0; i < out.length; i++) {
    const d = out[i]!;
    if (d.k !== 'decl' || !stable(d)) continue;
    const first = out.slice(0, i).find((x): x is Decl => x.k === 'decl' && x.init === d.init && x.t === d.t && stable(x));
    if (!first) continue;
    out = [...out.slice(0, i), ...substStmts(out.slice(i + 1), new Map<string, Expr>([[d.name, E.v(first.name, first.t)]]))];
    i--;
  }
  return out;
}

export const merge = primitive<MergeArgs>({
  name: 'merge',
  check: (k, a) => {
    const p = pair(k.body, a);
    return typeof p === 'string' ? p : dependence(p[0], p[1]);
  },
  apply: (k, a) => {
    const p = pair(k.body, a);
    if (typeof p === 'string') return fail(p);
    const [x, y, i] = p;
    const body = dedupe([...x.body, ...substStmts(y.body, new Map([[y.v, E.v(x.v)]]))]);
    return { body: replaceParent(k.body, x.v, (list) => [...list.slice(0, i), { ...x, body }, ...list.slice(i + 2)]) };
  },
});
