// int8 dot-product kernels (pair_dot.ts, cpu_qmatmul.ts): dot2/pack16's integer semantics against a BigInt
// reference, the scheduled int8 matmuls and convolutions bit for bit on the loop interpreter and on the llvm target
// (random shapes: odd K, padding, strides, every x86 width this machine runs), and the instruction each target's
// --cpu / --triple selects, read from the object code (pmaddwd, AVX-VNNI's vpdpwssd, the Cortex-M4's SMLAD).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hasTool } from '../../codegen/llvm/firmware.js';
import { compileLlvm, llvmCaps } from '../../codegen/llvm/target.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { E, type Program, type Stmt } from '../../codegen/loop/ir.js';
import { runPipeline } from '../../driver/pipeline.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { expectSame } from '../ir/helpers.js';
import { runMain, weightsOf } from '../native.js';
import { QUANT_CASES, type QuantCase } from './graphs.js';
import { randomQuantGraph } from './random.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-quant-dot-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** dot2 as loop/ir.ts defines it, in BigInt: the signed 16-bit halves, multiplied pairwise, summed, wrapped to i32. */
function dot2Ref(a: number, b: number): number {
  const half = (v: number, hi: boolean) => BigInt(hi ? v >> 16 : (v << 16) >> 16);
  return Number(BigInt.asIntN(32, half(a, false) * half(b, false) + half(a, true) * half(b, true)));
}

/** dot4 as loop/ir.ts defines it, in BigInt: a's four bytes unsigned times b's signed, summed, wrapped to i32. */
function dot4Ref(a: number, b: number): number {
  let s = 0n;
  for (let i = 0; i < 4; i++) s += BigInt((a >>> (8 * i)) & 0xff) * BigInt(((b >>> (8 * i)) & 0xff) - (((b >>> (8 * i)) & 0x80) << 1));
  return Number(BigInt.asIntN(32, s));
}

/** One loop-IR expression on the loop interpreter: out[0] = e(a[0], b[0]). */
function evalBinary(op: 'dot2' | 'pack16' | 'dot4' | 'pack8', a: number, b: number): number {
  const body: Stmt[] = [{ k: 'store', buf: 'out', idx: E.i32(0), value: E.binary(op, E.load('a', E.i32(0), 'i32'), E.load('b', E.i32(0), 'i32')) }];
  const p: Program = { name: 'p', buffers: [{ name: 'a', dtype: 'int32', size: 1, kind: 'input' }, { name: 'b', dtype: 'int32', size: 1, kind: 'input' }, { name: 'out', dtype: 'int32', size: 1, kind: 'output' }],
    kernels: [{ name: 'k', ops: [], body }], inputs: [{ name: 'a', buffer: 'a' }, { name: 'b', buffer: 'b' }], params: [], outputs: [{ name: 'out', buffer: 'out' }], updates: [] };
  return runProgram(p, { a: Int32Array.of(a), b: Int32Array.of(b) }, {}).outputs.get('out')![0]!;
}

describe('dot2, pack16, dot4 and pack8 (loop interpreter)', () => {
  const edges = [0, 1, -1, 0x7fff, -0x8000, 0x8000, 0x7fff7fff, -0x80000000, 0x80008000 | 0, 0x12345678, -0x1234567];
  it('dot2 is the wrapped sum of the signed half products, -32768² twice included', () => {
    for (const a of edges) for (const b of edges) expect(evalBinary('dot2', a, b), `dot2(${a}, ${b})`).toBe(dot2Ref(a, b));
    expect(evalBinary('dot2', -0x7fff8000, -0x7fff8000)).toBe(-(2 ** 31)); // 2 * 2^30 wraps, as pmaddwd does
  });
  it('dot4 is the wrapped sum of a\'s unsigned bytes times b\'s signed bytes', () => {
    const bytes = [0, 1, 0x7f, 0x80, 0xff, 0x7f7f7f7f, 0x80808080 | 0, -1, 0x12345678, -0x1234567, 0x00ff00ff];
    for (const a of bytes) for (const b of bytes) expect(evalBinary('dot4', a, b), `dot4(${a}, ${b})`).toBe(dot4Ref(a, b));
    expect(evalBinary('dot4', -1, 0x80808080 | 0)).toBe(4 * 255 * -128); // the extremes: no saturation (vpdpbusd, not vpdpbusds)
  });
  it('pack16 of two pack8s puts four bytes in order, low first', () => {
    for (const [a, b, c, d] of [[0, 255, 17, 128], [-128, 127, -1, 0], [255, 0, 255, 0]]) {
      const p = evalBinary('pack16', evalBinary('pack8', a!, b!), evalBinary('pack8', c!, d!));
      expect([0, 8, 16, 24].map((i) => (p >>> i) & 0xff)).toEqual([a, b, c, d].map((v) => v! & 0xff));
    }
  });
  it('pack16 keeps a\'s low 16 bits low and b\'s high', () => {
    for (const a of [-255, -1, 0, 255, 0x12345]) for (const b of [-128, -1, 0, 127]) {
      const p = evalBinary('pack16', a, b);
      expect([(p << 16) >> 16, p >> 16]).toEqual([(a << 16) >> 16, b]);
    }
  });
});

