// pairDot (pair_dot.ts): its legality (int16 pair dot products only of int8-sourced operands: a kernel that fuses a
// qmatmul with a plain int32 matmul, horizontal fusion of two outputs at one level, pairs the qmatmul and leaves the
// int32 matmul's products whole, whose values do not fit int16 halves), and a convolution's packing (the quantize of
// a float input fused into the first qconv runs once per input value, not once per window tap).
import { describe, expect, it } from 'vitest';
import { llvmCaps } from '../../codegen/llvm/target.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { runPipeline } from '../../driver/pipeline.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { E, S } from '../../codegen/loop/ir.js';
import { foldDecided } from '../../codegen/loop/range.js';
import { disjointIterations } from '../../codegen/loop/schedules/loops.js';
import { forEachStmtExpr, walkStmts } from '../../codegen/loop/visit.js';
import { printStmts } from '../../codegen/loop/printer.js';
import { expectSame } from '../ir/helpers.js';
import { QUANT_CASES } from './graphs.js';

const G = `graph @mixed {
  %0 = input {name="x"} : i8[8,16]
  %1 = param {name="w"} : i8[16,8]
  %2 = const {value=[5, -3, 0, 7, 1, 2, -9, 4]} : i32[8]
  %3 = const {value=[1395864371]} : i32[8]
  %4 = const {value=[-6]} : i32[8]
  %5 = qmatmul %0, %1, %2, %3, %4 {hi=127, lo=-128, outZero=3, xZero=-5} : i8[8,8]
  %6 = input {name="a"} : i32[8,16]
  %7 = input {name="b"} : i32[16,8]
  %8 = matmul %6, %7 : i32[8,8]
  output "q" = %5
  output "m" = %8
}`;

/** Deterministic values in [lo, hi]. */
function fill(n: number, lo: number, hi: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => { s = (s * 1103515245 + 12345) % 2147483648; return lo + (s % (hi - lo + 1)); });
}

describe('pairDot pairs only int8-sourced operands', () => {
  it('a kernel of a qmatmul and a plain int32 matmul: the int32 matmul (values past int16) equals the interpreter on the llvm schedule', () => {
    const g = parseGraph(G);
    const inputs = { x: Int8Array.from(fill(128, -128, 127, 1)), a: Int32Array.from(fill(128, -100000, 100000, 2)), b: Int32Array.from(fill(128, -70000, 70000, 3)) };
    const params = { w: Int8Array.from(fill(128, -127, 127, 4)) };
    const p = runPipeline(g, { caps: { ...llvmCaps('x86-64-v3'), threads: 1 } }).program;
    // the reproducer's premise: one kernel holds both contractions, and the qmatmul is paired
    expect(p.kernels.some((k) => k.ops.includes('qmatmul') && k.ops.includes('matmul'))).toBe(true);
    expect(p.buffers.filter((b) => b.name.startsWith('pairs_')).length).toBe(1);
    const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs;
    const got = runProgram(p, inputs, params, { reverse: true }).outputs;
    for (const o of ['q', 'm']) expectSame(got.get(o)!, want.get(o)!.data);
  });
});

/** The CNN case (built once: a second build would trace its layers under new names). */
let cnnCase: ReturnType<NonNullable<typeof QUANT_CASES['cnn']>> | undefined;
const cnn = () => (cnnCase ??= QUANT_CASES['cnn']!());

describe('pairDot packs a convolution\'s taps from values computed once', () => {
  it('the seed CNN: the first qconv\'s fused quantize (a float division) is computed once per input value, and the program equals the interpreter', () => {
    const c = cnn();
    const p = runPipeline(c.g, { caps: { ...llvmCaps('x86-64-v3'), threads: 1 } }).program;
    const k = p.kernels.find((x) => x.ops.includes('qconv') && x.ops.includes('quantize'))!;
    // one division: the nest over the input; the packing's two taps per pair read its buffer
    let divs = 0;
    forEachStmtExpr(k.body, (e) => { if (e.k === 'binary' && e.op === 'div' && e.t === 'f32') divs++; });
    expect(divs).toBe(1);
    // the column pairs are packed once per call, outside the micro-kernel (no pack16 in a loop that runs dot2)
    let packsInDot = 0;
    walkStmts(k.body, (st) => {
      if (st.k !== 'for') return;
      let dot = false, packs = 0;
      forEachStmtExpr(st.body, (e) => { if (e.k === 'binary') { if (e.op === 'dot2') dot = true; if (e.op === 'pack16') packs++; } });
      if (dot) packsInDot = Math.max(packsInDot, packs);
    });
    expect(packsInDot).toBe(0);
    const want = interpret(c.g, new Map(Object.entries(c.inputs)), new Map(Object.entries(c.params))).outputs;
    const got = runProgram(p, c.inputs, c.params, { reverse: true }).outputs;
    for (const o of c.exact) expectSame(got.get(o)!, want.get(o)!.data);
  });
});

