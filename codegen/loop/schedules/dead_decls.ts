// dropDeadDecls: decls nothing reads go (a decl's value has no effect but its name: a load never writes). Staging a
// value in shared memory copies the decls it is computed from where the loop around it declared them
// (cache_shared.ts); once no other value reads a copy it is dead, and nvcc's -Werror all-warnings refuses an unused
// variable.
import type { Stmt } from '../ir.js';
import { forEachStmtExpr } from '../visit.js';
import { primitive } from './primitive.js';

/** Names read anywhere in the statements. */
function readNames(body: readonly Stmt[]): Set<string> {
  const out = new Set<string>();
  forEachStmtExpr(body, (e) => { if (e.k === 'var') out.add(e.name); });
  return out;
}

/** Whether some decl in the statements is read nowhere in `read`. */
const anyDead = (ss: readonly Stmt[], read: ReadonlySet<string>): boolean =>
  ss.some((s) => (s.k === 'decl' && !read.has(s.name)) || ((s.k === 'for' || s.k === 'if') && anyDead(s.body, read)));

/** The statements without decls none of them reads, to a fixed point (a dead decl's operands may die with it). */
function live(body: readonly Stmt[]): Stmt[] {
  let out = [...body];
  for (let read = readNames(out); anyDead(out, read); read = readNames(out)) {
    const drop = (ss: readonly Stmt[]): Stmt[] => ss.flatMap((s): Stmt[] => {
      if (s.k === 'decl' && !read.has(s.name)) return [];
      return s.k === 'for' || s.k === 'if' ? [{ ...s, body: drop(s.body) }] : [s];
    });
    out = drop(out);
  }
  return out;
}

/** Removes the decls nothing reads inside top-level loop `loop`. */
export const dropDeadDecls = primitive<{ readonly loop: string }>({
  name: 'dropDeadDecls',
  check: (k, a) => {
    const top = k.body.find((s) => s.k === 'for' && s.v === a.loop);
    if (!top) return `no top-level loop '${a.loop}'`;
    return anyDead([top], readNames([top])) ? undefined : `no dead decl in loop '${a.loop}'`;
  },
  apply: (k, a) => ({ body: k.body.flatMap((s) => (s.k === 'for' && s.v === a.loop ? live([s]) : [s])) }),
});