// (the CNN built once: its Keras model names its input anew on each build, which its calibration data then lacks)
let cnnBuilt: QuantCase | undefined;
const cnnCase = () => (cnnBuilt ??= QUANT_CASES['cnn']!());

const hostKernels = (g: Graph, cpu: string) => runPipeline(g, { caps: { ...llvmCaps(cpu), threads: 1 } }).program;
/** The contractions scheduled as pair dot products: one buffer of row pairs each. */
const pairNests = (p: Program) => p.buffers.filter((b) => b.name.startsWith('pairs_')).length;
/** The contractions that accumulate dot4s (the top-level nests with a dot4: a pooled conv's has one per window tap). */
const dot4Nests = (p: Program) => p.kernels.reduce((n, k) => n + k.body.filter((s) => JSON.stringify(s).includes('"op":"dot4"')).length, 0);

describe('int8 pair dot products: scheduled, bit for bit', () => {
  let cases: (readonly [string, QuantCase])[] | undefined;
  const each = () => (cases ??= [['random', randomQuantGraph(3)], ['mlp', QUANT_CASES['mlp']!()], ['cnn', cnnCase()]]);
  it('the qmatmuls and qconvs of a random graph, the seed MLP and the CNN are scheduled as dot2 and equal the interpreter on the loop interpreter', () => {
    // random: all but the K = 1 matmul; mlp: both layers (10 outputs: one tile of 10 lanes); cnn: both convolutions and the Dense
    for (const [[name, c], nests] of each().map((e, i) => [e, [4, 2, 3][i]!] as const)) {
      const p = hostKernels(c.g, 'x86-64-v3');
      expect(pairNests(p), name).toBe(nests);
      const want = interpret(c.g, new Map(Object.entries(c.inputs)), new Map(Object.entries(c.params))).outputs;
      const got = runProgram(p, c.inputs, c.params, { reverse: true }).outputs;
      for (const o of c.g.outputs.filter((o) => o.node.op === 'dequantize' && o.name !== 'y')) expectSame(got.get(o.name)!, want.get(o.name)!.data);
    }
  });

  it('with AVX-512 VNNI (icelake-server) the u8 x s8 contractions are byte quads (dot4) and equal the interpreter on the loop interpreter', () => {
    // random: none (no row zero point -128: rows past u8, pairs); mlp: the second layer (ReLU rows; the first's
    // inputs are signed); cnn: both convolutions and the Dense
    for (const [[name, c], quads] of each().map((e, i) => [e, [0, 1, 3][i]!] as const)) {
      const p = hostKernels(c.g, 'icelake-server');
      expect(dot4Nests(p), name).toBe(quads);
      const want = interpret(c.g, new Map(Object.entries(c.inputs)), new Map(Object.entries(c.params))).outputs;
      const got = runProgram(p, c.inputs, c.params, { reverse: true }).outputs;
      for (const o of c.g.outputs.filter((o) => o.node.op === 'dequantize' && o.name !== 'y')) expectSame(got.get(o.name)!, want.get(o.name)!.data);
    }
  });

  it('groups of long rows padded to whole vectors (terms past K read from K - K2 on, zero below their own): pairs and quads equal the interpreter', () => {
    // K 150 or 151: 76 pairs -> 80, 38 quads -> 48; K 784 or 785: 392 pairs -> 400 (785: 393 -> 400), 196 quads -> 208 (785: 197 -> 208)
    for (const [cpu, xZero, K2s] of [['x86-64-v4', undefined, [[80], [400]]], ['icelake-server', -128, [[48], [208]]]] as const) {
      const c = randomQuantGraph(7, { ...(xZero !== undefined ? { xZero } : {}), ks: [150, 784, 33] });
      const p = hostKernels(c.g, cpu);
      const sizes = p.buffers.filter((b) => b.name.startsWith('pairs_')).map((b) => b.size);
      const rows = c.g.inputs.slice(0, 2).map((x) => x.type.shape[0]!);
      K2s.forEach(([k2], i) => expect(sizes, `${cpu}: K2 ${k2}`).toContain(rows[i]! * k2!));
      if (xZero !== undefined) expect(dot4Nests(p), cpu).toBe(5); // the matmuls and the convolutions
      const want = interpret(c.g, new Map(Object.entries(c.inputs)), new Map(Object.entries(c.params))).outputs;
      const got = runProgram(p, c.inputs, c.params, { reverse: true }).outputs;
      for (const o of c.g.outputs) expectSame(got.get(o.name)!, want.get(o.name)!.data);
    }
  });

  // x86-64-v3: 256-bit pmaddwd (this machine's AVX2); x86-64-v2: 128-bit
  it.each(['x86-64-v3', 'x86-64-v2'])('random int8 matmuls and convolutions on llvm -mcpu=%s equal the interpreter', (cpu) => {
    const { g, inputs, params } = randomQuantGraph(11);
    const dir = path.join(tmp, `random-${cpu}`);
    compileLlvm({ outDir: dir, cpu, threads: 2, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, params) });
    const got = runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: '2' });
    const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs;
    for (const o of g.outputs) expectSame(got.get(o.name)!, want.get(o.name)!.data);
  });
});

