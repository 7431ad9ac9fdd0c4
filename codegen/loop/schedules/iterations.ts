// Which elements the iterations of a loop touch: the legality of running them at once (GPU blocks and threads, a
// strided share of a loop per thread). Indices are read through the decls that compute them, and a flat index
// decoded into digits (`f // S % E`, as fuse writes them) counts as its digits: `o1 = f % 8; o0 = f // 8 % 4`
// stored at `o0*8 + o1` is injective in f, and f = g*T + t is injective in g and in t.
import { operands } from '../analysis.js';
import { loopEnv, rangeOf as rangeIn } from '../range.js';
import { E, type Expr, type Stmt, loadedIndices } from '../ir.js';
import { type For, affineOf, key, separates, varsOf } from './loops.js';

/** Inclusive range of an i32 expression over loop extents (variables absent from `extents` are unknown; range.ts). */
export function rangeOf(e: Expr, extents: ReadonlyMap<string, number>): { lo: number; hi: number } | undefined {
  return rangeIn(e, loopEnv(extents));
}

/** A digit of a flat index x: `x // s % e` (e undefined for a top digit `x // s`). */
export interface Digit {
  readonly name: string;
  readonly x: Expr;
  readonly s: number;
  readonly e?: number;
}

/** The digit form of e, or undefined: x // s % e, x % e, x // s (constants positive). */
export function digitOfExpr(e: Expr): { x: Expr; s: number; e?: number } | undefined {
  if (e.k !== 'binary' || e.t !== 'i32' || e.b.k !== 'const' || e.b.v <= 0) return undefined;
  if (e.op === 'mod') {
    const a = e.a;
    if (a.k === 'binary' && a.op === 'idiv' && a.b.k === 'const' && a.b.v > 0) return { x: a.a, s: a.b.v, e: e.b.v };
    return { x: a, s: 1, e: e.b.v };
  }
  if (e.op === 'idiv') return { x: e.a, s: e.b.v };
  return undefined;
}

/**
 * The accesses of a loop's body with their indices and stored values written through the decls of the body (so
 * an index is a function of loop variables): what the independence and privatization checks examine.
 */
export class Body {
  /** loops inside the examined statements (their variables move), with extents */
  readonly inner = new Map<string, number>();
  /** decls of the examined statements: their init (assigned ones are opaque: they vary in unknown ways) */
  private readonly decls = new Map<string, Expr | null>();
  readonly assignedOutside = new Set<string>();
  readonly declared = new Set<string>();
  readonly accesses: { array: string; idx: Expr; value?: Expr; write: boolean }[] = [];
  private readonly memo = new Map<string, Expr>();

  constructor(stmts: readonly Stmt[]) {
    const assigned = new Set<string>();
    const walk = (ss: readonly Stmt[]): void => {
      for (const s of ss) {
        if (s.k === 'for') { this.inner.set(s.v, s.extent); walk(s.body); }
        else if (s.k === 'decl') { this.decls.set(s.name, s.init); this.declared.add(s.name); }
        else if (s.k === 'local') this.declared.add(s.name);
        else if (s.k === 'assign') assigned.add(s.name);
      }
    };
    walk(stmts);
    for (const a of assigned) {
      if (this.decls.has(a)) this.decls.set(a, null);
      else this.assignedOutside.add(a);
    }
    const visit = (ss: readonly Stmt[]): void => {
      for (const s of ss) {
        const loads = (e: Expr): void => {
          if (e.k === 'load') for (const idx of loadedIndices(e)) this.accesses.push({ array: e.buf, idx, write: false });
          operands(e).forEach(loads);
        };
        if (s.k === 'decl') loads(s.init);
        else if (s.k === 'assign') loads(s.value);
        else if (s.k === 'store') {
          loads(s.idx);
          loads(s.value);
          this.accesses.push({ array: s.buf, idx: s.idx, value: s.value, write: true });
        } else if (s.k === 'for') visit(s.body);
      }
    };
    visit(stmts);
  }

