// simplify: integer index arithmetic in normal form, using the ranges of loop variables. Reshapes and layout changes
// lower to linear indices split again by floor division and remainder; where the ranges prove a term cannot carry
// into the next digit, `(o0*6272 + o1*224 + o2*8 + o3) // 6272 % 64` becomes `o0`. Exact integer identities only:
//   (k*d + r) // d -> k + r // d        (k*d + r) % d -> r % d
//   r // d -> q and r % d -> r - q*d     when q*d <= r < (q+1)*d over the whole range of r
//   (g*k + r) // (g*m) -> k // m  and  (g*k + r) % (g*m) -> g*(k % m) + r     when 0 <= r < g
// and the boolean units: and(x, true) -> x, or(x, false) -> x.
import { assigned } from './analysis.js';
import { E, type Expr, type Kernel, type Program, type Stmt } from './ir.js';
import { printExpr } from './printer.js';

interface Range { readonly lo: number; readonly hi: number }
/** Σ c·atom + c0, atoms being maximal non-affine subexpressions (kept in order of appearance). */
interface Affine { readonly terms: readonly { readonly atom: Expr; readonly c: number }[]; readonly c0: number }

const INT_MIN = -2147483648, INT_MAX = 2147483647;

const keys = new WeakMap<Expr, string>();
/** The text of an atom, printed once per expression object (atoms are compared by it). */
function keyOf(e: Expr): string {
  let k = keys.get(e);
  if (k === undefined) keys.set(e, (k = printExpr(e)));
  return k;
}

function addAffine(a: Affine, b: Affine, scale = 1): Affine {
  const terms = a.terms.map((t) => ({ ...t }));
  for (const t of b.terms) {
    const key = keyOf(t.atom);
    const same = terms.find((u) => keyOf(u.atom) === key);
    if (same) same.c += scale * t.c;
    else terms.push({ atom: t.atom, c: scale * t.c });
  }
  return { terms: terms.filter((t) => t.c !== 0), c0: a.c0 + scale * b.c0 };
}

const scaled = (a: Affine, k: number): Affine => ({ terms: k === 0 ? [] : a.terms.map((t) => ({ atom: t.atom, c: t.c * k })), c0: a.c0 * k });
/** a / d for an affine form whose coefficients d divides. */
const divided = (a: Affine, d: number): Affine => ({ terms: a.terms.map((t) => ({ atom: t.atom, c: t.c / d })), c0: a.c0 / d });
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const isInt32 = (v: number) => Number.isInteger(v) && v >= INT_MIN && v <= INT_MAX;

/** The affine form of an i32 expression whose operands are already simplified. */
function affine(e: Expr): Affine {
  if (e.k === 'const') return { terms: [], c0: e.v };
  if (e.k === 'binary' && e.t === 'i32') {
    if (e.op === 'add') return addAffine(affine(e.a), affine(e.b));
    if (e.op === 'sub') return addAffine(affine(e.a), affine(e.b), -1);
    if (e.op === 'mul' && e.b.k === 'const') return scaled(affine(e.a), e.b.v);
    if (e.op === 'mul' && e.a.k === 'const') return scaled(affine(e.b), e.a.v);
  }
  return { terms: [{ atom: e, c: 1 }], c0: 0 };
}

/** The expression of an affine form, or undefined when a coefficient leaves int32. */
function build(a: Affine): Expr {
  if (!isInt32(a.c0) || !a.terms.every((t) => isInt32(t.c))) throw new Overflow();
  let out: Expr = E.i32(0);
  for (const t of a.terms) out = E.add(out, E.mul(t.atom, E.i32(t.c)));
  return E.add(out, E.i32(a.c0));
}

class Overflow extends Error {}

/** Simplifies the i32 index arithmetic of one kernel, knowing the ranges of loop variables and never-assigned decls. */
class KernelSimplifier {
  private readonly scopes: Map<string, Range>[] = [new Map()];
  private readonly memo = new WeakMap<Expr, Expr>();

  constructor(private readonly assigned: ReadonlySet<string>) {}

  private rangeOfVar(name: string): Range | undefined {
    for (let i = this.scopes.length - 1; i >= 0; i--) {
      const r = this.scopes[i]!.get(name);
      if (r) return r;
    }
    return undefined;
  }

