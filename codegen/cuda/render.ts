// Renders GPU-scheduled loop-IR programs to CUDA C++ (model.cu): one __global__ function per launch (a top-level
// block nest), thread loops on threadIdx.x with a barrier after each, shared and per-thread arrays, and one host
// entry point per program that replays its launches as a CUDA graph. kiln_cuda.h gives the macros; with
// KILN_CUDA_EMULATE the same file builds for the CPU (blocks and thread loops in order), so it is tested here.
import { blockThreads } from '../loop/analysis.js';
import { blockChain, launchParts } from '../loop/gpu.js';
import type { Expr, Kernel, Scalar, Stmt } from '../loop/ir.js';
import type { Entry, Layout } from '../loop/layout.js';
import { type OpTable, binaryOp, castOp, unaryOp } from '../loop/legalize.js';
import { formatF32 } from '../loop/printer.js';
import { allreduceBuffer } from '../loop/allreduce.js';
import { ALLREDUCE_HEAD, allreduceCall } from './distributed.js';
import { WARP_A, WARP_B, forEachStmtExpr } from '../loop/visit.js';
import { accesses } from '../loop/memplan.js';
import { dtypeBytes } from '../../ir/types.js';
import { type Dp4a, dp4aOf } from './dp4a.js';
import { float4Copy } from './float4.js';

const C_TYPE: Record<Scalar, string> = { f32: 'float', i32: 'int', bool: 'int' };
// int8 (quantized tensors) is one signed byte in memory, int in expressions: loads widen, stores narrow
const MEM_TYPE: Record<string, string> = { float32: 'float', int32: 'int', bool: 'unsigned char', int8: 'signed char' };

type For = Extract<Stmt, { k: 'for' }>;

function constant(e: Extract<Expr, { k: 'const' }>): string {
  if (e.t !== 'f32') return e.v === -2147483648 ? '(-2147483647 - 1)' : e.v < 0 ? `(${e.v})` : String(e.v);
  if (Number.isNaN(e.v)) return 'NAN';
  if (!Number.isFinite(e.v)) return e.v > 0 ? 'INFINITY' : '(-INFINITY)';
  const s = formatF32(e.v);
  return `${s.startsWith('-') ? `(${s}f)` : `${s}f`}`;
}

type Fn1 = (a: string) => string;
type Fn2 = (a: string, b: string) => string;
const call = (f: string): Fn1 => (a) => `${f}(${a})`;
const infix = (op: string): Fn2 => (a, b) => `(${a} ${op} ${b})`;

/** int8 requantization's fixed-point steps (ir/quant.ts), kiln_cuda.h's helpers; shl wraps as an unsigned shift. */
const INT8_REQUANT: Record<'qmulhi' | 'qshr' | 'shl' | 'xor', Fn2> = {
  qmulhi: (a, b) => `kiln_qmulhi(${a}, ${b})`, qshr: (a, b) => `kiln_qshr(${a}, ${b})`, shl: (a, b) => `((int)((unsigned)${a} << ${b}))`,
  xor: infix('^'),
};

