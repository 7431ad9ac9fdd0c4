// legalize: the integer and float semantics every target shares, written once as loop-IR rewrites into the primitive
// ops a renderer maps one to one through its op table. The pipeline's `legalize` stage runs it on the scheduled program
// (driver/pipeline.ts says why after scheduling); renderers take its output. The result means exactly what the input
// means on the loop interpreter.
//
// After it no expression has idiv, mod, sign, i32 abs/max/min/floor/ceil/round, a cast to its own type, or (unless the
// target has IEEE 754-2019 maximum/minimum instructions) f32 max/min; and an i32 division's divisor is never 0 and
// never -1 (native division traps on x/0 and INT_MIN / -1). An operand a rewrite uses more than once is computed
// once, into a fresh decl placed just before the statement (expressions have no side effects, so this is the same
// program point). A floor division or remainder by a positive constant whose dividend ranges prove non-negative
// (range.ts over the loop variables and never-assigned decls around it: `min(r*T + t, n - 1) // 8`) is the plain
// truncating division, with no sign correction.
import type { BinaryOp, CompareOp, LogicalOp, UnaryOp } from '../../ir/ops.js';
import { assigned, operands } from './analysis.js';
import { RangeScopes, rangeOf } from './range.js';
import { WARP_A, WARP_B } from './visit.js';
import { E, type Expr, type Kernel, type Program, QUANT_BINARY, type QuantBinary, type Scalar, S, type Stmt } from './ir.js';

/** What a target computes in one instruction, which legalize then leaves alone. */
export interface LegalizeOptions {
  /**
   * f32 max and min with the interpreter's semantics (IEEE 754-2019 maximum/minimum: NaN propagates, -0 < +0), as
   * wasm's f32.max/f32.min; otherwise they become compares and selects.
   */
  readonly ieeeMinMax: boolean;
}

// The primitive ops left after legalize, by operand type: the keys of every renderer's op tables (a table missing
// one does not compile).
export type F32Unary = Exclude<UnaryOp, 'not' | 'sign'>;
export type I32Unary = 'neg';
export type F32Binary = BinaryOp | CompareOp;
/** f32 binary ops of a target without IEEE max/min instructions */
export type F32BinaryNoMinMax = Exclude<F32Binary, 'max' | 'min'>;
/** i32 `div` truncates, its divisor never 0 nor -1 */
export type I32Binary = Exclude<BinaryOp, 'max' | 'min'> | CompareOp;
export type BoolBinary = LogicalOp | 'eq' | 'ne';
/** A cast `from>to` between different types (f32>i32 saturates, NaN to 0; to bool: x != 0). */
export type Cast = Exclude<`${Scalar}>${Scalar}`, 'f32>f32' | 'i32>i32' | 'bool>bool'>;

type Binary = Extract<Expr, { k: 'binary' }>;

const i32 = E.i32, f32 = E.f32;
const bin = (op: Binary['op'], a: Expr, b: Expr): Expr => E.binary(op, a, b);
const toI32 = (b: Expr): Expr => E.cast('i32', b);

/** Rewrites the expressions of one kernel's statements; names its decls apart from every name the kernel uses. */
class KernelLegalizer {
  /** decls of shared operands, placed before the statement being rewritten */
  private pre: Stmt[] = [];
  private next = 0;

  /** ranges of the loop variables and never-assigned i32 decls in scope, of the input program */
  private readonly ranges: RangeScopes;

  constructor(private readonly names: ReadonlySet<string>, private readonly o: LegalizeOptions, assigned: ReadonlySet<string>) {
    this.ranges = new RangeScopes(assigned);
  }

  /** Whether an i32 expression of the input program is never negative where it is evaluated. */
  private nonNegative(e: Expr): boolean {
    const r = rangeOf(e, this.ranges.env);
    return r !== undefined && r.lo >= 0;
  }

  /** e itself where it is a variable or a constant, else a fresh decl holding it. */
  private share(e: Expr): Expr {
    if (e.k === 'var' || e.k === 'const') return e;
    let name: string;
    do name = `lg${this.next++}`; while (this.names.has(name));
    this.pre.push(S.decl(name, e.t, e));
    return E.v(name, e.t);
  }

  body(ss: readonly Stmt[]): Stmt[] {
    const out: Stmt[] = [];
    for (const s of ss) {
      const r = this.stmt(s);
      out.push(...this.pre, r);
      this.pre = [];
    }
    return out;
  }

