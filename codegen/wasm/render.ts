// Renders a loop-IR program to a WebAssembly module through binaryen (one function per kernel, `run` calls them).
import type { Buffer, Expr, Program, Scalar, Stmt } from '../loop/ir.js';
import { type MemoryPlan, bytesOf } from '../loop/memplan.js';
import { addMath } from './math.js';
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
}

const ALIGN = 64;
const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;
const valType = (t: Scalar): ValType => (t === 'f32' ? 'f32' : 'i32');
const memType = (t: Scalar): 'f32' | 'i32' | 'u8' => (t === 'f32' ? 'f32' : t === 'i32' ? 'i32' : 'u8');
const elemBytes = (t: Scalar) => (t === 'bool' ? 1 : 4);

function scalarOfBuffer(b: Buffer): Scalar {
  return b.dtype === 'float32' ? 'f32' : b.dtype === 'int32' ? 'i32' : 'bool';
}

/** Packs buffer values as little-endian bytes of the buffer's dtype. */
export function packBuffer(b: Buffer, values: readonly number[] | ArrayLike<number>): Uint8Array {
  const n = b.size;
  const splat = values.length === 1 && n > 1;
  if (b.dtype === 'bool') return Uint8Array.from({ length: n }, (_, i) => (values[splat ? 0 : i] ? 1 : 0));
  const arr = b.dtype === 'float32' ? new Float32Array(n) : new Int32Array(n);
  if (splat) arr.fill(values[0]!);
  else arr.set(values as ArrayLike<number>);
  return new Uint8Array(arr.buffer);
}

class KernelRenderer {
  private readonly locals = new Locals();
  private readonly types = new Map<string, Scalar>();
  private readonly localArrays = new Map<string, { offset: number; t: Scalar }>();
  private scratchTop: number;

  constructor(private readonly w: WasmModule, private readonly offsets: Record<string, number>,
    private readonly bufTypes: Map<string, Scalar>, scratchBase: number) {
    this.scratchTop = scratchBase;
  }

  get scratchEnd(): number {
    return this.scratchTop;
  }

  private local(name: string): number {
    const t = this.types.get(name);
    if (!t) throw new Error(`wasm: variable ${name} used before its declaration`);
    return this.locals.get(name, valType(t));
  }

  /** Address expression and static offset of element idx of a buffer or local array. */
  private address(buf: string, idx: Expr): { ptr: Ref; offset: number; t: Scalar } {
    const la = this.localArrays.get(buf);
    const base = la ? la.offset : this.offsets[buf];
    const t = la ? la.t : this.bufTypes.get(buf);
    if (base === undefined || !t) throw new Error(`wasm: unknown buffer ${buf}`);
    const size = elemBytes(t);
    if (idx.k === 'const') return { ptr: this.w.i32(0), offset: base + idx.v * size, t };
    const i = this.expr(idx);
    const m = this.w.ops;
    return { ptr: (size === 1 ? i : m.i32.shl(i as number, m.i32.const(2))) as Ref, offset: base, t };
  }

  expr(e: Expr): Ref {
    const w = this.w, m = w.ops;
    const n = (r: Ref) => r as number;
    switch (e.k) {
      case 'const':
        return e.t === 'f32' ? w.f32(e.v) : w.i32(e.v);
      case 'var':
        return w.get(this.local(e.name), valType(e.t));
      case 'load': {
        const a = this.address(e.buf, e.idx);
        return w.load(memType(a.t), a.offset, a.ptr);
      }
      case 'cast': {
        const a = this.expr(e.a), from = e.a.t;
        if (e.t === 'f32') return (from === 'f32' ? a : from === 'i32' ? m.f32.convert_s.i32(n(a)) : m.f32.convert_u.i32(n(a))) as Ref;
        if (e.t === 'i32') return (from === 'f32' ? m.i32.trunc_s_sat.f32(n(a)) : a) as Ref;
        return (from === 'f32' ? m.f32.ne(n(a), n(w.f32(0))) : from === 'i32' ? m.i32.ne(n(a), n(w.i32(0))) : a) as Ref;
      }
      case 'unary':
        return this.unary(e.op, e.a);
      case 'binary':
        return this.binary(e.op, e.a, e.b);
      case 'select':
        return w.select(this.expr(e.c), this.expr(e.a), this.expr(e.b));
      case 'philox':
        return w.call('philox', [w.i32(e.seed), this.expr(e.counter), this.expr(e.index)], 'f32');
    }
  }

