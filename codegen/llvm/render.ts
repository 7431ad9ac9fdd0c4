// Renders loop-IR programs to an LLVM module through llvm-bindings: one function per kernel over one memory block.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { independentIterations, pureDecls } from '../loop/analysis.js';
import { type Expr, type Scalar, type Stmt, intern } from '../loop/ir.js';
import { mapExpr, someExpr } from '../loop/visit.js';
import { allreduceBuffer } from '../loop/allreduce.js';
import type { Entry, Layout } from '../loop/layout.js';
import { type OpTable, binaryOp, castOp, unaryOp } from '../loop/legalize.js';
import { printExpr } from '../loop/printer.js';
import { foldForm, laneVar } from '../loop/fold.js';
import { LLVM_VECTORS, checkVectorLoops, laneCoef, laneStride } from '../loop/vectorize.js';
import { type DotIsa, type Lane, helper, internalize, laneByLane, vectorHelpers } from './vector.js';

// llvm-bindings is a native addon (built against LLVM 14 at install); loaded on first use so that the rest of
// kiln works where it could not be built
type LLVM = typeof import('llvm-bindings');
let llvmModule: LLVM | undefined;
export function llvm(): LLVM {
  if (!llvmModule) {
    try {
      llvmModule = createRequire(import.meta.url)('llvm-bindings') as LLVM;
    } catch (e) {
      throw new Error(`the llvm target needs the npm package llvm-bindings built against LLVM 14 (npm install with nodedir=/usr in .npmrc): ${(e as Error).message}`);
    }
  }
  return llvmModule;
}

type V = import('llvm-bindings').Value;
type T = import('llvm-bindings').Type;
type Fn = import('llvm-bindings').Function;
type BB = import('llvm-bindings').BasicBlock;
type IRBuilder = import('llvm-bindings').IRBuilder;

/**
 * Every constant the renderer emits, made here and nowhere else. IRBuilder.getInt64 reads its number as an
 * unsigned 32-bit value (an index offset of -4 became 4294967292, 16 GiB past the memory block) and getInt32 wraps
 * silently, so integers go through ConstantInt.get(type, v, signed), which reads an int64; floats are rounded to
 * float32 once, NaN made explicitly.
 */
export function constants(b: IRBuilder) {
  const L = llvm();
  // each constant made once (LLVM uniques them anyway): every call into llvm-bindings crosses N-API, and the
  // Transformer's render made hundreds of thousands of them
  const cached = (make: (v: number) => V) => {
    const made = new Map<number | string, V>();
    return (v: number): V => {
      const key = Object.is(v, -0) ? '-0' : v; // a Map takes -0 and 0 for one key
      let c = made.get(key);
      if (c === undefined) made.set(key, (c = make(v)));
      return c;
    };
  };
  const int = (t: import('llvm-bindings').IntegerType, bits: number) => cached((v) => {
    // an i32 constant wraps as in the loop IR (x | 0); an index must be exact
    if (!Number.isSafeInteger(v) || (bits < 64 && (v < -(2 ** (bits - 1)) || v >= 2 ** bits))) throw new Error(`llvm: ${v} is not an i${bits} constant`);
    return L.ConstantInt.get(t, v, true);
  });
  const yes = b.getTrue(), no = b.getFalse(), f32 = b.getFloatTy(), f64 = b.getDoubleTy();
  return {
    i64: int(b.getInt64Ty(), 64),
    i32: int(b.getInt32Ty(), 32),
    i8: int(b.getInt8Ty(), 8),
    bool: (v: number | boolean) => (v ? yes : no),
    f32: cached((v) => (Number.isNaN(v) ? L.ConstantFP.getNaN(f32) : L.ConstantFP.get(f32, Math.fround(v)))),
    f64: cached((v) => (Number.isNaN(v) ? L.ConstantFP.getNaN(f64) : L.ConstantFP.get(f64, v))),
  };
}

/** What an op-table entry builds with, for one value: a scalar, or a vector of the loop's lanes. */
interface Emit {
  readonly b: IRBuilder;
  /** the type t, or the vector of it */
  type(t: Lane): T;
  /** the constant v of type t (splat over the lanes) */
  c(t: Lane, v: number): V;
  /** an LLVM intrinsic overloaded on the types (vectors of them) */
  intrinsic(id: number, args: V[], ...types: Lane[]): V;
  /** a function of libm or the C runtime over t; on vectors its vector helper (vector.ts), else lane by lane */
  call(name: string, args: V[], t: Lane): V;
  /** transcendental functions through double, rounded once (LlvmTargetOptions.exactMath) */
  readonly exact: boolean;
  /** the target's int16 pair dot product instruction */
  readonly dot?: DotIsa;
}
type U = (x: Emit, a: V) => V;
type B = (x: Emit, a: V, b: V) => V;
const I = () => llvm().Intrinsic;
const intrinsic = (id: () => number): U => (x, a) => x.intrinsic(id(), [a], 'f32');
/** libm's `name`f; exact: libm's `name` on double, rounded once to float, as the interpreter (and the cuda target's
 * kiln_exp..kiln_pow) compute it: libm's and V8's double results are within an ulp of double, so they round to one
 * float but where the exact value is within about 2^-29 of a float's rounding boundary (tests/llvm/exact_math.test.ts). */
const math = (x: Emit, name: string, args: V[]): V => (x.exact
  ? x.b.CreateFPTrunc(x.call(name, args.map((a) => x.b.CreateFPExt(a, x.type('f64'))), 'f64'), x.type('f32'))
  : x.call(`${name}f`, args, 'f32'));
const libm = (name: string): U => (x, a) => math(x, name, [a]);
/** 1/x and 1/sqrt(x) correctly rounded, through double */
const viaDouble = (f: (x: Emit, d: V) => V): U => (x, a) => x.b.CreateFPTrunc(x.b.CreateFDiv(x.c('f64', 1), f(x, x.b.CreateFPExt(a, x.type('f64')))), x.type('f32'));

/** gemmlowp SaturatingRoundingDoublingHighMul (ir/quant.ts srdhm): (a·b + nudge) / 2^31 in i64, INT_MIN² saturated (vectors: vector.ts). */
const qmulhi: B = (x, a, b) => {
  if (a.getType().getTypeID() === llvm().Type.TypeID.FixedVectorTyID) return x.call('qmulhi', [a, b], 'i32');
  const k = constants(x.b), i64 = x.b.getInt64Ty();
  const ab = x.b.CreateMul(x.b.CreateSExt(a, i64), x.b.CreateSExt(b, i64));
  const nudge = x.b.CreateSelect(x.b.CreateICmpSGE(ab, k.i64(0)), k.i64(2 ** 30), k.i64(1 - 2 ** 30));
  const r = x.b.CreateTrunc(x.b.CreateSDiv(x.b.CreateAdd(ab, nudge), k.i64(2 ** 31)), x.b.getInt32Ty());
  const overflow = x.b.CreateAnd(x.b.CreateICmpEQ(a, b), x.b.CreateICmpEQ(a, k.i32(-(2 ** 31))));
  return x.b.CreateSelect(overflow, k.i32(2 ** 31 - 1), r);
};
/** gemmlowp RoundingDivideByPOT (ir/quant.ts): (x >> e) + (remainder > threshold), e in 0..31. */
const qshr: B = (x, a, e) => {
  if (a.getType().getTypeID() === llvm().Type.TypeID.FixedVectorTyID) return x.call('qshr', [a, e], 'i32');
  const k = constants(x.b);
  const mask = x.b.CreateSub(x.b.CreateShl(k.i32(1), e), k.i32(1)); // 1 << 31 wraps to INT_MIN: mask INT_MAX
  const threshold = x.b.CreateAdd(x.b.CreateAShr(mask, k.i32(1)), x.b.CreateZExt(x.b.CreateICmpSLT(a, k.i32(0)), x.b.getInt32Ty()));
  const up = x.b.CreateICmpSGT(x.b.CreateAnd(a, mask), threshold);
  return x.b.CreateAdd(x.b.CreateAShr(a, e), x.b.CreateZExt(up, x.b.getInt32Ty()));
};