  private range(e: Expr): Range | undefined {
    let r: Range | undefined;
    switch (e.k) {
      case 'const': r = e.t === 'i32' ? { lo: e.v, hi: e.v } : undefined; break;
      case 'var': r = e.t === 'i32' ? this.rangeOfVar(e.name) : undefined; break;
      case 'binary': {
        if (e.t !== 'i32') return undefined;
        const a = this.range(e.a), b = this.range(e.b);
        if (!a || !b) return undefined;
        const d = b.lo === b.hi ? b.lo : 0;
        switch (e.op) {
          case 'add': r = { lo: a.lo + b.lo, hi: a.hi + b.hi }; break;
          case 'sub': r = { lo: a.lo - b.hi, hi: a.hi - b.lo }; break;
          case 'mul': {
            const c = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi];
            r = { lo: Math.min(...c), hi: Math.max(...c) };
            break;
          }
          case 'min': r = { lo: Math.min(a.lo, b.lo), hi: Math.min(a.hi, b.hi) }; break;
          case 'max': r = { lo: Math.max(a.lo, b.lo), hi: Math.max(a.hi, b.hi) }; break;
          case 'idiv': if (d > 0) r = { lo: Math.floor(a.lo / d), hi: Math.floor(a.hi / d) }; break;
          case 'mod':
            if (d > 0) r = Math.floor(a.lo / d) === Math.floor(a.hi / d) ? { lo: a.lo - Math.floor(a.lo / d) * d, hi: a.hi - Math.floor(a.lo / d) * d } : { lo: 0, hi: d - 1 };
            break;
          default:
        }
        break;
      }
      default:
    }
    return r && r.lo >= INT_MIN && r.hi <= INT_MAX ? r : undefined;
  }

  private affineRange(a: Affine): Range | undefined {
    let lo = a.c0, hi = a.c0;
    for (const t of a.terms) {
      const r = this.range(t.atom);
      if (!r) return undefined;
      lo += Math.min(t.c * r.lo, t.c * r.hi);
      hi += Math.max(t.c * r.lo, t.c * r.hi);
    }
    return { lo, hi };
  }

  /** x // d or x % d for a positive constant d, x simplified. */
  private divMod(op: 'idiv' | 'mod', x: Expr, d: number): Expr {
    const a = affine(x);
    const exact: Affine = { terms: a.terms.filter((t) => t.c % d === 0), c0: 0 };
    const rest: Affine = { terms: a.terms.filter((t) => t.c % d !== 0), c0: a.c0 };
    const r = this.affineRange(rest);
    const q = r && Math.floor(r.lo / d) === Math.floor(r.hi / d) ? Math.floor(r.lo / d) : undefined;
    if (op === 'mod' && q !== undefined) return build(addAffine(rest, { terms: [], c0: -q * d }));
    const whole = divided(exact, d);
    if (q !== undefined) return build(addAffine(whole, { terms: [], c0: q }));
    // a common factor g of d and the high terms, with the low terms below g: divide by g first
    const gs = [...new Set(a.terms.map((t) => gcd(d, Math.abs(t.c))))].filter((g) => g > 1 && g < d).sort((x, y) => y - x);
    for (const g of gs) {
      const high: Affine = { terms: a.terms.filter((t) => t.c % g === 0), c0: 0 };
      const low: Affine = { terms: a.terms.filter((t) => t.c % g !== 0), c0: a.c0 };
      const lr = this.affineRange(low);
      if (!lr || lr.lo < 0 || lr.hi >= g) continue;
      const k = this.divMod(op, build(divided(high, g)), d / g);
      return op === 'idiv' ? k : build(addAffine(scaled(affine(k), g), low));
    }
    if (op === 'mod') return E.mod(build(rest), d);
    if (!exact.terms.length) return E.idiv(x, d); // nothing to split off: keep the expression as written
    return build(addAffine(whole, { terms: [{ atom: E.idiv(build(rest), d), c: 1 }], c0: 0 }));
  }

  /** e simplified (variable names are unique in a kernel, so one expression object simplifies one way). */
  expr(e: Expr): Expr {
    let out = this.memo.get(e);
    if (!out) {
      try {
        out = this.simplified(e);
      } catch (err) {
        if (!(err instanceof Overflow)) throw err;
        out = e; // a coefficient past int32: the target wraps, keep the expression as written
      }
      this.memo.set(e, out);
    }
    return out;
  }

  private simplified(e: Expr): Expr {
    switch (e.k) {
      case 'const': case 'var': return e;
      case 'load': return { ...e, idx: this.expr(e.idx) };
      case 'unary': return { ...e, a: this.expr(e.a) };
      case 'cast': return { ...e, a: this.expr(e.a) };
      case 'select': return { ...e, c: this.expr(e.c), a: this.expr(e.a), b: this.expr(e.b) };
      case 'philox': return { ...e, counter: this.expr(e.counter), index: this.expr(e.index) };
      case 'binary': {
        const a = this.expr(e.a), b = this.expr(e.b);
        if (e.t === 'i32' && (e.op === 'idiv' || e.op === 'mod') && b.k === 'const' && b.v > 0) return this.divMod(e.op, a, b.v);
        if (e.t === 'i32' && (e.op === 'add' || e.op === 'sub' || e.op === 'mul')) return build(affine({ ...e, a, b }));
        // and(x, true) -> x, and(x, false) -> false, or(x, false) -> x, or(x, true) -> true (both sides)
        if (e.op === 'and' || e.op === 'or') {
          const unit = e.op === 'and' ? 1 : 0;
          for (const [c, x] of [[a, b], [b, a]] as const) if (c.k === 'const') return c.v === unit ? x : c;
        }
        return { ...e, a, b };
      }
    }
  }

  stmts(body: readonly Stmt[]): Stmt[] {
    this.scopes.push(new Map());
    try {
      return body.map((s): Stmt => {
        switch (s.k) {
          case 'for': {
            this.scopes.push(new Map([[s.v, { lo: 0, hi: s.extent - 1 }]]));
            try {
              return { ...s, body: this.stmts(s.body) };
            } finally {
              this.scopes.pop();
            }
          }
          case 'decl': {
            const init = this.expr(s.init);
            const r = s.t === 'i32' && !this.assigned.has(s.name) ? this.range(init) : undefined;
            if (r) this.scopes[this.scopes.length - 1]!.set(s.name, r);
            return { ...s, init };
          }
          case 'assign': return { ...s, value: this.expr(s.value) };
          case 'store': return { ...s, idx: this.expr(s.idx), value: this.expr(s.value) };
          case 'local': return s;
        }
      });
    } finally {
      this.scopes.pop();
    }
  }
}

/** Simplifies every kernel's index arithmetic (values are unchanged: exact integer identities over known ranges). */
export function simplify(p: Program): Program {
  const kernels: Kernel[] = p.kernels.map((k) => ({ ...k, body: new KernelSimplifier(assigned(k.body)).stmts(k.body) }));
  return { ...p, kernels };
}