  private unary(op: string, x: Expr): Ref {
    const w = this.w, m = w.ops;
    const a = this.expr(x);
    const n = (r: Ref) => r as number;
    if (x.t === 'bool') return m.i32.eqz(n(a)) as Ref; // not
    if (x.t === 'i32') {
      const t = this.locals.temp('i32');
      const v = () => n(w.get(t, 'i32'));
      switch (op) {
        case 'neg': return m.i32.sub(n(w.i32(0)), n(a)) as Ref;
        case 'abs': return w.valueBlock([w.set(t, a), w.select(m.i32.lt_s(v(), n(w.i32(0))) as Ref, m.i32.sub(n(w.i32(0)), v()) as Ref, w.get(t, 'i32'))], 'i32');
        case 'sign': return w.valueBlock([w.set(t, a), m.i32.sub(m.i32.gt_s(v(), n(w.i32(0))), m.i32.lt_s(v(), n(w.i32(0)))) as Ref], 'i32');
        case 'floor': case 'ceil': case 'round': return a;
        default: throw new Error(`wasm: ${op} on i32`);
      }
    }
    const f64 = (fn: (v: number) => number) => m.f32.demote(fn(m.f64.promote(n(a)))) as Ref;
    switch (op) {
      case 'neg': return m.f32.neg(n(a)) as Ref;
      case 'abs': return m.f32.abs(n(a)) as Ref;
      case 'sqrt': return m.f32.sqrt(n(a)) as Ref;
      case 'floor': return m.f32.floor(n(a)) as Ref;
      case 'ceil': return m.f32.ceil(n(a)) as Ref;
      case 'round': return m.f32.nearest(n(a)) as Ref;
      case 'recip': return f64((v) => m.f64.div(m.f64.const(1), v));
      case 'rsqrt': return f64((v) => m.f64.div(m.f64.const(1), m.f64.sqrt(v)));
      case 'exp': return w.call('expf', [a], 'f32');
      case 'log': return w.call('logf', [a], 'f32');
      case 'tanh': return w.call('tanhf', [a], 'f32');
      case 'erf': return w.call('erff', [a], 'f32');
      case 'sin': return f64((v) => n(w.call('sin', [v as Ref], 'f64')));
      case 'cos': return f64((v) => n(w.call('cos', [v as Ref], 'f64')));
      case 'sign': {
        const t = this.locals.temp('f32');
        const v = () => n(w.get(t, 'f32'));
        return w.valueBlock([w.set(t, a), w.select(m.f32.gt(v(), n(w.f32(0))) as Ref, w.f32(1),
          w.select(m.f32.lt(v(), n(w.f32(0))) as Ref, w.f32(-1), w.select(m.f32.ne(v(), v()) as Ref, w.get(t, 'f32'), w.f32(0))))], 'f32');
      }
      default: throw new Error(`wasm: unary ${op}`);
    }
  }