/** The two signed int16 halves of each i32, multiplied pairwise and summed (ir.ts dot2): on vectors the helper whose
 * even/odd i16 lanes LLVM selects as one pmaddwd (vpdpwssd with an add where the CPU has AVX-VNNI), as scalars shifts. */
const dot2: B = (x, a, b) => {
  if (a.getType().getTypeID() === llvm().Type.TypeID.FixedVectorTyID) return x.call('dot2', [a, b], 'i32');
  if (x.dot === 'dsp') return x.call('llvm.arm.smuad', [a, b], 'i32');
  const lo = (v: V) => x.b.CreateAShr(x.b.CreateShl(v, x.c('i32', 16)), x.c('i32', 16)), hi = (v: V) => x.b.CreateAShr(v, x.c('i32', 16));
  return x.b.CreateAdd(x.b.CreateMul(lo(a), lo(b)), x.b.CreateMul(hi(a), hi(b)));
};

/** The four u8 x s8 byte products of each i32 summed (ir.ts dot4): on vectors the helper (vpdpbusd where the CPU has
 * AVX-512 VNNI), as scalars shifts and masks. */
const dot4: B = (x, a, b) => {
  if (a.getType().getTypeID() === llvm().Type.TypeID.FixedVectorTyID) return x.call('dot4', [a, b], 'i32');
  let sum: V | undefined;
  for (let i = 0; i < 32; i += 8) {
    const u = x.b.CreateAnd(x.b.CreateLShr(a, x.c('i32', i)), x.c('i32', 0xff)), s = x.b.CreateAShr(x.b.CreateShl(b, x.c('i32', 24 - i)), x.c('i32', 24));
    const p = x.b.CreateMul(u, s);
    sum = sum ? x.b.CreateAdd(sum, p) : p;
  }
  return sum!;
};

/**
 * llvm.fptosi.sat on vectors without its per-lane scalar code (LLVM 14 on x86 converts lane by lane): fptosi of the
 * value clamped into i32 range, then the saturated ends and NaN → 0 chosen by selects (one cvttps2dq and a few masks).
 */
const fptosiSat: U = (x, a) => {
  const b = x.b, big = x.c('f32', 2 ** 31), small = x.c('f32', -(2 ** 31));
  const hi = b.CreateFCmpOGE(a, big), lo = b.CreateFCmpOLT(a, small), nan = b.CreateFCmpUNE(a, a);
  const inRange = b.CreateSelect(b.CreateOr(b.CreateOr(hi, lo), nan), x.c('f32', 0), a);
  const r = b.CreateFPToSI(inRange, x.type('i32'));
  return b.CreateSelect(hi, x.c('i32', 2 ** 31 - 1), b.CreateSelect(lo, x.c('i32', -(2 ** 31)), r));
};

/**
 * Whether two expressions are structurally equal: interned bottom-up, as one built by literal (not through E.*, whose
 * children intern compares by identity) may not be (tests/quant/graphs.ts mlp's quantize on x86-64-v3 was not: it missed
 * clampRange: its quotient divided by vdivps, converted with saturation guards).
 */
const sameExpr = (x: Expr, y: Expr): boolean => x === y || mapExpr(x, intern) === mapExpr(y, intern);

/**
 * The range of a float that selects clamp: [lo, hi], and whether it may be NaN. select(x > c, x, c) is at least c
 * and never NaN (the compare is false on NaN: c), select(x > c, c, x) at most c and NaN where x is; lt the same
 * upwards. undefined: no select of a constant.
 */
function clampRange(e: Expr): { lo: number; hi: number; nan: boolean } | undefined {
  if (e.k === 'const') return { lo: e.v, hi: e.v, nan: Number.isNaN(e.v) };
  // round(x / c), c > 0 (quantize's quotient): x's range divided, widened by an integer for the float quotient's
  // rounding (|x / c| below 2^24 here, so rounding can move it past no other integer)
  if (e.k === 'unary' && e.op === 'round' && e.a.k === 'binary' && e.a.op === 'div' && e.a.b.k === 'const' && e.a.b.v > 0) {
    const r = clampRange(e.a.a), c = e.a.b.v;
    return r && Math.max(-r.lo, r.hi) / c < 2 ** 24 ? { lo: Math.floor(r.lo / c) - 1, hi: Math.ceil(r.hi / c) + 1, nan: r.nan } : undefined;
  }
  // select(x == x, x, c): x where it is not NaN, else c
  if (e.k === 'select' && e.c.k === 'binary' && e.c.op === 'eq' && sameExpr(e.c.a, e.c.b) && sameExpr(e.a, e.c.a) && e.b.k === 'const') {
    const r = clampRange(e.a) ?? { lo: -Infinity, hi: Infinity, nan: true };
    return { lo: Math.min(r.lo, e.b.v), hi: Math.max(r.hi, e.b.v), nan: Number.isNaN(e.b.v) };
  }
  if (e.k !== 'select' || e.c.k !== 'binary' || !['gt', 'ge', 'lt', 'le'].includes(e.c.op)) return undefined;
  const { a, b } = e.c, up = e.c.op === 'gt' || e.c.op === 'ge', same = sameExpr;
  const range = (x: Expr) => clampRange(x) ?? { lo: -Infinity, hi: Infinity, nan: true };
  if (b.k === 'const' && same(e.a, a) && same(e.b, b)) {
    const r = range(a);
    return up ? { lo: b.v, hi: Math.max(r.hi, b.v), nan: false } : { lo: Math.min(r.lo, b.v), hi: b.v, nan: false };
  }
  if (b.k === 'const' && same(e.a, b) && same(e.b, a)) {
    const r = range(a);
    return up ? { lo: Math.min(r.lo, b.v), hi: b.v, nan: r.nan } : { lo: b.v, hi: Math.max(r.hi, b.v), nan: r.nan };
  }
  return undefined;
}

/**
 * round(x / c) for a constant c, |c| in [2^-60, 2^60], and x within ±2048 |c| or NaN (quantize's row clamps x so):
 * Markstein's division, q0 = x·y with y = 1/c rounded, then q0 + (x − c·q0)·y by two FMAs, the sign x / c's. The
 * correctly rounded quotient where |x / c| >= 2^-60, and rounds to the same ±0 below (every such float x, c from a
 * set of scales: tests/quant/markstein_exhaustive.c): a multiply and two FMAs, not a vdivps (10 cycles per 16 lanes).
 */
function divByConstant(e: Expr): { x: Expr; c: number } | undefined {
  if (e.k !== 'unary' || e.op !== 'round' || e.a.k !== 'binary' || e.a.op !== 'div' || e.a.t !== 'f32' || e.a.b.k !== 'const') return undefined;
  const c = Math.abs(e.a.b.v), r = clampRange(e.a.a);
  return c >= 2 ** -60 && c <= 2 ** 60 && r && Math.max(-r.lo, r.hi) <= 2048 * c ? { x: e.a.a, c: e.a.b.v } : undefined;
}

