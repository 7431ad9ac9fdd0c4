// Loop IR shared by every target: buffers, loop nests with axis kinds, scalar expressions, loads and stores.
import type { BinaryOp, CompareOp, LogicalOp, UnaryOp } from '../../ir/ops.js';
import type { DType } from '../../ir/types.js';

/** Scalar types of loop-IR expressions (bool is 0/1 in one byte when stored). */
export type Scalar = 'f32' | 'i32' | 'bool';

/**
 * i32 fixed-point ops of int8 requantization (ir/quant.ts): qmulhi is SaturatingRoundingDoublingHighMul, qshr
 * RoundingDivideByPOT, shl a left shift that wraps; the shift amount b of qshr and shl is in 0..31.
 * The integer dot product of int8 kernels (schedules/cpu_qmatmul.ts): pack16(a, b) is two int16 halves in one i32,
 * a's low 16 bits low (`(a & 0xffff) | b << 16`); dot2(p, q) = lo(p)·lo(q) + hi(p)·hi(q), the halves signed, the
 * sum wrapping at 32 bits: x86's pmaddwd per i32 lane, wasm's i32x4.dot_i16x8_s, the Cortex-M4's SMUAD. Quads of
 * bytes where the CPU has VNNI (TargetCaps.dot4): pack8(a, b) is two bytes in the low 16 bits (`(a & 0xff) | b << 8`,
 * four as pack16(pack8(a, b), pack8(c, d))); dot4(p, q) = the sum of p's four bytes unsigned times q's four bytes
 * signed, wrapping at 32 bits: x86's vpdpbusd per i32 lane (without its accumulator). xor is the bitwise exclusive
 * or: a quad of int8 values as their u8 views (x + 128 each) is the quad xor 0x80808080.
 */
export type QuantBinary = 'qmulhi' | 'qshr' | 'shl' | 'pack16' | 'dot2' | 'pack8' | 'dot4' | 'xor';
export const QUANT_BINARY: ReadonlySet<string> = new Set<QuantBinary>(['qmulhi', 'qshr', 'shl', 'pack16', 'dot2', 'pack8', 'dot4', 'xor']);

export const SCALAR_OF: Record<'float32' | 'int32' | 'bool' | 'int8', Scalar> = { float32: 'f32', int32: 'i32', bool: 'bool', int8: 'i32' };

/** The scalar a dtype computes in (int8 loads widen to i32, and stores of i32 narrow to int8). */
export function scalarOf(d: DType): Scalar {
  if (d === 'float32' || d === 'int32' || d === 'bool' || d === 'int8') return SCALAR_OF[d];
  throw new Error(`loop IR: dtype ${d} is not supported`);
}

export type Expr =
  | { readonly k: 'const'; readonly t: Scalar; readonly v: number }
  /** a loop index or a local scalar */
  | { readonly k: 'var'; readonly t: Scalar; readonly name: string }
  /**
   * element `idx` of a buffer or local array; a quad (`quad`: t i32, an int8 buffer) is elements idx .. idx + 3 read
   * as one 32-bit little-endian word, element idx its low byte, aligned or not (every kiln target is little-endian:
   * layout.ts writes constants so): a plain unaligned i32 load, which pack16(pack8(x[i], x[i+1]), pack8(x[i+2],
   * x[i+3])) is (simplify.ts rewrites that form into it)
   */
  | { readonly k: 'load'; readonly t: Scalar; readonly buf: string; readonly idx: Expr; readonly quad: boolean }
  | { readonly k: 'unary'; readonly t: Scalar; readonly op: UnaryOp; readonly a: Expr }
  | { readonly k: 'cast'; readonly t: Scalar; readonly a: Expr }
  | { readonly k: 'binary'; readonly t: Scalar; readonly op: BinaryOp | CompareOp | LogicalOp | 'mod' | 'idiv' | QuantBinary; readonly a: Expr; readonly b: Expr }
  /** both branches are evaluated (as wasm and LLVM select): loads in either must be in bounds */
  | { readonly k: 'select'; readonly t: Scalar; readonly c: Expr; readonly a: Expr; readonly b: Expr }
  /** Philox uniform float in [0, 1) for element `index` under (seed, counter) — the random_uniform primitive */
  | { readonly k: 'philox'; readonly t: 'f32'; readonly seed: number; readonly counter: Expr; readonly index: Expr };

