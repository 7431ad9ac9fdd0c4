// The llvm target renders int8 quantization (quantize, qmatmul's fixed-point requantization, dequantize) bit for bit
// as the reference interpreter defines it, on random multipliers and shifts and on the calibrated seed-style MLP.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm } from '../../codegen/llvm/target.js';
import { Builder, type Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import type { TypedArray } from '../../ir/types.js';
import { calibrate, quantizeGraph } from '../../passes/quantize.js';
import { expectSame, rng } from '../ir/helpers.js';
import { outputDiffs, runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-quant-llvm-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Compiles g for llvm and runs it: outputs in `exact` equal the interpreter's bit for bit, the others within outputDiffs' tolerance (libm's expf). */
function runBoth(name: string, g: Graph, inputs: Record<string, TypedArray>, params: Record<string, TypedArray>, exact = g.outputs.map((o) => o.name)): void {
  const dir = path.join(tmp, name);
  compileLlvm({ outDir: dir, threads: 2, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, params) });
  const got = runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: '2' });
  const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs;
  for (const [k, v] of want) if (exact.includes(k)) expectSame(got.get(k)!, v.data);
  expect(outputDiffs(g, inputs, params, got, 'llvm')).toEqual([]);
}

describe('int8 on the llvm target', () => {
  it('quantize, qmatmul and dequantize with random multipliers, every shift and saturation equal the interpreter', () => {
    const r = rng(21), [m, k, n] = [6, 33, 64];
    const b = new Builder();
    const x = b.input('x', { dtype: 'float32', shape: [m, k] });
    const w = b.param('w', { dtype: 'int8', shape: [k, n] }), bias = b.param('bias', { dtype: 'int32', shape: [n] });
    // shifts -31..30 and multipliers over the whole int32 range, INT32_MAX and 0 included
    const mults = Array.from({ length: n }, (_, j) => (j === 0 ? 2147483647 : j === 1 ? 0 : Math.floor(r() * 2 ** 31)));
    const shifts = Array.from({ length: n }, (_, j) => (j % 62) - 31);
    const xq = b.emit('quantize', [x], { scale: 0.05, zeroPoint: -7 });
    const q = b.emit('qmatmul', [xq, w, bias, b.constant(mults, 'int32', [n]), b.constant(shifts, 'int32', [n])], { xZero: -7, outZero: 3, lo: -100, hi: 120 });
    const g = b.finish('q', [
      { name: 'y', node: b.emit('dequantize', [q], { scale: 0.25, zeroPoint: 3 }) },
      { name: 'xq', node: b.emit('dequantize', [xq], { scale: 0.05, zeroPoint: -7 }) },
    ]);
    const xs = Float32Array.from({ length: m * k }, (_, i) => (i === 0 ? NaN : i === 1 ? Infinity : i === 2 ? -1e30 : i === 3 ? 0.025 : 20 * r() - 10));
    const params = {
      w: Int8Array.from({ length: k * n }, () => Math.floor(r() * 256) - 128),
      bias: Int32Array.from({ length: n }, () => Math.floor(r() * 2 ** 32) - 2 ** 31),
    };
    runBoth('ops', g, { x: xs }, params);
  });

  it('requantization rounds ties and saturates as the interpreter on edge accumulators', () => {
    // K = 1 and x at its zero point: the accumulator is the bias, so each channel is one (acc, multiplier, shift) case
    const cases: [number, number, number][] = [];
    for (let acc = -300; acc <= 300; acc += acc >= -20 && acc < 20 ? 1 : 7) for (const shift of [0, -1, -2, -3]) cases.push([acc, 2 ** 30, shift]);
    for (const acc of [-2147483648, -1, 1, 2147483647]) for (const mult of [-2147483648, 2147483647, 1, 0]) cases.push([acc, mult, -31], [acc, mult, 0]);
    const r = rng(8);
    for (let i = 0; i < 64; i++) cases.push([Math.floor(r() * 2 ** 32) - 2 ** 31, Math.floor(r() * 2 ** 31), -31 + Math.floor(r() * 8)]);
    cases.push([3, 2 ** 30, 3], [-5, 2 ** 30, 5], [1 << 28, 2 ** 30, 4]); // left shifts, the last one wrapping
    const n = cases.length, b = new Builder();
    const xq = b.emit('quantize', [b.input('x', { dtype: 'float32', shape: [1, 1] })], { scale: 1, zeroPoint: 0 });
    const q = b.emit('qmatmul', [xq, b.param('w', { dtype: 'int8', shape: [1, n] }), b.param('bias', { dtype: 'int32', shape: [n] }),
      b.constant(cases.map((c) => c[1]), 'int32', [n]), b.constant(cases.map((c) => c[2]), 'int32', [n])], { xZero: 0, outZero: 0, lo: -128, hi: 127 });
    const g = b.finish('ties', [{ name: 'y', node: b.emit('dequantize', [q], { scale: 1, zeroPoint: 0 }) }]);
    runBoth('ties', g, { x: new Float32Array(1) }, { w: new Int8Array(n), bias: Int32Array.from(cases.map((c) => c[0])) });
  });

  it('a calibrated two-layer Dense MLP (ReLU fused, softmax on dequantized values) equals the interpreter', () => {
    const r = rng(5), [bs, d, h, o] = [8, 50, 32, 10];
    const b = new Builder();
    const x = b.input('x', { dtype: 'float32', shape: [bs, d] });
    const dense = (v: ReturnType<Builder['input']>, name: string, i: number, j: number) =>
      b.emit('add', [b.emit('matmul', [v, b.param(`${name}/kernel`, { dtype: 'float32', shape: [i, j] })]),
        b.emit('broadcast', [b.param(`${name}/bias`, { dtype: 'float32', shape: [j] })], { shape: [bs, j] })]);
    const hid = b.emit('max', [dense(x, 'dense', d, h), b.constant(0, 'float32', [bs, h])]);
    const logits = dense(hid, 'dense_1', h, o);
    const e = b.emit('exp', [logits]);
    const g = b.finish('mlp', [{ name: 'logits', node: logits }, { name: 'y', node: b.emit('div', [e, b.emit('broadcast', [b.emit('reduce_sum', [e], { axes: [1], keepdims: true })], { shape: [bs, o] })]) }]);
    const rand = (len: number, s: number) => Float32Array.from({ length: len }, () => Math.fround(s * (2 * r() - 1)));
    const params = new Map([['dense/kernel', rand(d * h, 0.3)], ['dense/bias', rand(h, 0.1)], ['dense_1/kernel', rand(h * o, 0.3)], ['dense_1/bias', rand(o, 0.1)]]);
    const batches = [0, 1, 2].map(() => new Map([['x', rand(bs * d, 1)]]));
    const q = quantizeGraph(g, params, calibrate(g, params, batches));
    expect(q.graph.outputs[0]!.node.op).toBe('dequantize');
    runBoth('mlp', q.graph, { x: rand(bs * d, 1.2) }, Object.fromEntries(q.params), ['logits']);
  });
});
