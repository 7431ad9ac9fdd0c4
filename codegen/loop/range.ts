// The one range analysis of loop IR: the interval of an i32 index expression over the variables around it, and
// whether both ends are reached. The verifier checks index bounds with it; simplify proves digit splits with it;
// legalize drops the sign corrections of divisions of non-negative indices; lowering drops conv taps' proven bounds.
import type { Expr, Scalar } from './ir.js';
import { forEachExpr } from './visit.js';

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
      const d = b.lo === b.hi ? b.lo : 0;
      switch (e.op) {
        case 'add': r = { lo: a.lo + b.lo, hi: a.hi + b.hi, exact, vars }; break;
        case 'sub': r = { lo: a.lo - b.hi, hi: a.hi - b.lo, exact, vars }; break;
        case 'mul': {
          const c = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi];
          r = { lo: Math.min(...c) + 0, hi: Math.max(...c) + 0, exact, vars }; // + 0: no -0
          break;
        }
        case 'max': r = { lo: Math.max(a.lo, b.lo), hi: Math.max(a.hi, b.hi), exact, vars }; break;
        case 'min': r = { lo: Math.min(a.lo, b.lo), hi: Math.min(a.hi, b.hi), exact, vars }; break;
        case 'idiv':
          if (d > 0) r = { lo: Math.floor(a.lo / d) + 0, hi: Math.floor(a.hi / d) + 0, exact: a.exact, vars };
          break;
        case 'mod':
          if (d > 0) {
            const q = Math.floor(a.lo / d);
            // within one block of d the remainder is a shifted copy of a; across blocks it may take any value
            r = q === Math.floor(a.hi / d) ? { lo: a.lo - q * d, hi: a.hi - q * d, exact: a.exact, vars } : { lo: 0, hi: d - 1, exact: false, vars };
          }
          break;
        default:
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

  /** `assigned`: the names the kernel assigns (their inits say nothing of their later values). */
  constructor(private readonly assigned: ReadonlySet<string>) {}

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
