// Renders a loop-IR program to a WebAssembly module (one function per kernel, `run` calls them).
import { Type } from './encoder.js';
import type { Buffer, Expr, Program, Scalar, Stmt } from '../loop/ir.js';
import { assigned, independentIterations, pureDecls } from '../loop/analysis.js';
import { someExpr, walkStmts } from '../loop/visit.js';
import { ALIGN, type Entry, align, layoutModule, localBytes } from '../loop/layout.js';
import { type OpTable, binaryOp, castOp, unaryOp } from '../loop/legalize.js';
import type { MemoryPlan } from '../loop/memplan.js';
import { printExpr } from '../loop/printer.js';
import { F32X4_BINARY, F32X4_UNARY, SIMD128, checkVectorLoops, laneCoef, laneStride, promotable } from '../loop/vectorize.js';
import { type Affine, LoopPointers, affine, splatDecls } from './address.js';
import { addMath } from './math.js';
import { philoxVector } from './philox_vector.js';
import { addRequant } from './requant.js';
import { philoxLanes } from '../loop/philox_lanes.js';
import { Locals, type Ref, type ValType, WasmModule } from './module.js';

/** Where each buffer lives in linear memory, for the host side. */
export interface WasmLayout {
  readonly memoryBytes: number;
  readonly arenaOffset: number;
  readonly arenaBytes: number;
  /** buffer name -> byte offset */
  readonly offsets: Record<string, number>;
}

export interface WasmArtifact {
  readonly binary: Uint8Array;
  readonly layout: WasmLayout;
  /** Memory a thread pool's threads use beyond the layout's (their scratch). */
  readonly threads?: ThreadMemory;
}

const valType = (t: Scalar): ValType => (t === 'f32' ? 'f32' : 'i32');
const memType = (t: Scalar): 'f32' | 'i32' | 'u8' => (t === 'f32' ? 'f32' : t === 'i32' ? 'i32' : 'u8');
const elemBytes = (t: Scalar) => (t === 'bool' ? 1 : 4);

function scalarOfBuffer(b: Buffer): Scalar {
  return b.dtype === 'float32' ? 'f32' : b.dtype === 'int32' || b.dtype === 'int8' ? 'i32' : 'bool';
}

type Op1 = (w: WasmModule, a: Ref) => Ref;
type Op2 = (w: WasmModule, a: Ref, b: Ref) => Ref;
const n = (r: Ref) => r as number;
/** A node constructor as a table entry. */
const op1 = (f: (m: WasmModule['ops'], a: number) => number): Op1 => (w, a) => f(w.ops, n(a)) as Ref;
const op2 = (f: (m: WasmModule['ops'], a: number, b: number) => number): Op2 => (w, a, b) => f(w.ops, n(a), n(b)) as Ref;
/** f32 -> f64, f, then rounded once to f32 */
const viaF64 = (f: (w: WasmModule, d: number) => number): Op1 => (w, a) => w.ops.f32.demote(f(w, w.ops.f64.promote(n(a)))) as Ref;

/** Every primitive op as wasm; math wasm lacks is in math.ts (exp, log, tanh, erf) or the host's (imported on first use). */
const SCALAR: OpTable<Op1, Op2> = {
  unary: {
    f32: {
      neg: op1((m, a) => m.f32.neg(a)), abs: op1((m, a) => m.f32.abs(a)), sqrt: op1((m, a) => m.f32.sqrt(a)),
      floor: op1((m, a) => m.f32.floor(a)), ceil: op1((m, a) => m.f32.ceil(a)), round: op1((m, a) => m.f32.nearest(a)),
      // 1/x and 1/sqrt(x) correctly rounded, through f64
      recip: viaF64((w, d) => w.ops.f64.div(w.ops.f64.const(1), d)), rsqrt: viaF64((w, d) => w.ops.f64.div(w.ops.f64.const(1), w.ops.f64.sqrt(d))),
      exp: (w, a) => w.call('expf', [a], 'f32'), log: (w, a) => w.call('logf', [a], 'f32'),
      log1p: viaF64((w, d) => n(w.callMath('log1p', [d as Ref], ['f64'], 'f64'))),
      tanh: (w, a) => w.call('tanhf', [a], 'f32'), erf: (w, a) => w.call('erff', [a], 'f32'),
      sin: viaF64((w, d) => n(w.callMath('sin', [d as Ref], ['f64'], 'f64'))), cos: viaF64((w, d) => n(w.callMath('cos', [d as Ref], ['f64'], 'f64'))),
    },
    i32: { neg: op1((m, a) => m.i32.sub(m.i32.const(0), a)) },
    bool: { not: op1((m, a) => m.i32.eqz(a)) },
  },
  binary: {
    f32: {
      add: op2((m, a, b) => m.f32.add(a, b)), sub: op2((m, a, b) => m.f32.sub(a, b)), mul: op2((m, a, b) => m.f32.mul(a, b)),
      div: op2((m, a, b) => m.f32.div(a, b)), max: op2((m, a, b) => m.f32.max(a, b)), min: op2((m, a, b) => m.f32.min(a, b)),
      pow: (w, a, b) => w.ops.f32.demote(n(w.callMath('pow', [w.ops.f64.promote(n(a)) as Ref, w.ops.f64.promote(n(b)) as Ref], ['f64', 'f64'], 'f64'))) as Ref,
      eq: op2((m, a, b) => m.f32.eq(a, b)), ne: op2((m, a, b) => m.f32.ne(a, b)), lt: op2((m, a, b) => m.f32.lt(a, b)),
      le: op2((m, a, b) => m.f32.le(a, b)), gt: op2((m, a, b) => m.f32.gt(a, b)), ge: op2((m, a, b) => m.f32.ge(a, b)),
    },
    i32: {
      add: op2((m, a, b) => m.i32.add(a, b)), sub: op2((m, a, b) => m.i32.sub(a, b)), mul: op2((m, a, b) => m.i32.mul(a, b)),
      div: op2((m, a, b) => m.i32.div_s(a, b)), pow: (w, a, b) => w.callMath('ipow', [a, b], ['i32', 'i32'], 'i32'),
      eq: op2((m, a, b) => m.i32.eq(a, b)), ne: op2((m, a, b) => m.i32.ne(a, b)), lt: op2((m, a, b) => m.i32.lt_s(a, b)),
      le: op2((m, a, b) => m.i32.le_s(a, b)), gt: op2((m, a, b) => m.i32.gt_s(a, b)), ge: op2((m, a, b) => m.i32.ge_s(a, b)),
      // int8 requantization (ir/quant.ts): the fixed-point steps on i64 (requant.ts), once per output element
      qmulhi: (w, a, b) => w.call('qmulhi', [a, b], 'i32'), qshr: (w, a, b) => w.call('qshr', [a, b], 'i32'),
      shl: op2((m, a, b) => m.i32.shl(a, b)), xor: op2((m, a, b) => m.i32.xor(a, b)),
      // int8 dot products (loop/ir.ts): a vector loop's scalar tail; its lanes are I32X4's
      pack16: op2((m, a, b) => m.i32.or(m.i32.and(a, m.i32.const(0xffff)), m.i32.shl(b, m.i32.const(16)))),
      dot2: op2((m, a, b) => m.i32.add(m.i32.mul(m.i32.extend16_s(a), m.i32.extend16_s(b)),
        m.i32.mul(m.i32.shr_s(a, m.i32.const(16)), m.i32.shr_s(b, m.i32.const(16))))),
    },
    // bool is 0 or 1 in an i32
    bool: { and: op2((m, a, b) => m.i32.and(a, b)), or: op2((m, a, b) => m.i32.or(a, b)), eq: op2((m, a, b) => m.i32.eq(a, b)), ne: op2((m, a, b) => m.i32.ne(a, b)) },
  },
  cast: {
    'f32>i32': op1((m, a) => m.i32.trunc_s_sat.f32(a)), 'f32>bool': op1((m, a) => m.f32.ne(a, m.f32.const(0))),
    'i32>f32': op1((m, a) => m.f32.convert_s.i32(a)), 'i32>bool': op1((m, a) => m.i32.ne(a, m.i32.const(0))),
    'bool>f32': op1((m, a) => m.f32.convert_u.i32(a)), 'bool>i32': (_, a) => a,
  },
};