/** Every primitive op as C (kiln_cuda.h has the helpers); int arithmetic wraps (nvcc; -fwrapv for the emulation). */
const OPS: OpTable<Fn1, Fn2> = {
  unary: {
    f32: {
      neg: (a) => `(-${a})`, abs: call('fabsf'), sqrt: call('sqrtf'), floor: call('floorf'), ceil: call('ceilf'), round: call('rintf'),
      recip: call('kiln_recip'), rsqrt: call('kiln_rsqrt'), exp: call('kiln_exp'), log: call('kiln_log'), log1p: call('kiln_log1p'), tanh: call('kiln_tanh'), erf: call('kiln_erf'),
      sin: call('kiln_sin'), cos: call('kiln_cos'),
    },
    i32: { neg: (a) => `(-${a})` },
    bool: { not: (a) => `(!${a})` },
  },
  binary: {
    f32: {
      add: infix('+'), sub: infix('-'), mul: infix('*'), div: infix('/'), pow: (a, b) => `kiln_pow(${a}, ${b})`,
      eq: infix('=='), ne: infix('!='), lt: infix('<'), le: infix('<='), gt: infix('>'), ge: infix('>='),
    },
    i32: {
      add: infix('+'), sub: infix('-'), mul: infix('*'), div: infix('/'), pow: (a, b) => `kiln_ipow(${a}, ${b})`,
      eq: infix('=='), ne: infix('!='), lt: infix('<'), le: infix('<='), gt: infix('>'), ge: infix('>='),
      ...INT8_REQUANT,
    },
    bool: { and: infix('&&'), or: infix('||'), eq: infix('=='), ne: infix('!=') },
  },
  cast: {
    'f32>i32': call('kiln_f2i'), 'f32>bool': (a) => `(${a} != 0.f)`, 'i32>f32': (a) => `((float)${a})`, 'i32>bool': (a) => `(${a} != 0)`,
    'bool>f32': (a) => `((float)${a})`, 'bool>i32': (a) => a,
  },
};

/** c without the parentheses around all of it (an if's own are enough; `if ((a == b))` draws warnings). */
function unwrapped(c: string): string {
  if (!c.startsWith('(')) return c;
  let depth = 0;
  for (let i = 0; i < c.length; i++) {
    depth += c[i] === '(' ? 1 : c[i] === ')' ? -1 : 0;
    if (depth === 0) return i === c.length - 1 ? c.slice(1, -1) : c;
  }
  return c;
}

/** Renders the statements of one launch. */
class LaunchWriter {
  private readonly out: string[] = [];
  /** block-level register arrays: one per thread */
  private readonly perThread = new Set<string>();
  /** memory type of each buffer referenced */
  readonly used = new Set<string>();
  /** shared arrays (KILN_SHARED declares them 16-byte aligned) */
  private readonly shared = new Set<string>();

  /**
   * `wide`: the launch reaches a buffer of more than 2^31 - 1 elements, so its index arithmetic is 64-bit: loop
   * variables and integer decls are long long (integer data too: its low 32 bits are the 32-bit result of add, sub
   * and mul, and it is exact where the 32-bit value did not wrap).
   */
  constructor(private readonly types: ReadonlyMap<string, string>, private readonly threads: number, private readonly offsets: Record<string, number>, readonly wide = false) {}

  /** The C type of a decl or loop variable of loop-IR type t. */
  private ctype(t: Scalar): string {
    return this.wide && t === 'i32' ? 'long long' : C_TYPE[t];
  }

  /** A 4-lane copy as one float4 load and store (float4.ts), where both addresses are 16-byte aligned. */
  private float4(l: For, indent: string): boolean {
    // a float buffer at a 16-byte multiple of the device block (cudaMalloc's 256-byte aligned), or a shared array
    const aligned = (b: string) => this.shared.has(b) || (this.types.get(b) === 'float32' && this.offsets[b]! % 16 === 0);
    const v = float4Copy(l, aligned);
    if (!v) return false;
    this.line(indent, '{');
    for (const d of v.decls) this.line(`${indent}  `, `${this.ctype(d.t)} ${d.name} = ${this.expr(d.init)};`);
    const copy = `KILN_FLOAT4_COPY(&${this.array(v.dst)}[${this.expr(v.dstIdx)}], &${this.array(v.src)}[${this.expr(v.srcIdx)}]);`;
    if (!v.guard) this.line(`${indent}  `, copy);
    else {
      this.line(`${indent}  `, `if (${unwrapped(this.expr(v.guard))}) { ${copy} }`);
      this.line(`${indent}  `, `else { KILN_FLOAT4_FILL(&${this.array(v.dst)}[${this.expr(v.dstIdx)}], ${this.expr(v.zero!)}); }`);
    }
    this.line(indent, '}');
    return true;
  }

  private line(indent: string, s: string): void {
    this.out.push(indent + s);
  }

  /** a line of the launch's own (a part's branch and block index) */
  raw(s: string): void {
    this.out.push(s);
  }

