// The one range analysis of loop IR: the interval of an i32 index expression over the variables around it, and
// whether both ends are reached (rangeOf). The verifier checks index bounds with it; simplify proves digit splits with
// it; legalize drops the sign corrections of divisions of non-negative indices; lowering drops conv taps' proven
// bounds; pairDot folds the tap bounds its loops decide (foldDecided). The values of any expression, f32 and NaN
// included (valueRange), with the same interval arithmetic: pairDot's operands must fit int16 halves (fitsInt16).
import { assigned } from './analysis.js';
import { type Buffer, E, type Expr, type Scalar, type Stmt } from './ir.js';
import { forEachExpr, mapExpr } from './visit.js';

/** Values an i32 expression takes; `exact` when some iteration reaches lo and some reaches hi. */
export interface Range {
  readonly lo: number;
  readonly hi: number;
  readonly exact: boolean;
  /** the variables it depends on (two operands sharing one are not independent) */
  readonly vars: ReadonlySet<string>;
}

/**
 * What is known of a variable: an interval holding its values, and whether it takes every value of it in some
 * iteration, independently of the other exact variables (a loop variable does; a decl holding an index does not).
 */
export interface VarRange {
  readonly lo: number;
  readonly hi: number;
  readonly exact: boolean;
}

export type RangeEnv = (name: string) => VarRange | undefined;

const INT_MIN = -2147483648, INT_MAX = 2147483647;
const NONE: ReadonlySet<string> = new Set();

/** The environment of loop variables of the given extents (each ranging over 0..extent-1, exactly). */
export function loopEnv(extents: ReadonlyMap<string, number>): RangeEnv {
  return (name) => {
    const n = extents.get(name);
    return n === undefined ? undefined : { lo: 0, hi: n - 1, exact: true };
  };
}

/** An interval [lo, hi]. */
interface Span { readonly lo: number; readonly hi: number }

/** The interval of `a op b` for a in a and b in b: add, sub, mul, max, min (undefined for other ops); no -0. */
function arith(op: string, a: Span, b: Span): Span | undefined {
  switch (op) {
    case 'add': return { lo: a.lo + b.lo, hi: a.hi + b.hi };
    case 'sub': return { lo: a.lo - b.hi, hi: a.hi - b.lo };
    case 'mul': {
      const c = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi];
      return { lo: Math.min(...c) + 0, hi: Math.max(...c) + 0 }; // + 0: no -0
    }
    case 'max': return { lo: Math.max(a.lo, b.lo), hi: Math.max(a.hi, b.hi) };
    case 'min': return { lo: Math.min(a.lo, b.lo), hi: Math.min(a.hi, b.hi) };
    default: return undefined;
  }
}

const union = (a: ReadonlySet<string>, b: ReadonlySet<string>): ReadonlySet<string> => (b.size === 0 ? a : a.size === 0 ? b : new Set([...a, ...b]));

/** Comparisons with their operands swapped (k < v is v > k) and negated (not v < k is v >= k). */
const SWAPPED: Readonly<Record<string, string>> = { lt: 'gt', le: 'ge', gt: 'lt', ge: 'le', eq: 'eq', ne: 'ne' };
const NEGATED: Readonly<Record<string, string>> = { lt: 'ge', le: 'gt', gt: 'le', ge: 'lt', eq: 'ne', ne: 'eq' };

/** The environment where condition c has the value `holds`, when that is a box (exact: exactly that box). */
interface Narrowed {
  readonly env: RangeEnv;
  /** the box is exactly the iterations where the condition has that value */
  readonly exact: boolean;
  /** no iteration gives the condition that value */
  readonly empty: boolean;
}

