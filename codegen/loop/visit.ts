// The one traversal of loop IR: children of an expression, bottom-up rebuild, predicates, statement walks, a mutator.
import { E, type Expr, S, type Stmt, intern } from './ir.js';

export type For = Extract<Stmt, { k: 'for' }>;

/** The direct subexpressions of e, in order (index; operands; condition, then branches; counter, index). */
export function children(e: Expr): readonly Expr[] {
  switch (e.k) {
    case 'const': case 'var': return [];
    case 'load': return [e.idx];
    case 'unary': case 'cast': return [e.a];
    case 'binary': return [e.a, e.b];
    case 'select': return [e.c, e.a, e.b];
    case 'philox': return [e.counter, e.index];
  }
}

/** e with its children mapped by f: e itself when f changes none, else the interned expression (type and op kept). */
export function mapChildren(e: Expr, f: (c: Expr) => Expr): Expr {
  // literals in the E.* constructors' field order (one object shape per kind; a spread is slower)
  switch (e.k) {
    case 'const': case 'var': return e;
    case 'load': {
      const idx = f(e.idx);
      return idx === e.idx ? e : intern({ k: 'load', t: e.t, buf: e.buf, idx, quad: e.quad });
    }
    case 'unary': {
      const a = f(e.a);
      return a === e.a ? e : intern({ k: 'unary', t: e.t, op: e.op, a });
    }
    case 'cast': {
      const a = f(e.a);
      return a === e.a ? e : intern({ k: 'cast', t: e.t, a });
    }
    case 'binary': {
      const a = f(e.a), b = f(e.b);
      return a === e.a && b === e.b ? e : intern({ k: 'binary', t: e.t, op: e.op, a, b });
    }
    case 'select': {
      const c = f(e.c), a = f(e.a), b = f(e.b);
      return c === e.c && a === e.a && b === e.b ? e : intern({ k: 'select', t: e.t, c, a, b });
    }
    case 'philox': {
      const counter = f(e.counter), index = f(e.index);
      return counter === e.counter && index === e.index ? e : intern({ k: 'philox', t: e.t, seed: e.seed, counter, index });
    }
  }
}

/**
 * Rebuilds e bottom-up: each subexpression, its children already mapped, is replaced by f of it. Returns e itself
 * when f changes nothing. Each distinct subexpression is mapped once (f must depend only on the expression).
 */
export function mapExpr(e: Expr, f: (e: Expr) => Expr, memo = new Map<Expr, Expr>()): Expr {
  const go = (x: Expr): Expr => {
    let out = memo.get(x);
    if (out === undefined) memo.set(x, (out = f(mapChildren(x, go))));
    return out;
  };
  return go(e);
}

/** Whether pred holds for e or any subexpression (pre-order; stops at the first that does). */
export function someExpr(e: Expr, pred: (e: Expr) => boolean): boolean {
  if (pred(e)) return true;
  switch (e.k) {
    case 'const': case 'var': return false;
    case 'load': return someExpr(e.idx, pred);
    case 'unary': case 'cast': return someExpr(e.a, pred);
    case 'binary': return someExpr(e.a, pred) || someExpr(e.b, pred);
    case 'select': return someExpr(e.c, pred) || someExpr(e.a, pred) || someExpr(e.b, pred);
    case 'philox': return someExpr(e.counter, pred) || someExpr(e.index, pred);
  }
}

/** Calls f on e and every subexpression, pre-order, once per occurrence. */
export function forEachExpr(e: Expr, f: (e: Expr) => void): void {
  someExpr(e, (x) => { f(x); return false; });
}

const NO_VARS: ReadonlySet<string> = new Set();
const varSets = new WeakMap<Expr, ReadonlySet<string>>();

