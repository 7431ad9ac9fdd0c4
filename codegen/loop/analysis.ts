// Facts about loop-IR statements that the scheduler and the renderers share: variable uses, work, free variables.
import { type Expr, type Stmt, loadedIndices } from './ir.js';
import { type Access, affineOf, disjointIterations, key, separates } from './schedules/loops.js';
import { exprVars, forEachExpr, mapExpr, stmtExprs, walkStmts } from './visit.js';

// the expression helpers moved to visit.ts; kept here under their old names for existing imports
export { children as operands, usesVar } from './visit.js';

/** Scalar operations executed by one run of the statements (loop extents times body sizes). */
export function work(stmts: readonly Stmt[]): number {
  let w = 0;
  for (const s of stmts) w += s.k === 'for' ? s.extent * Math.max(1, work(s.body)) : s.k === 'if' ? 1 + work(s.body) : 1;
  return w;
}

/** Scalar variables the statements read or assign without declaring them (loop variables and decls of outer scopes). */
export function freeVars(stmts: readonly Stmt[], out = new Set<string>(), bound = new Set<string>()): Set<string> {
  for (const s of stmts) {
    if (s.k === 'for') { freeVars(s.body, out, new Set(bound).add(s.v)); continue; }
    if (s.k === 'if') freeVars(s.body, out, new Set(bound)); // its decls are its own; its condition is read below
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
    if (s.k === 'arrive') out.add(s.counter).add(s.local);
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
 * body assigns no outer variable, reads only `pure` outer variables, touches no local array of an outer scope, and
 * no two iterations touch one element of an array it stores into where one of them writes it (`writesApart`).
 */
export function independentIterations(loop: Extract<Stmt, { k: 'for' }>, pure: ReadonlyMap<string, Stmt>, outerLocals: ReadonlySet<string>): boolean {
  const free = freeVars(loop.body, new Set(), new Set([loop.v]));
  if (![...free].every((v) => pure.has(v))) return false;
  if ([...arrays(loop.body)].some((b) => outerLocals.has(b))) return false;
  return loop.extent === 1 || writesApart(loop);
}

/**
 * For each array the loop's body stores into (and does not declare), indices read through the body's decls: every
 * store index varies with the loop (else all iterations store one element); where the indices are affine, the
 * iterations provably touch different elements (one index injective in the loop, or slabs s*v + inner parts
 * spanning less than |s|: no iteration reads what another writes). An index that is not affine (a reshape's
 * decoded digits) is trusted to be lowering's one element per outer index, if every access of the array varies with
 * the loop.
 */
function writesApart(loop: Extract<Stmt, { k: 'for' }>): boolean {
  const changed = assigned(loop.body), declared = new Set<string>(), inner = new Map<string, number>();
  const acc: Access[] = [];
  // decls by scope (sibling nests may reuse a decl's name), each held inlined; an assigned one stays a variable
  const visit = (ss: readonly Stmt[], around: ReadonlyMap<string, number>, outer: ReadonlyMap<string, Expr>): void => {
    const env = new Map(outer);
    const inline = (e: Expr): Expr => mapExpr(e, (x) => (x.k === 'var' ? env.get(x.name) ?? x : x));
    for (const s of ss) {
      for (const e of stmtExprs(s)) forEachExpr(e, (x) => { if (x.k === 'load') for (const i of loadedIndices(x)) acc.push({ array: x.buf, idx: inline(i), write: false, inner: around, guards: [] }); });
      if (s.k === 'store') acc.push({ array: s.buf, idx: inline(s.idx), write: true, inner: around, guards: [] });
      if (s.k === 'arrive') acc.push({ array: s.counter, idx: inline(s.idx), write: true, inner: around, guards: [] });
      if (s.k === 'decl' || s.k === 'local') declared.add(s.name);
      if (s.k === 'decl' && !changed.has(s.name)) env.set(s.name, inline(s.init));
      if (s.k === 'for') {
        inner.set(s.v, s.extent);
        visit(s.body, new Map([...around, [s.v, s.extent]]), env);
      }
      if (s.k === 'if') visit(s.body, around, env);
    }
  };
  visit(loop.body, new Map(), new Map());
  const varies = (e: Expr) => exprVars(e).has(loop.v);
  for (const array of new Set(acc.filter((a) => a.write && !declared.has(a.array)).map((a) => a.array))) {
    const mine = acc.filter((a) => a.array === array);
    if (!mine.every((a) => !a.write || varies(a.idx))) return false;
    const affine = mine.every((a) => affineOf(a.idx) && ![...exprVars(a.idx)].some((v) => changed.has(v)));
    if (!affine) {
      if (!mine.every((a) => varies(a.idx))) return false;
      continue;
    }
    const one = mine.every((a) => key(a.idx) === key(mine[0]!.idx));
    if (!(one && separates(mine[0]!.idx, new Map([[loop.v, loop.extent]]), inner)) && !disjointIterations(mine, loop.v, loop.extent, new Set())) return false;
  }
  return true;
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