/** Every primitive op as LLVM IR. */
export const OPS: OpTable<U, B> = {
  unary: {
    f32: {
      neg: (x, a) => x.b.CreateFNeg(a), abs: intrinsic(() => I().fabs), sqrt: intrinsic(() => I().sqrt),
      floor: intrinsic(() => I().floor), ceil: intrinsic(() => I().ceil),
      round: intrinsic(() => I().rint), // round half to even in the default rounding mode
      recip: viaDouble((_, d) => d), rsqrt: viaDouble((x, d) => x.intrinsic(I().sqrt, [d], 'f64')),
      exp: libm('exp'), log: libm('log'), log1p: libm('log1p'), tanh: libm('tanh'), erf: libm('erf'), sin: libm('sin'), cos: libm('cos'),
    },
    i32: { neg: (x, a) => x.b.CreateSub(x.c('i32', 0), a) },
    bool: { not: (x, a) => x.b.CreateXor(a, x.c('bool', 1)) },
  },
  binary: {
    f32: {
      add: (x, a, b) => x.b.CreateFAdd(a, b), sub: (x, a, b) => x.b.CreateFSub(a, b), mul: (x, a, b) => x.b.CreateFMul(a, b),
      div: (x, a, b) => x.b.CreateFDiv(a, b), pow: (x, a, b) => math(x, 'pow', [a, b]),
      eq: (x, a, b) => x.b.CreateFCmpOEQ(a, b), ne: (x, a, b) => x.b.CreateFCmpUNE(a, b), lt: (x, a, b) => x.b.CreateFCmpOLT(a, b),
      le: (x, a, b) => x.b.CreateFCmpOLE(a, b), gt: (x, a, b) => x.b.CreateFCmpOGT(a, b), ge: (x, a, b) => x.b.CreateFCmpOGE(a, b),
    },
    i32: {
      add: (x, a, b) => x.b.CreateAdd(a, b), sub: (x, a, b) => x.b.CreateSub(a, b), mul: (x, a, b) => x.b.CreateMul(a, b),
      div: (x, a, b) => x.b.CreateSDiv(a, b), pow: (x, a, b) => x.call('kiln_ipow', [a, b], 'i32'),
      eq: (x, a, b) => x.b.CreateICmpEQ(a, b), ne: (x, a, b) => x.b.CreateICmpNE(a, b), lt: (x, a, b) => x.b.CreateICmpSLT(a, b),
      le: (x, a, b) => x.b.CreateICmpSLE(a, b), gt: (x, a, b) => x.b.CreateICmpSGT(a, b), ge: (x, a, b) => x.b.CreateICmpSGE(a, b),
      qmulhi, qshr, shl: (x, a, b) => x.b.CreateShl(a, b), dot2,
      pack16: (x, a, b) => x.b.CreateOr(x.b.CreateAnd(a, x.c('i32', 0xffff)), x.b.CreateShl(b, x.c('i32', 16))),
      pack8: (x, a, b) => x.b.CreateOr(x.b.CreateAnd(a, x.c('i32', 0xff)), x.b.CreateShl(b, x.c('i32', 8))), dot4,
      xor: (x, a, b) => x.b.CreateXor(a, b),
    },
    bool: {
      and: (x, a, b) => x.b.CreateAnd(a, b), or: (x, a, b) => x.b.CreateOr(a, b),
      eq: (x, a, b) => x.b.CreateICmpEQ(a, b), ne: (x, a, b) => x.b.CreateICmpNE(a, b),
    },
  },
  cast: {
    'f32>i32': (x, a) => (a.getType().getTypeID() === llvm().Type.TypeID.FixedVectorTyID ? fptosiSat(x, a) : x.intrinsic(I().fptosi_sat, [a], 'i32', 'f32')), 'f32>bool': (x, a) => x.b.CreateFCmpUNE(a, x.c('f32', 0)),
    'i32>f32': (x, a) => x.b.CreateSIToFP(a, x.type('f32')), 'i32>bool': (x, a) => x.b.CreateICmpNE(a, x.c('i32', 0)),
    'bool>f32': (x, a) => x.b.CreateUIToFP(a, x.type('f32')), 'bool>i32': (x, a) => x.b.CreateZExt(a, x.type('i32')),
  },
};

/** Builds one function per kernel; variables live in allocas that opt's mem2reg/SROA promote to registers. */
class KernelBuilder {
  /** scalars in allocas; the index of an unrolled copy is a constant */
  private readonly vars = new Map<string, { ptr: V; t: Scalar } | { value: number } | { ssa: V }>();
  /** While a vector loop renders as one vector of `w` lanes: its variable, and the decls that hold vectors. */
  private lanes?: { v: string; w: number; vec: Set<string>; inits: Map<string, Expr> };
  private readonly arrays = new Map<string, { ptr: V; t: Scalar; size: number }>();
  private readonly entryBlock: BB;
  /** the memory block's pointer (an argument) */
  private readonly mem: V;

  constructor(private readonly g: LlvmModule, private readonly fn: Fn, private readonly offsets: Record<string, number>,
    private readonly bufTypes: Map<string, Scalar>, private readonly memArg = 0, private readonly flash?: { base: V; offsets: Record<string, number> }) {
    const L = llvm();
    this.entryBlock = L.BasicBlock.Create(g.ctx, 'entry', fn);
    this.mem = fn.getArg(memArg);
    g.b.SetInsertPoint(this.entryBlock);
  }

  private get b() { return this.g.b; }
  private get k() { return this.g.k; }


  /** The last alloca made: the entry block's first instruction (each goes in front of the one before). */
  private firstAlloca?: V;

  /** An alloca at the front of the entry block (where mem2reg finds it), by the module's second builder. */
  private alloca(t: T, n?: number): V {
    const L = llvm(), at = this.g.allocas;
    const first = this.firstAlloca ?? this.entryBlock.getFirstNonPHI?.();
    if (first) at.SetInsertPoint(first as import('llvm-bindings').Instruction);
    else at.SetInsertPoint(this.entryBlock);
    this.firstAlloca = n === undefined ? at.CreateAlloca(t) : at.CreateAlloca(L.ArrayType.get(t, n));
    return this.firstAlloca;
  }

  private scalarType(t: Scalar): T {
    const ty = this.g.ty;
    return t === 'f32' ? ty.f32 : t === 'i32' ? ty.i32 : ty.i1;
  }

  /** In memory, bool is one byte. */
  private memType(t: Scalar): T {
    return t === 'bool' ? this.g.ty.i8 : this.scalarType(t);
  }

  /**
   * A buffer index in i64: its sums and products are computed at 64 bits (indices fit: the verifier bounds them),
   * so neighbouring accesses differ by a constant that LLVM can see (with i32 arithmetic sign-extended it cannot
   * rule out a wrap, and the SLP vectorizer leaves a micro-kernel in a parallel chunk scalar).
   */
  private index64(e: Expr): V | number {
    const b = this.b;
    if (e.k === 'const') return e.v;
    if (e.k === 'binary' && e.t === 'i32' && (e.op === 'add' || e.op === 'sub' || e.op === 'mul')) {
      const x = this.index64(e.a), y = this.index64(e.b);
      return this.op64(e.op, x, y);
    }
    return b.CreateSExt(this.expr(e), this.g.ty.i64);
  }

  /**
   * x op y in i64; two constants folded here as IRBuilder would fold them (the same IR without two calls into
   * llvm-bindings per operation: an index's constant parts are most of a micro-kernel's address arithmetic).
   */
  private op64(op: 'add' | 'sub' | 'mul', x: V | number, y: V | number): V | number {
    if (typeof x === 'number' && typeof y === 'number') {
      const r = op === 'add' ? x + y : op === 'sub' ? x - y : x * y;
      if (Number.isSafeInteger(r)) return r;
    }
    const b = this.b, a = this.i64(x), c = this.i64(y);
    return op === 'add' ? b.CreateAdd(a, c) : op === 'sub' ? b.CreateSub(a, c) : b.CreateMul(a, c);
  }

