// pad: a loop of n iterations runs `to` (a tile's multiple), so tiles need not divide it. The iterations past n
// recompute iteration n-1's values (the loop variable clamped to n-1 in every index) and store nothing (each store
// into a buffer guarded by `if v < n`, where the variable is v itself); in a reduction loop the decls named in
// `zero` (the operands of `acc = acc + a*b`) are 0 past n, so each added step adds 0 * 0 = +0, which leaves the
// accumulator as it was bit for bit (starting at +0 it is never -0). Results are unchanged.
import { E, type Expr, type Stmt } from '../ir.js';
import { loopOf, replaceLoop, substExpr } from './loops.js';
import { primitive } from './primitive.js';
import { mapStmtExprs } from '../visit.js';

export interface PadArgs {
  readonly loop: string;
  /** the new extent, more than the loop's */
  readonly to: number;
  /** f32 decls directly in the loop's body that are 0 in the added iterations (a reduction's operands) */
  readonly zero?: readonly string[];
}

/** The body with v clamped in every expression, buffer stores guarded (v itself in them), zeroed decls. */
function padded(body: readonly Stmt[], v: string, n: number, buffers: ReadonlySet<string>, zero: ReadonlySet<string>): Stmt[] {
  const memo = new Map<Expr, Expr>(), m = new Map([[v, E.binary('min', E.v(v), E.i32(n - 1))]]);
  const inside = E.binary('lt', E.v(v), E.i32(n));
  const walk = (ss: readonly Stmt[]): Stmt[] => ss.map((s): Stmt => {
    if (s.k === 'store' && buffers.has(s.buf)) return { k: 'if', cond: inside, body: [s] };
    if (s.k === 'for' || s.k === 'if') {
      const t = mapStmtExprs(s, (e) => substExpr(e, m, memo)) as typeof s;
      return { ...t, body: walk(s.body) };
    }
    const t = mapStmtExprs(s, (e) => substExpr(e, m, memo));
    return t.k === 'decl' && zero.has(t.name) ? { ...t, init: E.select(inside, t.init, E.f32(0)) } : t;
  });
  return walk(body);
}

export const pad = primitive<PadArgs>({
  name: 'pad',
  check: (k, a) => {
    const l = loopOf(k.body, a.loop);
    if (l.kind !== 'serial') return `loop '${a.loop}' is ${l.kind}, not serial`;
    if (!Number.isInteger(a.to) || a.to <= l.extent) return `extent ${a.to} is not an integer above the loop's ${l.extent}`;
    for (const z of a.zero ?? []) {
      if (!l.body.some((s) => s.k === 'decl' && s.name === z && s.t === 'f32')) return `'${z}' is no f32 decl directly in loop '${a.loop}'`;
    }
    // an outer scalar assigned in the loop would see the added iterations: only a reduction's `acc = acc + a*b`
    // whose product is zeroed is allowed (and then nothing may be stored)
    const zero = new Set(a.zero ?? []), outer = new Set<string>(), bad: string[] = [];
    const visit = (ss: readonly Stmt[], declared: Set<string>): void => {
      for (const s of ss) {
        if (s.k === 'decl' || s.k === 'local') declared.add(s.name);
        if (s.k === 'for' || s.k === 'if') visit(s.body, new Set(declared));
        if (s.k === 'assign' && !declared.has(s.name)) {
          const u = s.value;
          const ok = u.k === 'binary' && u.op === 'add' && u.a.k === 'var' && u.a.name === s.name && u.b.k === 'binary' && u.b.op === 'mul'
            && [u.b.a, u.b.b].some((x) => x.k === 'var' && zero.has(x.name));
          if (ok) outer.add(s.name);
          else bad.push(s.name);
        }
      }
    };
    visit(l.body, new Set());
    if (bad.length) return `loop '${a.loop}' assigns '${bad[0]}', declared outside it, other than by adding a zeroed product`;
    if (outer.size && l.body.some(function stores(s: Stmt): boolean { return s.k === 'store' || ((s.k === 'for' || s.k === 'if') && s.body.some(stores)); })) {
      return `loop '${a.loop}' reduces into '${[...outer][0]}' and stores too`;
    }
    return undefined;
  },
  apply: (k, a) => {
    const buffers = new Set(k.buffers.map((b) => b.name));
    return { body: replaceLoop(k.body, a.loop, (l) => [{ ...l, extent: a.to, body: padded(l.body, l.v, l.extent, buffers, new Set(a.zero ?? [])) }]) };
  },
});