class KernelRenderer {
  readonly locals: Locals;
  readonly types = new Map<string, Scalar>();
  private readonly localArrays = new Map<string, { offset: number; t: Scalar }>();
  /** In a chunk function: the local holding its thread's scratch address, which local arrays' offsets are from. */
  scratchLocal: number | undefined;
  /** Loop variables of unrolled copies: their constant value. */
  readonly consts = new Map<string, number>();
  /** Register arrays kept in wasm locals: one v128 per 4 elements, or one f32 or i32 per element. */
  readonly promoted = new Map<string, { vec: boolean; locals: number[]; t: Scalar }>();
  /** Philox blocks computed in the current loop iteration (philoxWord): their four words' locals by key. */
  philoxBlocks = new Map<string, number[]>();
  private assignedVars: ReadonlySet<string> = new Set();
  /** Decls outside every loop and never assigned: one value for the whole kernel. */
  private readonly topDecls = new Set<string>();
  /** f32 decls kept splatted in a v128 local (splatDecls): the local by name. */
  readonly splatted = new Map<string, number>();
  /** Loop variables in scope (never negative: addresses affine in them fold, see address.ts). */
  readonly loopVars = new Set<string>();
  /** The serial loops being rendered, innermost last, with their pointer locals. */
  private readonly frames: LoopPointers[] = [];
  private pointers = 0;
  private scratchTop: number;

  constructor(readonly w: WasmModule, private readonly offsets: Record<string, number>,
    private readonly bufTypes: Map<string, Scalar>, scratchBase: number, params: readonly ValType[] = [],
    /** int8 buffers: one signed byte in memory, i32 in locals */
    private readonly int8: ReadonlySet<string> = new Set()) {
    this.scratchTop = scratchBase;
    this.locals = new Locals(params);
  }

  get scratchEnd(): number {
    return this.scratchTop;
  }

  local(name: string): number {
    const t = this.types.get(name);
    if (!t) throw new Error(`wasm: variable ${name} used before its declaration`);
    return this.locals.get(name, valType(t));
  }

  /** Address expression and static offset of element idx of a buffer or local array. */
  address(buf: string, idx: Expr): { ptr: Ref; offset: number; t: Scalar; mem: 'f32' | 'i32' | 'u8' | 's8' } {
    const la = this.localArrays.get(buf);
    const base = la ? la.offset : this.offsets[buf];
    const t = la ? la.t : this.bufTypes.get(buf);
    if (base === undefined || !t) throw new Error(`wasm: unknown buffer ${buf}`);
    const int8 = !la && this.int8.has(buf), size = int8 ? 1 : elemBytes(t), mem = int8 ? 's8' : memType(t);
    const m = this.w.ops;
    // a chunk's local arrays lie in its thread's scratch: offsets from the address in scratchLocal
    const at = (ptr: Ref): Ref => (la && this.scratchLocal !== undefined ? m.i32.add(this.w.get(this.scratchLocal, 'i32') as number, ptr as number) as Ref : ptr);
    if (idx.k === 'const') return { ptr: at(this.w.i32(0)), offset: base + idx.v * size, t, mem };
    const f = affine(idx, this.consts, (v) => this.loopVars.has(v));
    if (f && f.c >= 0 && base + f.c * size < 2 ** 32) return { ptr: at(this.affinePointer(f, size)), offset: base + f.c * size, t, mem };
    const i = this.expr(idx);
    return { ptr: at((size === 1 ? i : m.i32.shl(i as number, m.i32.const(2))) as Ref), offset: base, t, mem };
  }