  private binary(op: string, x: Expr, y: Expr): Ref {
    const w = this.w, m = w.ops;
    const a = this.expr(x), b = this.expr(y);
    const n = (r: Ref) => r as number;
    if (x.t === 'f32') {
      switch (op) {
        case 'add': return m.f32.add(n(a), n(b)) as Ref;
        case 'sub': return m.f32.sub(n(a), n(b)) as Ref;
        case 'mul': return m.f32.mul(n(a), n(b)) as Ref;
        case 'div': return m.f32.div(n(a), n(b)) as Ref;
        case 'max': return m.f32.max(n(a), n(b)) as Ref;
        case 'min': return m.f32.min(n(a), n(b)) as Ref;
        case 'pow': return m.f32.demote(n(w.call('pow', [m.f64.promote(n(a)) as Ref, m.f64.promote(n(b)) as Ref], 'f64'))) as Ref;
        case 'eq': return m.f32.eq(n(a), n(b)) as Ref;
        case 'ne': return m.f32.ne(n(a), n(b)) as Ref;
        case 'lt': return m.f32.lt(n(a), n(b)) as Ref;
        case 'le': return m.f32.le(n(a), n(b)) as Ref;
        case 'gt': return m.f32.gt(n(a), n(b)) as Ref;
        case 'ge': return m.f32.ge(n(a), n(b)) as Ref;
        default: throw new Error(`wasm: f32 ${op}`);
      }
    }
    const ta = this.locals.temp('i32'), tb = this.locals.temp('i32');
    const A = () => n(w.get(ta, 'i32')), B = () => n(w.get(tb, 'i32'));
    const withAB = (r: Ref) => w.valueBlock([w.set(ta, a), w.set(tb, b), r], 'i32');
    switch (op) {
      case 'add': return m.i32.add(n(a), n(b)) as Ref;
      case 'sub': return m.i32.sub(n(a), n(b)) as Ref;
      case 'mul': return m.i32.mul(n(a), n(b)) as Ref;
      case 'and': return m.i32.and(n(a), n(b)) as Ref;
      case 'or': return m.i32.or(n(a), n(b)) as Ref;
      case 'eq': return m.i32.eq(n(a), n(b)) as Ref;
      case 'ne': return m.i32.ne(n(a), n(b)) as Ref;
      case 'lt': return m.i32.lt_s(n(a), n(b)) as Ref;
      case 'le': return m.i32.le_s(n(a), n(b)) as Ref;
      case 'gt': return m.i32.gt_s(n(a), n(b)) as Ref;
      case 'ge': return m.i32.ge_s(n(a), n(b)) as Ref;
      case 'max': return withAB(w.select(m.i32.gt_s(A(), B()) as Ref, w.get(ta, 'i32'), w.get(tb, 'i32')));
      case 'min': return withAB(w.select(m.i32.lt_s(A(), B()) as Ref, w.get(ta, 'i32'), w.get(tb, 'i32')));
      case 'pow': return w.call('ipow', [a, b], 'i32');
      case 'div': {
        // C-style truncation; 0 for a zero divisor and INT_MIN / -1 = INT_MIN (no traps)
        const zero = m.i32.eqz(B());
        const ovf = m.i32.and(m.i32.eq(A(), n(w.i32(-2147483648))), m.i32.eq(B(), n(w.i32(-1))));
        const safe = w.select(m.i32.or(zero, ovf) as Ref, w.i32(1), w.get(tb, 'i32'));
        return withAB(w.select(zero as Ref, w.i32(0), m.i32.div_s(A(), n(safe)) as Ref));
      }
      case 'idiv': {
        // floor division by a positive constant
        if (y.k === 'const' && x.k !== 'const') {
          const q = m.i32.div_s(A(), B());
          const adjust = m.i32.and(m.i32.lt_s(A(), n(w.i32(0))), m.i32.ne(m.i32.rem_s(A(), B()), n(w.i32(0))));
          return withAB(m.i32.sub(q, adjust) as Ref);
        }
        return withAB(m.i32.div_s(A(), B()) as Ref);
      }
      case 'mod': {
        const r = m.i32.rem_s(A(), B());
        const t = this.locals.temp('i32');
        return withAB(w.valueBlock([w.set(t, r as Ref), m.i32.add(n(w.get(t, 'i32')), n(w.select(m.i32.lt_s(n(w.get(t, 'i32')), n(w.i32(0))) as Ref, w.get(tb, 'i32'), w.i32(0)))) as Ref], 'i32'));
      }
      default: throw new Error(`wasm: i32 ${op}`);
    }
  }

  stmts(ss: readonly Stmt[]): Ref[] {
    return ss.map((s) => this.stmt(s));
  }