  private i64(x: V | number): V {
    return typeof x === 'number' ? this.k.i64(x) : x;
  }

  private pointer(buf: string, idx: Expr): { ptr: V; t: Scalar; int8?: boolean } {
    const L = llvm();
    const arr = this.arrays.get(buf);
    if (arr) {
      const p = this.b.CreateInBoundsGEP(L.ArrayType.get(this.memType(arr.t), arr.size), arr.ptr, [this.k.i32(0), this.expr(idx)]);
      return { ptr: p, t: arr.t };
    }
    // a buffer in the flash array (freestanding: params and constants) is read from there, else from mem
    const inFlash = this.flash?.offsets[buf];
    const t = this.bufTypes.get(buf), off = inFlash ?? this.offsets[buf];
    if (!t || off === undefined) throw new Error(`llvm: unknown buffer ${buf}`);
    const int8 = this.g.int8.has(buf), width = t === 'bool' || int8 ? 1 : 4;
    const byte = this.i64(this.op64('add', this.op64('mul', this.index64(idx), width), off));
    const p = this.b.CreateInBoundsGEP(this.g.ty.i8, inFlash === undefined ? this.mem : this.flash!.base, [byte]);
    return { ptr: this.b.CreateBitCast(p, this.g.pointerTo(int8 ? 'i8' : t)), t, int8 };
  }

  private load(e: Extract<Expr, { k: 'load' }>): V {
    const { buf, idx } = e;
    if (this.varying(idx)) {
      const at = this.contiguous(idx, laneStride(e)), { ptr, t, int8 } = this.atLaneZero(() => this.pointer(buf, at));
      return this.callVector(e.quad ? 'load_q8' : `load_${int8 ? 'i8' : t}`, [ptr]);
    }
    if (e.quad) return this.quad(buf, idx);
    const { ptr, t, int8 } = this.pointer(buf, idx);
    if (int8) return this.b.CreateSExt(this.b.CreateLoad(this.g.ty.i8, ptr), this.g.ty.i32);
    const v = this.b.CreateLoad(this.memType(t), ptr);
    return t === 'bool' ? this.b.CreateICmpNE(v, this.k.i8(0)) : v;
  }

  /**
   * A quad (loop/ir.ts) on a scalar: its bytes zero-extended and or-ed in place (an IRBuilder load has the i32's
   * alignment, 4; instruction selection combines the four byte loads into one unaligned i32 load).
   */
  private quad(buf: string, idx: Expr): V {
    const b = this.b, i32 = this.g.ty.i32;
    const { ptr } = this.pointer(buf, idx);
    let word: V | undefined;
    for (let i = 0; i < 4; i++) {
      const p = i === 0 ? ptr : b.CreateInBoundsGEP(this.g.ty.i8, ptr, [this.k.i64(i)]);
      const byte = b.CreateZExt(b.CreateLoad(this.g.ty.i8, p), i32), part = i === 0 ? byte : b.CreateShl(byte, this.k.i32(8 * i));
      word = word ? b.CreateOr(word, part) : part;
    }
    return word!;
  }

  // ---- vector loops: one vector of W lanes, values that do not depend on the loop variable stay scalar ----

  /** Whether e depends on the lane (the vector loop's variable, or a decl holding a vector). */
  private varying(e: Expr): boolean {
    const l = this.lanes;
    return !!l && someExpr(e, (x) => x.k === 'var' && (x.name === l.v || l.vec.has(x.name)));
  }

  /** Coefficient of the lane in an index affine in it (undefined otherwise). */
  private coef(e: Expr): number | undefined {
    return laneCoef(e, this.lanes!.v, (x) => this.varying(x));
  }

  /** f() with the lane variable at 0 (the scalar address of lane 0 of a contiguous access). */
  private atLaneZero<R>(f: () => R): R {
    const l = this.lanes!;
    this.lanes = undefined;
    const saved = this.vars.get(l.v);
    this.vars.set(l.v, { value: 0 });
    try {
      return f();
    } finally {
      if (saved) this.vars.set(l.v, saved);
      else this.vars.delete(l.v);
      this.lanes = l;
    }
  }

  private callVector(name: string, args: V[]): V {
    return this.b.CreateCall(this.g.vectorHelper(name, this.lanes!.w), args);
  }

  private vecType(t: Lane): T {
    return this.g.vectorHelper(`splat_${t}`, this.lanes!.w).getReturnType();
  }

  /** x as a vector: scalars are splat when `vec`. */
  private lift(x: V, t: Lane, vec: boolean): V {
    return vec && !this.isVector(x) ? this.callVector(`splat_${t}`, [x]) : x;
  }

  private isVector(x: V): boolean {
    return x.getType().getTypeID() === llvm().Type.TypeID.FixedVectorTyID;
  }

  /** A fold loop (the schedule decided, fold.ts): the values it folds in as vectors of every lane, then the fold lane by lane, in order. */
  private foldLoop(s: Extract<Stmt, { k: 'for' }>): void {
    const form = foldForm(s, LLVM_VECTORS);
    if (typeof form === 'string') throw new Error(`llvm: internal error: fold loop '${s.v}' cannot be rendered as one: ${form}`);
    const { fold, parts } = form;
    this.lanes = { v: s.v, w: s.extent, vec: new Set(), inits: new Map() };
    for (const st of s.body.slice(0, -1)) if (st.k === 'decl') this.laneDecl(st);
    const vectors = parts.map((p) => this.lift(this.expr(p), p.t, true));
    this.lanes = undefined;
    for (const st of s.body) if (st.k === 'decl') this.vars.delete(st.name);
    const extract = parts.map((p) => this.g.vectorHelper(`extract_${p.t}`, s.extent));
    for (let i = 0; i < s.extent; i++) {
      parts.forEach((_, j) => this.vars.set(laneVar(s.v, j), { ssa: this.b.CreateCall(extract[j]!, [vectors[j]!, this.k.i32(i)]) }));
      this.stmt(fold);
    }
    parts.forEach((_, j) => this.vars.delete(laneVar(s.v, j)));
  }

  /** A decl of a lane loop as an SSA value: a vector where it depends on the lane. */
  private laneDecl(st: Extract<Stmt, { k: 'decl' }>): void {
    if (this.varying(st.init)) this.lanes!.vec.add(st.name);
    this.lanes!.inits.set(st.name, st.init);
    this.vars.set(st.name, { ssa: this.expr(st.init) });
  }

  /** The loop as one vector of its extent's lanes (straight-line: its decls are SSA values). */
  private vectorLoop(s: Extract<Stmt, { k: 'for' }>): void {
    this.lanes = { v: s.v, w: s.extent, vec: new Set(), inits: new Map() };
    for (const st of s.body) {
      if (st.k === 'decl') this.laneDecl(st);
      else if (st.k === 'store') {
        const value = this.lift(this.expr(st.value), st.value.t, true);
        const at = this.contiguous(st.idx), { ptr, t, int8 } = this.atLaneZero(() => this.pointer(st.buf, at));
        this.b.CreateCall(this.g.vectorHelper(`store_${int8 ? 'i8' : t}`, s.extent), [ptr, value]);
      } else throw new Error(`llvm: internal error: a ${st.k} in vector loop ${s.v} (canVectorize admits decls and stores)`);
    }
    for (const st of s.body) if (st.k === 'decl') this.vars.delete(st.name);
    this.lanes = undefined;
  }

  /** A lane's index, which canVectorize made contiguous: lane i at element idx(0) + stride i (a quad's stride 4). */
  private contiguous(idx: Expr, stride = 1): Expr {
    if (this.coef(idx) !== stride) throw new Error(`llvm: internal error: index ${printExpr(idx)} of vector loop ${this.lanes!.v} is not contiguous`);
    return idx;
  }