/** The variables e reads (computed once per expression: interned ones are shared; never change the set). */
export function exprVars(e: Expr): ReadonlySet<string> {
  if (e.k === 'const') return NO_VARS;
  let out = varSets.get(e);
  if (out !== undefined) return out;
  switch (e.k) {
    case 'var': out = new Set([e.name]); break;
    case 'load': out = exprVars(e.idx); break;
    case 'unary': case 'cast': out = exprVars(e.a); break;
    case 'binary': out = union(exprVars(e.a), exprVars(e.b)); break;
    case 'select': out = union(union(exprVars(e.c), exprVars(e.a)), exprVars(e.b)); break;
    case 'philox': out = union(exprVars(e.counter), exprVars(e.index)); break;
  }
  varSets.set(e, out);
  return out;
}

/** a ∪ b: one of them when it holds the other (sets are shared, never changed). */
function union(a: ReadonlySet<string>, b: ReadonlySet<string>): ReadonlySet<string> {
  if (a === b || includes(a, b)) return a;
  if (includes(b, a)) return b;
  return new Set([...a, ...b]);
}

function includes(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (b.size > a.size) return false;
  for (const v of b) if (!a.has(v)) return false;
  return true;
}

/** Whether expression e reads variable v. */
export function usesVar(e: Expr, v: string): boolean {
  return someExpr(e, (x) => x.k === 'var' && x.name === v);
}

/** The expressions a statement holds directly (not those of a loop's body). */
export function stmtExprs(s: Stmt): readonly Expr[] {
  switch (s.k) {
    case 'for': case 'local': case 'warpTree': return [];
    case 'if': return [s.cond];
    case 'arrive': return [s.idx];
    case 'decl': return [s.init];
    case 'assign': return [s.value];
    case 'store': return [s.idx, s.value];
  }
}

/** s with its own expressions mapped by f (not those of a loop's body): s itself when f changes none. */
export function mapStmtExprs(s: Stmt, f: (e: Expr) => Expr): Stmt {
  switch (s.k) {
    case 'for': case 'local': case 'warpTree': return s;
    case 'if': {
      const cond = f(s.cond);
      return cond === s.cond ? s : { ...s, cond };
    }
    case 'arrive': {
      const idx = f(s.idx);
      return idx === s.idx ? s : { ...s, idx };
    }
    case 'decl': {
      const init = f(s.init);
      return init === s.init ? s : { ...s, init };
    }
    case 'assign': {
      const value = f(s.value);
      return value === s.value ? s : { ...s, value };
    }
    case 'store': {
      const idx = f(s.idx), value = f(s.value);
      return idx === s.idx && value === s.value ? s : { ...s, idx, value };
    }
  }
}

/**
 * Calls f on every statement, pre-order, with the loops around it (outermost first); f returning false skips
 * a loop's or an if's body (an if is no loop: its body sees the same loops).
 */
export function walkStmts(body: readonly Stmt[], f: (s: Stmt, loops: readonly For[]) => boolean | void, loops: For[] = []): void {
  for (const s of body) {
    if (f(s, loops) === false) continue;
    if (s.k === 'if') walkStmts(s.body, f, loops);
    if (s.k !== 'for') continue;
    loops.push(s);
    walkStmts(s.body, f, loops);
    loops.pop();
  }
}

/** Calls f on every expression held by the statements, at any depth (each occurrence, pre-order). */
export function forEachStmtExpr(body: readonly Stmt[], f: (e: Expr) => void): void {
  walkStmts(body, (s) => { for (const e of stmtExprs(s)) forEachExpr(e, f); });
}

/**
 * Rebuilds statements bottom-up: a loop's or an if's body first, then f of the statement, which may return it,
 * another one, or a list spliced in its place. Returns `body` itself when nothing changed.
 */