  /** size * (the variable part of f) in bytes: the innermost serial loop's pointer local where it can keep one. */
  private affinePointer(f: Affine, size: number): Ref {
    const w = this.w;
    const p = this.frames.at(-1)?.pointer(f, size, () => this.locals.get(`ptr$${this.pointers++}`, 'i32'));
    return p !== undefined ? w.get(p, 'i32') : this.sum(new Map([...f.terms].map(([v, k]) => [v, k * size])));
  }

  /**
   * A philox value whose index is 4 * (affine in loop variables) + constant: its block's four words computed once
   * ($philox_block) into locals the first time in the current loop iteration (Philox computes the whole block for
   * any one word), then read from them. The counter must not change meanwhile: constants, loop variables, decls
   * never assigned.
   */
  private philoxWord(e: Extract<Expr, { k: 'philox' }>): Ref | undefined {
    const f = affine(e.index, this.consts, (v) => this.loopVars.has(v));
    const steady = (x: Expr): boolean => !someExpr(x, (y) => y.k === 'load' || (y.k === 'var' && !this.consts.has(y.name) && !this.loopVars.has(y.name) && !this.topDecls.has(y.name)));
    if (!f || f.c < 0 || [...f.terms.values()].some((k) => k % 4 !== 0) || !steady(e.counter)) return undefined;
    const w = this.w, m = w.ops;
    const key = `${e.seed}|${printExpr(e.counter)}|${[...f.terms].sort(([x], [y]) => (x < y ? -1 : 1)).map(([v, k]) => `${v}*${k}`).join('+')}|${Math.floor(f.c / 4)}`;
    const have = this.philoxBlocks.get(key);
    if (have) return w.get(have[f.c % 4]!, 'f32');
    const words = [0, 1, 2, 3].map((i) => this.locals.get(`philox$${this.philoxBlocks.size}$${i}`, 'f32'));
    this.philoxBlocks.set(key, words);
    const block = m.i32.add(this.sum(new Map([...f.terms].map(([v, k]) => [v, k / 4]))) as number, m.i32.const(Math.floor(f.c / 4)));
    return w.valueBlock([
      w.set(words[0]!, w.call('philox_block', [w.i32(e.seed), this.expr(e.counter), block as Ref], 'f32')),
      ...[1, 2, 3].map((i) => w.set(words[i]!, m.global.get(`philox_word${i}`, Type.f32) as Ref)),
      w.get(words[f.c % 4]!, 'f32'),
    ], 'f32');
  }

  /** sum of k * v over the terms (0 for none). */
  private sum(terms: ReadonlyMap<string, number>): Ref {
    const m = this.w.ops;
    let r: Ref | undefined;
    for (const [v, k] of terms) {
      const x = this.w.get(this.local(v), 'i32') as number, t = (k === 1 ? x : m.i32.mul(x, m.i32.const(k))) as Ref;
      r = r === undefined ? t : m.i32.add(r as number, t as number) as Ref;
    }
    return r ?? this.w.i32(0);
  }

  /**
   * A loop's body rendered as a real loop over v: with this.frames's pointer locals when serial from 0 (set before
   * the loop, stepped after each iteration's body).
   */
  loopBody(v: string, body: readonly Stmt[], serial: boolean): { body: Ref[]; init: Ref[]; step: Ref[] } {
    const frame = serial ? new LoopPointers(v, new Set(this.loopVars)) : undefined;
    this.loopVars.add(v);
    if (frame) this.frames.push(frame);
    const blocks = this.philoxBlocks;
    this.philoxBlocks = new Map(blocks); // what one iteration computes is not there in the next
    try {
      const out = this.stmts(body);
      if (!frame) return { body: out, init: [], step: [] };
      const w = this.w, m = w.ops, ps = [...frame.pointers.values()];
      return {
        body: out,
        init: ps.map((p) => w.set(p.local, this.sum(p.start))),
        step: ps.filter((p) => p.step !== 0).map((p) => w.set(p.local, m.i32.add(w.get(p.local, 'i32') as number, m.i32.const(p.step)) as Ref)),
      };
    } finally {
      if (frame) this.frames.pop();
      this.loopVars.delete(v);
      this.philoxBlocks = blocks;
    }
  }

  /** The value of an i32 index expression when every variable in it is an unrolled constant. */
  fold(e: Expr): number | undefined {
    switch (e.k) {
      case 'const': return e.v;
      case 'var': return this.consts.get(e.name);
      case 'binary': {
        const a = this.fold(e.a), b = this.fold(e.b);
        if (a === undefined || b === undefined) return undefined;
        switch (e.op) {
          case 'add': return (a + b) | 0;
          case 'sub': return (a - b) | 0;
          case 'mul': return Math.imul(a, b);
          default: return undefined;
        }
      }
      default: return undefined;
    }
  }

  /** The register arrays kept in wasm locals (promotable). */
  promote(body: readonly Stmt[]): void {
    const arrays = new Map<string, Scalar>();
    walkStmts(body, (s) => { if (s.k === 'local') arrays.set(s.name, s.t); });
    for (const [name, { size, vec }] of promotable(body)) {
      const t = arrays.get(name)!;
      const locals = Array.from({ length: vec ? size / 4 : size }, (_, i) => this.locals.get(`${name}$${i}`, vec ? 'v128' : valType(t)));
      this.promoted.set(name, { vec, locals, t });
    }
    this.assignedVars = assigned(body);
    for (const name of splatDecls(body, new Set(arrays.keys()))) this.splatted.set(name, this.locals.get(`${name}$s`, 'v128'));
  }

