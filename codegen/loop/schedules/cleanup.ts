// Cleanup steps after the recipes: serial loops of one iteration go (their variable is 0), and index arithmetic
// is simplified again (splits leave `(o*4 + m)*K + k`).
import { type Buffer, E, type Expr, type Stmt } from '../ir.js';
import { simplify } from '../simplify.js';
import { mapExpr, substExpr } from './loops.js';
import { mapStmtExprs } from '../visit.js';
import { primitive } from './primitive.js';

/**
 * The statements without serial loops of one iteration, whose variables (`zeros`: those of the enclosing ones)
 * become 0 in every expression inside them; unchanged statements are kept as the same objects.
 */
function drop(body: readonly Stmt[], zeros: ReadonlyMap<string, Expr> = new Map()): Stmt[] {
  const memo = new Map<Expr, Expr>();
  return body.flatMap((s): Stmt[] => {
    if (s.k === 'if') {
      const t = zeros.size ? mapStmtExprs(s, (e) => substExpr(e, zeros, memo)) as typeof s : s, inner = drop(s.body, zeros);
      return [t === s && inner.length === s.body.length && inner.every((x, i) => x === s.body[i]) ? s : { ...t, body: inner }];
    }
    if (s.k !== 'for') return [zeros.size ? mapStmtExprs(s, (e) => substExpr(e, zeros, memo)) : s];
    if (s.extent === 1 && s.kind === 'serial') return drop(s.body, new Map(zeros).set(s.v, E.i32(0)));
    const inner = drop(s.body, zeros);
    return [inner.length === s.body.length && inner.every((x, i) => x === s.body[i]) ? s : { ...s, body: inner }];
  });
}

const hasUnit = (body: readonly Stmt[]): boolean => body.some((s) => (s.k === 'for' && ((s.extent === 1 && s.kind === 'serial') || hasUnit(s.body))) || (s.k === 'if' && hasUnit(s.body)));

/** The top-level statements dropUnitLoops works in: all, or the top-level loop `loop` alone. */
const within = (body: readonly Stmt[], loop: string | undefined) => (loop === undefined ? body : body.filter((s) => s.k === 'for' && s.v === loop));

/** Removes serial loops of one iteration (inside top-level loop `loop` only, when given). */
export const dropUnitLoops = primitive<{ readonly loop?: string }>({
  name: 'dropUnitLoops',
  check: (k, a) => (hasUnit(within(k.body, a.loop)) ? undefined : `no serial loop of one iteration${a.loop === undefined ? '' : ` in top-level loop '${a.loop}'`}`),
  apply: (k, a) => ({ body: a.loop === undefined ? drop(k.body) : k.body.flatMap((s) => (s.k === 'for' && s.v === a.loop ? drop([s]) : [s])) }),
});

/** Simplifies the kernel's index arithmetic (simplify.ts), or that of top-level loop `loop` alone when given. */
export const simplifyIndices = primitive<{ readonly loop?: string }>({
  name: 'simplify',
  check: (k, a) => (a.loop === undefined || within(k.body, a.loop).length ? undefined : `no top-level loop '${a.loop}'`),
  apply: (k, a) => {
    const simplified = (body: readonly Stmt[]) => {
      const p = simplify({ name: 'k', buffers: k.buffers, kernels: [{ name: 'k', ops: [], body }], inputs: [], params: [], outputs: [], updates: [] });
      return [...p.kernels[0]!.body];
    };
    return { body: a.loop === undefined ? simplified(k.body) : k.body.flatMap((s) => (s.k === 'for' && s.v === a.loop ? simplified([s]) : [s])) };
  },
});