  /** e with the body's decls replaced by what they compute (assigned decls stay variables). */
  inline(e: Expr): Expr {
    switch (e.k) {
      case 'const': return e;
      case 'var': {
        const init = this.decls.get(e.name);
        if (!init) return e;
        let out = this.memo.get(e.name);
        if (!out) this.memo.set(e.name, (out = this.inline(init)));
        return out;
      }
      case 'load': return { ...e, idx: this.inline(e.idx) };
      case 'unary': case 'cast': return { ...e, a: this.inline(e.a) };
      case 'binary': return { ...e, a: this.inline(e.a), b: this.inline(e.b) };
      case 'select': return { ...e, c: this.inline(e.c), a: this.inline(e.a), b: this.inline(e.b) };
      case 'philox': return { ...e, counter: this.inline(e.counter), index: this.inline(e.index) };
    }
  }

  /** Whether the variable varies from one iteration to the next: a loop of the body or an assigned decl. */
  moves(name: string): boolean {
    return this.inner.has(name) || this.decls.get(name) === null;
  }
}

/** An index as an affine form over loop variables, digits (pseudo variables `#d<n>`) and fixed atoms (`#f<n>`). */
export class Abstraction {
  readonly digits: Digit[] = [];
  private readonly fixed = new Map<string, string>();

  /** moving: whether a variable varies (a loop of the examined statements or an assigned decl); loop: whether it is a loop */
  constructor(private readonly moving: (name: string) => boolean, private readonly loop: (name: string) => boolean = moving) {}

  private mentionsMoving(e: Expr): boolean {
    return [...varsOf(e)].some((v) => this.moving(v));
  }

  /** The abstract form of an (inlined) index, or undefined when a moving part is not affine in digits. */
  of(e: Expr): Expr | undefined {
    if (!this.mentionsMoving(e)) {
      if (e.k === 'const' || e.k === 'var' || (affineOf(e) && e.t === 'i32')) return e;
      const k = key(e);
      let name = this.fixed.get(k);
      if (!name) this.fixed.set(k, (name = `#f${this.fixed.size}`));
      return E.v(name);
    }
    if (e.k === 'var') return this.loop(e.name) ? e : undefined;
    if (e.t !== 'i32') return undefined;
    if (e.k === 'binary' && (e.op === 'add' || e.op === 'sub' || e.op === 'mul')) {
      const a = this.of(e.a), b = this.of(e.b);
      return a && b ? { ...e, a, b } : undefined;
    }
    // any other moving part is the top digit of itself (`min(r*T + t, n - 1)`: x // 1)
    const d = digitOfExpr(e) ?? { x: e, s: 1 };
    const xk = key(d.x);
    let digit = this.digits.find((g) => key(g.x) === xk && g.s === d.s && g.e === d.e);
    if (!digit) this.digits.push(digit = { name: `#d${this.digits.length}`, ...d });
    return E.v(digit.name);
  }

  /** The digits of x, or of every flat index when x is undefined. */
  of_x(xk: string): Digit[] {
    return this.digits.filter((d) => key(d.x) === xk);
  }

  /** Flat indices (by text) the digits decode. */
  flats(): Map<string, Expr> {
    return new Map(this.digits.map((d) => [key(d.x), d.x]));
  }
}

/** Whether digits decode x injectively: `x // 1 % e0`, `x // e0 % e1`, ... covering x's range (from 0). */
export function complete(digits: readonly Digit[], range: { lo: number; hi: number } | undefined): boolean {
  if (!range || range.lo < 0) return false;
  const ds = [...digits].sort((a, b) => a.s - b.s);
  let s = 1;
  for (const [i, d] of ds.entries()) {
    if (d.s !== s) return false;
    if (d.e === undefined) return i === ds.length - 1;
    s *= d.e;
  }
  return range.hi < s;
}

/** The extent of a digit's values (its modulus, or the range of a top digit). */
function digitExtent(d: Digit, extents: ReadonlyMap<string, number>): number | undefined {
  if (d.e !== undefined) return d.e;
  const r = rangeOf(d.x, extents);
  return r && r.lo >= 0 ? Math.floor(r.hi / d.s) + 1 : undefined;
}

/**
 * Why the iterations of loop l (inside the loops `around`) may not run at once (in any order, or together), or undefined. They must assign no
 * scalar declared outside l, and for every array l writes (a buffer, or a local array declared outside it), either
 * every access uses one index that is different in different iterations, whatever the loops inside l do (written
 * through the body's decls; a decoded flat index counts as its digits), or l never reads the array and stores it
 * once, at an index injective in some x through which alone the index and the stored value depend on l and the
 * loops in it (iterations that store the same element store the same value: a clamped strided share).
 */
