// Post-training int8 quantization of the seed MLP on the bundled MNIST digits, in the reference interpreter.
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { Builder, type Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { printGraph } from '../../ir/printer.js';
import { verifyProblems } from '../../ir/verifier.js';
import type { TypedArray } from '../../ir/types.js';
import { calibrate, quantizeGraph } from '../../passes/quantize.js';
import { rng } from '../ir/helpers.js';

const B = 250;
/** Rows [i·B, (i+1)·B) of flattened digits as one input binding. */
const chunk = (x: Float32Array, i: number) => new Map([['input_layer', x.subarray(i * B * 784, (i + 1) * B * 784)]]);

function accuracy(g: Graph, params: Map<string, TypedArray>, x: Float32Array, y: ArrayLike<number>): number {
  let right = 0;
  for (let i = 0; i < y.length / B; i++) {
    const p = interpret(g, chunk(x, i), params).outputs.get('dense_1')!.data;
    for (let r = 0; r < B; r++) {
      let best = 0;
      for (let c = 1; c < 10; c++) if (p[r * 10 + c]! > p[r * 10 + best]!) best = c;
      if (best === y[i * B + r]) right++;
    }
  }
  return right / y.length;
}

describe('int8 post-training quantization', () => {
  it('a quantized Dense+ReLU equals the real-valued layer on its dequantized operands within one output step', () => {
    const b = new Builder(), r = rng(11);
    const [m, k, n] = [5, 40, 7];
    const x = b.input('x', { dtype: 'float32', shape: [m, k] });
    const w = b.param('d/kernel', { dtype: 'float32', shape: [k, n] }), bias = b.param('d/bias', { dtype: 'float32', shape: [n] });
    const pre = b.emit('add', [b.emit('matmul', [x, w]), b.emit('broadcast', [bias], { shape: [m, n] })]);
    const g = b.finish('dense', [{ name: 'y', node: b.emit('max', [pre, b.constant(0, 'float32', [m, n])]) }]);
    const rand = (len: number, s: number) => Float32Array.from({ length: len }, () => Math.fround(s * (2 * r() - 1)));
    const params = new Map([['d/kernel', rand(k * n, 0.3)], ['d/bias', rand(n, 0.5)]]);
    const xs = new Map([['x', rand(m * k, 2)]]);
    const q = quantizeGraph(g, params, calibrate(g, params, [xs]));
    expect(printGraph(q.graph)).toMatch(/= quantize %0 \{scale=[^\n]*\n(.*= const [^\n]*\n){2}.*= qmatmul %\d+, %\d+, %\d+, %\d+, %\d+ \{hi=127, lo=-128, outZero=[^\n]*\n.*= dequantize/);
    const got = interpret(q.graph, xs, q.params).outputs.get('y')!.data;
    // the reference: the same integer operands, multiplied out in float64
    const { scale: sx, zeroPoint: zx } = q.tensors['d/input']! as { scale: number; zeroPoint: number };
    const { scale: so } = q.tensors['d/output']! as { scale: number };
    const sw = q.tensors['d/kernel']!.scale as number[];
    const xq = interpret({ ...q.graph, outputs: [{ name: 'xq', node: q.graph.outputs[0]!.node.src[0]!.src[0]! }] }, xs, q.params).outputs.get('xq')!.data;
    const wq = q.params.get('d/kernel')!, bq = q.params.get('d/bias')!;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = bq[j]! * sx * sw[j]!;
        for (let p = 0; p < k; p++) acc += (xq[i * k + p]! - zx) * sx * wq[p * n + j]! * sw[j]!;
        expect(Math.abs(got[i * n + j]! - Math.max(0, acc))).toBeLessThanOrEqual(so * 1.001);
      }
    }
  });

  it('the seed MLP keeps its MNIST accuracy within 1 point with int8 weights at most 27% of float32', () => {
    const [[xTrain, yTrain], [xTest, yTest]] = keras.datasets.mnist.loadData({ trainCount: 8000 });
    keras.utils.setRandomSeed(1);
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    model.fit(keras.ops.reshape(xTrain, [-1, 784]), yTrain, { epochs: 2, batchSize: 32, verbose: 0 });
    const { graph, variables } = traceModel(model, B);
    const params = new Map(variables.map((v) => [v.path, v.data]));
    const train = xTrain.data as Float32Array, test = xTest.data as Float32Array;
    // calibrate on 1,000 training digits, evaluate on the 2,000 held-out ones
    const ranges = calibrate(graph, params, [0, 1, 2, 3].map((i) => chunk(train, i)));
    const q = quantizeGraph(graph, params, ranges);
    expect(verifyProblems(q.graph)).toEqual([]);
    expect(printGraph(q.graph).match(/= qmatmul/g)).toHaveLength(2);
    const bytes = (m: Map<string, TypedArray>) => [...m.values()].reduce((a, v) => a + v.byteLength, 0);
    expect(bytes(q.params) / bytes(params)).toBeLessThanOrEqual(0.27);
    const [fAcc, qAcc] = [accuracy(graph, params, test, yTest.data), accuracy(q.graph, q.params, test, yTest.data)];
    expect(fAcc).toBeGreaterThan(0.85);
    expect(qAcc).toBeGreaterThanOrEqual(fAcc - 0.01);
  });
});