/** Every declared name becomes its prefix (letters) and a counter in print order, as lowering numbers names. */
function renumbered(body: readonly Stmt[], buffers: readonly Buffer[]): Stmt[] {
  // each name declared once and no buffer's: one renaming for the whole kernel, each distinct expression once
  const names = new Map<string, string>();
  let unique = true;
  const number = (ss: readonly Stmt[]): void => {
    for (const s of ss) {
      if (s.k === 'if') number(s.body);
      const name = s.k === 'for' ? s.v : s.k === 'decl' || s.k === 'local' ? s.name : undefined;
      if (name === undefined) continue;
      if (names.has(name)) unique = false;
      names.set(name, `${name.replace(/\d+$/, '')}${names.size}`);
      if (s.k === 'for') number(s.body);
    }
  };
  number(body);
  if (!unique || buffers.some((b) => names.has(b.name))) return renumberedScoped(body);
  const to = (name: string) => names.get(name) ?? name;
  // renamed expressions by literal, not interned (every one is new, and interning them all costs a third of the
  // step); the memo still gives each distinct expression one copy, so the kernel's sharing is kept
  const memo = new Map<Expr, Expr>();
  const ex = (e: Expr): Expr => {
    if (e.k === 'const') return e;
    let out = memo.get(e);
    if (out === undefined) memo.set(e, (out = e.k === 'var' ? { k: 'var', t: e.t, name: to(e.name) } : e.k === 'load' ? { k: 'load', t: e.t, buf: to(e.buf), idx: ex(e.idx), quad: e.quad } : rebuilt(e, ex)));
    return out;
  };
  const visit = (ss: readonly Stmt[]): Stmt[] => ss.map((s): Stmt => {
    switch (s.k) {
      case 'for': return { ...s, v: to(s.v), body: visit(s.body) };
      case 'if': return { ...s, cond: ex(s.cond), body: visit(s.body) };
      case 'decl': return { ...s, name: to(s.name), init: ex(s.init) };
      case 'local': return { ...s, name: to(s.name) };
      case 'assign': return { ...s, name: to(s.name), value: ex(s.value) };
      case 'store': return { ...s, buf: to(s.buf), idx: ex(s.idx), value: ex(s.value) };
      case 'warpTree': return { ...s, local: to(s.local) };
      case 'arrive': return { ...s, counter: to(s.counter), idx: ex(s.idx), local: to(s.local) };
    }
  });
  return visit(body);
}

/** e with its children mapped by f, built by literal (not interned). */
function rebuilt(e: Expr, f: (c: Expr) => Expr): Expr {
  switch (e.k) {
    case 'const': case 'var': return e;
    case 'load': return { k: 'load', t: e.t, buf: e.buf, idx: f(e.idx), quad: e.quad };
    case 'unary': return { k: 'unary', t: e.t, op: e.op, a: f(e.a) };
    case 'cast': return { k: 'cast', t: e.t, a: f(e.a) };
    case 'binary': return { k: 'binary', t: e.t, op: e.op, a: f(e.a), b: f(e.b) };
    case 'select': return { k: 'select', t: e.t, c: f(e.c), a: f(e.a), b: f(e.b) };
    case 'philox': return { k: 'philox', t: e.t, seed: e.seed, counter: f(e.counter), index: f(e.index) };
  }
}

/** renumbered, for a kernel that binds a name twice (each name resolved in its scope). */
function renumberedScoped(body: readonly Stmt[]): Stmt[] {
  let n = 0;
  const scopes: Map<string, string>[] = [new Map()];
  const lookup = (name: string) => {
    for (let i = scopes.length - 1; i >= 0; i--) {
      const r = scopes[i]!.get(name);
      if (r !== undefined) return r;
    }
    return name;
  };
  const declare = (name: string) => {
    const fresh = `${name.replace(/\d+$/, '')}${n++}`;
    scopes[scopes.length - 1]!.set(name, fresh);
    return fresh;
  };
  const ex = (e: Expr): Expr => mapExpr(e, (x) => (x.k === 'var' ? { ...x, name: lookup(x.name) } : x.k === 'load' ? { ...x, buf: lookup(x.buf) } : x));
  const visit = (ss: readonly Stmt[]): Stmt[] => ss.map((s): Stmt => {
    switch (s.k) {
      case 'for': {
        scopes.push(new Map());
        const v = declare(s.v);
        const inner = visit(s.body);
        scopes.pop();
        return { ...s, v, body: inner };
      }
      case 'if': {
        const cond = ex(s.cond);
        scopes.push(new Map());
        const inner = visit(s.body);
        scopes.pop();
        return { ...s, cond, body: inner };
      }
      case 'decl': {
        const init = ex(s.init);
        return { ...s, name: declare(s.name), init };
      }
      case 'local': return { ...s, name: declare(s.name) };
      case 'assign': return { ...s, name: lookup(s.name), value: ex(s.value) };
      case 'store': return { ...s, buf: lookup(s.buf), idx: ex(s.idx), value: ex(s.value) };
      case 'warpTree': return { ...s, local: lookup(s.local) };
      case 'arrive': return { ...s, counter: lookup(s.counter), idx: ex(s.idx), local: lookup(s.local) };
    }
  });
  return visit(body);
}

/** Renames the kernel's loop variables, decls and local arrays in print order (prefix + counter). */
export const renumber = primitive<Record<string, never>>({
  name: 'renumber',
  check: () => undefined,
  apply: (k) => ({ body: renumbered(k.body, k.buffers) }),
});
