// Reference interpreter of loop IR: every loop run serially, the graph interpreter's exact scalar semantics, checked loads.
import { type Bindings, evalOp } from '../../ir/interpreter.js';
import type { Attrs, Op } from '../../ir/ops.js';
import { philox4x32 } from '../../ir/philox.js';
import { roundingDivideByPOT, srdhm } from '../../ir/quant.js';
import { type DType, type TypedArray, allocate, formatType, toTyped } from '../../ir/types.js';
import type { Buffer, Expr, Kernel, Program, Scalar, Stmt } from './ir.js';
import { blockThreads } from './analysis.js';
import { launchParts } from './gpu.js';
import { printExpr } from './printer.js';
import { type LoopSym, SymbolTable } from './scope.js';
import { verifyProgram } from './verifier.js';
import { warpTreeLevels } from './visit.js';

export interface LoopRunResult {
  /** Output arrays by graph output name, in the program's order. */
  readonly outputs: Map<string, TypedArray>;
  /** New parameter values by param name. */
  readonly updates: Map<string, TypedArray>;
}

const f = Math.fround;
const DTYPE: Record<Scalar, DType> = { f32: 'float32', i32: 'int32', bool: 'bool' };

/** Element `index` of philoxUniform(n, seed, counter) for any n > index: word index%4 of block index/4, 24 bits * 2^-24. */
export function philoxUniformAt(seed: number, counter: number, index: number): number {
  if (!(index >= 0)) throw new Error(`philox: element index ${index} is negative`);
  const w = philox4x32(Math.floor(index / 4) >>> 0, counter >>> 0, 0, 0, seed >>> 0, 0);
  return (w[index % 4]! >>> 8) * 5.9604644775390625e-8;
}

type Num = () => number;
type Run = () => void;
type Fn1 = (a: number) => number;
type Fn2 = (a: number, b: number) => number;

const graphOps = new Map<string, Fn1 | Fn2>();

/**
 * One graph op on scalars, run by the graph interpreter's evalOp on one-element arrays, so the loop IR has
 * its exact semantics (round-half-even, sign, erf, C pow, cast saturation, float32 rounding of the result).
 */
function graphOp(op: Op, out: Scalar, ins: readonly Scalar[]): Fn1 | Fn2 {
  const key = `${op}:${out}:${ins.join(',')}`;
  let fn = graphOps.get(key);
  if (!fn) {
    const attrs: Attrs = op === 'cast' ? { dtype: DTYPE[out] } : {};
    const node = { op, type: { dtype: DTYPE[out], shape: [] }, attrs };
    const src = ins.map((t) => ({ type: { dtype: DTYPE[t], shape: [] }, data: allocate(DTYPE[t], 1) }));
    const [x, y] = src;
    fn = ins.length === 1
      ? (a: number) => { x!.data[0] = a; return evalOp(node, src)[0]!; }
      : (a: number, b: number) => { x!.data[0] = a; y!.data[0] = b; return evalOp(node, src)[0]!; };
    graphOps.set(key, fn);
  }
  return fn;
}

/** A binary op on two scalars of type t (the operand type; comparisons give 0/1). */
function binaryFn(op: Extract<Expr, { k: 'binary' }>['op'], t: Scalar): Fn2 {
  switch (op) {
    case 'eq': return (a, b) => (a === b ? 1 : 0);
    case 'ne': return (a, b) => (a !== b ? 1 : 0);
    case 'lt': return (a, b) => (a < b ? 1 : 0);
    case 'le': return (a, b) => (a <= b ? 1 : 0);
    case 'gt': return (a, b) => (a > b ? 1 : 0);
    case 'ge': return (a, b) => (a >= b ? 1 : 0);
    case 'and': return (a, b) => (a !== 0 && b !== 0 ? 1 : 0);
    case 'or': return (a, b) => (a !== 0 || b !== 0 ? 1 : 0);
    case 'max': return Math.max; // NaN propagates; values stay float32 / int32
    case 'min': return Math.min;
    case 'pow': return graphOp('pow', t, [t, t]) as Fn2;
    default:
  }
  if (t === 'f32') {
    switch (op) {
      case 'add': return (a, b) => f(a + b);
      case 'sub': return (a, b) => f(a - b);
      case 'mul': return (a, b) => f(a * b);
      case 'div': return (a, b) => f(a / b);
      default: throw new Error(`loop interpreter: ${op} is not defined on f32`);
    }
  }
  switch (op) {
    case 'add': return (a, b) => (a + b) | 0;
    case 'sub': return (a, b) => (a - b) | 0;
    case 'mul': return Math.imul;
    // int32 quotients of int32 operands are exact in float64, so trunc/floor are exact; x/0 gives 0
    case 'div': return (a, b) => (b === 0 ? 0 : Math.trunc(a / b) | 0);
    case 'idiv': return (a, b) => (b === 0 ? 0 : Math.floor(a / b) | 0);
    case 'mod': return (a, b) => (b === 0 ? 0 : ((a % b) + Math.abs(b)) % Math.abs(b));
    case 'qmulhi': return srdhm;
    case 'qshr': return roundingDivideByPOT;
    case 'shl': return (a, b) => (a << b) | 0;
    case 'pack16': return (a, b) => (a & 0xffff) | (b << 16);
    case 'dot2': return (a, b) => (Math.imul((a << 16) >> 16, (b << 16) >> 16) + Math.imul(a >> 16, b >> 16)) | 0;
    case 'pack8': return (a, b) => (a & 0xff) | (b << 8);
    case 'xor': return (a, b) => a ^ b;
    case 'dot4': return (a, b) => {
      let s = 0;
      for (let i = 0; i < 32; i += 8) s = (s + Math.imul((a >>> i) & 0xff, (b << (24 - i)) >> 24)) | 0;
      return s;
    };
    default: throw new Error(`loop interpreter: ${op} is not defined on ${t}`);
  }
}