describe('the seed CNN\'s convolutions pack as vectors or read in place (schedule shape)', () => {
  // Structural facts of the scheduled program, not timings: the first conv's packing (padding 'same', cin 1) has a
  // branch-free interior of vector lanes, the second (valid, cin 8) no im2col: its groups are read in place from a
  // buffer of a quarter (quads) or half (pairs) of its input's values; the first conv's 8-channel epilogue fills
  // AVX-512's 16 lanes (AVX2's 8 anyway). Before (seed CNN b64 int8 1 thread, Intel Xeon
  // VNNI), both packings were scalar and half of the call.
  for (const [cpu, W] of [['icelake-server', 4], ['x86-64-v3', 2]] as const) {
    it(`${cpu}: ${W === 4 ? 'byte quads' : 'int16 pairs'}; both convolutions equal the interpreter`, () => {
      const c = cnn();
      const p = runPipeline(c.g, { caps: { ...llvmCaps(cpu), threads: 2 } }).program;
      const [k0, k1] = p.kernels.filter((x) => x.ops.includes('qconv'));
      const pairs = (k: typeof k0) => p.buffers.find((b) => b.name.startsWith('pairs_') && forEachStore(k!.body).has(b.name))!;
      // the first: a vector loop stores its packed groups
      let vectorPack = false;
      walkStmts(k0!.body, (st) => { if (st.k === 'for' && st.kind === 'vector' && forEachStore(st.body).has(pairs(k0).name)) vectorPack = true; });
      expect(vectorPack).toBe(true);
      // its requantize epilogue (8 channels) in whole vectors: AVX-512's 16 lanes, two positions at a time
      let lanes = 0;
      walkStmts(k0!.body, (st) => {
        if (st.k === 'for' && st.kind === 'vector' && [...forEachStore(st.body)].some((b) => p.buffers.find((x) => x.name === b)?.dtype === 'int8')) lanes = Math.max(lanes, st.extent);
      });
      expect(lanes).toBe(W === 4 ? 16 : 8);
      // the second: its groups' buffer holds its input's values W to a word (an im2col would hold 9 times as many)
      const input = p.buffers.find((b) => b.dtype === 'int8' && forEachLoad(k1!.body).has(b.name) && b.kind === 'temp')!;
      expect(pairs(k1).size).toBe(input.size / W);
      const want = interpret(c.g, new Map(Object.entries(c.inputs)), new Map(Object.entries(c.params))).outputs;
      const got = runProgram(p, c.inputs, c.params, { reverse: true }).outputs;
      for (const o of c.exact) expectSame(got.get(o)!, want.get(o)!.data);
    });
  }
});

/** The buffers the statements store into. */
function forEachStore(body: Parameters<typeof walkStmts>[0]): Set<string> {
  const out = new Set<string>();
  walkStmts(body, (st) => { if (st.k === 'store') out.add(st.buf); });
  return out;
}

/** The buffers the statements load from. */
function forEachLoad(body: Parameters<typeof walkStmts>[0]): Set<string> {
  const out = new Set<string>();
  forEachStmtExpr(body, (e) => { if (e.k === 'load') out.add(e.buf); });
  return out;
}

describe('disjointIterations', () => {
  it('takes stores of one index form at different constants (a positions loop split into border and interior) within the span, and not past it', () => {
    const at = (c: number, inner: [string, number][] = []) => ({ array: 'a', idx: E.add(E.add(E.mul(E.v('i'), E.i32(28)), inner.length ? E.v(inner[0]![0]) : E.i32(0)), E.i32(c)), write: true, inner: new Map(inner), guards: [] });
    const split = [at(0), at(1, [['j', 26]]), at(27)];
    expect(disjointIterations(split, 'i', 4, new Set())).toBe(true);
    expect(disjointIterations([...split, at(28)], 'i', 4, new Set())).toBe(false);
  });
});

describe('foldDecided', () => {
  it('folds the comparisons its loops decide (a tap always inside, a clamp never taken) and keeps the others', () => {
    const p = E.add(E.v('i'), E.i32(1)), lt = (a: ReturnType<typeof E.v>, n: number) => E.binary('lt', a, E.i32(n));
    const body = [S.for('i', 4, [S.decl('p', 'i32', p),
      S.store('a', E.v('i'), E.select(lt(E.v('p'), 5), E.v('p'), E.i32(0))),
      S.store('b', E.v('i'), E.select(E.binary('and', lt(E.v('p'), 4), E.binary('ge', E.v('p'), E.i32(1))), E.v('p'), E.i32(0)))])];
    const out = printStmts(foldDecided(body, new Map([['i', 4]])));
    expect(out).toContain('a[i] = p');
    expect(out).toContain('b[i] = select(p < 4, p, 0)');
  });

  it('folds the min and max its loops decide (an interior tap\'s index clamps) and keeps the others', () => {
    const p = E.add(E.v('i'), E.i32(1));
    const body = [S.for('i', 4, [S.store('a', E.v('i'), E.binary('max', E.binary('min', p, E.i32(7)), E.i32(0))),
      S.store('b', E.v('i'), E.binary('min', p, E.i32(3)))])];
    const out = printStmts(foldDecided(body, new Map([['i', 4]])));
    expect(out).toContain('a[i] = i + 1');
    expect(out).toContain('b[i] = min(i + 1, 3)');
  });
});