  expr(e: Expr): string {
    switch (e.k) {
      case 'const': return constant(e);
      case 'var': return e.name;
      case 'load': {
        // a quad: four int8 elements as one int, byte by byte (a GPU's 32-bit load must be aligned)
        if (e.quad) return `kiln_quad(&${this.array(e.buf)}[${this.expr(e.idx)}])`;
        const at = `${this.array(e.buf)}[${this.expr(e.idx)}]`;
        return this.types.get(e.buf) === 'bool' ? `((int)${at})` : at;
      }
      case 'cast': return castOp(OPS, e.a.t, e.t)(this.expr(e.a));
      case 'unary': return unaryOp(OPS, e.op, e.a.t)(this.expr(e.a));
      case 'binary': return binaryOp(OPS, e.op, e.a.t)(this.expr(e.a), this.expr(e.b));
      case 'select': return `(${this.expr(e.c)} ? ${this.expr(e.a)} : ${this.expr(e.b)})`;
      case 'philox': return `kiln_philox(${e.seed | 0}, ${this.expr(e.counter)}, ${this.expr(e.index)})`;
    }
  }

  private array(name: string): string {
    if (this.perThread.has(name)) return `KILN_MINE(${name})`;
    if (this.types.has(name)) this.used.add(name);
    return name;
  }

  stmts(body: readonly Stmt[], indent: string, inThread: boolean): void {
    for (const s of body) {
      switch (s.k) {
        case 'for':
          if (s.kind === 'thread') {
            this.line(indent, `${this.wide ? 'KILN_THREADS_WIDE' : 'KILN_THREADS'}(${s.v}, ${s.extent}) {`);
            this.stmts(s.body, `${indent}  `, true);
            this.line(indent, '}');
            this.line(indent, 'KILN_BARRIER();');
          } else {
            const d = dp4aOf(s, (b) => this.types.get(b) === 'int8');
            if (d) {
              this.dp4a(s, d, indent, inThread);
              break;
            }
            if (this.float4(s, indent)) break;
            if (s.kind === 'unroll') this.line(indent, '#pragma unroll');
            this.line(indent, `for (${this.ctype('i32')} ${s.v} = 0; ${s.v} < ${s.extent}; ++${s.v}) {`);
            this.stmts(s.body, `${indent}  `, inThread);
            this.line(indent, '}');
          }
          break;
        case 'decl': this.line(indent, `${this.ctype(s.t)} ${s.name} = ${this.expr(s.init)};`); break;
        case 'assign': this.line(indent, `${s.name} = ${this.expr(s.value)};`); break;
        case 'local': {
          const t = C_TYPE[s.t];
          // a shared tile of bools (a conv's tap conditions) in bytes, as bool buffers: a quarter of the shared memory
          if (s.scope === 'shared') {
            this.shared.add(s.name);
            this.line(indent, `KILN_SHARED(${s.t === 'bool' ? 'unsigned char' : t}, ${s.name}, ${s.size});`);
          }
          else if (!inThread) {
            this.perThread.add(s.name);
            this.line(indent, `KILN_PER_THREAD(${t}, ${s.name}, ${s.size}, ${this.threads});`);
          } else this.line(indent, `${t} ${s.name}[${s.size}];`);
          break;
        }
        case 'store': {
          const v = this.expr(s.value);
          const narrow = this.types.get(s.buf) === 'bool' ? '(unsigned char)' : this.types.get(s.buf) === 'int8' ? '(signed char)' : '';
          this.line(indent, `${this.array(s.buf)}[${this.expr(s.idx)}] = ${narrow ? `${narrow}(${v})` : v};`);
          break;
        }
        case 'warpTree': {
          // the block's first min(threads, 32) lanes take part in the shuffles; a barrier after, as after a thread loop
          const mask = this.threads >= 32 ? '0xffffffffu' : `0x${(2 ** this.threads - 1).toString(16)}u`;
          const combine = s.combine ? this.expr(s.combine) : binaryOp(OPS, s.op, s.t)(WARP_A, WARP_B);
          this.line(indent, `KILN_WARP_TREE(${C_TYPE[s.t]}, ${this.array(s.local)}, ${s.size}, ${mask}, ${WARP_A}, ${WARP_B}, ${combine});`);
          this.line(indent, 'KILN_BARRIER();');
          break;
        }
        case 'arrive':
          // a fence and a barrier, thread 0's atomic count, a barrier (kiln_cuda.h)
          this.line(indent, `KILN_ARRIVE(&${this.array(s.counter)}[${this.expr(s.idx)}], ${s.count}, ${this.array(s.local)});`);
          break;
        case 'if':
          // outside thread loops the condition reads no thread index: the block's barriers inside stay uniform
          this.line(indent, `if (${unwrapped(this.expr(s.cond))}) {`);
          this.stmts(s.body, `${indent}  `, inThread);
          this.line(indent, '}');
          break;
      }
    }
  }