/** A local array declared in a GPU block outside its thread loops has one copy per thread (`copies` of them). */
type Sym = LoopSym & { readonly slot: number; readonly copies: number };

export interface RunOptions {
  /**
   * Run parallel, GPU block and GPU thread loops from their last iteration to their first. Their iterations
   * must not depend on each other, so results must not change: a race detector for schedules.
   */
  reverse?: boolean;
}

/** Compiles a (verified) kernel into one closure over the program's storage; locals and scalars live in the closure. */
function compileKernel(k: Kernel, storage: ReadonlyMap<string, TypedArray>, options: RunOptions = {}): Run {
  const env: number[] = [];
  const locals: TypedArray[] = [];
  const syms = new SymbolTable<{ readonly slot: number; readonly copies: number }>();
  let slots = 0;
  /** threads of the GPU block being compiled (0 outside blocks), and the slot of the thread loop's variable */
  let threads = 0, threadSlot = -1;
  /** The slot of the thread index where a local array has one copy per thread (-1 for one shared by all). */
  const copySlot = (s: Sym): number => (s.copies > 1 ? threadSlot : -1);

  const lookup = (name: string): Sym | undefined => syms.lookup(name);
  const scalarSlot = (name: string): number => {
    const s = lookup(name);
    if (!s || s.kind === 'local') throw new Error(`kernel ${k.name}: '${name}' is not a scalar in scope`);
    return s.slot;
  };
  /** Names and slots of the scalars visible here, for error messages. */
  let shown: readonly unknown[] = [], scalars: [string, number][] = [];
  const visible = (): [string, number][] => {
    const all = syms.visible();
    if (all !== shown) [shown, scalars] = [all, all.flatMap(([n, s]): [string, number][] => (s.kind === 'local' ? [] : [[n, s.slot]]))];
    return scalars;
  };
  const outOfBounds = (what: string, e: Expr, buf: string, i: number | string, size: number, vars: [string, number][]): Error => {
    const at = vars.length ? ` at ${vars.map(([n, s]) => `${n}=${env[s]}`).join(', ')}` : '';
    return new Error(`kernel ${k.name}: ${what} ${buf}[${printExpr(e)}]: index ${i} is out of bounds for ${buf} of size ${size}${at}`);
  };

  function load(e: Extract<Expr, { k: 'load' }>): Num {
    const s = lookup(e.buf);
    const idx = expr(e.idx);
    const vars = visible();
    if (s?.kind === 'local') {
      const { slot, size } = s, tid = copySlot(s);
      return () => {
        const i = idx();
        if (!(i >= 0 && i < size)) throw outOfBounds('load', e.idx, e.buf, i, size, vars);
        return locals[slot]![tid < 0 ? i : i + env[tid]! * size]!;
      };
    }
    const data = storage.get(e.buf)!, n = data.length;
    // a quad: four int8 elements as one little-endian word, element i its low byte
    if (e.quad) {
      return () => {
        const i = idx();
        if (!(i >= 0 && i + 3 < n)) throw outOfBounds('quad load', e.idx, e.buf, `${i}..${i + 3}`, n, vars);
        return (data[i]! & 0xff) | ((data[i + 1]! & 0xff) << 8) | ((data[i + 2]! & 0xff) << 16) | (data[i + 3]! << 24);
      };
    }
    return () => {
      const i = idx();
      if (!(i >= 0 && i < n)) throw outOfBounds('load', e.idx, e.buf, i, n, vars);
      return data[i]!;
    };
  }

  function binary(e: Extract<Expr, { k: 'binary' }>): Num {
    const a = expr(e.a);
    // the hot index and accumulation ops inline, with a constant right operand folded in
    if (e.b.k === 'const' && (e.op === 'add' || e.op === 'mul') && e.a.t === 'i32') {
      const c = e.b.v;
      return e.op === 'add' ? () => (a() + c) | 0 : () => Math.imul(a(), c);
    }
    const b = expr(e.b);
    if (e.a.t === 'i32' && e.op === 'add') return () => (a() + b()) | 0;
    if (e.a.t === 'i32' && e.op === 'mul') return () => Math.imul(a(), b());
    if (e.a.t === 'f32' && e.op === 'add') return () => f(a() + b());
    if (e.a.t === 'f32' && e.op === 'mul') return () => f(a() * b());
    const fn = binaryFn(e.op, e.a.t);
    return () => fn(a(), b());
  }

  function expr(e: Expr): Num {
    switch (e.k) {
      case 'const': {
        const v = e.v;
        return () => v;
      }
      case 'var': {
        const slot = scalarSlot(e.name);
        return () => env[slot]!;
      }
      case 'load': return load(e);
      case 'unary': {
        const a = expr(e.a), fn = graphOp(e.op, e.a.t, [e.a.t]) as Fn1;
        return () => fn(a());
      }
      case 'cast': {
        const a = expr(e.a), fn = graphOp('cast', e.t, [e.a.t]) as Fn1;
        return () => fn(a());
      }
      case 'binary': return binary(e);
      case 'select': {
        // every operand is evaluated (and every load checked), as LLVM and wasm select do
        const c = expr(e.c), a = expr(e.a), b = expr(e.b);
        return () => {
          const cv = c(), av = a(), bv = b();
          return cv !== 0 ? av : bv;
        };
      }
      case 'philox': {
        const seed = e.seed, counter = expr(e.counter), index = expr(e.index);
        return () => philoxUniformAt(seed, counter(), index());
      }
      default: {
        const never: never = e;
        throw new Error(`kernel ${k.name}: unknown expression ${JSON.stringify(never)}`);
      }
    }
  }

  function stmt(s: Stmt): Run {
    switch (s.k) {
      case 'for': {
        const slot = slots++;
        const saved = [threads, threadSlot];
        const body = syms.within(() => {
          syms.declare(s.v, { kind: 'loop', t: 'i32', extent: s.extent, axis: s.kind, slot, copies: 1 });
          if (s.kind === 'block') threads = Math.max(threads, blockThreads(s.body));
          if (s.kind === 'thread') threadSlot = slot;
          // a horizontally fused launch's nests run side by side on the GPU: reversed, they run last to first
          return block(options.reverse && s.kind === 'block' && launchParts(s).length > 1 ? [...s.body].reverse() : s.body);
        });
        const n = s.extent;
        [threads, threadSlot] = saved as [number, number];
        if (options.reverse && (s.kind === 'parallel' || s.kind === 'block' || s.kind === 'thread')) {
          return () => {
            for (let i = n - 1; i >= 0; i--) {
              env[slot] = i;
              body();
            }
          };
        }
        return () => {
          for (let i = 0; i < n; i++) {
            env[slot] = i;
            body();
          }
        };
      }
      case 'decl': {
        const init = expr(s.init), slot = slots++;
        syms.declare(s.name, { kind: 'decl', t: s.t, slot, copies: 1 });
        return () => { env[slot] = init(); };
      }
      case 'assign': {
        const value = expr(s.value), slot = scalarSlot(s.name);
        return () => { env[slot] = value(); };
      }
      case 'local': {
        const slot = locals.length, dtype = DTYPE[s.t], size = s.size;
        const copies = s.scope === 'register' && threads > 0 && threadSlot < 0 ? threads : 1;
        locals.push(allocate(dtype, 0));
        syms.declare(s.name, { kind: 'local', t: s.t, size, scope: s.scope, slot, copies });
        return () => { locals[slot] = allocate(dtype, size * copies); }; // fresh and zeroed each time it is reached
      }
      case 'store': {
        const sym = lookup(s.buf);
        const idx = expr(s.idx), value = expr(s.value), vars = visible();
        if (sym?.kind === 'local') {
          const { slot, size } = sym, tid = copySlot(sym);
          return () => {
            const i = idx();
            if (!(i >= 0 && i < size)) throw outOfBounds('store', s.idx, s.buf, i, size, vars);
            locals[slot]![tid < 0 ? i : i + env[tid]! * size] = value();
          };
        }
        const data = storage.get(s.buf)!, n = data.length;
        return () => {
          const i = idx();
          if (!(i >= 0 && i < n)) throw outOfBounds('store', s.idx, s.buf, i, n, vars);
          data[i] = value();
        };
      }
      case 'if': {
        const cond = expr(s.cond), body = syms.within(() => block(s.body));
        return () => { if (cond() !== 0) body(); };
      }
      case 'warpTree': return syms.within(() => block(warpTreeLevels(s)));
      case 'arrive': {
        // blocks run one after another: the one that brings the count to s.count is the last
        const idx = expr(s.idx), data = storage.get(s.counter)!, n = data.length, vars = visible(), sym = lookup(s.local);
        if (sym?.kind !== 'local') throw new Error(`kernel ${k.name}: arrive sets ${s.local}, no local array`);
        const { slot } = sym, count = s.count;
        return () => {
          const i = idx();
          if (!(i >= 0 && i < n)) throw outOfBounds('store', s.idx, s.counter, i, n, vars);
          const c = data[i]! + 1;
          data[i] = c === count ? 0 : c;
          locals[slot]![0] = c === count ? 1 : 0;
        };
      }
      default: {
        const never: never = s;
        throw new Error(`kernel ${k.name}: unknown statement ${JSON.stringify(never)}`);
      }
    }
  }

  function block(body: readonly Stmt[]): Run {
    const runs = body.map(stmt);
    if (runs.length === 1) return runs[0]!;
    return () => {
      for (let i = 0; i < runs.length; i++) runs[i]!();
    };
  }

  const run = block(k.body);
  for (let i = 0; i < slots; i++) env.push(0); // a packed array of doubles
  return run;
}