  expr(e: Expr): Ref {
    const w = this.w, m = w.ops;
    switch (e.k) {
      case 'const':
        return e.t === 'f32' ? w.f32(e.v) : w.i32(e.v);
      case 'var': {
        const c = this.consts.get(e.name), s = this.splatted.get(e.name);
        if (s !== undefined) return lane(m, e.t, n(w.get(s, 'v128')), 0);
        return c !== undefined ? w.i32(c) : w.get(this.local(e.name), valType(e.t));
      }
      case 'load': {
        const p = this.promoted.get(e.buf);
        if (p) {
          const i = this.fold(e.idx)!;
          return p.vec ? lane(m, p.t, n(w.get(p.locals[i >> 2]!, 'v128')), i & 3) : w.get(p.locals[i]!, valType(p.t));
        }
        // a quad: the i32 at its first element's byte
        const a = this.address(e.buf, e.idx);
        return w.load(e.quad ? 'q8' : a.mem, a.offset, a.ptr);
      }
      case 'cast':
        return castOp(SCALAR, e.a.t, e.t)(w, this.expr(e.a));
      case 'unary':
        return unaryOp(SCALAR, e.op, e.a.t)(w, this.expr(e.a));
      case 'binary':
        return binaryOp(SCALAR, e.op, e.a.t)(w, this.expr(e.a), this.expr(e.b));
      case 'select':
        return w.select(this.expr(e.c), this.expr(e.a), this.expr(e.b));
      case 'philox':
        return this.philoxWord(e) ?? w.call('philox', [w.i32(e.seed), this.expr(e.counter), this.expr(e.index)], 'f32');
    }
  }

  stmts(ss: readonly Stmt[]): Ref[] {
    return ss.map((s) => this.stmt(s));
  }

  stmt(s: Stmt): Ref {
    const w = this.w;
    switch (s.k) {
      case 'for': {
        if (s.kind === 'block' || s.kind === 'thread') throw new Error(`loop ${s.v} is a GPU ${s.kind} axis: this renderer takes CPU schedules`);
        this.types.set(s.v, 'i32');
        if (s.kind === 'unroll') {
          const copies: Ref[] = [];
          for (let i = 0; i < s.extent; i++) {
            this.consts.set(s.v, i);
            copies.push(...this.stmts(s.body));
          }
          this.consts.delete(s.v);
          return w.block(copies);
        }
        const v = this.locals.get(s.v, 'i32');
        if (s.kind === 'vector') return new VectorLoop(this, s.v, v).render(s.body, s.extent); // the schedule decided (canVectorize)
        const r = this.loopBody(s.v, s.body, true);
        return w.block([...r.init, w.forLoop(v, s.extent, r.body, r.step)]);
      }
      case 'decl': {
        this.types.set(s.name, s.t);
        if (this.loopVars.size === 0 && this.consts.size === 0 && !this.assignedVars.has(s.name)) this.topDecls.add(s.name);
        const splat = this.splatted.get(s.name);
        if (splat !== undefined && s.init.k === 'load') {
          const a = this.address(s.init.buf, s.init.idx);
          // (an int8 element: its byte sign-extended, then splatted; a quad, as any 32 bits, by load32_splat)
          return w.set(splat, a.mem === 's8' && !s.init.quad ? w.ops.i32x4.splat(n(w.load('s8', a.offset, a.ptr))) as Ref : w.load('f32splat', a.offset, a.ptr));
        }
        return w.set(this.locals.get(s.name, valType(s.t)), this.expr(s.init));
      }
      case 'assign':
        return w.set(this.local(s.name), this.expr(s.value));
      case 'local': {
        // an unrolled loop renders its body once per iteration; the iterations run one after the other, so the
        // copies of a local array declared there share one place (the layout counts it once)
        if (this.promoted.has(s.name) || this.localArrays.has(s.name)) return w.nop();
        this.localArrays.set(s.name, { offset: this.scratchTop, t: s.t });
        this.scratchTop = align(this.scratchTop + s.size * elemBytes(s.t));
        return w.nop();
      }
      case 'store': {
        const p = this.promoted.get(s.buf);
        if (p) {
          const i = this.fold(s.idx)!;
          if (!p.vec) return w.set(p.locals[i]!, this.expr(s.value));
          const l = p.locals[i >> 2]!, x = n(w.get(l, 'v128')), v = n(this.expr(s.value));
          return w.set(l, (p.t === 'f32' ? w.ops.f32x4.replace_lane(x, i & 3, v) : w.ops.i32x4.replace_lane(x, i & 3, v)) as Ref);
        }
        const a = this.address(s.buf, s.idx);
        return w.store(a.mem, a.offset, a.ptr, this.expr(s.value));
      }
      case 'if':
        return w.if(this.expr(s.cond), w.block(this.stmts(s.body)));
      case 'warpTree':
        throw new Error(`warp tree over ${s.local} is a GPU collective: this renderer takes CPU schedules`);
      case 'arrive':
        throw new Error(`arrive at ${s.counter} is a GPU block's: this renderer takes CPU schedules`);
    }
  }

  /**
   * The body of an outlined parallel loop over [begin, end), its first two parameters (never empty); its local
   * arrays in the scratch of thread `thread`, its third: at `own` for thread 0 (inside the kernel's scratch, apart from
   * the kernel's other local arrays), else the thread's region of the threaded build (threadScratch).
   */
  chunk(loop: Extract<Stmt, { k: 'for' }>, own: number, threads: ThreadMemory): Ref[] {
    const w = this.w, m = w.ops;
    this.types.set(loop.v, 'i32');
    const v = this.locals.get(loop.v, 'i32'), l = w.label('P');
    const next = w.set(v, m.i32.add(w.get(v, 'i32') as number, m.i32.const(1)) as Ref);
    const body = this.loopBody(loop.v, loop.body, false).body;
    const init: Ref[] = [];
    if (this.scratchLocal !== undefined) {
      const t = w.get(2, 'i32') as number, other = m.i32.add(m.i32.const(threads.scratch - threads.scratchStride), m.i32.mul(t, m.i32.const(threads.scratchStride)));
      init.push(w.set(this.scratchLocal, w.select(m.i32.eqz(t) as Ref, w.i32(own), other as Ref)));
    }
    return [...init, w.set(v, w.get(0, 'i32')),
      w.loop(l, w.block([...body, next, w.brIf(l, m.i32.lt_s(w.get(v, 'i32') as number, w.get(1, 'i32') as number) as Ref)]))];
  }