  /**
   * An int8 reduction loop (dp4a.ts) four terms at a time: each term's decls as the loop has them, the row and
   * column bytes packed (a tap outside the input a zero weight), one kiln_dp4a into the accumulator and one summing
   * the weights for the row's constant; the terms past a multiple of four as the loop was.
   */
  private dp4a(s: For, d: Dp4a, indent: string, inThread: boolean): void {
    const K4 = s.extent - (s.extent % 4), q = `${s.v}_q`, j = `${s.v}_j`, i2 = `${indent}  `, i3 = `${indent}    `, i4 = `${indent}      `;
    const w = d.inside ? `(${this.expr(d.inside)} ? ${this.expr(d.w)} : 0)` : this.expr(d.w);
    this.line(indent, '{');
    if (d.c) this.line(i2, 'int kiln_sw = 0;');
    this.line(i2, `for (int ${q} = 0; ${q} < ${K4}; ${q} += 4) {`);
    this.line(i3, 'unsigned kiln_xq = 0u, kiln_wq = 0u;');
    this.line(i3, '#pragma unroll');
    this.line(i3, `for (int ${j} = 0; ${j} < 4; ++${j}) {`);
    this.line(i4, `const int ${s.v} = ${q} + ${j};`);
    this.stmts(d.decls, i4, inThread);
    this.line(i4, `kiln_xq |= ((unsigned)${this.expr(d.x)} & 0xffu) << (8 * ${j});`);
    this.line(i4, `kiln_wq |= ((unsigned)${w} & 0xffu) << (8 * ${j});`);
    this.line(i3, '}');
    this.line(i3, `${d.acc} = kiln_dp4a((int)kiln_xq, (int)kiln_wq, ${d.acc});`);
    if (d.c) this.line(i3, 'kiln_sw = kiln_dp4a(0x01010101, (int)kiln_wq, kiln_sw);');
    this.line(i2, '}');
    if (K4 < s.extent) {
      this.line(i2, `for (int ${s.v} = ${K4}; ${s.v} < ${s.extent}; ++${s.v}) {`);
      this.stmts(s.body, i3, inThread);
      this.line(i2, '}');
    }
    if (d.c) this.line(i2, `${d.acc} = (int)((unsigned)${d.acc} + ${d.c >>> 0}u * (unsigned)kiln_sw);`);
    this.line(indent, '}');
  }

  text(): string {
    return this.out.join('\n');
  }
}

/** One launch: a top-level block nest of a kernel. */
interface Launch {
  readonly name: string;
  readonly grid: number;
  readonly threads: number;
  readonly source: string;
}