  private stmt(s: Stmt): Stmt {
    switch (s.k) {
      case 'for': return { ...s, body: this.ranges.within(() => this.body(s.body), s.v, s.extent) };
      case 'if': {
        const cond = this.expr(s.cond); // its shared operands are declared before the if
        return { ...s, cond, body: this.ranges.within(() => this.body(s.body)) };
      }
      case 'decl': {
        const init = this.expr(s.init);
        this.ranges.declare(s.name, s.t, s.init); // after its init, which reads an outer binding of the name
        return { ...s, init };
      }
      case 'assign': return { ...s, value: this.expr(s.value) };
      case 'store': {
        const idx = this.expr(s.idx);
        return { ...s, idx, value: this.expr(s.value) };
      }
      case 'local': return s;
      case 'arrive': return { ...s, idx: this.expr(s.idx) };
      case 'warpTree': {
        // a sum or product is native on every target; max and min may become selects (of two variables: no temps)
        if (s.op === 'add' || s.op === 'mul' || s.combine) return s;
        const combine = this.expr(E.binary(s.op, E.v(WARP_A, s.t), E.v(WARP_B, s.t)));
        if (this.pre.length) throw new Error(`legalize: the combine of warp tree ${s.local} needs temporaries`);
        return combine.k === 'binary' && combine.op === s.op ? s : { ...s, combine };
      }
    }
  }

  /** e with its operands legalized, then itself. */
  expr(e: Expr): Expr {
    switch (e.k) {
      case 'const': case 'var': return e;
      case 'load': return { ...e, idx: this.expr(e.idx) };
      case 'cast': {
        const a = this.expr(e.a);
        return a.t === e.t ? a : { ...e, a };
      }
      case 'unary': return this.unary(e.op, this.expr(e.a), e);
      case 'binary': return this.binary(e.op, this.expr(e.a), this.expr(e.b), e);
      case 'select': return { ...e, c: this.expr(e.c), a: this.expr(e.a), b: this.expr(e.b) };
      case 'philox': return { ...e, counter: this.expr(e.counter), index: this.expr(e.index) };
    }
  }

  private unary(op: UnaryOp, a: Expr, e: Expr): Expr {
    const same = (): Expr => (a === (e as { a: Expr }).a ? e : E.unary(op, a));
    if (a.t === 'f32') {
      if (op !== 'sign') return same();
      // sign(x) -> x > 0 ? 1 : x < 0 ? -1 : x != x ? x : 0      (NaN stays, sign(-0) is +0)
      const x = this.share(a);
      return E.select(bin('gt', x, f32(0)), f32(1), E.select(bin('lt', x, f32(0)), f32(-1), E.select(bin('ne', x, x), x, f32(0))));
    }
    if (a.t === 'bool' || op === 'neg') return same();
    switch (op) {
      // floor, ceil and round of an integer are the integer
      case 'floor': case 'ceil': case 'round': return a;
      case 'abs': {
        // abs(x) -> x < 0 ? -x : x      (abs(INT_MIN) wraps to INT_MIN)
        const x = this.share(a);
        return E.select(bin('lt', x, i32(0)), E.unary('neg', x), x);
      }
      case 'sign': {
        // sign(x) -> i32(x > 0) - i32(x < 0)
        const x = this.share(a);
        return bin('sub', toI32(bin('gt', x, i32(0))), toI32(bin('lt', x, i32(0))));
      }
      default: throw new Error(`legalize: unary ${op} of i32 has no rewrite`);
    }
  }

  private binary(op: Binary['op'], a: Expr, b: Expr, e: Expr): Expr {
    const same = (): Expr => (a === (e as Binary).a && b === (e as Binary).b ? e : bin(op, a, b));
    if (a.t === 'f32') return (op === 'max' || op === 'min') && !this.o.ieeeMinMax ? this.minMax(op, a, b) : same();
    if (a.t !== 'i32') return same();
    switch (op) {
      case 'max': case 'min': {
        // max(x, y) -> x > y ? x : y;  min(x, y) -> x < y ? x : y
        const x = this.share(a), y = this.share(b);
        return E.select(bin(op === 'max' ? 'gt' : 'lt', x, y), x, y);
      }
      case 'div': return this.div(a, b);
      case 'idiv': return this.idiv(a, b, this.nonNegative((e as Binary).a));
      case 'mod': return this.mod(a, b, this.nonNegative((e as Binary).a));
      default: return same();
    }
  }

