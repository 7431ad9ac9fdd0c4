// Post-training int8 quantization of the seed MLP on the bundled MNIST digits, in the reference interpreter.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { Builder, type Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { printGraph } from '../../ir/printer.js';
import { verifyProblems } from '../../ir/verifier.js';
import type { TypedArray } from '../../ir/types.js';
import { calibrate, quantizeGraph } from '../../passes/quantize.js';
import { compile, quantize } from '../../compiler.js';
import { outputDiffs, readTensors, runMain } from '../native.js';
import { expectClose, rng } from '../ir/helpers.js';

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

  it('leaves a shared Dense (its kernel read twice) in float32, and quantizes the others', () => {
    const b = new Builder(), r = rng(2);
    const w = b.param('shared/kernel', { dtype: 'float32', shape: [4, 4] }), v = b.param('d/kernel', { dtype: 'float32', shape: [4, 3] });
    const x = b.input('x', { dtype: 'float32', shape: [2, 4] });
    const twice = b.emit('matmul', [b.emit('matmul', [x, w]), w]);
    const g = b.finish('shared', [{ name: 'y', node: b.emit('matmul', [twice, v]) }]);
    const params = new Map([['shared/kernel', Float32Array.from({ length: 16 }, () => r() - 0.5)], ['d/kernel', Float32Array.from({ length: 12 }, () => r() - 0.5)]]);
    const xs = new Map([['x', Float32Array.from({ length: 8 }, () => r())]]);
    const q = quantizeGraph(g, params, calibrate(g, params, [xs]));
    expect(q.graph.params.map((p) => `${String(p.attrs['name'])}:${p.type.dtype}`)).toEqual(['shared/kernel:float32', 'd/kernel:int8', 'd/bias:int32']);
    const [want, got] = [interpret(g, xs, params), interpret(q.graph, xs, q.params)].map((res) => res.outputs.get('y')!.data);
    expectClose(got!, want!, 0.05, 0.05);
  });

  describe('the seed MLP on the bundled MNIST digits', () => {
    const [[xTrain, yTrain], [xTest, yTest]] = keras.datasets.mnist.loadData({ trainCount: 8000 });
    const train = xTrain.data as Float32Array, test = xTest.data as Float32Array;
    // 1,000 training digits calibrate; the 2,000 held-out ones measure
    const calibration = { shape: [1000, 784], data: train.subarray(0, 1000 * 784) };
    let trained: keras.Model | undefined;
    const model = (): keras.Model => {
      if (trained) return trained;
      keras.utils.setRandomSeed(1);
      trained = keras.Sequential([
        keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, { activation: 'softmax' }),
      ]);
      trained.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
      trained.fit(keras.ops.reshape(xTrain, [-1, 784]), yTrain, { epochs: 2, batchSize: 32, verbose: 0 });
      return trained;
    };

    it('keeps its held-out accuracy within 1 point with int8 weights at most 27% of float32', () => {
      const { graph, variables } = traceModel(model(), B);
      const params = new Map(variables.map((v) => [v.path, v.data]));
      const q = quantize(model(), calibration, { batchSize: B });
      expect(verifyProblems(q.graph)).toEqual([]);
      expect(printGraph(q.graph).match(/= qmatmul/g)).toHaveLength(2);
      const bytes = (m: Map<string, TypedArray>) => [...m.values()].reduce((a, v) => a + v.byteLength, 0);
      expect(bytes(q.params) / bytes(params)).toBeLessThanOrEqual(0.27);
      const [fAcc, qAcc] = [accuracy(graph, params, test, yTest.data), accuracy(q.graph, q.params, test, yTest.data)];
      expect(fAcc).toBeGreaterThan(0.85);
      expect(qAcc).toBeGreaterThanOrEqual(fAcc - 0.01);
    });

    it('compiles for llvm with int8 weights and scales in the manifest, predicting as the interpreter', async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-quant-mnist-'));
      try {
        const res = await compile(model(), { target: 'llvm', outDir: dir, maxBatch: B, quantize: 'int8', calibrate: calibration });
        const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
          params: { name: string; dtype: string }[]; quantization: Record<string, { scale: number | number[]; zeroPoint: number }>; sizes: { weightBytes: number };
        };
        expect(manifest.params.map((p) => `${p.name}:${p.dtype}`)).toEqual(['dense/kernel:int8', 'dense/bias:int32', 'dense_1/kernel:int8', 'dense_1/bias:int32']);
        expect(Object.keys(manifest.quantization).sort()).toEqual(['dense/bias', 'dense/input', 'dense/kernel', 'dense/output', 'dense_1/bias', 'dense_1/input', 'dense_1/kernel', 'dense_1/output']);
        expect(manifest.quantization['dense/kernel']!.scale).toHaveLength(64);
        expect(manifest.sizes.weightBytes).toBe(784 * 64 + 64 * 10 + 4 * (64 + 10));
        expect(res.sizes!['weightBytes']).toBeLessThanOrEqual(0.27 * 4 * model().countParams());
        const st = readTensors(path.join(dir, 'weights.safetensors'));
        expect(st.map((t) => t.dtype)).toEqual(['int8', 'int32', 'int8', 'int32']);
        // the compiled predict at 250 rows is the graph quantize gives at that batch: same calibration, same ranges
        const q = quantize(model(), calibration, { batchSize: B });
        for (const t of st) expect(Array.from(t.data)).toEqual(Array.from(q.params.get(t.name)!));
        for (const i of [0, 3]) {
          const x = { input_layer: test.subarray(i * B * 784, (i + 1) * B * 784) };
          const got = runMain(path.join(dir, 'model_main'), dir, q.graph, x);
          expect(outputDiffs(q.graph, x, Object.fromEntries(q.params), got, 'llvm')).toEqual([]);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