export function mapStmts(body: readonly Stmt[], f: (s: Stmt) => Stmt | readonly Stmt[]): readonly Stmt[] {
  let out: Stmt[] | undefined;
  body.forEach((s, i) => {
    let t: Stmt | readonly Stmt[] = s;
    if (s.k === 'for' || s.k === 'if') {
      const inner = mapStmts(s.body, f);
      t = inner === s.body ? s : { ...s, body: inner };
    }
    t = f(t as Stmt);
    if (t !== s && !out) out = body.slice(0, i);
    if (out) Array.isArray(t) ? out.push(...(t as readonly Stmt[])) : out.push(t as Stmt);
  });
  return out ?? body;
}

/**
 * A rewriter of loop IR in the manner of TVM's StmtExprMutator: `rewrite` sees each expression with its children
 * already rewritten, and the statement hooks see each statement with its expressions and body still as they are.
 * Expressions are memoized by identity (interned: by structure); a mutator whose rewrite depends on the scope it
 * is in clears `memo` when the scope changes. Everything left unchanged is returned as the same object.
 */
export class ExprMutator {
  protected readonly memo = new Map<Expr, Expr>();

  /** One expression whose children are rewritten already; identity by default. */
  protected rewrite(e: Expr): Expr {
    return e;
  }

  /** e rewritten bottom-up. */
  expr(e: Expr): Expr {
    let out = this.memo.get(e);
    if (out === undefined) this.memo.set(e, (out = this.visit(e)));
    return out;
  }

  /** e rewritten, not memoized: children first, then `rewrite`. */
  protected visit(e: Expr): Expr {
    return this.rewrite(mapChildren(e, (c) => this.expr(c)));
  }

  /** A statement list rewritten (the same array when nothing changed). */
  stmts(body: readonly Stmt[]): readonly Stmt[] {
    let out: Stmt[] | undefined;
    body.forEach((s, i) => {
      const t = this.stmt(s);
      if (t !== s && !out) out = body.slice(0, i);
      if (out) Array.isArray(t) ? out.push(...(t as readonly Stmt[])) : out.push(t as Stmt);
    });
    return out ?? body;
  }

  /** One statement rewritten: by default its expressions and, for a loop or an if, its body. */
  stmt(s: Stmt): Stmt | readonly Stmt[] {
    switch (s.k) {
      case 'for': return this.loop(s);
      case 'decl': return this.decl(s);
      case 'if': {
        const cond = this.expr(s.cond), body = this.stmts(s.body);
        return cond === s.cond && body === s.body ? s : { ...s, cond, body };
      }
      default: return mapStmtExprs(s, (e) => this.expr(e));
    }
  }

  protected loop(s: For): Stmt | readonly Stmt[] {
    const body = this.stmts(s.body);
    return body === s.body ? s : { ...s, body };
  }

  protected decl(s: Extract<Stmt, { k: 'decl' }>): Stmt | readonly Stmt[] {
    return mapStmtExprs(s, (e) => this.expr(e));
  }
}

/** The variables a warp tree's combine reads: P[i] and P[i + s]. */
export const WARP_A = 'kiln_a', WARP_B = 'kiln_b';

/**
 * A warp tree's meaning as the level loops it stands for, serial (their iterations are independent): P[i] = P[i] op
 * P[i + s], or its combine with P[i] and P[i + s] for kiln_a and kiln_b; loop variables named by `name` (by default
 * `local.s`: no IR name has a dot).
 */
export function warpTreeLevels(s: Extract<Stmt, { k: 'warpTree' }>, name = (w: number) => `${s.local}.${w}`): Stmt[] {
  const out: Stmt[] = [];
  for (let w = s.size >> 1; w >= 1; w >>= 1) {
    const i = E.v(name(w)), a = E.load(s.local, i, s.t), b = E.load(s.local, E.add(i, E.i32(w)), s.t);
    const value = s.combine ? mapExpr(s.combine, (x) => (x.k === 'var' && x.name === WARP_A ? a : x.k === 'var' && x.name === WARP_B ? b : x)) : E.binary(s.op, a, b);
    out.push(S.for(name(w), w, [S.store(s.local, i, value)]));
  }
  return out;
}