function renderLaunch(name: string, nest: For, types: ReadonlyMap<string, string>, offsets: Record<string, number>, sizes: ReadonlyMap<string, number>): Launch {
  // each part's block loops (directly nested) decode one flat block index, the outermost varying slowest; a
  // horizontally fused launch (launchParts) gives each part the next range of block indices, a branch the whole
  // block takes (so the parts' barriers stay uniform), under the widest part's threads
  const chains = launchParts(nest).map(blockChain);
  const threads = Math.max(...chains.map((c) => blockThreads(c.body)));
  const { loads, stores } = accesses([nest]);
  const wide = [...loads, ...stores].some((b) => (sizes.get(b) ?? 0) > INT_MAX);
  let philox = false;
  forEachStmtExpr([nest], (e) => { philox ||= e.k === 'philox'; });
  if (wide && philox) throw new Error(`cuda: launch ${name} draws random numbers over a buffer of more than 2^31 - 1 elements (Philox counts elements in 32 bits)`);
  const w = new LaunchWriter(types, threads, offsets, wide);
  const decode: string[] = [];
  let base = 0;
  for (const c of chains) {
    const indent = chains.length > 1 ? '    ' : '  ';
    if (chains.length > 1) w.raw(`  ${base ? '} else ' : ''}if (KILN_BLOCK_ID < ${base + c.grid}) {`);
    const id = base ? `(KILN_BLOCK_ID - ${base})` : 'KILN_BLOCK_ID';
    let stride = c.grid;
    for (const b of c.blocks) {
      stride /= b.extent;
      (chains.length > 1 ? (l: string) => w.raw(l) : (l: string) => decode.push(l))(`${indent}[[maybe_unused]] const ${wide ? 'long long' : 'int'} ${b.v} = ${id} / ${stride} % ${b.extent};`);
    }
    w.stmts(c.body, indent, false);
    base += c.grid;
  }
  if (chains.length > 1) w.raw('  }');
  const ptrs = [...w.used].sort().map((b) => `  ${MEM_TYPE[types.get(b)!]} *const ${b} = (${MEM_TYPE[types.get(b)!]} *)(mem + ${offsets[b]}L);`);
  // the block size the schedule chose bounds the kernel's threads, so ptxas may give each thread more registers
  const source = [`KILN_KERNEL(${name}, ${threads}) {`, ...ptrs, ...decode, w.text(), '}'].join('\n');
  return { name, grid: base, threads, source };
}

/** [offset, bytes] ranges sorted, exactly adjacent ones merged (one copy each; a gap may hold device-only data). */
function coalesce(rs: number[][]): number[][] {
  const out: number[][] = [];
  for (const [at, n] of [...rs].sort((a, b) => a[0]! - b[0]!)) {
    const last = out[out.length - 1];
    if (!last || last[0]! + last[1]! < at!) out.push([at!, n!]);
    else last[1] = Math.max(last[1]!, at! + n! - last[0]!);
  }
  return out;
}

/** Byte ranges of one entry's memory traffic between host and device, and the params its updates change. */
function transfers(e: Entry, offsets: Record<string, number>): { h2d: number[][]; d2h: number[][]; d2d: number[][]; resident: number[][] } {
  const bytes = (buffer: string) => {
    const b = e.program.buffers.find((x) => x.name === buffer)!;
    return b.size * dtypeBytes(b.dtype);
  };
  const param = (name: string) => e.program.params.find((x) => x.name === name)!.buffer;
  return {
    h2d: coalesce(e.program.inputs.map((x) => [offsets[x.buffer]!, bytes(x.buffer)])),
    // the outputs only: updated params stay on the device until kiln_cuda_sync()
    d2h: coalesce(e.program.outputs.map((x) => [offsets[x.buffer]!, bytes(x.buffer)])),
    d2d: e.program.updates.filter((u) => offsets[u.buffer] !== offsets[param(u.name)]).map((u) => [offsets[u.buffer]!, offsets[param(u.name)]!, bytes(u.buffer)]),
    resident: e.program.updates.map((u) => [offsets[param(u.name)]!, bytes(param(u.name))]),
  };
}

/**
 * The update copies of an entry ([from, to, bytes]): where no copy writes bytes another reads or writes, one
 * KILN_COPY_ALL launch of up to KILN_MAX_COPIES (one graph node instead of one memcpy node each), else in order.
 */