  expr(e: Expr): V {
    const b = this.b;
    switch (e.k) {
      case 'const':
        return e.t === 'f32' ? this.k.f32(e.v) : e.t === 'i32' ? this.k.i32(e.v) : this.k.bool(e.v);
      case 'var': {
        if (e.name === this.lanes?.v) return this.callVector('iota', []);
        const v = this.vars.get(e.name);
        if (!v) throw new Error(`llvm: variable ${e.name} used before its declaration`);
        if ('value' in v) return this.k.i32(v.value);
        if ('ssa' in v) return v.ssa;
        return b.CreateLoad(this.scalarType(v.t), v.ptr);
      }
      case 'load':
        return this.load(e);
      case 'cast': {
        // a float clamped into i32's range by its selects (quantize's row) converts as it is: no saturating guards
        const r = e.t === 'i32' && e.a.t === 'f32' ? clampRange(e.a) : undefined;
        if (r && !r.nan && r.lo > -(2 ** 31) && r.hi < 2 ** 31) {
          // round(x) (quantize's quotient) converted: one cvtps2dq on x86 vectors (vector.ts rint_i32), and a quotient
          // without its sign fix (the sign of a zero, which the conversion drops)
          const vec = this.varying(e.a), x86 = this.g.dot !== undefined && this.g.dot !== 'dsp';
          if (e.a.k === 'unary' && e.a.op === 'round') {
            const q = this.quotient(e.a, false) ?? this.lift(this.expr(e.a.a), 'f32', vec);
            return vec && x86 ? this.callVector('rint_i32', [q]) : this.b.CreateFPToSI(OPS.unary.f32.round!(this.emit(vec), q), this.emit(vec).type('i32'));
          }
          return this.b.CreateFPToSI(this.expr(e.a), this.emit(vec).type('i32'));
        }
        return castOp(OPS, e.a.t, e.t)(this.emit(this.varying(e.a)), this.expr(e.a));
      }
      case 'unary': {
        const q = this.quotient(e, true);
        if (q) return OPS.unary.f32.round!(this.emit(this.varying(e)), q);
        return unaryOp(OPS, e.op, e.a.t)(this.emit(this.varying(e.a)), this.expr(e.a));
      }
      case 'binary':
        return this.binary(e);
      case 'select': {
        const vec = this.varying(e);
        return b.CreateSelect(this.expr(e.c), this.lift(this.expr(e.a), e.t, vec), this.lift(this.expr(e.b), e.t, vec));
      }
      case 'philox': {
        const args = [this.k.i32(e.seed | 0), this.expr(e.counter), this.expr(e.index)];
        if (!this.varying(e)) return b.CreateCall(this.g.extern('kiln_philox_uniform', b.getFloatTy(), [b.getInt32Ty(), b.getInt32Ty(), b.getInt32Ty()]), args);
        return this.callVector('philox', [args[0]!, this.lift(args[1]!, 'i32', true), this.lift(args[2]!, 'i32', true)]);
      }
    }
  }

  /**
   * The quotient x / c of round(x / c) where divByConstant takes it: Markstein's, q0 = x·y with y = 1/c rounded, then
   * q0 + (x − c·q0)·y by two FMAs; with the sign of x / c where `sign` (a zero's, which only a float result keeps).
   */
  private quotient(e: Expr, sign: boolean): V | undefined {
    const d = divByConstant(e);
    if (!d) return undefined;
    const b = this.b, x = this.emit(this.varying(e)), a = this.lift(this.expr(d.x), 'f32', this.varying(e)), y = x.c('f32', Math.fround(1 / d.c)), c = x.c('f32', d.c);
    const q0 = b.CreateFMul(a, y), r = x.intrinsic(I().fma, [b.CreateFNeg(q0), c, a], 'f32'), q = x.intrinsic(I().fma, [r, y, q0], 'f32');
    return sign ? x.intrinsic(I().copysign, [q, d.c < 0 ? b.CreateFNeg(a) : a], 'f32') : q;
  }

  /** What the op table builds with for a value that is a vector of the loop's lanes (vec) or a scalar. */
  private emit(vec: boolean): Emit {
    const b = this.b, type = (t: Lane): T => (vec ? this.vecType(t) : t === 'f64' ? this.g.ty.f64 : this.scalarType(t));
    return {
      b,
      type,
      dot: this.g.dot,
      exact: this.g.exact,
      c: (t, v) => this.lift(t === 'f32' ? this.k.f32(v) : t === 'f64' ? this.k.f64(v) : t === 'i32' ? this.k.i32(v) : this.k.bool(v), t, vec),
      intrinsic: (id, args, ...types) => b.CreateCall(llvm().Intrinsic.getDeclaration(this.g.mod, id, types.map(type)), args),
      call: (name, args, t) => (vec ? b.CreateCall(this.g.vectorCall(name, this.lanes!.w, args.length, t), args) : b.CreateCall(this.g.extern(name, type(t), args.map(() => type(t))), args)),
    };
  }

  private binary(e: Extract<Expr, { k: 'binary' }>): V {
    const vec = this.varying(e.a) || this.varying(e.b);
    // a*b + c as llvm.fmuladd: one rounding where the CPU has FMA (the accumulation of every contraction); without
    // contraction, fmul and fadd round each as the interpreter does. Instruction selection, not semantics: the
    // fuzzer tells FMA's approximation from a miscompile by compiling again without it.
    if (e.op === 'add' && e.t === 'f32' && this.g.contract) {
      const { a: x, b: y } = e;
      const [m, other] = y.k === 'binary' && y.op === 'mul' ? [y, x] : x.k === 'binary' && x.op === 'mul' ? [x, y] : [undefined, undefined];
      if (m && other) return this.emit(vec).intrinsic(I().fmuladd, [m.a, m.b, other].map((o) => this.lift(this.expr(o), 'f32', vec)), 'f32');
    }
    // acc + dot2(x, w) as one SMLAD on the Cortex-M4 (LLVM does not fold the add into its SMUAD)
    if (e.op === 'add' && e.t === 'i32' && this.g.dot === 'dsp') {
      const [d, acc] = e.b.k === 'binary' && e.b.op === 'dot2' ? [e.b, e.a] : e.a.k === 'binary' && e.a.op === 'dot2' ? [e.a, e.b] : [undefined, undefined];
      const args = d && acc && [acc, d.a, d.b].map((o) => this.lift(this.expr(o), 'i32', vec));
      if (args) return vec ? this.callVector('smlad', args) : this.emit(false).call('llvm.arm.smlad', [args[1]!, args[2]!, args[0]!], 'i32');
    }
    // acc + dot4(x, w) on vectors as one vpdpbusd (its accumulator operand) where the CPU has AVX-512 VNNI
    if (e.op === 'add' && e.t === 'i32' && vec && this.g.dot === 'avx512vnni') {
      const [d, acc] = e.b.k === 'binary' && e.b.op === 'dot4' ? [e.b, e.a] : e.a.k === 'binary' && e.a.op === 'dot4' ? [e.a, e.b] : [undefined, undefined];
      if (d && acc) return this.callVector('dpbusd', [acc, d.a, d.b].map((o) => this.lift(this.expr(o), 'i32', vec)));
    }
    // qshr of a qmulhi (a lane decl's or in place: requantization) on vectors as vector.ts's requant: a shorter
    // rounding, as the qmulhi is never INT_MIN, and no saturation where the shift is a constant above 0
    const h = e.a.k === 'var' ? this.lanes?.inits.get(e.a.name) : e.a;
    if (e.op === 'qshr' && vec && h?.k === 'binary' && h.op === 'qmulhi') return this.callVector('requant', [h.a, h.b, e.b].map((o) => this.lift(this.expr(o), 'i32', vec)));
    const a = this.lift(this.expr(e.a), e.a.t, vec), c = this.lift(this.expr(e.b), e.b.t, vec);
    return binaryOp(OPS, e.op, e.a.t)(this.emit(vec), a, c);
  }

