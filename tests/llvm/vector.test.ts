// The llvm renderer's vector loops (one <W x T> value per loop, helpers from codegen/llvm/vector.ts) against the
// reference interpreter: every elementwise op, cast and compare, Philox, contiguous and invariant loads (a strided
// one keeps its loop scalar),
// on special values (NaN, infinities, -0, saturating casts, division by zero; no denormals: model_main sets
// FTZ/DAZ), at several lane counts.
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm } from '../../codegen/llvm/target.js';
import { Builder, type Graph, type NamedNode } from '../../ir/graph.js';
import { UNARY_OPS } from '../../ir/ops.js';
import { outputDiffs, runMain, weightsOf } from '../native.js';
import type { Data } from '../passes/differential.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-llvm-vector-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SPECIAL = [NaN, Infinity, -Infinity, -0, 0, 0.5, -0.5, 1.5, 2.5, -2.5, 3e38, -3e38, 7, -7, 1e10, -1e10, 0.1];
const INT_SPECIAL = [0, 1, -1, 7, -7, 3, -3, 2147483647, -2147483648, 100, -100, 2, 31];

/** Every elementwise op of the graph IR on [rows, w] operands, as one output each. */
function elementwise(rows: number, w: number, strided: boolean): { g: Graph; inputs: Data } {
  const b = new Builder(), shape = [rows, w], n = rows * w;
  const x = b.input('x', { dtype: 'float32', shape }), y = b.input('y', { dtype: 'float32', shape });
  const a = b.input('a', { dtype: 'int32', shape }), c = b.input('c', { dtype: 'int32', shape });
  const xt = b.input('xt', { dtype: 'float32', shape: [w, rows] });
  const bias = b.input('bias', { dtype: 'float32', shape: [w] }), col = b.input('col', { dtype: 'float32', shape: [rows, 1] });
  const step = b.input('step', { dtype: 'int32', shape: [] });
  const outs: NamedNode[] = [];
  const out = (name: string, node: ReturnType<Builder['emit']>) => outs.push({ name, node });
  for (const op of UNARY_OPS) if (op !== 'not') out(op, b.emit(op, [x]));
  for (const op of ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min'] as const) {
    out(`f_${op}`, b.emit(op, [x, y]));
    out(`i_${op}`, b.emit(op, [a, c]));
  }
  for (const op of ['neg', 'abs', 'sign'] as const) out(`i_${op}`, b.emit(op, [a]));
  for (const op of ['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const) {
    out(`f_${op}`, b.emit(op, [x, y]));
    out(`i_${op}`, b.emit(op, [a, c]));
  }
  const lt = b.emit('lt', [x, y]), ge = b.emit('ge', [a, c]);
  out('and', b.emit('and', [lt, ge]));
  out('or', b.emit('or', [lt, ge]));
  out('not', b.emit('not', [lt]));
  out('select', b.emit('select', [lt, x, y]));
  out('select_i', b.emit('select', [ge, a, c]));
  for (const [from, to] of [[x, 'int32'], [a, 'float32'], [lt, 'float32'], [lt, 'int32'], [x, 'bool'], [a, 'bool']] as const) {
    out(`cast_${from.attrs['name'] ?? 'cmp'}_${to}`, b.emit('cast', [from], { dtype: to }));
  }
  out('bias', b.emit('add', [x, b.emit('broadcast', [bias], { shape })])); // contiguous in the lane
  out('col', b.emit('mul', [x, b.emit('broadcast', [col], { shape })])); // invariant in the lane
  if (strided) out('transposed', b.emit('mul', [y, b.emit('transpose', [xt], { perm: [1, 0] })])); // stride `rows`: a scalar loop
  out('dropout', b.emit('random_uniform', [step], { seed: 1234, shape }));
  const g = b.finish('vector', outs);
  const f = (k: number) => Float32Array.from({ length: n }, (_, i) => (i % 3 === k ? SPECIAL[(i * 7 + k) % SPECIAL.length]! : Math.sin(i * 1.7 + k) * 4));
  const ints = (k: number) => Int32Array.from({ length: n }, (_, i) => INT_SPECIAL[(i * 5 + k * 3) % INT_SPECIAL.length]!);
  const inputs: Data = {
    x: f(0), y: f(1), a: ints(0), c: ints(1), xt: f(2),
    bias: Float32Array.from({ length: w }, (_, i) => i / 3), col: Float32Array.from({ length: rows }, (_, i) => -i - 0.5), step: Int32Array.of(5),
  };
  return { g, inputs };
}

describe('llvm vector loops', () => {
  it.each([[3, 40, true], [2, 16, true], [4, 24, false], [1, 128, false]])('every elementwise op on [%i, %i] (a strided read: %s) equals the interpreter', (rows, w, strided) => {
    const { g, inputs } = elementwise(rows, w, strided);
    const dir = path.join(tmp, `e${rows}x${w}`);
    compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, {}), threads: 1 });
    // the loops were rendered as vectors of w lanes, helpers inlined away
    const ir = readFileSync(path.join(dir, 'model.ll'), 'utf8');
    expect(ir).toContain(`<${w} x float>`);
    expect(ir).toContain(`@kiln_v${w}_philox`);
    if (rows === 1) expect(ir).not.toMatch(/\.body:/); // no loop left: every kernel is one vector
    expect(outputDiffs(g, inputs, {}, runMain(path.join(dir, 'model_main'), dir, g, inputs), 'llvm')).toEqual([]);
  });
});