/**
 * How a loop's iterations are executed; chosen by the scheduler, rendered by each target. `fold`: a serial reduction
 * (decls, then `acc = f(acc, ...)`) whose values folded in are computed as vector lanes and folded lane by lane, in
 * order (fold.ts): serial semantics, which a target without fold loops renders as a serial loop.
 */
export type AxisKind = 'serial' | 'parallel' | 'vector' | 'unroll' | 'fold' | 'block' | 'thread';

export type Stmt =
  | { readonly k: 'for'; readonly v: string; readonly extent: number; readonly kind: AxisKind; readonly body: readonly Stmt[] }
  /** a local scalar, mutable with assign */
  | { readonly k: 'decl'; readonly name: string; readonly t: Scalar; readonly init: Expr }
  | { readonly k: 'assign'; readonly name: string; readonly value: Expr }
  /** a small local array (a row cached in registers / stack, or a shared-memory tile on GPU) */
  | { readonly k: 'local'; readonly name: string; readonly t: Scalar; readonly size: number; readonly scope: 'register' | 'shared' }
  | { readonly k: 'store'; readonly buf: string; readonly idx: Expr; readonly value: Expr }
  /**
   * The body runs only where cond (bool) holds: a tile's guarded tail (`if (i < M)`). The body is a scope of its own.
   * On a GPU the condition of an `if` outside thread loops reads no thread index, so all of a block's threads take
   * the same branch and the barriers of thread loops inside stay uniform.
   */
  | { readonly k: 'if'; readonly cond: Expr; readonly body: readonly Stmt[] }
  /**
   * A declared tree's last levels on one warp (GPU blocks only, outside thread loops): the levels size/2, ..., 1 of
   * the local array's first `size` elements (`for i < s { P[i] = P[i] op P[i + s] }`, as tree_reduce.ts emits them),
   * so P[0] holds the same bits; the other elements are left unspecified (CUDA combines them in registers with
   * `__shfl_down_sync`, one lane per element). Every other evaluator runs the level loops (visit.ts warpTreeLevels).
   * `combine`, where legalize rewrote the op (max and min as selects), is its value in the variables `kiln_a` (P[i])
   * and `kiln_b` (P[i + s]), which nothing else binds.
   */
  | { readonly k: 'warpTree'; readonly local: string; readonly t: 'f32' | 'i32'; readonly op: 'add' | 'mul' | 'max' | 'min'; readonly size: number; readonly combine?: Expr }
  /**
   * A block's arrival (GPU blocks only, outside thread loops; schedules/gpu_last_block.ts): once every store the
   * block made before it is visible to the whole grid, the block counts itself in at counter[idx] (an i32 buffer,
   * 0 before the launch), and local[0] (an i32 shared local) becomes 1 in the block whose arrival brings it to
   * `count` (that block sets counter[idx] back to 0), 0 in the others. What the `count` blocks stored before
   * arriving may be read, in an `if local[0] != 0`, by the last of them (a last-block combine).
   */
  | { readonly k: 'arrive'; readonly counter: string; readonly idx: Expr; readonly count: number; readonly local: string };

export type BufferKind = 'input' | 'param' | 'output' | 'temp' | 'const';

export interface Buffer {
  readonly name: string;
  readonly dtype: DType;
  readonly size: number;
  readonly kind: BufferKind;
  /** const buffers: their values (one value = splat) */
  readonly data?: readonly number[];
}

