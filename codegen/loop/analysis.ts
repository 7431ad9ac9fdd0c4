// Facts about loop-IR statements that the scheduler and the renderers share: variable uses, work, free variables.
import type { Stmt } from './ir.js';
import { forEachExpr, stmtExprs, walkStmts } from './visit.js';

// the expression helpers moved to visit.ts; kept here under their old names for existing imports
export { children as operands, usesVar } from './visit.js';

/** Scalar operations executed by one run of the statements (loop extents times body sizes). */
export function work(stmts: readonly Stmt[]): number {
  let w = 0;
  for (const s of stmts) w += s.k === 'for' ? s.extent * Math.max(1, work(s.body)) : 1;
  return w;
}

/** Scalar variables the statements read or assign without declaring them (loop variables and decls of outer scopes). */
export function freeVars(stmts: readonly Stmt[], out = new Set<string>(), bound = new Set<string>()): Set<string> {
  for (const s of stmts) {
    if (s.k === 'for') { freeVars(s.body, out, new Set(bound).add(s.v)); continue; }
    for (const e of stmtExprs(s)) forEachExpr(e, (x) => { if (x.k === 'var' && !bound.has(x.name)) out.add(x.name); });
    if (s.k === 'decl' || s.k === 'local') bound.add(s.name);
    else if (s.k === 'assign' && !bound.has(s.name)) out.add(s.name);
  }
  return out;
}

/** Names assigned anywhere in the statements. */
export function assigned(stmts: readonly Stmt[], out = new Set<string>()): Set<string> {
  walkStmts(stmts, (s) => { if (s.k === 'assign') out.add(s.name); });
  return out;
}

/** Names of the buffers and local arrays the statements load from or store into. */
function arrays(stmts: readonly Stmt[], out = new Set<string>()): Set<string> {
  walkStmts(stmts, (s) => {
    if (s.k === 'store') out.add(s.buf);
    for (const e of stmtExprs(s)) forEachExpr(e, (x) => { if (x.k === 'load') out.add(x.buf); });
  });
  return out;
}

/**
 * Top-level decls of a kernel body whose value is final where declared (never assigned, computed only from
 * such decls and loads of buffers): a copy of them may run anywhere after, e.g. in each chunk of a parallel loop.
 */
export function pureDecls(body: readonly Stmt[]): Map<string, Stmt> {
  const changed = assigned(body);
  const locals = new Set(body.flatMap((s) => (s.k === 'local' ? [s.name] : [])));
  const pure = new Map<string, Stmt>();
  for (const st of body) {
    if (st.k !== 'decl' || changed.has(st.name) || ![...freeVars([st])].every((v) => pure.has(v))) continue;
    if (![...arrays([st])].some((a) => locals.has(a))) pure.set(st.name, st);
  }
  return pure;
}

/**
 * Whether the iterations of a top-level loop are independent, so they may run in any order or at once: the
 * body assigns no outer variable, reads only `pure` outer variables, and touches no local array of an outer scope.
 * (Stores into buffers are independent because lowering writes one element per outer index.)
 */
export function independentIterations(loop: Extract<Stmt, { k: 'for' }>, pure: ReadonlyMap<string, Stmt>, outerLocals: ReadonlySet<string>): boolean {
  const free = freeVars(loop.body, new Set(), new Set([loop.v]));
  if (![...free].every((v) => pure.has(v))) return false;
  return ![...arrays(loop.body)].some((b) => outerLocals.has(b));
}

/** Whether cost key a is less than b, comparing element by element (cost models rank candidates by such keys). */
export function lexLess(a: readonly number[], b: readonly number[]): boolean {
  const i = a.findIndex((v, j) => v !== b[j]);
  return i >= 0 && a[i]! < b[i]!;
}

/** Largest extent of the thread loops in a GPU block's body (1 when it has none): the block's thread count. */
export function blockThreads(body: readonly Stmt[]): number {
  let n = 1;
  walkStmts(body, (s) => {
    if (s.k !== 'for' || s.kind !== 'thread') return;
    n = Math.max(n, s.extent);
    return false;
  });
  return n;
}