/** Mnemonics of an object file's code, counted. */
function mnemonics(obj: string, objdump = 'objdump'): Map<string, number> {
  const out = execFileSync(objdump, ['-d', obj], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const m = new Map<string, number>();
  for (const line of out.split('\n')) {
    const op = /^\s+[0-9a-f]+:\s+(?:[0-9a-f]{2,8}[ \t])+\s*(?:\{vex\}\s*)?([a-z][\w.]*)/.exec(line)?.[1];
    if (op) m.set(op, (m.get(op) ?? 0) + 1);
  }
  return m;
}

/** Whether this machine runs AVX-512 VNNI code. */
const hostVnni = /\bavx512_vnni\b/.test((() => { try { return readFileSync('/proc/cpuinfo', 'utf8'); } catch { return ''; } })());

describe('the pair dot instruction, chosen at compile time from --cpu / --triple', () => {
  const { g, params } = QUANT_CASES['mlp']!();
  const build = (tag: string, o: { cpu?: string; triple?: string }) => {
    const dir = path.join(tmp, tag);
    compileLlvm({ outDir: dir, threads: 1, ...o, ...(o.triple ? { embedWeights: true } : {}), entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, params) });
    return path.join(dir, 'model.o');
  };
  it('AVX2: vpmaddwd and no vpmulld; AVX-VNNI (alderlake): vpdpwssd; AVX-512 VNNI (icelake-server): vpdpbusd for the u8 rows, vpdpwssd for the signed ones', () => {
    const avx2 = mnemonics(build('avx2', { cpu: 'x86-64-v3' }));
    expect(avx2.get('vpmaddwd')).toBeGreaterThan(0);
    expect(avx2.get('vpmulld')).toBeUndefined();
    // quantize's rounded quotient converted by one cvtps2dq (vector.ts rint_i32; the float clamp seen by render.ts
    // clampRange), not vroundps and a saturating vcvttps2dq
    expect(avx2.get('vcvtps2dq')).toBeGreaterThan(0);
    for (const cpu of ['icelake-server', 'alderlake']) {
      const vnni = mnemonics(build(cpu, { cpu }));
      // (the 10-column layer's padded lanes stay pmaddwd + add: lanes shuffled between them)
      expect(vnni.get('vpdpwssd'), cpu).toBeGreaterThan(vnni.get('vpmaddwd') ?? 0);
      expect(vnni.get('vcvtps2dq'), cpu).toBeGreaterThan(0);
      if (cpu === 'alderlake') expect(vnni.get('vpdpbusd'), cpu).toBeUndefined();
      else expect(vnni.get('vpdpbusd'), cpu).toBeGreaterThan(0);
    }
  });
  // the byte quads run where this machine has AVX-512 VNNI (the same object code, read above)
  // (the CNN: convolutions and a Dense of u8 rows, its first convolution's K = 9 not a multiple of 4)
  it.skipIf(!hostVnni)('the CNN on llvm -mcpu=icelake-server (vpdpbusd) equals the interpreter', () => {
    for (const [name, c] of [['cnn', cnnCase()]] as const) {
      const dir = path.join(tmp, `run-${name}`);
      compileLlvm({ outDir: dir, cpu: 'icelake-server', threads: 2, entries: [{ name: 'predict', graph: c.g, batchSize: 1 }], weights: weightsOf(c.g, c.params) });
      expect(mnemonics(path.join(dir, 'model.o')).get('vpdpbusd'), name).toBeGreaterThan(0);
      const got = runMain(path.join(dir, 'model_main'), dir, c.g, c.inputs, { KILN_NUM_THREADS: '2' });
      const want = interpret(c.g, new Map(Object.entries(c.inputs)), new Map(Object.entries(c.params))).outputs;
      for (const o of c.g.outputs.filter((o) => c.exact.includes(o.name))) expectSame(got.get(o.name)!, want.get(o.name)!.data);
    }
  });
  it.skipIf(!hasTool('llvm-objdump-14'))('Cortex-M4: SMLAD', () => {
    expect(mnemonics(build('m4', { triple: 'thumbv7em-none-eabihf' }), 'llvm-objdump-14').get('smlad')).toBeGreaterThan(0);
  });
});
