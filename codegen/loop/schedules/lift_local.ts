// liftLocal: a local array declared in a loop's body moves out of the loop, one copy per iteration (storage
// expansion, as TVM's compute_at of a cache at an outer loop): `for q { local R[n]; ..R[e].. }` ->
// `local R'[Q*n]; for q { ..R'[q*n + e].. }`. Each iteration keeps its own elements, so values are unchanged;
// the loop can then be distributed with the array live across the parts (R rows of row caches at once).
import { E, type Expr, S, type Stmt } from '../ir.js';
import { loopOf, mapStmtExprs, replaceLoop, replaceParent } from './loops.js';
import { leadingLocals } from './cache_write.js';
import { primitive } from './primitive.js';

export interface LiftLocalArgs {
  readonly local: string;
  /** the loop whose body declares the array */
  readonly loop: string;
  /** where the array goes in the body holding the loop: just before it, or after that body's leading locals */
  readonly place: 'before' | 'start';
  /** the lifted array's name (default: the same) */
  readonly name?: string;
}

/** Stores into array `name` rewritten by f. */
function restoreIdx(stmts: readonly Stmt[], name: string, f: (s: Extract<Stmt, { k: 'store' }>) => Stmt): Stmt[] {
  return stmts.map((s) => (s.k === 'store' && s.buf === name ? f(s) : s.k === 'for' ? { ...s, body: restoreIdx(s.body, name, f) } : s));
}

export const liftLocal = primitive<LiftLocalArgs>({
  name: 'liftLocal',
  check: (k, a) => (loopOf(k.body, a.loop).body.some((s) => s.k === 'local' && s.name === a.local) ? undefined
    : `local array '${a.local}' is not declared directly in the body of loop '${a.loop}'`),
  apply: (k, a) => {
    const l = loopOf(k.body, a.loop);
    const decl = l.body.find((s) => s.k === 'local' && s.name === a.local) as Extract<Stmt, { k: 'local' }>;
    const at = (e: Expr) => E.add(E.mul(E.v(l.v), E.i32(decl.size)), e), name = a.name ?? a.local;
    const body = restoreIdx(mapStmtExprs(l.body.filter((s) => s !== decl), (e) => (e.k === 'load' && e.buf === a.local ? { ...e, buf: name, idx: at(e.idx) } : e)), a.local, (s) => ({ ...s, buf: name, idx: at(s.idx) }));
    const lifted = S.local(name, decl.t, decl.size * l.extent, decl.scope);
    return {
      body: replaceParent(replaceLoop(k.body, a.loop, (x) => [{ ...x, body }]), a.loop, (ss) => {
        const i = a.place === 'before' ? ss.findIndex((s) => s.k === 'for' && s.v === a.loop) : leadingLocals(ss);
        return [...ss.slice(0, i), lifted, ...ss.slice(i)];
      }),
    };
  },
});