function constData(b: Buffer): TypedArray {
  const d = b.data!;
  return toTyped(b.dtype, d.length === 1 ? new Array<number>(b.size).fill(d[0]!) : d);
}

function lookup(b: Bindings, name: string): TypedArray | undefined {
  return b instanceof Map ? b.get(name) : (b as Record<string, TypedArray>)[name];
}

/**
 * Runs a program: allocates every buffer (consts filled, the rest zeroed), binds inputs by graph name and
 * copies of params, runs the kernels in order with every loop serial (a GPU block's thread loops one after the
 * other, as barriers order them), and returns outputs and param updates.
 * Throws when the program does not verify, a binding is missing or ill-typed, or a load or store is out of bounds.
 */
export function runProgram(p: Program, inputs: Bindings, params: Bindings, options: RunOptions = {}): LoopRunResult {
  const problems = verifyProgram(p);
  if (problems.length) throw new Error(`loop program @${p.name} is malformed:\n  ${problems.join('\n  ')}`);
  const storage = new Map<string, TypedArray>();
  for (const b of p.buffers) storage.set(b.name, b.kind === 'const' ? constData(b) : allocate(b.dtype, b.size));
  for (const [kind, list, bind] of [['input', p.inputs, inputs], ['param', p.params, params]] as const) {
    for (const { name, buffer } of list) {
      const b = p.buffers.find((x) => x.name === buffer)!;
      const type = formatType({ dtype: b.dtype, shape: [b.size] });
      const data = lookup(bind, name);
      if (!data) throw new Error(`loop program @${p.name}: no value given for ${kind} '${name}' (${type})`);
      if (data.length !== b.size || allocate(b.dtype, 0).constructor !== data.constructor) {
        throw new Error(`loop program @${p.name}: ${kind} '${name}' expects ${type}, got ${data.constructor.name} of ${data.length} elements`);
      }
      storage.set(buffer, kind === 'param' ? data.slice() : data); // inputs are never stored into (verified)
    }
  }
  for (const run of p.kernels.map((k) => compileKernel(k, storage, options))) run();
  return {
    outputs: new Map(p.outputs.map((o) => [o.name, storage.get(o.buffer)!])),
    updates: new Map(p.updates.map((u) => [u.name, storage.get(u.buffer)!])),
  };
}
