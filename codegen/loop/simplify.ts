// simplify: integer index arithmetic in normal form, using the ranges of loop variables (range.ts). Reshapes and layout changes
// lower to linear indices split again by floor division and remainder; where the ranges prove a term cannot carry
// into the next digit, `(o0*6272 + o1*224 + o2*8 + o3) // 6272 % 64` becomes `o0`. Exact integer identities only:
//   (k*d + r) // d -> k + r // d        (k*d + r) % d -> r % d
//   r // d -> q and r % d -> r - q*d     when q*d <= r < (q+1)*d over the whole range of r
//   (g*k + r) // (g*m) -> k // m  and  (g*k + r) % (g*m) -> g*(k % m) + r     when 0 <= r < g
//   x // d * (c*d) + x % d * c -> x * c  (d > 0: a head's column `c // 8 * 8 + c % 8` of a [32, 4, 8] kernel is c)
// and the boolean units: and(x, true) -> x, or(x, false) -> x. Byte quads (ir.ts), x an int8 buffer:
//   pack16(pack8(x[i], x[i+1]), pack8(x[i+2], x[i+3])) -> quad(x[i])
//   pack16(pack8(x[i] + 128, x[i+1] + 128), pack8(x[i+2] + 128, x[i+3] + 128)) -> xor(quad(x[i]), 0x80808080)
import { assigned } from './analysis.js';
import { E, type Expr, type Kernel, type Program, type Stmt } from './ir.js';
import { type Range, type RangeEnv, type VarRange, rangeOf } from './range.js';
import { type LoopSym, SymbolTable } from './scope.js';
import { ExprMutator, type For, children, exprVars } from './visit.js';

/** Σ c·atom + c0, atoms being maximal non-affine subexpressions (kept in order of appearance). */
interface Affine { readonly terms: readonly { readonly atom: Expr; readonly c: number }[]; readonly c0: number }

const INT_MIN = -2147483648, INT_MAX = 2147483647;