  finish(name: string, body: Ref[], params: readonly ValType[] = []): void {
    this.w.addFunction(name, params, 'none', this.locals, this.w.block(body));
  }
}

/**
 * Whether a top-level parallel loop can run in chunks on other threads: independent iterations (as the llvm
 * target's pool asks; no local array of the kernel's outside the loop). Its own local arrays live in each chunk's
 * wasm locals (registers) or in its thread's scratch. Others run in place, serially.
 */
function outlinable(loop: Extract<Stmt, { k: 'for' }>, pure: ReadonlyMap<string, Stmt>, topLocals: ReadonlySet<string>): boolean {
  return loop.kind === 'parallel' && independentIterations(loop, pure, topLocals);
}

/** Bytes of the local arrays a loop keeps in scratch (not in wasm locals), each aligned as the renderer places them. */
function scratchBytesOf(loop: Stmt): number {
  const registers = promotable([loop]);
  let n = 0;
  walkStmts([loop], (s) => { if (s.k === 'local' && !registers.has(s.name)) n += align(s.size * elemBytes(s.t)); });
  return n;
}

/**
 * Memory the threaded build has beyond the layout's: `staging`, where the loader writes an input before the module
 * copies it to its buffer (kiln.copy: a JS write to lines another thread's cache holds costs about 7x a write to
 * lines only this thread's holds, measured on AMD EPYC Zen 2; memory.copy's wide stores do not), then one scratch
 * region of `scratchStride` bytes per thread after the first, from `scratch`: thread t >= 1 at scratch +
 * (t - 1) * scratchStride. The memory of T threads is scratch + (T - 1) * scratchStride bytes, at most maxBytes.
 */
export interface ThreadMemory {
  readonly staging: number;
  readonly stagingBytes: number;
  readonly scratch: number;
  readonly scratchStride: number;
  readonly maxBytes: number;
}

/** Threads the loader runs at most (model.mjs load: threads from 1 to 256). */
export const MAX_THREADS = 256;

export type WasmEntry = Entry;

export interface WasmModuleArtifact {
  readonly binary: Uint8Array;
  /** With options.threads: the same code over an imported shared memory, for a thread pool. */
  readonly threaded?: Uint8Array;
  readonly memoryBytes: number;
  /** The threaded build's memory beyond memoryBytes. */
  readonly threads: ThreadMemory;
  /** entry name -> byte offset of each of its buffers (params are shared by every entry) */
  readonly offsets: Record<string, Record<string, number>>;
}

/** Renders entry points into one module over the shared memory layout; each entry is an exported function. */
/**
 * Options: embed, params' initial values as data; threads, also the
 * threaded module; relaxed, micro-kernels accumulate with f32x4.relaxed_madd (VectorLoop.madd).
 */