/** One kernel: one or more loop nests run in order; `ops` lists the graph ops it fused. */
export interface Kernel {
  readonly name: string;
  readonly ops: readonly string[];
  readonly body: readonly Stmt[];
  /**
   * An all-reduce (fuse gives it a kernel of its own): the body copies the operand into the one buffer it stores to,
   * and the runtime then sums that buffer over the processes of a data-parallel step (llvm: kiln_allreduce; cuda:
   * NCCL). A target that ignores it computes the one-process value, the operand itself.
   */
  readonly allreduce?: boolean;
}

/** A whole lowered function: buffers, kernels in execution order, and where the graph's values live. */
export interface Program {
  readonly name: string;
  readonly buffers: readonly Buffer[];
  readonly kernels: readonly Kernel[];
  /** graph input name -> buffer */
  readonly inputs: readonly { readonly name: string; readonly buffer: string }[];
  readonly params: readonly { readonly name: string; readonly buffer: string }[];
  readonly outputs: readonly { readonly name: string; readonly buffer: string }[];
  /** param name -> buffer holding its new value (the param's own buffer when updated in place) */
  readonly updates: readonly { readonly name: string; readonly buffer: string }[];
}

// Interning: structurally equal expressions are one object (as tinygrad's UOp cache and ir/graph.ts's builder), so
// identity is structure: memo tables and CSE key on the object, and a rewrite that changes nothing returns its input.
// A hash of kind, type, op, names and child identities finds the candidates; the table holds weak references, so
// expressions no longer used by any program are collected, and their entries swept.

const ids = new WeakMap<Expr, number>();
let nextId = 0;
/**
 * A number naming e's identity (assigned on first use, also to expressions built by literal; never reused), so
 * interned expressions, equal exactly when structurally equal, can key text or numeric tables: `ids.join(',')`.
 */
export function exprId(e: Expr): number {
  return idOf(e);
}

function idOf(e: Expr): number {
  let id = ids.get(e);
  if (id === undefined) ids.set(e, (id = ++nextId));
  return id;
}

/** Small numbers for the names in expressions (variables, buffers); renumbered by each sweep. */
let strings = new Map<string, number>();
function stringId(s: string): number {
  let id = strings.get(s);
  if (id === undefined) strings.set(s, (id = strings.size + 1));
  return id;
}

const mix = (h: number, x: number): number => {
  h = Math.imul(h ^ x, 0x5bd1e995);
  return h ^ (h >>> 15);
};
const f64 = new Float64Array(1), words = new Int32Array(f64.buffer);
/** The hash of a constant's value: its bits (so -0 and 0 differ), one for every NaN (NaN is NaN). */
function valueHash(v: number): number {
  if (v !== v) return 0x7ff80000;
  f64[0] = v;
  return mix(words[0]!, words[1]!);
}
const typeHash = (t: Scalar): number => (t === 'f32' ? 1 : t === 'i32' ? 2 : 3);
/** Ops are few: their first two letters and length tell them apart (same() settles any tie). */
const opHash = (op: string): number => op.charCodeAt(0) | (op.charCodeAt(1) << 8) | (op.length << 16);

function hashOf(e: Expr): number {
  const t = typeHash(e.t);
  switch (e.k) {
    case 'const': return mix(mix(1, t), valueHash(e.v));
    case 'var': return mix(mix(2, t), stringId(e.name));
    case 'load': return mix(mix(mix(e.quad ? 9 : 3, t), stringId(e.buf)), idOf(e.idx));
    case 'unary': return mix(mix(mix(4, t), opHash(e.op)), idOf(e.a));
    case 'cast': return mix(mix(5, t), idOf(e.a));
    case 'binary': return mix(mix(mix(mix(6, t), opHash(e.op)), idOf(e.a)), idOf(e.b));
    case 'select': return mix(mix(mix(mix(7, t), idOf(e.c)), idOf(e.a)), idOf(e.b));
    case 'philox': return mix(mix(mix(mix(8, t), valueHash(e.seed)), idOf(e.counter)), idOf(e.index));
  }
}

