// merge: two adjacent sibling loops of the same extent become one (loop fusion of siblings: `for a {X}; for b {Y}`
// -> `for a {X; Y[b := a]}`), legal when neither touches an array the other writes and neither assigns a scalar
// declared outside it, so no iteration of one depends on any of the other. The merged body's decls that compute
// what an earlier decl of it computes (the same expression of unchanged values) are read from that one instead:
// two shared tiles filled from the same index arithmetic (a conv's input tile and its taps' conditions,
// gpu_matmul.ts) compute it once.
import { E, type Expr, type Stmt } from '../ir.js';
import { type For, accesses, fail, parentBody, replaceParent, substStmts, varsOf } from './loops.js';
import { primitive } from './primitive.js';
import { someExpr } from '../visit.js';

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

/** Why the two loops' iterations may depend on each other, or undefined. */
function dependence(x: For, y: For): string | undefined {
  const ax = accesses(x.body), ay = accesses(y.body);
  for (const [p, q] of [[ax, ay], [ay, ax]] as const) {
    const written = new Set(p.arrays.filter((r) => r.write).map((r) => r.array));
    const both = q.arrays.find((r) => written.has(r.array));
    if (both) return `both loops access '${both.array}', which one writes`;
    const outer = [...p.assigned].find((n) => !p.declared.has(n));
    if (outer) return `a loop assigns '${outer}', declared outside it`;
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