export function renderWasmModule(entries: readonly WasmEntry[], options: { embed?: ReadonlyMap<string, ArrayLike<number>>; threads?: boolean; relaxed?: boolean } = {}): WasmModuleArtifact {
  const w = new WasmModule(options.relaxed ?? false);
  addMath(w);
  addRequant(w);
  const layout = layoutModule(entries, options.embed);
  const { offsets, scratchBase } = layout;
  const top = layout.memoryBytes;
  const segments = layout.segments;
  const pages = Math.max(1, Math.ceil(top / 65536));
  const stagingBytes = Math.max(0, ...entries.flatMap((e) => e.program.inputs.map((i) => {
    const b = e.program.buffers.find((x) => x.name === i.buffer)!;
    return b.size * (b.dtype === 'bool' || b.dtype === 'int8' ? 1 : 4);
  })));
  const scratchStride = align(Math.max(0, ...entries.flatMap((e) => e.program.kernels.flatMap((k) => k.body.filter((s) => s.k === 'for' && s.kind === 'parallel').map(scratchBytesOf)))));
  const staging = align(top), scratch = align(staging + stagingBytes);
  const threads: ThreadMemory = { staging, stagingBytes, scratch, scratchStride, maxBytes: scratch + (MAX_THREADS - 1) * scratchStride };
  w.memory(pages, segments, Math.ceil(threads.maxBytes / 65536)); // before any load or store refers to it
  // kiln.copy(dst, src, n): the loader's copy of an input from staging to its buffer (ThreadMemory)
  w.addFunction('kiln.copy', ['i32', 'i32', 'i32'], 'none', new Locals(['i32', 'i32', 'i32']), w.memoryCopy(w.get(0, 'i32'), w.get(1, 'i32'), w.get(2, 'i32')));
  w.exportFunction('kiln.copy');
  let chunks = 0;
  for (const e of entries) {
    // legalized and scheduled by the pipeline (WASM_CAPS)
    const program = e.program;
    checkVectorLoops(program, SIMD128, 'wasm');
    const bufTypes = new Map(program.buffers.map((b) => [b.name, scalarOfBuffer(b)]));
    const int8 = new Set(program.buffers.filter((b) => b.dtype === 'int8').map((b) => b.name));
    const names = program.kernels.map((k) => `${e.name}_${k.name}`);
    program.kernels.forEach((k, i) => {
      const r = new KernelRenderer(w, offsets[e.name]!, bufTypes, scratchBase, [], int8);
      r.promote(k.body);
      // a top-level parallel loop becomes chunk function `chunk<id>(begin, end)`, which the host's
      // kiln.parallel(id, n) runs over [0, n) on its threads (chunks as the llvm pool cuts them); the values it reads from before it are top-level
      // decls never assigned (recomputed in each chunk)
      const pure = pureDecls(k.body), topLocals = new Set(k.body.flatMap((s) => (s.k === 'local' ? [s.name] : [])));
      const before: Stmt[] = [];
      const body = k.body.map((st) => {
        if (st.k === 'decl' && pure.has(st.name)) before.push(st);
        if (st.k !== 'for' || !outlinable(st, pure, topLocals)) return r.stmt(st);
        const id = chunks++;
        // local arrays from 0 in the thread's scratch; thread 0's at the end of the kernel's, past every other local
        // array of the kernel (those the kernel renderer places from scratchBase)
        const c = new KernelRenderer(w, offsets[e.name]!, bufTypes, 0, ['i32', 'i32', 'i32'], int8);
        const own = scratchBytesOf(st);
        if (own > 0) c.scratchLocal = c.locals.get('scratch$', 'i32');
        c.promote([st]);
        const ownAt = scratchBase + localBytes(k.body) - own;
        c.finish(`chunk${id}`, [...c.stmts(before), ...c.chunk(st, ownAt, threads)], ['i32', 'i32', 'i32']);
        if (c.scratchEnd > own) throw new Error('wasm: scratch estimate too small');
        w.exportFunction(`chunk${id}`);
        // the host returns 0 when it has no threads to run them on: the whole range here then, as thread 0
        const run = w.callImport('kiln', 'parallel', [w.i32(id), w.i32(st.extent)], ['i32', 'i32'], 'i32');
        return w.if(w.ops.i32.eqz(run as number) as Ref, w.call(`chunk${id}`, [w.i32(0), w.i32(st.extent), w.i32(0)], 'none'));
      });
      r.finish(names[i]!, body);
      if (r.scratchEnd > scratchBase + layout.scratchBytes) throw new Error('wasm: scratch estimate too small');
    });
    w.addFunction(e.name, [], 'none', new Locals(), w.block(names.map((n) => w.call(n, [], 'none'))));
    w.exportFunction(e.name);
  }
  const { binary, shared } = w.finishBoth(options.threads ?? false);
  return { binary, threaded: shared, memoryBytes: pages * 65536, offsets, threads };
}

/** Renders one program as a module whose exported `run` executes it. */
export function renderWasm(p: Program, mem: MemoryPlan): WasmArtifact {
  const m = renderWasmModule([{ name: 'run', program: p, memory: mem }]);
  return { binary: m.binary, layout: { memoryBytes: m.memoryBytes, arenaOffset: ALIGN, arenaBytes: mem.arenaBytes, offsets: m.offsets['run']! }, threads: m.threads };
}

type VRef = { ref: Ref; vec: boolean };
type M = WasmModule['ops'];

/** The f32x4 form of every op SIMD128 vector loops compute (see vectorize.ts); bool lanes are 0/-1 masks. */
const F32X4: { unary: Record<(typeof F32X4_UNARY)[number], (m: M, a: number) => number>; binary: Record<(typeof F32X4_BINARY)[number], (m: M, a: number, b: number) => number> } = {
  unary: {
    neg: (m, a) => m.f32x4.neg(a), abs: (m, a) => m.f32x4.abs(a), sqrt: (m, a) => m.f32x4.sqrt(a),
    floor: (m, a) => m.f32x4.floor(a), ceil: (m, a) => m.f32x4.ceil(a), round: (m, a) => m.f32x4.nearest(a),
    // the scalar 1/x is an f64 division rounded to f32: the same as the f32 division, as an f64 quotient (53 bits,
    // at least 2 x 24 + 2) rounded again to 24 bits is the correctly rounded f32 quotient (Figueroa's double rounding)
    recip: (m, a) => m.f32x4.div(m.f32x4.splat(m.f32.const(1)), a),
    // math.ts: expf's and tanhf's steps on f64x2 halves
    exp: (m, a) => m.call('expf4', [a], Type.v128), tanh: (m, a) => m.call('tanhf4', [a], Type.v128),
  },
  binary: {
    add: (m, a, b) => m.f32x4.add(a, b), sub: (m, a, b) => m.f32x4.sub(a, b), mul: (m, a, b) => m.f32x4.mul(a, b),
    div: (m, a, b) => m.f32x4.div(a, b), max: (m, a, b) => m.f32x4.max(a, b), min: (m, a, b) => m.f32x4.min(a, b),
    eq: (m, a, b) => m.f32x4.eq(a, b), ne: (m, a, b) => m.f32x4.ne(a, b), lt: (m, a, b) => m.f32x4.lt(a, b),
    le: (m, a, b) => m.f32x4.le(a, b), gt: (m, a, b) => m.f32x4.gt(a, b), ge: (m, a, b) => m.f32x4.ge(a, b),
  },
};
const MASK: Record<'and' | 'or', (m: M, a: number, b: number) => number> = { and: (m, a, b) => m.v128.and(a, b), or: (m, a, b) => m.v128.or(a, b) };
/**
 * The i32x4 form of the i32 ops SIMD128 vector loops compute (SIMD128.ints): int8 kernels' lanes. dot2 (loop/ir.ts)
 * is exactly i32x4.dot_i16x8_s: each i32 lane's low half is i16 lane 2i (little-endian), the two products summed
 * wrapping, as the interpreter's. pack16 keeps a's low 16 bits and puts b's above.
 */