/** Whether x and e are structurally equal, their children being compared by identity (constants as Object.is). */
function same(x: Expr, e: Expr): boolean {
  if (x.k !== e.k || x.t !== e.t) return false;
  switch (e.k) {
    case 'const': return Object.is((x as typeof e).v, e.v);
    case 'var': return (x as typeof e).name === e.name;
    case 'load': { const y = x as typeof e; return y.buf === e.buf && y.idx === e.idx && y.quad === e.quad; }
    case 'unary': return (x as typeof e).op === e.op && (x as typeof e).a === e.a;
    case 'cast': return (x as typeof e).a === e.a;
    case 'binary': { const y = x as typeof e; return y.op === e.op && y.a === e.a && y.b === e.b; }
    case 'select': { const y = x as typeof e; return y.c === e.c && y.a === e.a && y.b === e.b; }
    case 'philox': { const y = x as typeof e; return Object.is(y.seed, e.seed) && y.counter === e.counter && y.index === e.index; }
  }
}

type Slot = WeakRef<Expr> | WeakRef<Expr>[];
let table = new Map<number, Slot>();
let sweepAt = 1 << 16;

function insert(h: number, ref: WeakRef<Expr>): void {
  const slot = table.get(h);
  if (slot === undefined || (!Array.isArray(slot) && slot.deref() === undefined)) table.set(h, ref);
  else if (Array.isArray(slot)) slot.push(ref);
  else table.set(h, [slot, ref]);
}

/** Rebuilds the table from its live expressions once it has doubled since the last sweep (string ids renumbered). */
function sweep(): void {
  const live: Expr[] = [];
  for (const slot of table.values()) {
    for (const r of Array.isArray(slot) ? slot : [slot]) {
      const e = r.deref();
      if (e !== undefined) live.push(e);
    }
  }
  table = new Map();
  strings = new Map();
  for (const e of live) insert(hashOf(e), new WeakRef(e));
  sweepAt = Math.max(1 << 16, 2 * table.size);
}

/**
 * The one expression structurally equal to e: an earlier one, or e itself from now on. Every E.* constructor goes
 * through it; an expression built by literal may be passed through it too (one that is not stays correct, only unshared).
 */
export function intern(e: Expr): Expr {
  const h = hashOf(e);
  const slot = table.get(h);
  if (slot !== undefined) {
    if (!Array.isArray(slot)) {
      const x = slot.deref();
      if (x !== undefined && same(x, e)) return x;
    } else {
      for (const r of slot) {
        const x = r.deref();
        if (x !== undefined && same(x, e)) return x;
      }
    }
  }
  if (table.size < sweepAt) insert(h, new WeakRef(e));
  else {
    sweep();
    insert(hashOf(e), new WeakRef(e)); // the sweep renumbered the strings
  }
  return e;
}

/** Live expressions in the intern table (for tests and memory figures). */
export function internedCount(): number {
  sweep();
  let n = 0;
  for (const slot of table.values()) n += Array.isArray(slot) ? slot.length : 1;
  return n;
}

const COMPARISONS: ReadonlySet<string> = new Set(['eq', 'ne', 'lt', 'le', 'gt', 'ge']);

