// Quads (loop/ir.ts): four consecutive int8 elements read as one little-endian i32. simplify's rule takes a pack16 of
// pack8s of four consecutive int8 loads (each + 128, or none) and nothing else (a gap, an order, two buffers, an int32
// buffer, a mixed or other constant, a pair stride); the loop interpreter's bytes, the verifier's bounds and types, the
// dependence analyses (a quad reads four elements), the vectorizer's contiguity (stride 4), and the llvm and wasm
// renderers (vector lanes aligned or not, scalar loops and tails, a splatted decl) against the loop interpreter, and
// cuda's kiln_quad (byte by byte: a GPU's 32-bit loads must be aligned) in the emulated build's C++.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderCuda } from '../../codegen/cuda/render.js';
import { runtimeDir } from '../../codegen/artifacts.js';
import { renderLlvm } from '../../codegen/llvm/render.js';
import { LLVM_CAPS, hostCpu } from '../../codegen/llvm/target.js';
import { independentIterations, pureDecls } from '../../codegen/loop/analysis.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { type Buffer, E, type Expr, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { layoutModule } from '../../codegen/loop/layout.js';
import { planMemory } from '../../codegen/loop/memplan.js';
import { printExpr } from '../../codegen/loop/printer.js';
import { someExpr, walkStmts } from '../../codegen/loop/visit.js';
import { independence } from '../../codegen/loop/schedules/iterations.js';
import { simplify } from '../../codegen/loop/simplify.js';
import { canVectorize } from '../../codegen/loop/vectorize.js';
import { verifyProgram } from '../../codegen/loop/verifier.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { compileLlvm, llvmCaps } from '../../codegen/llvm/target.js';
import { runPipeline } from '../../driver/pipeline.js';
import { Builder, type Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import type { TypedArray } from '../../ir/types.js';
import { expectSame, rng } from '../ir/helpers.js';
import { runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-quad-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type For = Extract<Stmt, { k: 'for' }>;
const { v, i32 } = E;
const SIZE = 168;
const FLIP = 0x80808080 | 0;

/** int8 bytes with both extremes and the signs' boundary, then random ones. */
function bytes(n: number, seed = 3): Int8Array {
  const r = rng(seed);
  return Int8Array.from({ length: n }, (_, k) => [-128, 127, -1, 0, 1][k] ?? Math.floor(r() * 256) - 128);
}

/** A one-kernel program: int8 inputs x and x2, an int32 input w, i32 outputs of the given sizes. */
function program(body: Stmt[], outs: Record<string, number>, dtypes: Partial<Record<'x' | 'x2', Buffer['dtype']>> = {}): Program {
  const ins: Buffer[] = [{ name: 'x', dtype: dtypes.x ?? 'int8', size: SIZE, kind: 'input' }, { name: 'x2', dtype: dtypes.x2 ?? 'int8', size: SIZE, kind: 'input' },
    { name: 'w', dtype: 'int32', size: SIZE, kind: 'input' }];
  const buffers = [...ins, ...Object.entries(outs).map(([name, size]): Buffer => ({ name, dtype: 'int32', size, kind: 'output' }))];
  return { name: 'q', buffers, kernels: [{ name: 'k', ops: [], body }], inputs: ins.map((b) => ({ name: b.name, buffer: b.name })), params: [],
    outputs: Object.keys(outs).map((name) => ({ name, buffer: name })), updates: [] };
}

/** Inputs for program(): x and x2 as its dtypes say, w random i32. */
function inputs(p: Program): Record<string, TypedArray> {
  const r = rng(9);
  const of = (name: string, seed: number) => (p.buffers.find((b) => b.name === name)!.dtype === 'int8' ? bytes(SIZE, seed) : Int32Array.from(bytes(SIZE, seed), (b, k) => b * (k % 3 ? 1 : 300)));
  return { x: of('x', 3), x2: of('x2', 4), w: Int32Array.from({ length: SIZE }, () => Math.floor(r() * 2 ** 32) - 2 ** 31) };
}

/** pack16(pack8(t0, t1), pack8(t2, t3)) of loads buf[idx(j)], each + add[j] where given. */
function packOf(idx: (j: number) => Expr, add: readonly (number | undefined)[] = [], bufs: readonly string[] = ['x', 'x', 'x', 'x']): Expr {
  const t = [0, 1, 2, 3].map((j) => {
    const l = E.load(bufs[j]!, idx(j), 'i32');
    return add[j] === undefined ? l : E.add(l, i32(add[j]!));
  });
  return E.binary('pack16', E.binary('pack8', t[0]!, t[1]!), E.binary('pack8', t[2]!, t[3]!));
}

/** `for i in 0..n { y[i] = e }`, simplified: the stored value, and the outputs before and after equal. */
function simplified(n: number, e: Expr, dtypes: Partial<Record<'x' | 'x2', Buffer['dtype']>> = {}): string {
  const p = program([S.for('i', n, [S.store('y', v('i'), e)])], { y: n }, dtypes), q = simplify(p);
  expect(verifyProgram(q)).toEqual([]);
  const want = runProgram(p, inputs(p), {}).outputs.get('y')!, got = runProgram(q, inputs(p), {}).outputs.get('y')!;
  expect([...got]).toEqual([...want]);
  return printExpr(((q.kernels[0]!.body[0] as For).body[0] as Extract<Stmt, { k: 'store' }>).value);
}

const at = (stride: number, first: number) => (j: number) => E.add(E.mul(v('i'), i32(stride)), i32(first + j));
const U8 = [128, 128, 128, 128];

describe('simplify: four consecutive int8 loads packed are a quad', () => {
  it('aligned or not, overlapping, signed or + 128 (the bytes xor 0x80): the values the packs had', () => {
    expect(simplified(40, packOf(at(4, 0)))).toBe('quad(x[i * 4])');
    expect(simplified(40, packOf(at(4, 0), U8))).toBe(`xor(quad(x[i * 4]), ${FLIP})`);
    expect(simplified(39, packOf(at(4, 3), U8))).toBe(`xor(quad(x[i * 4 + 3]), ${FLIP})`);
    expect(simplified(50, packOf(at(3, 2)))).toBe('quad(x[i * 3 + 2])');
    expect(simplified(160, packOf(at(1, 0), U8))).toBe(`xor(quad(x[i]), ${FLIP})`);
    // an index the loop does not move, and one through a division (atoms compared as interned objects)
    expect(simplified(4, packOf((j) => i32(17 + j)))).toBe('quad(x[17])');
    expect(simplified(40, packOf((j) => E.add(E.mul(E.idiv(v('i'), 3), i32(12)), i32(j)), U8))).toBe(`xor(quad(x[i // 3 * 12]), ${FLIP})`);
  });

  it('not where the four are not consecutive, in order, of one int8 buffer, all + 128 or none', () => {
    const pack = /^pack16\(pack8\(/;
    expect(simplified(9, packOf((j) => E.add(v('i'), i32(16 * j))))).toMatch(pack); // a matmul's groups: stride K2
    expect(simplified(40, packOf((j) => E.add(E.mul(v('i'), i32(4)), i32([1, 0, 2, 3][j]!))))).toMatch(pack);
    expect(simplified(40, packOf((j) => E.add(E.mul(v('i'), i32(4)), i32([0, 1, 2, 4][j]!))))).toMatch(pack);
    expect(simplified(40, packOf(at(4, 0), U8, ['x', 'x', 'x2', 'x2']))).toMatch(pack);
    expect(simplified(40, packOf(at(4, 0), [128, 128, 128, undefined]))).toMatch(pack);
    expect(simplified(40, packOf(at(4, 0), [127, 127, 127, 127]))).toMatch(pack);
    expect(simplified(40, packOf(at(4, 0), [undefined, 128, 128, 128]))).toMatch(pack);
    // the same bytes in an int32 buffer (values past a byte: the packs are not its bytes)
    expect(simplified(40, packOf(at(4, 0)), { x: 'int32' })).toMatch(pack);
    expect(simplified(40, packOf(at(4, 0), U8), { x: 'int32' })).toMatch(pack);
  });

  it('decides by each program\'s buffers: the same expression (interned) in a program whose x is int32 stays packed', () => {
    const e = packOf(at(4, 0), U8);
    expect(simplified(40, e)).toBe(`xor(quad(x[i * 4]), ${FLIP})`);
    expect(simplified(40, e, { x: 'int32' })).toMatch(/^pack16/);
    expect(simplified(40, E.binary('add', e, E.load('w', v('i'), 'i32')), { x: 'int32' })).toMatch(/^pack16/);
  });
});

describe('quad loads', () => {
  const one = (idx: Expr, x: Int8Array): number => {
    const p = program([S.store('y', i32(0), E.quad('x', idx))], { y: 1 });
    return runProgram(p, { ...inputs(p), x }, {}).outputs.get('y')![0]!;
  };

  it('are little-endian words on the interpreter, checked to their last element', () => {
    const x = new Int8Array(SIZE);
    x.set([0x01, -128, -1, 0x7f, 0x23], 5);
    expect(one(i32(5), x)).toBe(0x7fff8001);
    expect(one(i32(6), x) >>> 0).toBe(0x237fff80);
    // (through a decl, which the verifier's bounds do not follow)
    const p = program([S.decl('t', 'i32', i32(SIZE - 3)), S.store('y', i32(0), E.quad('x', v('t')))], { y: 1 });
    expect(verifyProgram(p)).toEqual([]);
    expect(() => runProgram(p, inputs(p), {})).toThrow(`kernel k: quad load x[t]: index ${SIZE - 3}..${SIZE} is out of bounds for x of size ${SIZE}`);
  });

  it('verify: int8 buffers only, the last element in bounds', () => {
    const p = (body: Stmt[]) => verifyProgram(program(body, { y: 64 }));
    expect(p([S.for('i', 42, [S.store('y', v('i'), E.quad('x', E.mul(v('i'), i32(4))))])])).toEqual([]);
    expect(p([S.for('i', 42, [S.store('y', v('i'), E.quad('x', E.add(E.mul(v('i'), i32(4)), i32(2))))])])).toEqual([
      `kernel k: y[i] = quad(x[i * 4 + 2]): quad load x: index i * 4 + 2 ranges over [2, 166] (its elements to 169), out of bounds for size ${SIZE}`]);
    expect(p([S.store('y', i32(0), E.quad('w', i32(0)))])).toEqual(["kernel k: y[0] = quad(w[0]): quad(w[0]): a quad load reads int8 buffers, and 'w' is of int32"]);
    expect(p([S.local('a', 'i32', 8), S.store('y', i32(0), E.quad('a', i32(0)))])).toEqual(["kernel k: y[0] = quad(a[0]): quad(a[0]): a quad load reads int8 buffers, and 'a' is a local array"]);
  });

  it('read four elements: a loop storing x[2i] and reading the quad there has dependent iterations (x[2i] alone does not)', () => {
    const loop = (value: Expr): Stmt[] => [S.for('i', 40, [S.store('x', E.mul(v('i'), i32(2)), value)])];
    const quad = loop(E.quad('x', E.mul(v('i'), i32(2)))), plain = loop(E.load('x', E.mul(v('i'), i32(2)), 'i32'));
    // (analysis.ts: parallel loops, llvm chunks; iterations.ts: GPU binds)
    expect(independentIterations(plain[0] as For, pureDecls(plain), new Set())).toBe(true);
    expect(independentIterations(quad[0] as For, pureDecls(quad), new Set())).toBe(false);
    expect(independence(plain[0] as For)).toBeUndefined();
    expect(independence(quad[0] as For)).toMatch(/^cannot prove that its iterations touch different elements of 'x'/);
  });

  it('are vector lanes where consecutive quads are (stride 4), not at stride 1 or as plain loads at stride 4', () => {
    const lanes = (value: Expr) => S.for('i', 16, [S.store('y', v('i'), value)], 'serial') as For;
    for (const caps of [LLVM_CAPS, WASM_CAPS]) {
      expect(canVectorize(lanes(E.binary('xor', E.quad('x', E.add(E.mul(v('i'), i32(4)), i32(1))), i32(FLIP))), caps)).toBe(true);
      expect(canVectorize(lanes(E.quad('x', v('i'))), caps)).toBe(false);
      expect(canVectorize(lanes(E.load('x', E.mul(v('i'), i32(4)), 'i32')), caps)).toBe(false);
    }
  });
});

describe('quads on the llvm and wasm targets equal the loop interpreter', () => {
  // vector loops of 40 aligned and 37 unaligned lanes (wasm: 4 at a time, tails of 0 and 1), a serial loop, 16 lanes in
  // an outer loop, and a quad decl outside a vector loop read only in it (wasm: splatted)
  const q = (first: Expr) => E.quad('x', first), i4 = (c: number) => E.add(E.mul(v('i'), i32(4)), i32(c));
  const body: Stmt[] = [
    S.for('i', 40, [S.store('a', v('i'), q(i4(0)))], 'vector'),
    S.for('j', 37, [S.store('b', v('j'), E.binary('xor', q(E.add(E.mul(v('j'), i32(4)), i32(3))), i32(FLIP)))], 'vector'),
    S.for('s', 41, [S.store('c', v('s'), E.binary('xor', q(E.add(E.mul(v('s'), i32(4)), i32(2))), i32(FLIP)))]),
    S.for('o', 2, [S.for('l', 16, [S.store('d', E.add(E.mul(v('o'), i32(16)), v('l')), E.add(q(E.add(E.add(E.mul(v('o'), i32(64)), E.mul(v('l'), i32(4))), i32(1))), E.load('w', v('l'), 'i32')))], 'vector')]),
    S.decl('z', 'i32', q(i32(161))),
    S.for('e', 12, [S.store('f', v('e'), E.binary('xor', E.v('z'), q(E.add(E.mul(v('e'), i32(4)), i32(7)))))], 'vector'),
  ];
  const p = program(body, { a: 40, b: 37, c: 41, d: 32, f: 12 });
  const outs = ['a', 'b', 'c', 'd', 'f'];
  const want = runProgram(p, inputs(p), {}).outputs;

  it('wasm', () => {
    const got = new WasmRunner(p, renderWasm(p, planMemory(p))).run(inputs(p), {}).outputs;
    for (const o of outs) expect([...got.get(o)!], o).toEqual([...want.get(o)!]);
  });

  it('llvm (vector loads of 4-byte lanes at any byte, scalar quads of four bytes)', () => {
    const entries = [{ name: 'run', program: p, memory: planMemory(p) }], layout = layoutModule(entries);
    const ll = renderLlvm(entries, layout, 'q');
    expect(ll).toMatch(/kiln_v37_load_q8/);
    writeFileSync(path.join(tmp, 'q.ll'), ll);
    writeFileSync(path.join(tmp, 'main.c'), `#include <stdio.h>
void kiln_run(unsigned char *mem);
static unsigned char mem[${layout.memoryBytes}];
int main(void) { if (fread(mem, 1, sizeof mem, stdin) != sizeof mem) return 1; kiln_run(mem); fwrite(mem, 1, sizeof mem, stdout); return 0; }
`);
    const cpu = `-mcpu=${hostCpu()}`;
    execFileSync('opt-14', ['-O3', cpu, 'q.ll', '-o', 'q.bc'], { cwd: tmp });
    execFileSync('llc-14', ['-O3', cpu, '-relocation-model=pic', '-filetype=obj', 'q.bc', '-o', 'q.o'], { cwd: tmp });
    execFileSync('gcc', ['main.c', 'q.o', '-lm', '-o', 'q'], { cwd: tmp });
    const mem = new Uint8Array(layout.memoryBytes), off = layout.offsets['run']!;
    for (const [name, x] of Object.entries(inputs(p))) mem.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), off[name]!);
    const out = new Uint8Array(execFileSync(path.join(tmp, 'q'), { input: mem })).buffer;
    for (const o of outs) expect([...new Int32Array(out, off[o]!, want.get(o)!.length)], o).toEqual([...want.get(o)!]);
  });
});

describe('quads on cuda', () => {
  it('render as kiln_quad, four bytes at any address, little-endian (the emulated build\'s C++)', () => {
    const t = E.add(E.mul(v('b'), i32(20)), v('t'));
    const body = [S.for('b', 2, [S.for('t', 20, [S.store('y', t, E.binary('xor', E.quad('x', E.add(E.mul(t, i32(4)), i32(1))), i32(FLIP)))], 'thread')], 'block')];
    const p = program(body, { y: 40 }), entries = [{ name: 'run', program: p, memory: planMemory(p) }];
    expect(renderCuda(entries, layoutModule(entries), 'q')).toMatch(/= \(kiln_quad\(&x\[\(\(\(\(b \* 20\) \+ t\) \* 4\) \+ 1\)\]\) \^ \(-2139062144\)\);/);
    // every offset of a byte array: kiln_quad against the interpreter's quad
    const x = bytes(64, 5);
    writeFileSync(path.join(tmp, 'quad.cc'), `#include "kiln_cuda.h"
static const signed char x[64] = {${[...x].join(', ')}};
int main(void) { for (int i = 0; i + 3 < 64; i++) printf("%d\\n", kiln_quad(&x[i])); return 0; }
`);
    execFileSync('g++', ['-O2', '-fwrapv', '-DKILN_CUDA_EMULATE', '-I', runtimeDir('cuda'), 'quad.cc', '-o', 'quad'], { cwd: tmp });
    const got = execFileSync(path.join(tmp, 'quad'), { encoding: 'utf8' }).trim().split('\n').map(Number);
    const q = program([S.for('i', 61, [S.store('y', v('i'), E.quad('x', v('i')))])], { y: 61 });
    const xs = new Int8Array(SIZE);
    xs.set(x);
    expect(got).toEqual([...runProgram(q, { ...inputs(q), x: xs }, {}).outputs.get('y')!]);
  });
});

/**
 * Four random int8 convolutions whose input pair_dot reads in place (input channels a multiple of 4, no padding, u8
 * rows: zero point -128; 1 or 2 spatial axes, window, stride and dilation up to 3, 2 and 2; 2 to 20 output channels:
 * one takes no pair dot products), each dequantized to an output; their input int8 (read as quads), or quantized from
 * floats (1 in 4: the quantize fused into the packing, no int8 loads to read as quads). `int8`: how many have int8 inputs.
 */
function inPlaceConvs(seed: number): { g: Graph; inputs: Record<string, TypedArray>; params: Record<string, TypedArray>; int8: number } {
  const r = rng(seed), int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const b = new Builder(), inputs: Record<string, TypedArray> = {}, params: Record<string, TypedArray> = {};
  const outs: { name: string; node: ReturnType<Builder['input']> }[] = [];
  let int8s = 0;
  for (let c = 0; c < 4; c++) {
    const nsp = int(1, 2), cin = 4 * int(1, 4), cout = int(2, 20), each = (f: () => number) => Array.from({ length: nsp }, f);
    const win = each(() => int(1, 3)), dil = each(() => int(1, 2)), stride = each(() => int(1, 2));
    const shape = [int(1, 3), ...win.map((w, d) => (w - 1) * dil[d]! + int(1, 6)), cin], n = shape.reduce((a, x) => a * x, 1);
    const int8 = int(0, 3) > 0, x = b.input(`x${c}`, { dtype: int8 ? 'int8' : 'float32', shape });
    inputs[`x${c}`] = int8 ? bytes(n, seed * 10 + c) : Float32Array.from({ length: n }, () => 14 * r() - 1);
    const xq = int8 ? x : b.emit('quantize', [x], { scale: 0.05, zeroPoint: -128 });
    params[`w${c}`] = Int8Array.from({ length: win.reduce((a, w) => a * w, cin * cout) }, () => int(-128, 127));
    params[`b${c}`] = Int32Array.from({ length: cout }, () => int(-5000, 5000));
    const q = b.emit('qconv', [xq, b.param(`w${c}`, { dtype: 'int8', shape: [...win, cin, cout] }), b.param(`b${c}`, { dtype: 'int32', shape: [cout] }),
      b.constant(Array.from({ length: cout }, () => int(2 ** 29, 2 ** 31 - 1)), 'int32', [cout]), b.constant(Array.from({ length: cout }, () => int(-14, -6)), 'int32', [cout])],
    { strides: stride, dilation: dil, lhsDilation: each(() => 1), padding: each(() => [0, 0]), groups: 1, xZero: -128, outZero: int(-5, 5), lo: -128, hi: 127 });
    outs.push({ name: `y${c}`, node: b.emit('dequantize', [q], { scale: 0.1, zeroPoint: 0 }) });
    int8s += Number(int8);
  }
  return { g: b.finish('quads', outs), inputs, params, int8: int8s };
}

/** The stores of a program's packing nests (into pairs_*) that read quads. */
function quadPacks(p: Program): number {
  let n = 0;
  for (const k of p.kernels) walkStmts(k.body, (s) => { if (s.k === 'store' && s.buf.startsWith('pairs_') && someExpr(s.value, (e) => e.k === 'load' && e.quad)) n++; });
  return n;
}

describe('random convolutions read in place as quads (AVX-512 VNNI schedule) equal the graph interpreter', () => {
  const caps = { ...llvmCaps('icelake-server'), threads: 2 };
  it('on the loop interpreter, its parallel loops reversed (24 seeds, 96 convolutions)', () => {
    for (let seed = 0; seed < 24; seed++) {
      const { g, inputs, params, int8 } = inPlaceConvs(seed), p = runPipeline(g, { caps }).program;
      expect(quadPacks(p), `seed ${seed}: packing nests reading quads`).toBe(int8);
      const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs;
      const got = runProgram(p, inputs, params, { reverse: true }).outputs;
      for (const o of g.outputs) expectSame(got.get(o.name)!, want.get(o.name)!.data);
    }
  });

  // (this machine's CPU, or any with VNNI, runs icelake-server code)
  const vnni = /\bavx512_vnni\b/.test((() => { try { return readFileSync('/proc/cpuinfo', 'utf8'); } catch { return ''; } })());
  it.skipIf(!vnni).each([100, 101])('on llvm -mcpu=icelake-server, 2 threads (seed %i)', (seed) => {
    const { g, inputs, params, int8 } = inPlaceConvs(seed);
    expect(quadPacks(runPipeline(g, { caps }).program)).toBe(int8);
    const dir = path.join(tmp, `convs${seed}`);
    compileLlvm({ outDir: dir, cpu: 'icelake-server', threads: 2, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, params) });
    const got = runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: '2' });
    const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs;
    for (const o of g.outputs) expectSame(got.get(o.name)!, want.get(o.name)!.data);
  });
});