export function independence(l: For, around: readonly For[] = []): string | undefined {
  const body = new Body(l.body);
  const outside = [...body.assignedOutside];
  if (outside.length) return `it assigns '${outside[0]}', declared outside it`;
  // the loops around l are fixed, but their ranges bound the flat indices decoded inside
  const extents = new Map([...around.map((o) => [o.v, o.extent] as const), ...body.inner, [l.v, l.extent]]);
  const moving = (v: string) => v === l.v || body.moves(v);
  const loop = (v: string) => v === l.v || body.inner.has(v);
  const written = new Set(body.accesses.filter((a) => a.write && !body.declared.has(a.array)).map((a) => a.array));
  const writtenAll = new Set(body.accesses.filter((a) => a.write).map((a) => a.array));
  for (const array of written) {
    const acc = body.accesses.filter((a) => a.array === array);
    const idx = acc.map((a) => body.inline(a.idx));
    if (sameIndexSeparates(idx, l, extents, moving, loop)) continue;
    const stores = acc.filter((a) => a.write);
    if (acc.every((a) => a.write) && stores.length === 1) {
      const value = body.inline(stores[0]!.value!);
      if (!readsAny(value, writtenAll) && duplicatesAgree(idx[0]!, value, extents, moving, loop)) continue;
    }
    return `cannot prove that its iterations touch different elements of '${array}' (index ${[...new Set(acc.map((a) => key(a.idx)))].join(', ')})`;
  }
  return undefined;
}

function readsAny(e: Expr, arrays: ReadonlySet<string>): boolean {
  return (e.k === 'load' && arrays.has(e.buf)) || operands(e).some((x) => readsAny(x, arrays));
}

/** Every index is the same, and different iterations of l give different elements whatever the inner loops do. */
function sameIndexSeparates(idx: readonly Expr[], l: For, extents: ReadonlyMap<string, number>, moving: (v: string) => boolean, loop: (v: string) => boolean): boolean {
  if (l.extent === 1) return true;
  const text = key(idx[0]!);
  if (idx.some((e) => key(e) !== text)) return false;
  const abs = new Abstraction(moving, loop);
  const form = abs.of(idx[0]!);
  if (!form) return false;
  const distinct = new Map<string, number>([[l.v, l.extent]]);
  const free = new Map<string, number>([...extents].filter(([v]) => v !== l.v && moving(v)));
  for (const [xk, x] of abs.flats()) {
    const ds = abs.of_x(xk);
    const xa = new Abstraction(moving, loop), xs = xa.of(x);
    const varies = varsOf(x).has(l.v);
    if (varies) {
      // the flat index must differ between iterations of l, and its digits decode it
      if (!xs || xa.digits.length || !separates(xs, new Map([[l.v, l.extent]]), free) || !complete(ds, rangeOf(x, extents))) return false;
    }
    for (const d of ds) {
      const n = digitExtent(d, extents);
      if (n === undefined) return false;
      (varies ? distinct : free).set(d.name, n);
    }
  }
  if (!affineOf(form)) return false;
  // l itself may not appear directly (only through digits): then it is not a term of the form
  if (!varsOf(form).has(l.v)) distinct.delete(l.v);
  if (distinct.size === 0) return false;
  return separates(form, distinct, free);
}

/**
 * The index and value depend on the moving variables only through one flat index x, and the index is injective in
 * x: iterations that store one element compute the same x, so store the same value.
 */
function duplicatesAgree(idx: Expr, value: Expr, extents: ReadonlyMap<string, number>, moving: (v: string) => boolean, loop: (v: string) => boolean): boolean {
  const abs = new Abstraction(moving, loop);
  const form = abs.of(idx);
  const flats = abs.flats();
  if (!form || flats.size !== 1) return false;
  const [xk, x] = [...flats][0]!;
  const ds = abs.of_x(xk);
  if ([...varsOf(form)].some(moving) || !complete(ds, rangeOf(x, extents))) return false;
  if (!separates(form, new Map(ds.map((d) => [d.name, digitExtent(d, extents) ?? Infinity])), new Map())) return false;
  const hidden = (e: Expr): boolean => key(e) === xk || (e.k === 'var' ? !moving(e.name) : operands(e).every(hidden));
  return hidden(value);
}