function copies(d2d: number[][]): string {
  const MAX = 64; // KILN_MAX_COPIES in kiln_cuda.h
  const meets = (a: number, n: number, b: number, m: number) => a < b + m && b < a + n;
  const apart = d2d.every(([, to, n], i) => d2d.every(([from, to2, m], j) => !meets(to!, n!, from!, m!) && (i === j || !meets(to!, n!, to2!, m!))));
  if (!apart || d2d.length < 2) return d2d.map(([from, to, n]) => `  KILN_COPY(mem, ${from}, ${to}, ${n}, stream);`).join('\n');
  const out: string[] = [];
  for (let i = 0; i < d2d.length; i += MAX) {
    const part = d2d.slice(i, i + MAX);
    out.push(`  { static const kiln_copy_list copies = {${part.length}, {${part.map((c) => `{${c.join(', ')}}`).join(', ')}}};`, '    KILN_COPY_ALL(mem, copies, stream); }');
  }
  return out.join('\n');
}

const ranges = (name: string, rs: number[][]) => `static const long ${name}[][${rs[0]?.length ?? 2}] = {${rs.length ? rs.map((r) => `{${r.join(', ')}}`).join(', ') : '{0, 0}'}};`;

const INT_MAX = 2 ** 31 - 1;

/**
 * model.cu for every entry over the shared memory layout: the kernels, then per entry `kiln_<entry>(mem)`. The
 * device keeps its own copy of the memory block, copied in whole on the first call (and after
 * `kiln_cuda_resync()`); each call then moves only the entry's inputs in and its outputs out, and replays its
 * launches and update copies, captured once as a CUDA graph. Updated params stay on the device until
 * `kiln_cuda_sync()` copies them back.
 */
export function renderCuda(entries: readonly Entry[], layout: Layout, name: string): string {
  const parts = [`// Generated by kiln: CUDA kernels and host entry points of model ${name}.`, '#include <string.h>', '#include "model.h"', '#include "kiln_cuda.h"', ''];
  const runs: string[] = [];
  const resident: number[][] = [];
  for (const e of entries) {
    const program = e.program; // legalized by the pipeline (CUDA_CAPS)
    const types = new Map(program.buffers.map((b) => [b.name, b.dtype])), sizes = new Map(program.buffers.map((b) => [b.name, b.size]));
    const launches = program.kernels.flatMap((k: Kernel) => k.body.map((nest, i) => {
      if (nest.k !== 'for' || nest.kind !== 'block') throw new Error(`cuda: kernel ${k.name} is not scheduled for a GPU (a top-level ${nest.k} that is not a block loop)`);
      const l = renderLaunch(`${e.name}_${k.name}_${i}`, nest, types, layout.offsets[e.name]!, sizes);
      return k.allreduce && i === k.body.length - 1 ? { ...l, after: allreduceCall(allreduceBuffer(program, k), layout.offsets[e.name]!) } : l;
    }));
    parts.push(...launches.map((l) => `${l.source}\n`));
    const t = transfers(e, layout.offsets[e.name]!);
    resident.push(...t.resident);
    runs.push(`static void kiln_run_${e.name}(unsigned char *mem, kiln_stream_t stream) {
${launches.map((l) => `  KILN_LAUNCH(${l.name}, ${l.grid}, ${l.threads}, stream, mem);${'after' in l ? `\n  ${l.after}` : ''}`).join('\n')}
${copies(t.d2d)}
}

extern "C" void kiln_${e.name}(unsigned char *mem) {
  static kiln_graph_t graph;
  ${ranges('in', t.h2d)}
  ${ranges('out', t.d2h)}
  kiln_call(mem, kiln_run_${e.name}, &graph, in, ${t.h2d.length}, out, ${t.d2h.length});
}
`);
  }
  const kept = coalesce(resident);
  parts.push('// the params the entries update: they stay on the device between calls, copied back by kiln_cuda_sync()',
    ranges('kiln_resident', kept), `static const int kiln_n_resident = ${kept.length};`, '', '#include "kiln_cuda_host.h"\n',
    ...(entries.some((e) => e.program.kernels.some((k) => k.allreduce)) ? [ALLREDUCE_HEAD] : []), ...runs);
  return parts.join('\n');
}
