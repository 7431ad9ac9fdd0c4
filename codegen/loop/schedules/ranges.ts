// Value ranges of loop-IR expressions (interval arithmetic), for pairDot's legality: an operand packed into an int16
// half must fit it. Sound for the loop interpreter's semantics: i32 arithmetic wraps (a range past i32 is unknown),
// a float→i32 cast saturates and gives 0 for NaN, a compare with NaN is false.
import { type Buffer, E, type Expr, type Scalar, type Stmt } from '../ir.js';
import { type RangeEnv, type VarRange, rangeOf } from '../range.js';
import { mapExpr } from '../visit.js';

/** The values e can take: [lo, hi] (empty when lo > hi) and whether it can be NaN. */
export interface Range { readonly lo: number; readonly hi: number; readonly nan: boolean }

const I32_MIN = -(2 ** 31), I32_MAX = 2 ** 31 - 1;
const BY_DTYPE: Partial<Record<Buffer['dtype'], Range>> = { int8: { lo: -128, hi: 127, nan: false }, bool: { lo: 0, hi: 1, nan: false } };

function full(t: Scalar): Range {
  return t === 'f32' ? { lo: -Infinity, hi: Infinity, nan: true } : t === 'bool' ? { lo: 0, hi: 1, nan: false } : { lo: I32_MIN, hi: I32_MAX, nan: false };
}

/** [lo, hi] as a range of type t: an i32 range past i32 wraps (unknown); NaN bounds (inf - inf) are unknown. */
function of(t: Scalar, lo: number, hi: number, nan: boolean): Range {
  if (Number.isNaN(lo) || Number.isNaN(hi)) return full(t);
  if (t === 'i32' && (lo < I32_MIN || hi > I32_MAX)) return full(t);
  return { lo, hi, nan: t === 'f32' && nan };
}

const union = (a: Range, b: Range): Range => ({ lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi), nan: a.nan || b.nan });

/**
 * The range of e, where `decls` gives the expressions of the variables it reads (others are unknown) and `buffers`
 * the dtypes of its loads (an int8 buffer's values are -128..127).
 */
export function valueRange(e: Expr, decls: ReadonlyMap<string, Expr>, buffers: readonly Buffer[]): Range {
  const memo = new Map<string, Range>();
  const go = (x: Expr): Range => {
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
        return (dt && x.t !== 'f32' && BY_DTYPE[dt]) || full(x.t);
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
          const sat = (v: number) => Math.max(I32_MIN, Math.min(I32_MAX, Math.trunc(v)));
          const r = a.lo > a.hi ? a : { lo: sat(a.lo), hi: sat(a.hi), nan: false };
          return a.nan ? union(r, { lo: 0, hi: 0, nan: false }) : r;
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
            const side = (r: Range, lower: boolean, nan: boolean): Range => (lower ? { lo: r.lo, hi: Math.min(r.hi, C), nan } : { lo: Math.max(r.lo, C), hi: r.hi, nan });
            if (taken) a = side(a, below, false);
            else b = side(b, above, b.nan);
          }
        }
        // select(v != v, v, y): that branch is v only when NaN
        if (c.k === 'binary' && c.op === 'ne' && c.a === c.b && c.a === x.a) a = { lo: Infinity, hi: -Infinity, nan: a.nan };
        if (c.k === 'binary' && c.op === 'eq' && c.a === c.b && c.a === x.a) a = { ...a, nan: false };
        return union(a, b);
      }
      case 'binary': {
        if (x.t === 'bool') return full('bool');
        const a = go(x.a), b = go(x.b), nan = a.nan || b.nan;
        if (a.lo > a.hi || b.lo > b.hi) return { lo: Infinity, hi: -Infinity, nan };
        switch (x.op) {
          case 'add': return of(x.t, a.lo + b.lo, a.hi + b.hi, nan);
          case 'sub': return of(x.t, a.lo - b.hi, a.hi - b.lo, nan);
          case 'mul': {
            const p = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi];
            return of(x.t, Math.min(...p), Math.max(...p), nan);
          }
          case 'min': return of(x.t, Math.min(a.lo, b.lo), Math.min(a.hi, b.hi), nan);
          case 'max': return of(x.t, Math.max(a.lo, b.lo), Math.max(a.hi, b.hi), nan);
          default: return full(x.t);
        }
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

/**
 * Statements with the i32 comparisons that their loops' ranges decide folded to constants, and the selects and
 * logical ops on them to the branch taken (range.ts's rangeOf over the loop variables and the decls before): an
 * im2col packing's tap bounds, always true for a convolution without padding, and its clamps of in-bounds indices.
 */
export function foldDecided(stmts: readonly Stmt[], loops: ReadonlyMap<string, number>): Stmt[] {
  const decls = new Map<string, VarRange>();
  const env: RangeEnv = (n) => {
    const l = loops.get(n);
    return l !== undefined ? { lo: 0, hi: l - 1, exact: true } : decls.get(n);
  };
  const fold = (x: Expr): Expr => {
    if (x.k === 'binary' && x.a.t === 'i32' && DECIDE[x.op as string]) {
      const a = rangeOf(x.a, env), b = rangeOf(x.b, env), d = a && b && DECIDE[x.op as string]!(a, b);
      return d === undefined ? x : E.bool(d);
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
    if (s.k === 'for') return { ...s, body: go(s.body) };
    if (s.k === 'decl') {
      const init = mapExpr(s.init, fold), r = s.t === 'i32' ? rangeOf(init, env) : undefined;
      if (r) decls.set(s.name, { lo: r.lo, hi: r.hi, exact: false });
      return { ...s, init };
    }
    if (s.k === 'store') return { ...s, idx: mapExpr(s.idx, fold), value: mapExpr(s.value, fold) };
    return s;
  });
  return go(stmts);
}

/** Comparisons decided by their operands' ranges: true, false, or undefined (not decided). */
const DECIDE: Record<string, (a: Span, b: Span) => boolean | undefined> = {
  lt: (a, b) => (a.hi < b.lo ? true : a.lo >= b.hi ? false : undefined),
  le: (a, b) => (a.hi <= b.lo ? true : a.lo > b.hi ? false : undefined),
  gt: (a, b) => (a.lo > b.hi ? true : a.hi <= b.lo ? false : undefined),
  ge: (a, b) => (a.lo >= b.hi ? true : a.hi < b.lo ? false : undefined),
};
type Span = { readonly lo: number; readonly hi: number };