/** Narrows env by `c == holds` where c is `v cmp k` (either order) or, when holding, a conjunction of such. */
function narrow(c: Expr, holds: boolean, env: RangeEnv): Narrowed {
  const same: Narrowed = { env, exact: false, empty: false };
  if (c.k === 'const' && c.t === 'bool') return { env, exact: true, empty: (c.v !== 0) !== holds };
  if (c.k !== 'binary') return same;
  if (c.op === 'and' && holds) {
    const a = narrow(c.a, true, env);
    const b = narrow(c.b, true, a.env);
    return { env: b.env, exact: a.exact && b.exact, empty: a.empty || b.empty };
  }
  if (!SWAPPED[c.op]) return same;
  const swap = c.a.k === 'const';
  const v = swap ? c.b : c.a, k = swap ? c.a : c.b;
  let op = swap ? SWAPPED[c.op]! : c.op;
  if (v.k !== 'var' || v.t !== 'i32' || k.k !== 'const' || k.t !== 'i32') return same;
  const r = env(v.name);
  if (!r) return same;
  if (!holds) op = NEGATED[op]!;
  let { lo, hi } = r;
  const n = k.v;
  switch (op) {
    case 'lt': hi = Math.min(hi, n - 1); break;
    case 'le': hi = Math.min(hi, n); break;
    case 'gt': lo = Math.max(lo, n + 1); break;
    case 'ge': lo = Math.max(lo, n); break;
    case 'eq': lo = Math.max(lo, n); hi = Math.min(hi, n); break;
    default: return same; // v != k is no interval
  }
  const name = v.name, box: VarRange = { lo, hi, exact: r.exact };
  return { env: (x) => (x === name ? box : env(x)), exact: r.exact, empty: lo > hi };
}

/** The range of select(c, a, b): each branch over the iterations that choose it, where the condition allows. */
function selectRange(e: Extract<Expr, { k: 'select' }>, env: RangeEnv): Range | undefined {
  const t = narrow(e.c, true, env), f = narrow(e.c, false, env);
  if (t.empty && f.empty) return undefined; // a contradiction in a narrowed environment: nothing to claim
  const a = t.empty ? undefined : rangeOf(e.a, t.env);
  const b = f.empty ? undefined : rangeOf(e.b, f.env);
  if ((!a && !t.empty) || (!b && !f.empty)) return undefined;
  // the value depends on the condition's variables too: `select(i < 3, 9, 5) + i` never reaches 9 + max(i)
  const vars = new Set<string>();
  forEachExpr(e.c, (x) => { if (x.k === 'var') vars.add(x.name); });
  if (!a) return { ...b!, exact: b!.exact && f.exact, vars: union(b!.vars, vars) };
  if (!b) return { ...a, exact: a.exact && t.exact, vars: union(a.vars, vars) };
  return { lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi), exact: a.exact && b.exact && t.exact && f.exact, vars: union(union(a.vars, b.vars), vars) };
}

/**
 * The range of an i32 expression, or undefined when unknown (not i32, an unknown variable or load, a divisor that
 * is not a positive constant, or a value past int32, where targets wrap). Sound always; exact when every exact
 * variable occurs once, as the extremes of sums, products, floor divisions and max/min of independent ranges
 * are reached at corners of the iteration box, and a select's conditions are comparisons of a variable with a
 * constant.
 */
export function rangeOf(e: Expr, env: RangeEnv): Range | undefined {
  if (e.t !== 'i32') return undefined;
  let r: Range | undefined;
  switch (e.k) {
    case 'const': r = { lo: e.v, hi: e.v, exact: true, vars: NONE }; break;
    case 'var': {
      const v = env(e.name);
      if (v) r = { lo: v.lo, hi: v.hi, exact: v.exact, vars: new Set([e.name]) };
      break;
    }
    case 'select': r = selectRange(e, env); break;
    case 'binary': {
      const a = rangeOf(e.a, env), b = rangeOf(e.b, env);
      if (!a || !b) return undefined;
      const vars = union(a.vars, b.vars);
      const exact = a.exact && b.exact && vars.size === a.vars.size + b.vars.size;
      const d = b.lo === b.hi ? b.lo : 0, span = arith(e.op, a, b);
      if (span) r = { ...span, exact, vars };
      else if (e.op === 'idiv' && d > 0) r = { lo: Math.floor(a.lo / d) + 0, hi: Math.floor(a.hi / d) + 0, exact: a.exact, vars };
      else if (e.op === 'mod' && d > 0) {
        const q = Math.floor(a.lo / d);
        // within one block of d the remainder is a shifted copy of a; across blocks it may take any value
        r = q === Math.floor(a.hi / d) ? { lo: a.lo - q * d, hi: a.hi - q * d, exact: a.exact, vars } : { lo: 0, hi: d - 1, exact: false, vars };
      }
      break;
    }
    default:
  }
  return r && r.lo >= INT_MIN && r.hi <= INT_MAX ? r : undefined;
}