  stmts(ss: readonly Stmt[]): void {
    for (const s of ss) this.stmt(s);
  }

  private stmt(s: Stmt): void {
    const b = this.b;
    switch (s.k) {
      case 'for': {
        if (s.kind === 'block' || s.kind === 'thread') throw new Error(`loop ${s.v} is a GPU ${s.kind} axis: this renderer takes CPU schedules`);
        if (s.kind === 'vector') return this.vectorLoop(s); // the schedule decided (canVectorize)
        if (s.kind === 'fold') return this.foldLoop(s); // the schedule decided (foldLegal)
        // a micro-kernel's rows (and lanes with no vector form) are unrolled here, so its register tile has constant
        // indices (SROA keeps it in registers and the SLP vectorizer forms vectors); LLVM's own unroller gives up on
        // large tiles
        if (s.kind === 'unroll') {
          for (let i = 0; i < s.extent; i++) {
            this.vars.set(s.v, { value: i });
            this.stmts(s.body);
          }
          return;
        }
        this.doWhile(s, this.k.i32(0), this.k.i32(s.extent)); // every extent is at least 1
        return;
      }
      case 'decl': {
        const ptr = this.alloca(this.scalarType(s.t));
        this.vars.set(s.name, { ptr, t: s.t });
        b.CreateStore(this.expr(s.init), ptr);
        return;
      }
      case 'assign': {
        const v = this.vars.get(s.name) as { ptr: V };
        b.CreateStore(this.expr(s.value), v.ptr);
        return;
      }
      case 'local':
        this.arrays.set(s.name, { ptr: this.alloca(this.memType(s.t), s.size), t: s.t, size: s.size });
        return;
      case 'store': {
        const { ptr, t, int8 } = this.pointer(s.buf, s.idx);
        const v = this.expr(s.value);
        b.CreateStore(t === 'bool' ? b.CreateZExt(v, this.g.ty.i8) : int8 ? b.CreateTrunc(v, this.g.ty.i8) : v, ptr);
        return;
      }
      case 'if': {
        const L = llvm();
        const then = L.BasicBlock.Create(this.g.ctx, 'if.then', this.fn), end = L.BasicBlock.Create(this.g.ctx, 'if.end', this.fn);
        b.CreateCondBr(this.expr(s.cond), then, end); // bool is i1
        b.SetInsertPoint(then);
        this.stmts(s.body);
        b.CreateBr(end);
        b.SetInsertPoint(end);
        return;
      }
      case 'warpTree': throw new Error(`warp tree over ${s.local} is a GPU collective: this renderer takes CPU schedules`);
      case 'arrive': throw new Error(`arrive at ${s.counter} is a GPU block's: this renderer takes CPU schedules`);
    }
  }

  /** `for v in [begin, end)` as a do-while (the range is never empty), the index in an alloca. */
  private doWhile(loop: Extract<Stmt, { k: 'for' }>, begin: V, end: V): void {
    const L = llvm(), b = this.b;
    const ptr = this.alloca(this.g.ty.i32);
    this.vars.set(loop.v, { ptr, t: 'i32' });
    b.CreateStore(begin, ptr);
    const body = L.BasicBlock.Create(this.g.ctx, `${loop.v}.body`, this.fn);
    const exit = L.BasicBlock.Create(this.g.ctx, `${loop.v}.exit`, this.fn);
    b.CreateBr(body);
    b.SetInsertPoint(body);
    this.stmts(loop.body);
    const next = b.CreateAdd(b.CreateLoad(this.g.ty.i32, ptr), this.k.i32(1));
    b.CreateStore(next, ptr);
    b.CreateCondBr(b.CreateICmpSLT(next, end), body, exit);
    b.SetInsertPoint(exit);
  }

  /** The body of an outlined parallel loop: its range is the first two (i64) arguments (never empty). */
  chunk(loop: Extract<Stmt, { k: 'for' }>): void {
    const b = this.b;
    this.doWhile(loop, b.CreateTrunc(this.fn.getArg(0), b.getInt32Ty()), b.CreateTrunc(this.fn.getArg(1), b.getInt32Ty()));
  }

  /** Runs `fn(begin, end, mem)` over [0, n) on the runtime's thread pool. */
  callParallel(n: number, fn: Fn): void {
    const b = this.b, L = llvm();
    const chunkTy = L.FunctionType.get(b.getVoidTy(), [b.getInt64Ty(), b.getInt64Ty(), b.getInt8PtrTy()], false);
    const pool = this.g.extern('kiln_parallel_for', b.getVoidTy(), [b.getInt64Ty(), L.PointerType.get(chunkTy, 0), b.getInt8PtrTy()]);
    b.CreateCall(pool, [this.k.i64(n), fn, this.mem]);
  }

  finish(): void {
    this.b.CreateRetVoid();
  }
}

/** The LLVM module being built, with external declarations made once. */
/**
 * Why IR text that llvm-bindings could not parse is wrong, from llvm-as (its SMDiagnostic has no accessor there):
 * ": <helper>, line N: <error>", or "" where llvm-as-14 is missing. Only on that failure: not on a compile's path.
 */
