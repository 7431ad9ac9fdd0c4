// Helpers the schedule primitives share: finding and replacing loops by name, substituting variables, affine
// index forms and the access sets that legality checks compare.
import { operands } from '../analysis.js';
import { E, type Expr, type Stmt, intern } from '../ir.js';
import { printExpr } from '../printer.js';
import { exprVars, mapChildren, mapExpr as visitMapExpr, mapStmtExprs as mapOwnExprs } from '../visit.js';

export type For = Extract<Stmt, { k: 'for' }>;

/**
 * Why a primitive does not apply (the schedule driver reports it with the primitive's name). Recipes try
 * primitives and catch these (Schedule.attempt), so it is built without a stack trace, which costs more than the
 * rest of a failed attempt; its message names the primitive, the kernel and the reason.
 */
export class ScheduleError extends Error {
  constructor(message: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(message);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

export function fail(msg: string): never {
  throw new ScheduleError(msg);
}

/** Every loop of a statement list by name (the first in pre-order where one is bound twice), per list searched twice. */
const loopIndexes = new WeakMap<readonly Stmt[], ReadonlyMap<string, For> | null>();

/** The loop named v (loop variables are unique within a kernel), or undefined. */
export function findLoop(body: readonly Stmt[], v: string): For | undefined {
  // statement lists are never changed in place: a list searched again gets an index that serves every later search
  const index = loopIndexes.get(body);
  if (index) return index.get(v);
  if (index === undefined) {
    loopIndexes.set(body, null);
    return scan(body, v);
  }
  const m = new Map<string, For>();
  const add = (ss: readonly Stmt[]): void => {
    for (const s of ss) {
      if (s.k !== 'for') continue;
      if (!m.has(s.v)) m.set(s.v, s);
      add(s.body);
    }
  };
  add(body);
  loopIndexes.set(body, m);
  return m.get(v);
}

function scan(body: readonly Stmt[], v: string): For | undefined {
  for (const s of body) {
    if (s.k !== 'for') continue;
    if (s.v === v) return s;
    const inner = scan(s.body, v);
    if (inner) return inner;
  }
  return undefined;
}

export function loopOf(body: readonly Stmt[], v: string): For {
  return findLoop(body, v) ?? fail(`no loop '${v}' in the kernel`);
}

/** The statement list that directly holds loop v (the kernel body or a loop's body), or undefined. */
export function parentBody(body: readonly Stmt[], v: string): readonly Stmt[] | undefined {
  for (const s of body) {
    if (s.k !== 'for') continue;
    if (s.v === v) return body;
    const p = parentBody(s.body, v);
    if (p) return p;
  }
  return undefined;
}

/** The body with loop v replaced by the statements f returns (every other statement kept as the same object). */
export function replaceLoop(body: readonly Stmt[], v: string, f: (loop: For) => Stmt[]): Stmt[] {
  let found = false;
  // the statements with v replaced, or ss itself where v is not among them (each loop searched once, in order)
  const walk = (ss: readonly Stmt[]): readonly Stmt[] => {
    for (let i = 0; i < ss.length; i++) {
      const s = ss[i]!;
      if (s.k !== 'for') continue;
      let by: readonly Stmt[];
      if (s.v === v) {
        found = true;
        by = f(s);
      } else {
        const inner = walk(s.body);
        if (!found) continue;
        by = [inner === s.body ? s : { ...s, body: inner }];
      }
      return [...ss.slice(0, i), ...by, ...ss.slice(i + 1)];
    }
    return ss;
  };
  const out = walk(body);
  if (!found) fail(`no loop '${v}' in the kernel`);
  return out as Stmt[];
}

/** Replaces the body of the statement list holding loop v (the kernel body itself when v is top-level). */
export function replaceParent(body: readonly Stmt[], v: string, f: (stmts: readonly Stmt[]) => Stmt[]): Stmt[] {
  if (body.some((s) => s.k === 'for' && s.v === v)) return f(body);
  for (const s of body) {
    if (s.k === 'for' && findLoop(s.body, v)) return body.map((x) => (x === s ? { ...s, body: replaceParent(s.body, v, f) } : x));
  }
  return fail(`no loop '${v}' in the kernel`);
}

/** The perfectly nested chain of loops from `outer` down to `inner` (each body exactly the next loop). */
export function chain(body: readonly Stmt[], outer: string, inner: string): For[] {
  const out = [loopOf(body, outer)];
  while (out[out.length - 1]!.v !== inner) {
    const last = out[out.length - 1]!, next = last.body[0];
    if (last.body.length !== 1 || next?.k !== 'for') fail(`loops '${outer}' to '${inner}' are not perfectly nested (loop '${last.v}' holds more than one loop)`);
    out.push(next);
  }
  return out;
}

/** Whether e reads any variable m maps. */
function reads(e: Expr, m: ReadonlyMap<string, unknown>): boolean {
  const vs = exprVars(e);
  if (vs.size <= m.size) {
    for (const v of vs) if (m.has(v)) return true;
  } else {
    for (const v of m.keys()) if (vs.has(v)) return true;
  }
  return false;
}

/** e with variables replaced (interned; e itself where it reads none of them). */
export function substExpr(e: Expr, m: ReadonlyMap<string, Expr>, memo = new Map<Expr, Expr>()): Expr {
  if (!reads(e, m)) return e;
  if (e.k === 'var') return m.get(e.name)!;
  let out = memo.get(e);
  if (out === undefined) memo.set(e, (out = mapChildren(e, (c) => substExpr(c, m, memo))));
  return out;
}

/**
 * Statements with variables replaced in every expression (names declared inside are not renamed); statements that
 * read none of them are kept as the same objects.
 */
export function substStmts(stmts: readonly Stmt[], m: ReadonlyMap<string, Expr>): Stmt[] {
  const memo = new Map<Expr, Expr>();
  const ex = (e: Expr): Expr => substExpr(e, m, memo);
  const map = (ss: readonly Stmt[]): Stmt[] => ss.map((s): Stmt => {
    if (s.k !== 'for' && s.k !== 'if') return mapOwnExprs(s, ex);
    const t = mapOwnExprs(s, ex) as typeof s, body = map(s.body); // an if's condition, then its body
    return t === s && body.every((x, i) => x === s.body[i]) ? s : { ...t, body };
  });
  return map(stmts);
}

/**
 * Expression rewrite applied bottom-up (f sees rewritten operands; what it returns is interned). f must depend
 * only on the expression: each distinct subexpression is rewritten once per memo.
 */
export function mapExpr(e: Expr, f: (e: Expr) => Expr, memo = new Map<Expr, Expr>()): Expr {
  return visitMapExpr(e, (x) => intern(f(x)), memo);
}

/**
 * Expression rewrite applied bottom-up to every expression of the statements (f sees rewritten operands; f must
 * depend only on the expression). Statements whose expressions are unchanged are kept as the same objects.
 */
export function mapStmtExprs(stmts: readonly Stmt[], f: (e: Expr) => Expr): Stmt[] {
  const memo = new Map<Expr, Expr>();
  const ex = (e: Expr): Expr => mapExpr(e, f, memo);
  const map = (ss: readonly Stmt[]): Stmt[] => ss.map((s): Stmt => {
    if (s.k !== 'for' && s.k !== 'if') return mapOwnExprs(s, ex);
    const t = mapOwnExprs(s, ex) as typeof s, body = map(s.body); // an if's condition, then its body
    return t === s && body.every((x, i) => x === s.body[i]) ? s : { ...t, body };
  });
  return map(stmts);
}

/** Every name declared in the statements (loop variables, decls, local arrays). */
export function declaredNames(stmts: readonly Stmt[], out = new Set<string>()): Set<string> {
  for (const s of stmts) {
    if (s.k === 'for') { out.add(s.v); declaredNames(s.body, out); }
    else if (s.k === 'if') declaredNames(s.body, out);
    else if (s.k === 'decl' || s.k === 'local') out.add(s.name);
  }
  return out;
}

/** Variables an expression reads. */
export function varsOf(e: Expr, out = new Set<string>()): Set<string> {
  if (e.k === 'var') out.add(e.name);
  for (const x of operands(e)) varsOf(x, out);
  return out;
}

/** Expressions a statement evaluates itself (not those of a loop's body). */
export function ownExprs(s: Stmt): Expr[] {
  switch (s.k) {
    case 'decl': return [s.init];
    case 'assign': return [s.value];
    case 'store': return [s.idx, s.value];
    case 'if': return [s.cond];
    case 'arrive': return [s.idx];
    default: return [];
  }
}

/** Names a statement list reads from outside itself (free variables, and arrays loaded or stored). */
export function readsOf(stmts: readonly Stmt[]): Set<string> {
  const out = new Set<string>();
  const bound = new Set<string>();
  const visit = (ss: readonly Stmt[]): void => {
    for (const s of ss) {
      for (const e of ownExprs(s)) {
        for (const v of exprVars(e)) if (!bound.has(v)) out.add(v);
        for (const l of loadsIn(e)) out.add(l.buf);
      }
      if (s.k === 'store' || s.k === 'assign') out.add(s.k === 'store' ? s.buf : s.name);
      if (s.k === 'warpTree') out.add(s.local);
      if (s.k === 'arrive') out.add(s.counter).add(s.local);
      if (s.k === 'for') { bound.add(s.v); visit(s.body); }
      if (s.k === 'if') visit(s.body);
      if (s.k === 'decl' || s.k === 'local') bound.add(s.name);
    }
  };
  visit(stmts);
  return out;
}

type Load = Extract<Expr, { k: 'load' }>;
const NO_LOADS: readonly Load[] = [];
const loadLists = new WeakMap<Expr, readonly Load[]>();

/** The loads in e, pre-order, one per occurrence (computed once per expression). */
function loadsIn(e: Expr): readonly Load[] {
  if (e.k === 'const' || e.k === 'var') return NO_LOADS;
  let out = loadLists.get(e);
  if (out !== undefined) return out;
  const lists = operands(e).map(loadsIn).filter((l) => l.length);
  out = e.k === 'load' ? [e, ...(lists[0] ?? [])] : lists.length === 0 ? NO_LOADS : lists.length === 1 ? lists[0]! : lists.flat();
  loadLists.set(e, out);
  return out;
}

/** One load or store of an array, with the loops around it inside the statements examined (their extents). */
export interface Access {
  readonly array: string;
  readonly idx: Expr;
  readonly write: boolean;
  /** loop variables bound inside the examined statements that enclose the access, with their extents */
  readonly inner: ReadonlyMap<string, number>;
  /** the conditions of the ifs inside the examined statements that enclose the access (conjunctions split) */
  readonly guards: readonly Expr[];
}

/** The conjuncts of a condition (`a and b` split). */
function conjuncts(c: Expr): Expr[] {
  return c.k === 'binary' && c.op === 'and' ? [...conjuncts(c.a), ...conjuncts(c.b)] : [c];
}

/** The guards every access holds (a condition that holds at some access only proves nothing about the others). */
export function commonGuards(acc: readonly Access[]): Expr[] {
  const [first, ...rest] = acc;
  return first ? first.guards.filter((g) => rest.every((a) => a.guards.includes(g))) : [];
}

/** Every load and store of arrays in the statements (arrays declared inside them excluded), and scalar assigns. */
export function accesses(stmts: readonly Stmt[]): { arrays: Access[]; assigned: Set<string>; declared: Set<string> } {
  const arrays: Access[] = [];
  const assigned = new Set<string>();
  const declared = new Set<string>();
  const visit = (ss: readonly Stmt[], inner: ReadonlyMap<string, number>, guards: readonly Expr[]): void => {
    for (const s of ss) {
      for (const e of ownExprs(s)) for (const l of loadsIn(e)) arrays.push({ array: l.buf, idx: l.idx, write: false, inner, guards });
      if (s.k === 'store') arrays.push({ array: s.buf, idx: s.idx, write: true, inner, guards });
      else if (s.k === 'arrive') arrays.push({ array: s.counter, idx: s.idx, write: true, inner, guards }, { array: s.local, idx: E.i32(0), write: true, inner, guards });
      else if (s.k === 'assign') assigned.add(s.name);
      else if (s.k === 'decl' || s.k === 'local') declared.add(s.name);
      else if (s.k === 'for') visit(s.body, new Map([...inner, [s.v, s.extent]]), guards);
      else if (s.k === 'if') visit(s.body, inner, [...guards, ...conjuncts(s.cond)]);
    }
  };
  visit(stmts, new Map(), []);
  return { arrays: arrays.filter((a) => !declared.has(a.array)), assigned, declared };
}

/** Σ coef·var + c of an i32 index, or undefined when it is not affine in variables. */
export interface Affine { readonly terms: ReadonlyMap<string, number>; readonly c: number }

const affines = new WeakMap<Expr, Affine | null>();

/** The affine form of e (computed once per expression; the form is shared: never change it). */
export function affineOf(e: Expr): Affine | undefined {
  let out = affines.get(e);
  if (out === undefined) affines.set(e, (out = affineForm(e) ?? null));
  return out ?? undefined;
}

function affineForm(e: Expr): Affine | undefined {
  if (e.t !== 'i32') return undefined;
  if (e.k === 'const') return { terms: new Map(), c: e.v };
  if (e.k === 'var') return { terms: new Map([[e.name, 1]]), c: 0 };
  if (e.k !== 'binary') return undefined;
  const a = affineOf(e.a), b = affineOf(e.b);
  if (!a || !b) return undefined;
  const comb = (x: Affine, y: Affine, s: number): Affine => {
    const terms = new Map(x.terms);
    for (const [v, c] of y.terms) terms.set(v, (terms.get(v) ?? 0) + s * c);
    for (const [v, c] of terms) if (c === 0) terms.delete(v);
    return { terms, c: x.c + s * y.c };
  };
  const scale = (x: Affine, k: number): Affine => ({ terms: new Map(k === 0 ? [] : [...x.terms].map(([v, c]) => [v, c * k])), c: x.c * k });
  if (e.op === 'add') return comb(a, b, 1);
  if (e.op === 'sub') return comb(a, b, -1);
  if (e.op === 'mul' && !a.terms.size) return scale(b, a.c);
  if (e.op === 'mul' && !b.terms.size) return scale(a, b.c);
  return undefined;
}

/**
 * Whether two iterations of the loops `distinct` (variable -> extent) that differ in any of them always access
 * different elements through index `idx`, whatever the values of the loops in `free` (variable -> extent: loops
 * inside the examined statements, which may differ too), every other variable being fixed. Proved on the affine
 * form by a mixed-radix argument: sorted by |coefficient|, each term's coefficient exceeds the span of the smaller
 * ones (all moving terms: the index is injective), or each distinct term's exceeds the span of every free term
 * and of the smaller distinct ones. `inside`: decls of the examined statements (an index using one is unproved).
 */
export function separates(idx: Expr, distinct: ReadonlyMap<string, number>, free: ReadonlyMap<string, number>, inside: ReadonlySet<string> = new Set(), guards: readonly Expr[] = []): boolean {
  const moves = [...distinct].filter(([, n]) => n > 1);
  if (!moves.length) return true;
  const a = affineOf(idx);
  // a decl of the examined statements varies in ways the form does not show
  if (!a || moves.some(([v]) => !a.terms.has(v)) || [...a.terms.keys()].some((v) => inside.has(v))) return false;
  const extent = (v: string) => distinct.get(v) ?? free.get(v) ?? 1;
  type Term = { c: number; span: number; d: boolean | 'mixed' };
  const radix = (ts: readonly Term[], below: number) => [...ts].sort((x, y) => x.c - y.c).every((t) => {
    const ok = t.c > below;
    below += t.span;
    return ok;
  });
  const terms: Term[] = [];
  const grouped = new Set<string>();
  // a guard `P + c < n` (P a sum of loops with positive coefficients, no two values of them giving one P) whose P
  // is s*P in the index: one term of P's values, which the guard bounds to 0..n-c-1 where the access runs (a padded
  // tile's row `g*8 + t*2 + m < 6` in `(g*8 + t*2 + m) * 10 + col`: rows past 6 write nothing)
  for (const g of guards) {
    if (g.k !== 'binary' || (g.op !== 'lt' && g.op !== 'le') || g.b.k !== 'const') continue;
    const p = affineOf(g.a);
    if (!p || p.c < 0 || !p.terms.size) continue;
    const n = g.b.v + (g.op === 'le' ? 1 : 0) - p.c;
    const vs = [...p.terms];
    const s = (a.terms.get(vs[0]![0]) ?? 0) / vs[0]![1];
    // every loop of P known (so P >= 0), s the same for all, P one-to-one in its loops
    if (!s || vs.some(([v, c]) => c <= 0 || grouped.has(v) || !(distinct.has(v) || free.has(v)) || a.terms.get(v) !== s * c)) continue;
    const ps = vs.filter(([v]) => extent(v) > 1).map(([v, c]) => ({ c, span: c * (extent(v) - 1), d: distinct.has(v) }));
    if (!ps.length || !radix(ps, 0)) continue;
    for (const [v] of vs) grouped.add(v);
    const ds = new Set(ps.map((t) => t.d));
    terms.push({ c: Math.abs(s), span: Math.abs(s) * Math.max(0, Math.min(n - 1, ps.reduce((x, t) => x + t.span, 0))), d: ds.size === 1 ? ps[0]!.d : 'mixed' });
  }
  for (const [v, c] of a.terms) if (!grouped.has(v) && extent(v) > 1) terms.push({ c: Math.abs(c), span: Math.abs(c) * (extent(v) - 1), d: distinct.has(v) });
  if (radix(terms, 0)) return true;
  // a group of distinct and free loops may change with the free ones alone
  if (terms.some((t) => t.d === 'mixed')) return false;
  const freeSpan = terms.filter((t) => !t.d).reduce((s, t) => s + t.span, 0);
  return radix(terms.filter((t) => t.d), freeSpan);
}

/**
 * Whether iterations of loop v (extent n) touch disjoint elements through the accesses (of one array): each index
 * is s*v + (loops inside, per access) + a constant + one fixed part, with the same s and fixed part for all, and the
 * inner parts and constants of all accesses span less than |s|. Decls of the examined statements (`inside`) in an index leave it unproved.
 */
export function disjointIterations(acc: readonly Access[], v: string, n: number, inside: ReadonlySet<string>): boolean {
  if (n === 1) return true;
  let s: number | undefined, fixed: string | undefined;
  let lo = Infinity, hi = -Infinity;
  for (const a of acc) {
    const f = affineOf(a.idx);
    if (!f || [...f.terms.keys()].some((x) => inside.has(x))) return false;
    const c = f.terms.get(v) ?? 0;
    const outer = [...f.terms].filter(([x]) => x !== v && !a.inner.has(x)).sort(([x], [y]) => (x < y ? -1 : 1));
    // (the constant counts in the span: a loop split into segments stores at offsets of one index)
    const fx = outer.map(([x, k]) => `${x}*${k}`).join('+');
    if (c === 0 || (s !== undefined && c !== s) || (fixed !== undefined && fx !== fixed)) return false;
    s = c;
    fixed = fx;
    let l = f.c, h = f.c;
    for (const [x, k] of f.terms) {
      const e = a.inner.get(x);
      if (e === undefined) continue;
      l += Math.min(0, k * (e - 1));
      h += Math.max(0, k * (e - 1));
    }
    lo = Math.min(lo, l);
    hi = Math.max(hi, h);
  }
  return s === undefined || hi - lo < Math.abs(s);
}

const keys = new WeakMap<Expr, string>();

/** Text of an expression, to compare index expressions (once per expression: they are interned). */
export function key(e: Expr): string {
  let k = keys.get(e);
  if (k === undefined) keys.set(e, (k = printExpr(e)));
  return k;
}

/** A fresh-name source for a kernel: prefix + counter, skipping every name in use. */
export function namer(used: Set<string>): (prefix: string) => string {
  let n = 0;
  return (prefix: string) => {
    let name: string;
    do name = `${prefix}${n++}`; while (used.has(name));
    used.add(name);
    return name;
  };
}

export const i32 = E.i32;