/**
 * The ranges in scope during a walk of a kernel's statements: loop variables (0..extent-1) and i32 decls never
 * assigned (their init's range), innermost scope first. `env` reads them.
 */
export class RangeScopes {
  private readonly scopes: Map<string, VarRange>[] = [new Map()];
  readonly env: RangeEnv = (name) => {
    for (let i = this.scopes.length - 1; i >= 0; i--) {
      const r = this.scopes[i]!.get(name);
      if (r) return r;
    }
    return undefined;
  };

  /** `assigned`: the names the kernel assigns (their inits say nothing of their later values); `loops` around it. */
  constructor(private readonly assigned: ReadonlySet<string>, loops: ReadonlyMap<string, number> = new Map()) {
    for (const [v, extent] of loops) this.scopes[0]!.set(v, { lo: 0, hi: extent - 1, exact: true });
  }

  /** Runs f in a new innermost scope, where `v` ranges over 0..extent-1 if given (a loop's body). */
  within<R>(f: () => R, v?: string, extent?: number): R {
    const scope = new Map<string, VarRange>();
    if (v !== undefined && extent !== undefined) scope.set(v, { lo: 0, hi: extent - 1, exact: true });
    this.scopes.push(scope);
    try {
      return f();
    } finally {
      this.scopes.pop();
    }
  }

  /** Binds a decl in the innermost scope (over an outer binding of its name), its init read in the scope before. */
  declare(name: string, t: Scalar, init: Expr): void {
    const r = t === 'i32' && !this.assigned.has(name) ? rangeOf(init, this.env) : undefined;
    const top = this.scopes[this.scopes.length - 1]!;
    top.delete(name);
    if (r) top.set(name, { lo: r.lo, hi: r.hi, exact: false });
  }
}

/** The values an expression can take: [lo, hi] (empty when lo > hi) and whether it can be NaN. */
export interface Values extends Span { readonly nan: boolean }

const BY_DTYPE: Partial<Record<Buffer['dtype'], Values>> = { int8: { lo: -128, hi: 127, nan: false }, bool: { lo: 0, hi: 1, nan: false } };

function full(t: Scalar): Values {
  return t === 'f32' ? { lo: -Infinity, hi: Infinity, nan: true } : t === 'bool' ? { lo: 0, hi: 1, nan: false } : { lo: INT_MIN, hi: INT_MAX, nan: false };
}

/** [lo, hi] as values of type t: an i32 range past i32 wraps (unknown); NaN bounds (inf - inf) are unknown. */
function of(t: Scalar, lo: number, hi: number, nan: boolean): Values {
  if (Number.isNaN(lo) || Number.isNaN(hi)) return full(t);
  if (t === 'i32' && (lo < INT_MIN || hi > INT_MAX)) return full(t);
  return { lo, hi, nan: t === 'f32' && nan };
}

const either = (a: Values, b: Values): Values => ({ lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi), nan: a.nan || b.nan });

/**
 * The values of any expression (pairDot's legality), sound for the loop interpreter's semantics: i32 arithmetic
 * wraps (a range past i32 is unknown), a float→i32 cast saturates and gives 0 for NaN, a compare with NaN is false.
 * `decls` gives the expressions of the variables it reads (others are unknown), `buffers` the dtypes of its loads
 * (an int8 buffer's values are -128..127).
 */