const I32X4: Record<'add' | 'sub' | 'mul' | 'pack16' | 'dot2' | 'xor', (m: M, a: number, b: number) => number> = {
  add: (m, a, b) => m.i32x4.add(a, b), sub: (m, a, b) => m.i32x4.sub(a, b), mul: (m, a, b) => m.i32x4.mul(a, b), xor: (m, a, b) => m.v128.xor(a, b),
  pack16: (m, a, b) => m.v128.or(m.v128.and(a, m.i32x4.splat(m.i32.const(0xffff))), m.i32x4.shl(b, m.i32.const(16))),
  dot2: (m, a, b) => m.i32x4.dot_i16x8_s(a, b),
};
/** i8x16.shuffle's lanes: the low byte of each i32 lane, in lanes 0..3 (the rest unused). */
const LOW_BYTES = [0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12];
/** Lane i of an f32x4 or i32x4 value (t: its lanes' type). */
const lane = (m: M, t: Scalar, v: number, i: number): Ref => (t === 'f32' ? m.f32x4.extract_lane(v, i) : m.i32x4.extract_lane(v, i)) as Ref;

/**
 * A loop marked `vector` rendered four lanes at a time with f32x4, then a scalar tail. Values that depend on the loop
 * variable are v128; canVectorize made every load and store contiguous (coefficient 1) or invariant in it.
 */
class VectorLoop {
  private readonly vecLocals = new Map<string, number>();

  constructor(private readonly k: KernelRenderer, private readonly v: string, private readonly vIndex: number) {}

  /** canVectorize admitted what this loop cannot render. */
  private unrenderable(what: string): Error {
    return new Error(`wasm: internal error: vector loop ${this.v} has ${what}, which has no f32x4 form`);
  }

  /** Coefficient of the loop variable in an affine i32 index (undefined when not affine in it). */
  private coef(e: Expr): number | undefined {
    return laneCoef(e, this.v, (x) => this.uses(x));
  }

  /** The index of lane 0's element, lane i's being at + stride i (a quad's stride 4). */
  private contiguous(idx: Expr, stride = 1): Expr {
    if (this.coef(idx) !== stride) throw this.unrenderable(`index ${printExpr(idx)}, not contiguous,`);
    return idx;
  }

  private uses(e: Expr): boolean {
    return someExpr(e, (x) => x.k === 'var' && (x.name === this.v || this.vecLocals.has(x.name)));
  }

  private splat(x: VRef, t: Scalar): Ref {
    const m = this.k.w.ops;
    if (x.vec) return x.ref;
    if (t === 'bool') return m.i32x4.splat(m.i32.sub(m.i32.const(0), x.ref as number)) as Ref; // 0/1 -> the lane mask 0/-1
    return (t === 'f32' ? m.f32x4.splat(x.ref as number) : m.i32x4.splat(x.ref as number)) as Ref;
  }

  private expr(e: Expr): VRef {
    const k = this.k, w = k.w, m = w.ops;
    const splat = e.k === 'var' ? k.splatted.get(e.name) : undefined;
    if (splat !== undefined) return { ref: w.get(splat, 'v128'), vec: true };
    if (!this.uses(e)) return { ref: k.expr(e), vec: false };
    const n = (r: Ref) => r as number;
    const vec = (r: number): VRef => ({ ref: r as Ref, vec: true });
    switch (e.k) {
      case 'var': {
        const l = this.vecLocals.get(e.name);
        if (l === undefined) throw this.unrenderable('its lane index as a value');
        return { ref: w.get(l, 'v128'), vec: true };
      }
      case 'load': {
        if (e.t === 'bool') throw this.unrenderable(`a ${e.t} load`);
        const p = k.promoted.get(e.buf);
        if (p) return { ref: w.get(this.lanes(p, this.contiguous(e.idx)), 'v128'), vec: true };
        const a = k.address(e.buf, this.contiguous(e.idx, laneStride(e)));
        // quads: four lanes of four bytes, one load
        if (e.quad) return { ref: w.load('q8x4', a.offset, a.ptr), vec: true };
        // int8 lanes: four bytes, each sign-extended to 16 then 32 bits
        if (a.mem === 's8') return vec(m.i32x4.extend_low_i16x8_s(m.i16x8.extend_low_i8x16_s(m.v128.load32_zero(a.offset, 1, n(a.ptr)))));
        return { ref: w.load('v128', a.offset, a.ptr), vec: true };
      }
      case 'unary': {
        const f = e.t === 'f32' ? (F32X4.unary as Partial<Record<string, (m: M, a: number) => number>>)[e.op] : undefined;
        if (!f) throw this.unrenderable(`${e.op} of ${e.t}`);
        return vec(f(m, n(this.splat(this.expr(e.a), 'f32'))));
      }
      case 'cast': {
        const x = n(this.splat(this.expr(e.a), e.a.t));
        // bool mask -> 0.0 / 1.0; f32 <-> i32 as the scalar casts (saturating truncation, NaN to 0; rounding conversion)
        if (e.t === 'f32' && e.a.t === 'bool') return vec(m.v128.and(x, m.f32x4.splat(m.f32.const(1))));
        if (e.t === 'i32' && e.a.t === 'f32') return vec(m.i32x4.trunc_sat_f32x4_s(x));
        if (e.t === 'f32' && e.a.t === 'i32') return vec(m.f32x4.convert_i32x4_s(x));
        throw this.unrenderable(`a cast from ${e.a.t} to ${e.t}`);
      }
      case 'binary': {
        const table = e.a.t === 'f32' ? F32X4.binary : e.a.t === 'bool' ? MASK : I32X4;
        const f = (table as Partial<Record<string, (m: M, a: number, b: number) => number>>)[e.op];
        if (!f) throw this.unrenderable(`${e.op} of ${e.a.t}`);
        return vec(f(m, n(this.splat(this.expr(e.a), e.a.t)), n(this.splat(this.expr(e.b), e.b.t))));
      }
      case 'select': {
        if (e.t === 'bool') throw this.unrenderable(`a select of ${e.t}`);
        const mask = this.splat(this.expr(e.c), 'bool');
        return vec(m.v128.bitselect(n(this.splat(this.expr(e.a), e.t)), n(this.splat(this.expr(e.b), e.t)), n(mask)));
      }
      case 'philox':
        if (!philoxLanes(e, this.v, (x) => this.uses(x), (x) => this.coef(x))) throw this.unrenderable(`philox at ${printExpr(e.index)}`);
        return vec(n(philoxVector(w, e.seed, k.expr(e.counter), k.expr(e.index))));
      default:
        throw this.unrenderable(e.k);
    }
  }