  stmt(s: Stmt): Ref {
    const w = this.w;
    switch (s.k) {
      case 'for': {
        this.types.set(s.v, 'i32');
        const v = this.locals.get(s.v, 'i32');
        return w.forLoop(v, s.extent, this.stmts(s.body));
      }
      case 'decl':
        this.types.set(s.name, s.t);
        return w.set(this.locals.get(s.name, valType(s.t)), this.expr(s.init));
      case 'assign':
        return w.set(this.local(s.name), this.expr(s.value));
      case 'local': {
        this.localArrays.set(s.name, { offset: this.scratchTop, t: s.t });
        this.scratchTop = align(this.scratchTop + s.size * elemBytes(s.t));
        return w.nop();
      }
      case 'store': {
        const a = this.address(s.buf, s.idx);
        return w.store(memType(a.t), a.offset, a.ptr, this.expr(s.value));
      }
    }
  }

  finish(name: string, body: Ref[]): void {
    this.w.addFunction(name, [], 'none', this.locals, this.w.block(body));
  }
}

/**
 * Renders a program. Memory: [64, arena) temps and outputs at their planned offsets, then scratch for
 * local arrays, constants, params and inputs, each 64-byte aligned.
 */
export function renderWasm(p: Program, mem: MemoryPlan, options: { optimize?: boolean } = {}): WasmArtifact {
  const w = new WasmModule();
  w.importFunction('sin', 'math', 'sin', ['f64'], 'f64');
  w.importFunction('cos', 'math', 'cos', ['f64'], 'f64');
  w.importFunction('pow', 'math', 'pow', ['f64', 'f64'], 'f64');
  w.importFunction('ipow', 'math', 'ipow', ['i32', 'i32'], 'i32');
  addMath(w);
  const offsets: Record<string, number> = {};
  const arenaOffset = ALIGN;
  for (const [b, off] of mem.offsets) offsets[b] = arenaOffset + off;
  let top = align(arenaOffset + mem.arenaBytes);
  const bufTypes = new Map(p.buffers.map((b) => [b.name, scalarOfBuffer(b)]));
  // kernels first: they tell how much scratch the local arrays need (each kernel reuses the same scratch)
  const scratchBase = top;
  let scratchEnd = scratchBase;
  const kernelRenderers = p.kernels.map((k) => {
    const r = new KernelRenderer(w, offsets, bufTypes, scratchBase);
    return { k, r, body: () => r.stmts(k.body) };
  });
  // offsets of everything else must be known before rendering loads: place them after a scratch estimate
  const scratchNeed = Math.max(0, ...p.kernels.map((k) => localBytes(k.body)));
  top = align(scratchBase + scratchNeed);
  const segments: { offset: number; data: Uint8Array }[] = [];
  for (const kind of ['const', 'param', 'input'] as const) {
    for (const b of p.buffers.filter((x) => x.kind === kind)) {
      offsets[b.name] = top;
      if (kind === 'const') segments.push({ offset: top, data: packBuffer(b, b.data ?? [0]) });
      top = align(top + Math.max(1, bytesOf(b)));
    }
  }
  for (const b of p.buffers) if (offsets[b.name] === undefined) throw new Error(`wasm: buffer ${b.name} was not placed`);
  const pages = Math.max(1, Math.ceil(top / 65536));
  w.memory(pages, segments); // before any load or store refers to it
  for (const { k, r, body } of kernelRenderers) {
    r.finish(k.name, body());
    scratchEnd = Math.max(scratchEnd, r.scratchEnd);
  }
  if (scratchEnd > scratchBase + scratchNeed) throw new Error('wasm: scratch estimate too small');
  w.addFunction('run', [], 'none', new Locals(), w.block(p.kernels.map((k) => w.call(k.name, [], 'none'))));
  w.exportFunction('run');
  const binary = w.finish(options.optimize ?? true);
  return { binary, layout: { memoryBytes: pages * 65536, arenaOffset, arenaBytes: mem.arenaBytes, offsets } };
}

/** Bytes of local arrays one kernel declares (each at its own scratch offset). */
function localBytes(stmts: readonly Stmt[]): number {
  let n = 0;
  for (const s of stmts) {
    if (s.k === 'local') n += align(s.size * elemBytes(s.t));
    else if (s.k === 'for') n += localBytes(s.body);
  }
  return n;
}