  /**
   * f32 max and min as compares and selects, NaN propagating and -0 < +0; a constant goes second (relu is two selects):
   *   max(x, y) -> x > y ? x : x != x ? x : x == 0 ? x + y : y
   *   min(x, y) -> x < y ? x : x != x ? x : x == 0 ? -(-x - y) : y
   * Where x is ±0 and not past y, y is NaN, a zero or the larger: x + y is y, with the sign of zeros IEEE addition
   * gives (-0 only when both are), which is max's; -(-x - y) is y with -0 when either is, min's. A constant y that is
   * not the zero losing the tie (-0 for max, +0 for min) needs no tie: y is the answer.
   */
  private minMax(op: 'max' | 'min', a: Expr, b: Expr): Expr {
    if (a.k === 'const' && b.k !== 'const') [a, b] = [b, a];
    const max = op === 'max', x = this.share(a), y = this.share(b);
    const tie = y.k === 'const' && !Object.is(y.v, max ? -0 : 0) ? y
      : E.select(bin('eq', x, f32(0)), max ? bin('add', x, y) : E.unary('neg', bin('sub', E.unary('neg', x), y)), y);
    return E.select(bin(max ? 'gt' : 'lt', x, y), x, E.select(bin('ne', x, x), x, tie));
  }

  /** x / y (C truncation), 0 for y = 0, INT_MIN / -1 = INT_MIN: native division where y is neither 0 nor -1. */
  private div(a: Expr, b: Expr): Expr {
    if (b.k === 'const') return b.v === 0 ? i32(0) : b.v === -1 ? E.unary('neg', a) : bin('div', a, b);
    // x / y -> y == -1 ? -x : y == 0 ? 0 : x / (y == 0 | y == -1 ? 1 : y)
    const x = this.share(a), { zero, minus1, safe } = this.divisor(b);
    return E.select(minus1, E.unary('neg', x), E.select(zero, i32(0), bin('div', x, safe)));
  }

  /** A divisor y as `y == 0`, `y == -1` and a native divisor (1 in their place). */
  private divisor(b: Expr): { y: Expr; zero: Expr; minus1: Expr; safe: Expr } {
    const y = this.share(b), zero = this.share(bin('eq', y, i32(0))), minus1 = this.share(bin('eq', y, i32(-1)));
    return { y, zero, minus1, safe: this.share(E.select(bin('or', zero, minus1), i32(1), y)) };
  }

  /** Floor division, 0 for a zero divisor; `natural` where the dividend is never negative. */
  private idiv(a: Expr, b: Expr, natural: boolean): Expr {
    if (b.k === 'const' && b.v === 1) return a;
    // x // d -> x / d      (x >= 0, d > 0: truncation is floor)
    if (b.k === 'const' && b.v > 0 && natural) return bin('div', a, b);
    if (b.k === 'const' && b.v > 0) {
      // x // d -> q - i32(x < 0 & q*d != x), q = x / d      (d > 0: truncation rounds negative quotients up)
      const x = this.share(a), q = this.share(bin('div', x, b));
      return bin('sub', q, toI32(bin('and', bin('lt', x, i32(0)), bin('ne', bin('mul', q, b), x))));
    }
    // x // y -> y == -1 ? -x : y == 0 ? 0 : q - i32((x < 0) != (y < 0) & q*y != x), q = x / y
    const x = this.share(a), { zero, minus1, safe } = this.divisor(b);
    const q = this.share(bin('div', x, safe));
    const down = bin('and', bin('ne', bin('lt', x, i32(0)), bin('lt', safe, i32(0))), bin('ne', bin('mul', q, safe), x));
    return E.select(minus1, E.unary('neg', x), E.select(zero, i32(0), bin('sub', q, toI32(down))));
  }

  /** Euclidean remainder in [0, |y|), 0 for a zero divisor; `natural` where the dividend is never negative. */
  private mod(a: Expr, b: Expr, natural: boolean): Expr {
    if (b.k === 'const' && b.v === 1) return i32(0);
    if (b.k === 'const' && b.v > 0 && natural) {
      // x % d -> x - (x / d)*d      (x >= 0, d > 0: the truncated remainder is in [0, d))
      const x = this.share(a);
      return bin('sub', x, bin('mul', bin('div', x, b), b));
    }
    if (b.k === 'const' && b.v > 0) {
      // x % d -> r + (r < 0 ? d : 0), r = x - (x / d)*d
      const x = this.share(a), r = this.share(bin('sub', x, bin('mul', bin('div', x, b), b)));
      return bin('add', r, E.select(bin('lt', r, i32(0)), b, i32(0)));
    }
    // x % y -> y == 0 ? 0 : r + (r < 0 ? |y| : 0), r = x - (x / s)*s, s the native divisor (|INT_MIN| wraps, as in
    // int32 arithmetic the sum then lands in [0, 2^31))
    const x = this.share(a), { y, zero, safe } = this.divisor(b);
    const r = this.share(bin('sub', x, bin('mul', bin('div', x, safe), safe)));
    const abs = E.select(bin('lt', y, i32(0)), E.unary('neg', y), y);
    return E.select(zero, i32(0), bin('add', r, E.select(bin('lt', r, i32(0)), abs, i32(0))));
  }
}