export function valueRange(e: Expr, decls: ReadonlyMap<string, Expr>, buffers: readonly Buffer[]): Values {
  const memo = new Map<string, Values>();
  const go = (x: Expr): Values => {
    switch (x.k) {
      case 'const': return { lo: x.v, hi: x.v, nan: Number.isNaN(x.v) };
      case 'var': {
        const d = decls.get(x.name);
        if (!d) return full(x.t);
        let r = memo.get(x.name);
        if (!r) memo.set(x.name, r = go(d));
        return r;
      }
      case 'load': {
        const dt = buffers.find((b) => b.name === x.buf)?.dtype;
        return (dt && x.t !== 'f32' && !x.quad && BY_DTYPE[dt]) || full(x.t);
      }
      case 'unary': {
        const a = go(x.a);
        if (x.op === 'neg') return of(x.t, -a.hi, -a.lo, a.nan);
        if (x.op === 'round' || x.op === 'floor' || x.op === 'ceil') return of(x.t, Math.floor(a.lo), Math.ceil(a.hi), a.nan);
        return full(x.t);
      }
      case 'cast': {
        const a = go(x.a);
        if (x.t === 'i32' && x.a.t === 'f32') {
          const sat = (v: number) => Math.max(INT_MIN, Math.min(INT_MAX, Math.trunc(v)));
          const r = a.lo > a.hi ? a : { lo: sat(a.lo), hi: sat(a.hi), nan: false };
          return a.nan ? either(r, { lo: 0, hi: 0, nan: false }) : r;
        }
        return x.t === 'f32' || x.a.t !== 'f32' ? of(x.t, a.lo, a.hi, a.nan) : full(x.t);
      }
      case 'select': {
        let a = go(x.a), b = go(x.b);
        const c = x.c;
        // a branch taken only where a compare of that very value with a constant holds (interned: same object)
        if (c.k === 'binary' && (c.a === x.a || c.a === x.b) && c.b.k === 'const') {
          const C = c.b.v, taken = c.a === x.a;
          const below = c.op === 'lt' || c.op === 'le', above = c.op === 'gt' || c.op === 'ge';
          if (below || above) {
            // true: the value is on that side of C (not NaN); false: on the other side, or NaN
            const side = (r: Values, lower: boolean, nan: boolean): Values => (lower ? { lo: r.lo, hi: Math.min(r.hi, C), nan } : { lo: Math.max(r.lo, C), hi: r.hi, nan });
            if (taken) a = side(a, below, false);
            else b = side(b, above, b.nan);
          }
        }
        // select(v != v, v, y): that branch is v only when NaN
        if (c.k === 'binary' && c.op === 'ne' && c.a === c.b && c.a === x.a) a = { lo: Infinity, hi: -Infinity, nan: a.nan };
        if (c.k === 'binary' && c.op === 'eq' && c.a === c.b && c.a === x.a) a = { ...a, nan: false };
        return either(a, b);
      }
      case 'binary': {
        if (x.t === 'bool') return full('bool');
        const a = go(x.a), b = go(x.b), nan = a.nan || b.nan;
        if (a.lo > a.hi || b.lo > b.hi) return { lo: Infinity, hi: -Infinity, nan };
        // a float quotient by a positive constant (quantize's): monotone, its ends the quotients of a's (rounded as
        // float32 division rounds: the double quotient of two floats rounded to float is the correctly rounded one)
        if (x.op === 'div' && x.t === 'f32' && x.b.k === 'const' && x.b.v > 0) return of(x.t, Math.fround(a.lo / x.b.v), Math.fround(a.hi / x.b.v), nan);
        const span = arith(x.op, a, b);
        return span ? of(x.t, span.lo, span.hi, nan) : full(x.t);
      }
      default: return full(x.t);
    }
  };
  return go(e);
}