/** Distance in float32 units in the last place (same-sign finite values; 0 when both are the same). */
function ulps(a: number, b: number): number {
  if (Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b))) return 0;
  if (!Number.isFinite(a) || !Number.isFinite(b) || Math.sign(a) !== Math.sign(b)) return Infinity;
  const i = new Int32Array(new Float32Array([a, b]).buffer);
  return Math.abs(i[0]! - i[1]!);
}

describe('llvm vector exp, log, tanh', () => {
  it('are within 3 ulp of float64 references over 32,768 inputs from 1e-30 to 1e30 (and the special values)', () => {
    const rows = 512, w = 64, n = rows * w;
    const x = Float32Array.from({ length: n }, (_, i) => {
      if (i < SPECIAL.length) return SPECIAL[i]!;
      const mag = 10 ** (-30 + (60 * (i >> 1)) / (n / 2)); // log-spaced, both signs
      return i & 1 ? -mag : mag;
    });
    const dense = Float32Array.from({ length: n }, (_, i) => -110 + (200 * i) / n); // exp's whole range, tanh's bend
    const b = new Builder();
    const xs = b.input('x', { dtype: 'float32', shape: [rows, w] }), ds = b.input('d', { dtype: 'float32', shape: [rows, w] });
    const ops = ['exp', 'log', 'tanh'] as const;
    const g = b.finish('math', ops.flatMap((op) => [{ name: `${op}_x`, node: b.emit(op, [xs]) }, { name: `${op}_d`, node: b.emit(op, [ds]) }]));
    const dir = path.join(tmp, 'math');
    compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: [], threads: 1 });
    expect(readFileSync(path.join(dir, 'model.ll'), 'utf8')).toMatch(/llvm\.fmuladd\.v64f32/);
    const out = runMain(path.join(dir, 'model_main'), dir, g, { x, d: dense });
    const ref = { exp: Math.exp, log: Math.log, tanh: Math.tanh };
    const TINY = 1.1754943508222875e-38; // model_main flushes subnormals (FTZ/DAZ)
    for (const op of ops) {
      for (const [name, input] of [['x', x], ['d', dense]] as const) {
        const got = out.get(`${op}_${name}`)!;
        let worst = 0, at = -1;
        for (let i = 0; i < n; i++) {
          const v = Math.abs(input[i]!) < TINY ? 0 : input[i]!;
          const want = Math.fround(ref[op](v));
          const e = Math.abs(want) < TINY ? (Math.abs(got[i]!) < TINY ? 0 : Infinity) : ulps(got[i]!, want);
          if (e > worst) { worst = e; at = i; }
        }
        expect(worst, `${op}(${input[at]}) = ${got[at]}, want ${Math.fround(ref[op](input[at]!))}`).toBeLessThanOrEqual(3);
      }
    }
  });
});

describe('llvm row reductions', () => {
  it('compute their lanes as one vector and fold them in order: softmax, sums, products, max and min rows equal the interpreter', () => {
    const b = new Builder(), rows = 6, w = 10;
    const x = b.input('x', { dtype: 'float32', shape: [rows, w] }), a = b.input('a', { dtype: 'int32', shape: [rows, w] });
    const reduce = (op: 'reduce_sum' | 'reduce_max' | 'reduce_min' | 'reduce_prod', v: ReturnType<Builder['emit']>) => b.emit(op, [v], { axes: [1], keepdims: true });
    const m = reduce('reduce_max', x);
    const e = b.emit('exp', [b.emit('sub', [x, b.emit('broadcast', [m], { shape: [rows, w] })])]);
    const softmax = b.emit('div', [e, b.emit('broadcast', [reduce('reduce_sum', e)], { shape: [rows, w] })]);
    const g = b.finish('rows', [
      { name: 'softmax', node: softmax },
      { name: 'min', node: reduce('reduce_min', b.emit('mul', [x, x])) },
      { name: 'prod', node: reduce('reduce_prod', b.emit('tanh', [x])) },
      { name: 'isum', node: reduce('reduce_sum', a) },
      { name: 'imax', node: reduce('reduce_max', a) },
    ]);
    const n = rows * w;
    const inputs: Data = {
      x: Float32Array.from({ length: n }, (_, i) => (i === 13 ? NaN : i === 27 ? -Infinity : i === 41 ? -0 : Math.sin(i * 1.3) * 5)),
      a: Int32Array.from({ length: n }, (_, i) => INT_SPECIAL[i % INT_SPECIAL.length]!),
    };
    const dir = path.join(tmp, 'rows');
    compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: [], threads: 1 });
    expect(readFileSync(path.join(dir, 'model.ll'), 'utf8')).toMatch(/extractelement <10 x float>/);
    expect(outputDiffs(g, inputs, {}, runMain(path.join(dir, 'model_main'), dir, g, inputs), 'llvm')).toEqual([]);
  });
});