/** Every name the statements declare, read, load or store (no fresh decl may shadow or meet one). */
function namesOf(stmts: readonly Stmt[], out: Set<string>): Set<string> {
  const expr = (e: Expr): void => {
    if (e.k === 'var') out.add(e.name);
    else if (e.k === 'load') out.add(e.buf);
    operands(e).forEach(expr);
  };
  for (const s of stmts) {
    if (s.k === 'for') { out.add(s.v); namesOf(s.body, out); }
    else if (s.k === 'if') { expr(s.cond); namesOf(s.body, out); }
    else if (s.k === 'decl') { out.add(s.name); expr(s.init); }
    else if (s.k === 'assign') { out.add(s.name); expr(s.value); }
    else if (s.k === 'local') out.add(s.name);
    else if (s.k === 'warpTree') out.add(s.local);
    else if (s.k === 'arrive') { out.add(s.counter); out.add(s.local); expr(s.idx); }
    else { out.add(s.buf); expr(s.idx); expr(s.value); }
  }
  return out;
}

/** One kernel legalized; `names` are taken already (the program's buffers). */
export function legalizeKernel(k: Kernel, o: LegalizeOptions, names: ReadonlySet<string> = new Set()): Kernel {
  return { ...k, body: new KernelLegalizer(namesOf(k.body, new Set(names)), o, assigned(k.body)).body(k.body) };
}

/** Statements legalized on their own (a loop being judged for vectorization), fresh names apart from theirs. */
export function legalizeStmts(ss: readonly Stmt[], o: LegalizeOptions): Stmt[] {
  return new KernelLegalizer(namesOf(ss, new Set()), o, assigned(ss)).body(ss);
}

/** The program with every kernel legalized for a target. */
export function legalize(p: Program, o: LegalizeOptions): Program {
  const names = new Set(p.buffers.map((b) => b.name));
  return { ...p, kernels: p.kernels.map((k) => legalizeKernel(k, o, names)) };
}

/** The unary and binary ops left after legalize, by operand type. */
interface UnaryOf { f32: F32Unary; i32: I32Unary; bool: 'not' }
interface BinaryOf { f32: F32BinaryNoMinMax; i32: I32Binary; bool: BoolBinary }

/**
 * A renderer's op table: what each primitive op is on the target (U for unary ops, B binary, C casts). Exhaustive by
 * type, so an op without an entry does not compile; f32 max/min only where the target has IEEE instructions.
 */
export interface OpTable<U, B, C = U> {
  readonly unary: { readonly [T in Scalar]: Readonly<Record<UnaryOf[T], U>> };
  readonly binary: { readonly [T in Scalar]: Readonly<Record<BinaryOf[T], B>> & (T extends 'f32' ? Partial<Record<'max' | 'min', B>> : unknown)
    & (T extends 'i32' ? Partial<Record<QuantBinary, B>> : unknown) };
  readonly cast: Readonly<Record<Cast, C>>;
}

const missing = (what: string): Error => new Error(`internal error: ${what} has no op-table entry (legalize rewrites it)`);

/** The table's entry for a unary op on an operand of type t. */
export function unaryOp<U>(table: OpTable<U, unknown, unknown>, op: UnaryOp, t: Scalar): U {
  const f = (table.unary[t] as Partial<Record<string, U>>)[op];
  if (!f) throw missing(`unary ${op} of ${t}`);
  return f;
}

/** The table's entry for a binary op on operands of type t. */
export function binaryOp<B>(table: OpTable<unknown, B, unknown>, op: Binary['op'], t: Scalar): B {
  const f = (table.binary[t] as Partial<Record<string, B>>)[op];
  if (!f && QUANT_BINARY.has(op)) throw new Error(`int8 requantization (${op}) is not rendered by this target yet`);
  if (!f) throw missing(`binary ${op} of ${t}`);
  return f;
}

/** The table's entry for a cast between two different types. */
export function castOp<C>(table: OpTable<unknown, unknown, C>, from: Scalar, to: Scalar): C {
  const f = (table.cast as Partial<Record<string, C>>)[`${from}>${to}`];
  if (!f) throw missing(`cast ${from} to ${to}`);
  return f;
}