/** Whether e's values fit a signed int16 half (pack16 keeps its low 16 bits). */
export function fitsInt16(e: Expr, decls: ReadonlyMap<string, Expr>, buffers: readonly Buffer[]): boolean {
  const r = valueRange(e, decls, buffers);
  return e.t === 'i32' && !r.nan && r.lo >= -32768 && r.hi <= 32767;
}

/** Comparisons decided by their operands' ranges: true, false, or undefined (not decided). */
const DECIDE: Readonly<Record<string, (a: Span, b: Span) => boolean | undefined>> = {
  lt: (a, b) => (a.hi < b.lo ? true : a.lo >= b.hi ? false : undefined),
  le: (a, b) => (a.hi <= b.lo ? true : a.lo > b.hi ? false : undefined),
  gt: (a, b) => (a.lo > b.hi ? true : a.hi <= b.lo ? false : undefined),
  ge: (a, b) => (a.lo >= b.hi ? true : a.hi < b.lo ? false : undefined),
};

/**
 * Statements with the i32 comparisons that the ranges in scope decide (`loops` around them, their own loops and
 * never-assigned decls) folded to constants, and the selects and logical ops on them to the branch taken: an im2col
 * packing's tap bounds, always true for a convolution without padding, and its clamps of in-bounds indices.
 */
export function foldDecided(stmts: readonly Stmt[], loops: ReadonlyMap<string, number> = new Map()): Stmt[] {
  const scopes = new RangeScopes(assigned(stmts), loops);
  const fold = (x: Expr): Expr => {
    if (x.k === 'binary' && x.a.t === 'i32' && DECIDE[x.op]) {
      const a = rangeOf(x.a, scopes.env), b = rangeOf(x.b, scopes.env), d = a && b && DECIDE[x.op]!(a, b);
      return d === undefined ? x : E.bool(d);
    }
    // min/max of i32 whose ranges decide which operand is taken (an im2col tap's index clamps in the interior)
    if (x.k === 'binary' && (x.op === 'min' || x.op === 'max') && x.t === 'i32') {
      const a = rangeOf(x.a, scopes.env), b = rangeOf(x.b, scopes.env);
      if (a && b && (x.op === 'min' ? a.hi <= b.lo : a.lo >= b.hi)) return x.a;
      if (a && b && (x.op === 'min' ? b.hi <= a.lo : b.lo >= a.hi)) return x.b;
    }
    const isConst = (e: Expr, v: number) => e.k === 'const' && e.v === v;
    if (x.k === 'select' && x.c.k === 'const') return x.c.v ? x.a : x.b;
    if (x.k === 'cast' && x.a.k === 'const' && x.a.t === 'bool') return E.c(x.t, x.a.v);
    if (x.k === 'binary' && (x.op === 'add' || x.op === 'sub') && isConst(x.b, 0) && x.t === 'i32') return x.a;
    if (x.k === 'binary' && x.op === 'and') return isConst(x.a, 1) ? x.b : isConst(x.b, 1) ? x.a : isConst(x.a, 0) || isConst(x.b, 0) ? E.bool(false) : x;
    if (x.k === 'binary' && x.op === 'or') return isConst(x.a, 0) ? x.b : isConst(x.b, 0) ? x.a : isConst(x.a, 1) || isConst(x.b, 1) ? E.bool(true) : x;
    return x;
  };
  const go = (ss: readonly Stmt[]): Stmt[] => ss.map((s) => {
    if (s.k === 'for') return scopes.within(() => ({ ...s, body: go(s.body) }), s.v, s.extent);
    if (s.k === 'decl') {
      const init = mapExpr(s.init, fold);
      scopes.declare(s.name, s.t, init);
      return { ...s, init };
    }
    if (s.k === 'store') return { ...s, idx: mapExpr(s.idx, fold), value: mapExpr(s.value, fold) };
    return s;
  });
  return go(stmts);
}