  private body(stmts: readonly Stmt[]): Ref[] {
    const k = this.k, w = k.w;
    return stmts.map((s) => {
      switch (s.k) {
        case 'decl': {
          const x = this.expr(s.init);
          k.types.set(s.name, s.t);
          if (!x.vec) return w.set(k.locals.get(s.name, valType(s.t)), x.ref);
          const l = k.locals.get(`${s.name}$v`, 'v128');
          this.vecLocals.set(s.name, l);
          return w.set(l, x.ref);
        }
        case 'store': {
          const p = k.promoted.get(s.buf);
          if (p) return w.set(this.lanes(p, this.contiguous(s.idx)), this.madd(s.value) ?? this.splat(this.expr(s.value), p.t));
          const b = k.address(s.buf, this.contiguous(s.idx));
          if (b.t === 'bool') throw this.unrenderable(`a store into ${b.t} buffer ${s.buf}`);
          const x = this.splat(this.expr(s.value), b.t);
          // int8 lanes: each lane's low byte (as the scalar store8), the four bytes stored as one 32-bit lane
          if (b.mem === 's8') return w.ops.v128.store32_lane(b.offset, 1, 0, n(b.ptr), w.ops.i8x16.shuffle(n(x), n(x), LOW_BYTES)) as Ref;
          return w.store('v128', b.offset, b.ptr, x);
        }
        default:
          throw this.unrenderable(`a ${s.k} statement`);
      }
    });
  }

  /**
   * In a relaxed-SIMD module, a micro-kernel's accumulation into its register tile, acc + x * y, as one
   * f32x4.relaxed_madd: fused (rounded once) where the CPU has FMA, so it may differ from the interpreter's separately
   * rounded multiply and add in the last bits of each step (the SIMD128 module stays exact).
   */
  private madd(e: Expr): Ref | undefined {
    if (!this.k.w.relaxed || e.k !== 'binary' || e.op !== 'add' || e.t !== 'f32') return undefined;
    const isMul = (x: Expr): x is Extract<Expr, { k: 'binary' }> => x.k === 'binary' && x.op === 'mul' && x.t === 'f32';
    const [mul, acc] = isMul(e.b) ? [e.b, e.a] : isMul(e.a) ? [e.a, e.b] : [undefined, undefined];
    if (!mul || !acc) return undefined;
    const v = (x: Expr) => this.splat(this.expr(x), 'f32');
    return this.k.w.relaxedMadd(v(mul.a), v(mul.b), v(acc));
  }

  /** The v128 local holding lanes idx..idx+3 of a promoted register array (idx constant in an unrolled copy). */
  private lanes(p: { vec: boolean; locals: number[] }, idx: Expr): number {
    const i = this.k.fold(idx);
    if (!p.vec || i === undefined || i % 4 !== 0) throw new Error('wasm: register array accessed off its lane groups');
    return p.locals[i / 4]!;
  }

  private touchesPromoted(stmts: readonly Stmt[]): boolean {
    const inExpr = (e: Expr): boolean => someExpr(e, (x) => x.k === 'load' && this.k.promoted.has(x.buf));
    return stmts.some((s) => (s.k === 'store' && (this.k.promoted.has(s.buf) || inExpr(s.value)))
      || (s.k === 'decl' && inExpr(s.init)) || (s.k === 'assign' && inExpr(s.value)));
  }

  /** The whole loop as vector code. */
  render(stmts: readonly Stmt[], extent: number): Ref {
    const k = this.k, w = k.w, m = w.ops;
    if (this.touchesPromoted(stmts)) {
      // a lane loop over a register tile: unrolled, so every access names its v128 local
      const copies: Ref[] = [];
      try {
        for (let base = 0; base < extent; base += 4) {
          k.consts.set(this.v, base);
          copies.push(...this.body(stmts));
          this.vecLocals.clear();
        }
      } finally {
        k.consts.delete(this.v);
        this.vecLocals.clear();
      }
      return w.block(copies);
    }
    k.loopVars.add(this.v);
    const blocks = k.philoxBlocks;
    k.philoxBlocks = new Map(blocks);
    const vecBody = this.body(stmts);
    this.vecLocals.clear();
    const main = Math.floor(extent / 4) * 4;
    const v = this.vIndex;
    const lv = w.label('V'), lt = w.label('T');
    const step = (by: number) => w.set(v, m.i32.add(w.get(v, 'i32') as number, m.i32.const(by)) as Ref);
    const parts: Ref[] = [w.set(v, w.i32(0)),
      w.loop(lv, w.block([...vecBody, step(4), w.brIf(lv, m.i32.lt_s(w.get(v, 'i32') as number, m.i32.const(main)) as Ref)]))];
    if (main < extent) {
      k.philoxBlocks = new Map(blocks);
      const tail = k.stmts(stmts);
      parts.push(w.loop(lt, w.block([...tail, step(1), w.brIf(lt, m.i32.lt_s(w.get(v, 'i32') as number, m.i32.const(extent)) as Ref)])));
    }
    k.loopVars.delete(this.v);
    k.philoxBlocks = blocks;
    return w.block(parts);
  }
}