function parseError(file: string, text: string): string {
  let stderr: string;
  try {
    execFileSync('llvm-as-14', [file, '-o', '/dev/null'], { stdio: ['ignore', 'ignore', 'pipe'] });
    return '';
  } catch (e) {
    stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? '';
  }
  const m = /:(\d+):\d+: error: (.*)/.exec(stderr);
  if (!m) return '';
  const line = Number(m[1]), fn = text.split('\n').slice(0, line).reverse().map((l) => /^define [^@]*@([\w.]+)\(/.exec(l)?.[1]).find((f) => f);
  return `: ${fn ? `${fn}, ` : ''}line ${line}: ${m[2]}`;
}

class LlvmModule {
  readonly ctx: import('llvm-bindings').LLVMContext;
  readonly mod: import('llvm-bindings').Module;
  readonly b: import('llvm-bindings').IRBuilder;
  /** a second builder, for allocas in an entry block (the first stays where the kernel is being built) */
  readonly allocas: import('llvm-bindings').IRBuilder;
  readonly k: ReturnType<typeof constants>;
  private readonly externs = new Map<string, Fn>();
  /** the kernel, chunk and entry functions, whose frames `realign` aligns */
  readonly framed = new Set<string>();
  /** int8 buffers of the entry being rendered: one byte in memory, i32 in registers */
  int8: ReadonlySet<string> = new Set();

  /** The types the kernels use, made once (each get*Ty() is a call into llvm-bindings). */
  readonly ty: { readonly f32: T; readonly i32: T; readonly i1: T; readonly i8: T; readonly i64: T; readonly f64: T };
  private readonly pointers = new Map<string, T>();

  /** a*b + c as llvm.fmuladd; transcendental functions through double (LlvmMath) */
  readonly contract: boolean;
  readonly exact: boolean;

  constructor(name: string, math: LlvmMath, readonly dot?: DotIsa) {
    const L = llvm();
    this.contract = math.contract ?? true;
    this.exact = math.exactMath ?? false;
    this.ctx = new L.LLVMContext();
    this.mod = new L.Module(name, this.ctx);
    this.b = new L.IRBuilder(this.ctx);
    this.allocas = new L.IRBuilder(this.ctx);
    this.k = constants(this.b);
    const b = this.b;
    this.ty = { f32: b.getFloatTy(), i32: b.getInt32Ty(), i1: b.getInt1Ty(), i8: b.getInt8Ty(), i64: b.getInt64Ty(), f64: b.getDoubleTy() };
  }

  /** A pointer to t in memory (bool is a byte there). */
  pointerTo(t: Scalar | 'i8'): T {
    let p = this.pointers.get(t);
    if (!p) this.pointers.set(t, (p = llvm().PointerType.get(t === 'f32' ? this.ty.f32 : t === 'i32' ? this.ty.i32 : this.ty.i8, 0)));
    return p;
  }

  private readonly linked = new Set<number>();

  /** Parses IR text and links it into the module. */
  private link(text: string, what: string): void {
    const L = llvm(), file = path.join(tmpdir(), `kiln-vector-${process.pid}-${this.linkedFiles++}.ll`);
    writeFileSync(file, text);
    try {
      const helpers = L.parseIRFile(file, new L.SMDiagnostic(), this.ctx);
      if (!this.parsed(helpers)) throw new Error(`llvm: cannot parse ${what} (a bug in codegen/llvm/vector.ts)${parseError(file, text)}`);
      if (L.Linker.linkModules(this.mod, helpers)) throw new Error(`llvm: cannot link ${what}`);
    } finally {
      rmSync(file, { force: true });
    }
  }

  /**
   * Whether parseIRFile's module is one: on a parse error it wraps a null Module, and every Module method (the
   * linker's too) dereferences it, a segfault. Function.Create takes a null module, so a block of a function made in
   * it says whether there is one; the probe is removed again.
   */
  private parsed(m: import('llvm-bindings').Module): boolean {
    const L = llvm();
    const probe = L.Function.Create(L.FunctionType.get(this.b.getVoidTy(), [], false), L.Function.LinkageTypes.InternalLinkage, 'kiln_parse_probe', m);
    const ok = L.BasicBlock.Create(this.ctx, '', probe).getModule() !== null;
    if (ok) probe.eraseFromParent();
    return ok;
  }

  private linkedFiles = 0;

  /** A vector helper for w lanes (see vector.ts); the helpers for w are parsed and linked on first use. */
  vectorHelper(name: string, w: number): Fn {
    if (!this.linked.has(w)) {
      this.link(vectorHelpers(w, this.dot), `the vector helpers for ${w} lanes`);
      this.linked.add(w);
    }
    const f = this.mod.getFunction(helper(name, w));
    if (!f) throw new Error(`llvm: no vector helper ${helper(name, w)}`);
    return f;
  }

  /** A function of libm or the C runtime on w lanes of t: its vector helper, else one calling it lane by lane. */
  vectorCall(name: string, w: number, arity: number, t: Lane): Fn {
    this.vectorHelper('iota', w);
    if (!this.mod.getFunction(helper(name, w))) this.link(laneByLane(name, w, arity, t === 'f32' ? 'float' : t === 'f64' ? 'double' : 'i32'), `${name} on ${w} lanes`);
    return this.vectorHelper(name, w);
  }

  /**
   * After an all-reduce kernel: kiln_allreduce(buf, n) sums the buffer over the processes (runtime/c/kiln_core.c: a
   * no-op unless model_train under MPI set kiln_allreduce_hook).
   */
  allreduce(entry: Fn, at: { buffer: string; size: number }, offsets: Readonly<Record<string, number>>): void {
    const L = llvm(), off = offsets[at.buffer];
    if (off === undefined) throw new Error(`llvm: unknown buffer ${at.buffer}`);
    const floats = L.PointerType.get(this.b.getFloatTy(), 0);
    const p = this.b.CreateBitCast(this.b.CreateInBoundsGEP(this.b.getInt8Ty(), entry.getArg(0), [this.k.i64(off)]), floats);
    this.b.CreateCall(this.extern('kiln_allreduce', this.b.getVoidTy(), [floats, this.b.getInt64Ty()]), [p, this.k.i64(at.size)]);
  }

  extern(name: string, ret: T, params: T[]): Fn {
    let f = this.externs.get(name) ?? this.mod.getFunction(name) ?? undefined;
    if (!f) {
      const L = llvm();
      f = L.Function.Create(L.FunctionType.get(ret, params, false), L.Function.LinkageTypes.ExternalLinkage, name, this.mod);
      this.externs.set(name, f);
    }
    return f;
  }

  /** void name(i64 begin, i64 end, i8* mem): one chunk of a parallel loop. */
  chunkFunction(name: string): Fn {
    const L = llvm();
    const ty = L.FunctionType.get(this.b.getVoidTy(), [this.b.getInt64Ty(), this.b.getInt64Ty(), this.b.getInt8PtrTy()], false);
    this.framed.add(name);
    return L.Function.Create(ty, L.Function.LinkageTypes.InternalLinkage, name, this.mod);
  }

  function(name: string, internal: boolean): Fn {
    const L = llvm();
    const ty = L.FunctionType.get(this.b.getVoidTy(), [this.b.getInt8PtrTy()], false);
    this.framed.add(name);
    return L.Function.Create(ty, internal ? L.Function.LinkageTypes.InternalLinkage : L.Function.LinkageTypes.ExternalLinkage, name, this.mod);
  }
}

function scalarOfDtype(d: string): Scalar {
  return d === 'float32' ? 'f32' : d === 'int32' || d === 'int8' ? 'i32' : 'bool';
}

/** Params and constants read in place from a const array (the freestanding runtime): see flash.ts. */
export interface LlvmFlash {
  readonly symbol: string;
  readonly bytes: number;
  /** entry name -> buffer name -> byte offset in the array */
  readonly offsets: Record<string, Record<string, number>>;
}

/** How float math renders: LlvmTargetOptions.contract (default true) and exactMath (default false). */
export interface LlvmMath {
  readonly contract?: boolean;
  readonly exactMath?: boolean;
}

/**
 * Renders every entry as `void kiln_<entry>(unsigned char *mem)` over the shared layout (local arrays become
 * allocas, not scratch memory). Returns the module as text (verified) for opt-14. math: a*b + c as one
 * llvm.fmuladd, transcendental functions through double (see LlvmTargetOptions.contract, exactMath).
 */
export function renderLlvm(entries: readonly Entry[], layout: Layout, name: string, math: LlvmMath = {}, flash?: LlvmFlash, dot?: DotIsa): string {
  return renderLlvmParts(entries, layout, name, 1, math, flash, dot)[0]!;
}

/**
 * renderLlvm split into at most `parts` modules that opt and llc can build at once, one per core (their objects
 * linked into one): the kernels shared out by their size, the heaviest first, each to the module lightest for its share
 * so far (the later a module is rendered, the smaller its share); the
 * entries in the first module, calling the kernels of the others as hidden `kiln_<entry>_<kernel>` functions. A
 * module of less than PART_WEIGHT statements is not worth a process of its own: small models stay one module.
 * The modules are rendered one after another, and `done` receives each as it is finished (its tools can build it
 * while the next renders); each module's text is the same whether or not `done` is given.
 */
export function renderLlvmParts(entries: readonly Entry[], layout: Layout, name: string, parts: number, math: LlvmMath = {}, flash?: LlvmFlash, dot?: DotIsa,
  done?: (ir: string, part: number, parts: number) => void): string[] {
  const weights = entries.flatMap((e, ei) => e.program.kernels.map((k, ki) => ({ ei, ki, w: kernelWeight(k.body) })));
  const n = Math.max(1, Math.min(parts, Math.floor(weights.reduce((s, k) => s + k.w, 0) / PART_WEIGHT), weights.length));
  // a module's tools start once it is rendered: the later ones get less, so that the last one's opt and llc, which
  // run after the whole render, are short (shares n + 1 - p: 3:2 for two modules)
  const load = new Array<number>(n).fill(0), partOf = new Map<string, number>();
  const relative = (p: number) => load[p]! / (n + 1 - p);
  for (const { ei, ki, w } of [...weights].sort((a, b) => b.w - a.w)) {
    const p = load.reduce((best, _, q) => (relative(q) < relative(best) ? q : best), 0);
    load[p]! += w;
    partOf.set(`${ei} ${ki}`, p);
  }
  if (flash && n > 1) throw new Error('llvm: internal error: a flash module is not split');
  const shared = entries.map((e) => {
    // legalized and scheduled by the pipeline (LLVM_CAPS)
    checkVectorLoops(e.program, LLVM_VECTORS, 'llvm');
    return {
      bufTypes: new Map(e.program.buffers.map((b) => [b.name, scalarOfDtype(b.dtype)])),
      int8: new Set(e.program.buffers.filter((b) => b.dtype === 'int8').map((b) => b.name)),
      // after a statement that completes more of a flat block (gradStep under MPI: memplan's FlatPlan), say so
      ready: new Map((e.memory.flat?.ready ?? []).map((r) => [`${r.kernel} ${r.at}`, r.from])),
    };
  });
  return Array.from({ length: n }, (_, p) => {
    const ir = renderPart(entries, layout, shared, partOf, p, n === 1 ? name : `${name}.${p}`, math, flash, dot);
    done?.(ir, p, n);
    return ir;
  });
}

/**
 * Module `part` of renderLlvmParts: the kernels partOf gives it, in the entries' order; the first module also the
 * entries, with a declaration of each kernel another module defines where the entry's kernels reach it.
 */
function renderPart(entries: readonly Entry[], layout: Layout, shared: readonly { bufTypes: Map<string, Scalar>; int8: ReadonlySet<string>; ready: Map<string, number> }[],
  partOf: ReadonlyMap<string, number>, part: number, name: string, math: LlvmMath, flash: LlvmFlash | undefined, dot: DotIsa | undefined): string {
  const L = llvm();
  const g = new LlvmModule(name, math, dot);
  const exported = new Set<string>();
  // the flash array, defined in model_desc.c: an i8* to its first byte (one module: flash is for bare metal, not split)
  const flashBase = flash && g.b.CreateBitCast(new L.GlobalVariable(g.mod, L.ArrayType.get(g.b.getInt8Ty(), flash.bytes), true,
    L.Function.LinkageTypes.ExternalLinkage, null, flash.symbol), g.b.getInt8PtrTy());
  const flashOf = (e: string) => flashBase && { base: flashBase, offsets: flash.offsets[e]! };
  entries.forEach((e, ei) => {
    const program = e.program, { bufTypes, int8, ready } = shared[ei]!;
    const kernels = program.kernels.map((k, ki) => {
      const p = partOf.get(`${ei} ${ki}`)!;
      const fnName = p === 0 ? `${e.name}_${k.name}` : `kiln_${e.name}_${k.name}`;
      if (p !== part) {
        // another module's kernel: the first module declares it (hidden) and calls it
        if (part !== 0) return undefined;
        exported.add(fnName);
        return g.extern(fnName, g.b.getVoidTy(), [g.b.getInt8PtrTy()]);
      }
      g.int8 = int8;
      if (p !== 0) exported.add(fnName);
      const fn = g.function(fnName, p === 0);
      const kb = new KernelBuilder(g, fn, layout.offsets[e.name]!, bufTypes, 0, flashOf(e.name));
      // a top-level parallel loop is outlined into a chunk function for the thread pool; the values it reads
      // from before it are top-level decls never assigned (recomputed in each chunk)
      const pure = pureDecls(k.body), topLocals = new Set(k.body.flatMap((s) => (s.k === 'local' ? [s.name] : [])));
      const before: Stmt[] = [];
      k.body.forEach((st, i) => {
        if (st.k === 'decl' && pure.has(st.name)) before.push(st);
        if (st.k !== 'for' || st.kind !== 'parallel' || !independentIterations(st, pure, topLocals)) {
          kb.stmts([st]);
        } else {
          const here = g.b.GetInsertBlock()!;
          const chunk = g.chunkFunction(`${e.name}_${k.name}_par${i}`);
          const cb = new KernelBuilder(g, chunk, layout.offsets[e.name]!, bufTypes, 2, flashOf(e.name));
          cb.stmts(before);
          cb.chunk(st);
          cb.finish();
          g.b.SetInsertPoint(here);
          kb.callParallel(st.extent, chunk);
        }
        const from = ready.get(`${ki} ${i}`);
        if (from !== undefined) g.b.CreateCall(g.extern('kiln_grads_ready', g.b.getVoidTy(), [g.b.getInt64Ty()]), [g.k.i64(from)]);
      });
      kb.finish();
      return fn;
    });
    if (part !== 0) return;
    const entry = g.function(`kiln_${e.name}`, false);
    g.b.SetInsertPoint(L.BasicBlock.Create(g.ctx, 'entry', entry));
    kernels.forEach((k, i) => {
      g.b.CreateCall(k!, [entry.getArg(0)]);
      const kernel = program.kernels[i]!;
      if (kernel.allreduce) g.allreduce(entry, allreduceBuffer(program, kernel), layout.offsets[e.name]!);
    });
    g.b.CreateRetVoid();
  });
  // not verified here: opt-14 verifies its input first ("input module is broken!", reported as opt's failure), and a
  // second verification was 5 ms per module on the critical path
  return hide(realign(internalize(g.mod.print()), g.framed), exported);
}

/**
 * Statements a module of its own holds at least: about 100 ms of opt-14 and llc-14 -O3 on Zen 2 (the seed MLP's 208
 * take 100 ms, the Transformer's 3,560 0.8 s); less is not worth the processes and the link, so the seed MLP stays one
 * module (bench/llvm.ts's per-kernel rebuild and tests/llvm/tiles.test.ts read its model.ll and model.bc whole).
 */
const PART_WEIGHT = 200;

/** Roughly how much IR a kernel renders to: its statements, the body of an unrolled loop once per copy. */
function kernelWeight(body: readonly Stmt[]): number {
  let n = 0;
  for (const s of body) n += s.k === 'for' ? 1 + (s.kind === 'unroll' ? s.extent : 1) * kernelWeight(s.body) : s.k === 'if' ? 1 + kernelWeight(s.body) : 1;
  return n;
}

/** The kernels one module defines and another calls: hidden (not exported from a shared library that links model.o). */
const hide = (ir: string, names: ReadonlySet<string>): string => (names.size === 0 ? ir
  : ir.replace(/^(define|declare) void @([\w.]+)\(/gm, (line, kw: string, fn: string) => (names.has(fn) ? `${kw} hidden void @${fn}(` : line)));

/**
 * The functions in `names` marked "stackrealign" (llvm-bindings sets no function attributes): their frames start
 * aligned to their largest spill slot. The ABI aligns the stack to 16 bytes only, and without this LLVM spills a
 * 32-byte ymm accumulator to a 16-byte aligned slot with vmovups: where the frame lands 16 bytes off, half the
 * spills straddle cache lines and their reloads wait for the stores (the 4x64 micro-kernel, which spills on AVX2,
 * ran 1.67x slower). Where it lands was the caller's stack depth: random per process on the main thread (ASLR), and
 * fixed per build on a pool worker.
 */
const realign = (ir: string, names: ReadonlySet<string>): string =>
  ir.replace(/^(define [^@\n]*@([\w.]+)\(.*\)) \{$/gm, (line, head: string, name: string) => (names.has(name) ? `${head} "stackrealign" {` : line));