// Expression constructors (the lowering and the scheduler build loop IR only through these).
export const E = {
  f32: (v: number): Expr => intern({ k: 'const', t: 'f32', v: Math.fround(v) }),
  i32: (v: number): Expr => intern({ k: 'const', t: 'i32', v: v | 0 }),
  bool: (v: boolean): Expr => intern({ k: 'const', t: 'bool', v: v ? 1 : 0 }),
  c: (t: Scalar, v: number): Expr => intern({ k: 'const', t, v: t === 'f32' ? Math.fround(v) : t === 'bool' ? (v ? 1 : 0) : v | 0 }),
  v: (name: string, t: Scalar = 'i32'): Expr => intern({ k: 'var', t, name }),
  load: (buf: string, idx: Expr, t: Scalar): Expr => intern({ k: 'load', t, buf, idx, quad: false }),
  /** elements idx .. idx + 3 of an int8 buffer as one little-endian i32 (see Expr's load) */
  quad: (buf: string, idx: Expr): Expr => intern({ k: 'load', t: 'i32', buf, idx, quad: true }),
  unary: (op: UnaryOp, a: Expr): Expr => intern({ k: 'unary', t: a.t, op, a }),
  cast: (t: Scalar, a: Expr): Expr => (a.t === t ? a : intern({ k: 'cast', t, a })),
  select: (c: Expr, a: Expr, b: Expr): Expr => intern({ k: 'select', t: a.t, c, a, b }),
  binary: (op: BinaryOp | CompareOp | LogicalOp | 'mod' | 'idiv' | QuantBinary, a: Expr, b: Expr): Expr => {
    return intern({ k: 'binary', t: COMPARISONS.has(op) ? 'bool' : a.t, op, a, b });
  },
  philox: (seed: number, counter: Expr, index: Expr): Expr => intern({ k: 'philox', t: 'f32', seed, counter, index }),
  /** i32 index arithmetic with constant folding, so affine indices stay small */
  add: (a: Expr, b: Expr): Expr => {
    if (a.k === 'const' && a.v === 0) return b;
    if (b.k === 'const' && b.v === 0) return a;
    if (a.k === 'const' && b.k === 'const') return E.i32(a.v + b.v);
    return intern({ k: 'binary', t: 'i32', op: 'add', a, b });
  },
  mul: (a: Expr, b: Expr): Expr => {
    if (a.k === 'const' && a.v === 1) return b;
    if (b.k === 'const' && b.v === 1) return a;
    if ((a.k === 'const' && a.v === 0) || (b.k === 'const' && b.v === 0)) return E.i32(0);
    if (a.k === 'const' && b.k === 'const') return E.i32(Math.imul(a.v, b.v));
    return intern({ k: 'binary', t: 'i32', op: 'mul', a, b });
  },
  idiv: (a: Expr, d: number): Expr => (d === 1 ? a : a.k === 'const' ? E.i32(Math.floor(a.v / d)) : intern({ k: 'binary', t: 'i32', op: 'idiv', a, b: E.i32(d) })),
  mod: (a: Expr, d: number): Expr => (d === 1 ? E.i32(0) : a.k === 'const' ? E.i32(((a.v % d) + d) % d) : intern({ k: 'binary', t: 'i32', op: 'mod', a, b: E.i32(d) })),
};

/** The elements a load reads: its index, or a quad's four, idx .. idx + 3 (dependence and in-place analyses). */
export function loadedIndices(e: Extract<Expr, { k: 'load' }>): readonly Expr[] {
  return e.quad ? [0, 1, 2, 3].map((i) => E.add(e.idx, E.i32(i))) : [e.idx];
}

export const S = {
  for: (v: string, extent: number, body: Stmt[], kind: AxisKind = 'serial'): Stmt => ({ k: 'for', v, extent, kind, body }),
  decl: (name: string, t: Scalar, init: Expr): Stmt => ({ k: 'decl', name, t, init }),
  assign: (name: string, value: Expr): Stmt => ({ k: 'assign', name, value }),
  local: (name: string, t: Scalar, size: number, scope: 'register' | 'shared' = 'register'): Stmt => ({ k: 'local', name, t, size, scope }),
  store: (buf: string, idx: Expr, value: Expr): Stmt => ({ k: 'store', buf, idx, value }),
  if: (cond: Expr, body: Stmt[]): Stmt => ({ k: 'if', cond, body }),
  warpTree: (local: string, t: 'f32' | 'i32', op: 'add' | 'mul' | 'max' | 'min', size: number): Stmt => ({ k: 'warpTree', local, t, op, size }),
  arrive: (counter: string, idx: Expr, count: number, local: string): Stmt => ({ k: 'arrive', counter, idx, count, local }),
};