function addAffine(a: Affine, b: Affine, scale = 1): Affine {
  const terms = a.terms.map((t) => ({ ...t }));
  for (const t of b.terms) {
    const same = terms.find((u) => u.atom === t.atom); // interned: the same atom is the same object
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

/** build(affine(e)) of i32 sums and products: it involves no ranges, so one result per expression for every kernel. */
const normalForms = new WeakMap<Expr, Expr>();

function normalForm(e: Expr): Expr {
  let out = normalForms.get(e);
  if (out === undefined) normalForms.set(e, (out = build(recombined(affine(e)))));
  return out;
}

/** The divisor d > 0 of an i32 `x // d` or `x % d`, else undefined. */
const divisorOf = (e: Expr, op: 'idiv' | 'mod'): number | undefined => (e.k === 'binary' && e.t === 'i32' && e.op === op && e.b.k === 'const' && e.b.v > 0 ? e.b.v : undefined);

/** x // d * (c*d) + x % d * c -> x * c: floor division and its remainder put back together (x = x // d * d + x % d). */
function recombined(a: Affine): Affine {
  for (const r of a.terms) {
    const d = divisorOf(r.atom, 'mod');
    if (d === undefined) continue;
    const x = (r.atom as Extract<Expr, { k: 'binary' }>).a;
    // interned: the same dividend is the same object
    const q = a.terms.find((t) => divisorOf(t.atom, 'idiv') === d && (t.atom as Extract<Expr, { k: 'binary' }>).a === x && t.c === r.c * d);
    if (q) return recombined(addAffine({ terms: a.terms.filter((t) => t !== r && t !== q), c0: a.c0 }, scaled(affine(x), r.c)));
  }
  return a;
}

/** Per expression: whether it divides or takes a remainder somewhere, and then the variables it reads, sorted. */
const divisions = new WeakMap<Expr, readonly string[] | null>();

/**
 * What the simplified form of an expression depends on besides the expression: nothing (null) when it has no
 * division or remainder (ranges are read only to split those), else the ranges of the variables it reads.
 */
function rangeVarsOf(e: Expr): readonly string[] | null {
  let out = divisions.get(e);
  if (out === undefined) {
    const divides = (e.k === 'binary' && (e.op === 'idiv' || e.op === 'mod')) || children(e).some((c) => rangeVarsOf(c) !== null);
    divisions.set(e, (out = divides ? [...exprVars(e)].sort() : null));
  }
  return out;
}

type Binary = Extract<Expr, { k: 'binary' }>;
const isPack = (e: Expr, op: 'pack8' | 'pack16'): e is Binary => e.k === 'binary' && e.op === op;

/** The form of a byte quad, which the program's buffers decide (quadOf). */
const packsQuad = (e: Expr): boolean => isPack(e, 'pack16') && isPack(e.a, 'pack8') && isPack(e.b, 'pack8');
const quadForms = new WeakMap<Expr, boolean>();

/** Whether e holds a byte quad's form: its simplified form depends on the program's int8 buffers, not only on e. */
function holdsQuadForm(e: Expr): boolean {
  let out = quadForms.get(e);
  if (out === undefined) quadForms.set(e, (out = packsQuad(e) || children(e).some(holdsQuadForm)));
  return out;
}

/**
 * A pack16 of pack8s of four consecutive elements of an int8 buffer, each + 128 or none, as the quad they are:
 * pack8(a, b) keeps a's low byte and pack16 a's low 16 bits, b's bits past 32 drop, so the word's bytes are the
 * elements' (little-endian); an element x + 128 is x's byte xor 0x80 (x in -128..127: its low byte, and below 256).
 * Consecutive: each index minus the first is 1, 2, 3 as affine forms (aligned or not).
 */
function quadOf(e: Binary, int8: ReadonlySet<string>): Expr | undefined {
  if (!packsQuad(e)) return undefined;
  const [a, b] = [e.a as Binary, e.b as Binary], terms = [a.a, a.b, b.a, b.b];
  const u8 = (x: Expr) => (x.k === 'binary' && x.op === 'add' && x.t === 'i32' && x.b.k === 'const' && x.b.v === 128 ? x.a : undefined);
  const flip = u8(terms[0]!) !== undefined, loads = terms.map((x) => (flip ? u8(x) : x));
  const first = loads[0];
  if (first?.k !== 'load' || first.quad || !int8.has(first.buf)) return undefined;
  const consecutive = loads.every((x, j) => {
    if (x?.k !== 'load' || x.quad || x.buf !== first.buf) return false;
    const d = addAffine(affine(x.idx), affine(first.idx), -1);
    return d.terms.length === 0 && d.c0 === j;
  });
  if (!consecutive) return undefined;
  const q = E.quad(first.buf, first.idx);
  return flip ? E.binary('xor', q, E.i32(0x80808080)) : q;
}

/** Simplified forms shared by every kernel and call: by expression, and by the ranges it depends on (rangeVarsOf). */
const simplified = new WeakMap<Expr, Expr | Map<string, Expr>>();

/** Simplifies the i32 index arithmetic of one kernel, knowing the ranges of loop variables and never-assigned decls. */
class KernelSimplifier extends ExprMutator {
  /** loop variables, and decls with the range of their value where never assigned */
  private readonly syms = new SymbolTable<{ readonly range?: VarRange }>();
  /** simplified expressions by scope: valid in nested scopes, which bind only new names */
  private readonly memos: Map<Expr, Expr>[] = [new Map()];
  private readonly env: RangeEnv = (name) => {
    const s = this.syms.lookup(name);
    return s?.kind === 'loop' ? { lo: 0, hi: s.extent - 1, exact: true } : s?.kind === 'decl' ? s.range : undefined;
  };

  /** assigned: names assigned anywhere in the kernel; int8: the program's int8 buffers (byte quads, quadOf) */
  constructor(private readonly assigned: ReadonlySet<string>, private readonly int8: ReadonlySet<string>) {
    super();
  }

  private range(e: Expr): Range | undefined {
    return rangeOf(e, this.env);
  }

  /** Runs f in a new scope (of names and of memoized expressions). */
  private scoped<R>(f: () => R): R {
    this.memos.push(new Map());
    try {
      return this.syms.within(f);
    } finally {
      this.memos.pop();
    }
  }

  private declare(name: string, sym: LoopSym & { readonly range?: VarRange }): void {
    // a name bound again (ill-formed, but simplify runs before verification) makes outer results stale
    if (this.syms.lookup(name)) for (const m of this.memos) m.clear();
    this.syms.declare(name, sym);
  }

  private affineRange(a: Affine): { lo: number; hi: number } | undefined {
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

  /** e simplified, children first (names are bound once in a kernel, so one expression simplifies one way). */
  override expr(e: Expr): Expr {
    for (let i = this.memos.length - 1; i >= 0; i--) {
      const hit = this.memos[i]!.get(e);
      if (hit) return hit;
    }
    const out = this.shared(e);
    this.memos[this.memos.length - 1]!.set(e, out);
    return out;
  }

  /** e simplified, from the table shared across kernels when the ranges it depends on are the same. */
  private shared(e: Expr): Expr {
    // (a program without int8 buffers forms no quad: its results are the same in every program)
    if (this.int8.size && holdsQuadForm(e)) return this.visit(e); // memoized per kernel only
    const vars = rangeVarsOf(e);
    if (vars === null) {
      let out = simplified.get(e) as Expr | undefined;
      if (out === undefined) simplified.set(e, (out = this.visit(e)));
      return out;
    }
    const ranges = vars.map((v) => {
      const r = this.env(v);
      return r ? `${r.lo}:${r.hi}:${r.exact ? 1 : 0}` : '-';
    }).join(',');
    let byRanges = simplified.get(e) as Map<string, Expr> | undefined;
    if (byRanges === undefined) simplified.set(e, (byRanges = new Map()));
    let out = byRanges.get(ranges);
    if (out === undefined) byRanges.set(ranges, (out = this.visit(e)));
    return out;
  }

  protected override visit(e: Expr): Expr {
    try {
      return super.visit(e);
    } catch (err) {
      if (!(err instanceof Overflow)) throw err;
      return e; // a coefficient past int32: the target wraps, keep the expression as written
    }
  }

  protected override rewrite(e: Expr): Expr {
    if (e.k !== 'binary') return e;
    const { a, b } = e;
    if (e.t === 'i32' && (e.op === 'idiv' || e.op === 'mod') && b.k === 'const' && b.v > 0) return this.divMod(e.op, a, b.v);
    if (e.t === 'i32' && (e.op === 'add' || e.op === 'sub' || e.op === 'mul')) return normalForm(e);
    if (e.op === 'pack16') return quadOf(e, this.int8) ?? e;
    // and(x, true) -> x, and(x, false) -> false, or(x, false) -> x, or(x, true) -> true (both sides)
    if (e.op === 'and' || e.op === 'or') {
      const unit = e.op === 'and' ? 1 : 0;
      for (const [c, x] of [[a, b], [b, a]] as const) if (c.k === 'const') return c.v === unit ? x : c;
    }
    return e;
  }

  override stmts(body: readonly Stmt[]): readonly Stmt[] {
    return this.scoped(() => super.stmts(body));
  }

  protected override loop(s: For): Stmt | readonly Stmt[] {
    return this.scoped(() => {
      this.declare(s.v, { kind: 'loop', t: 'i32', extent: s.extent, axis: s.kind });
      return super.loop(s);
    });
  }

  protected override decl(s: Extract<Stmt, { k: 'decl' }>): Stmt | readonly Stmt[] {
    const init = this.expr(s.init);
    const r = s.t === 'i32' && !this.assigned.has(s.name) ? this.range(init) : undefined;
    this.declare(s.name, { kind: 'decl', t: s.t, range: r && { lo: r.lo, hi: r.hi, exact: false } });
    return init === s.init ? s : { ...s, init };
  }
}

/** Simplifies every kernel's index arithmetic (values are unchanged: exact integer identities over known ranges). */
export function simplify(p: Program): Program {
  const int8 = new Set(p.buffers.filter((b) => b.dtype === 'int8').map((b) => b.name));
  const kernels: Kernel[] = p.kernels.map((k) => ({ ...k, body: new KernelSimplifier(assigned(k.body), int8).stmts(k.body) }));
  return { ...p, kernels };
}
