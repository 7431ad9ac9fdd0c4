// The later Keras idioms against Keras 3 (keras_reference2.json): PolynomialDecay, InverseTimeDecay and
// CosineDecayRestarts eagerly and in a compiled step; Precision/Recall topK and classId, AUC multiLabel (plain and
// weighted); the onTest*/onPredict* hooks in Keras's order in fit (validation), evaluate and predict; a sample weight
// per output and weightedMetrics in fit and evaluate.
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { camel, expectClose, ref2 } from './reference.js';

const S = keras.optimizers.schedules;
const schedule = (name: string) => {
  const o = ref2.schedules[name]!.options as never;
  if (name.startsWith('poly')) return S.PolynomialDecay(o);
  if (name.startsWith('inverse')) return S.InverseTimeDecay(o);
  return S.CosineDecayRestarts(o);
};

describe('Keras idioms against Keras 3', () => {
  it('PolynomialDecay, InverseTimeDecay, CosineDecayRestarts at steps 0..24', () => {
    for (const name of Object.keys(ref2.schedules)) {
      const s = schedule(name);
      expectClose(Array.from({ length: 25 }, (_, i) => s.valueAt(i)), ref2.schedules[name]!.values, 2e-6, 1e-7, name);
    }
    expect(() => S.PolynomialDecay({ initialLearningRate: 0.1, decaySteps: 0 })).toThrow(/^optimizers.schedules.PolynomialDecay: decaySteps must be a number > 0, got number 0$/);
    expect(() => S.CosineDecayRestarts({ initialLearningRate: 0.1, firstDecaySteps: 3, t_mul: 2 } as never)).toThrow(/unknown option 't_mul'/);
  });

  it('a schedule in a compiled step: SGD steps of lr(t) * gradient', () => {
    // y = w x, loss mse: the gradient is 2 x (w x - y); SGD w -= lr(t) * g, lr from the schedule at step t
    for (const name of ['restarts_tmul3']) {
      const m = keras.Sequential([keras.layers.Dense(1, { useBias: false, inputShape: [1] })]);
      m.setWeights([new keras.Tensor('float32', [1, 1], Float32Array.of(0.5))]);
      m.compile({ optimizer: keras.optimizers.SGD({ learningRate: schedule(name) }), loss: 'mse' });
      m.fit(new keras.Tensor('float32', [8, 1], Float32Array.of(1, 2, 1, 2, 1, 2, 1, 2)), new keras.Tensor('float32', [8, 1], new Float32Array(8).fill(3)), { batchSize: 1, epochs: 1, shuffle: false, verbose: 0, backend: 'wasm' });
      let w = 0.5;
      for (let t = 0; t < 8; t++) {
        const x = t % 2 ? 2 : 1;
        w -= ref2.schedules[name]!.values[t]! * 2 * x * (w * x - 3);
      }
      expectClose(m.weights[0]!.data, [w], 2e-5, 1e-6, name);
    }
  });

  it('Precision/Recall with topK and classId, AUC multiLabel (ROC, PR, weighted labels, majoring), plain and sample-weighted', () => {
    const d = ref2.multi_data;
    const t = new keras.Tensor('float32', [30, 4], Float32Array.from(d.yTrue)), p = new keras.Tensor('float32', [30, 4], Float32Array.from(d.yPred));
    const rows = (x: keras.Tensor, a: number, b: number) => new keras.Tensor('float32', [b - a, 4], x.data.slice(a * 4, b * 4));
    for (const [name, c] of Object.entries(ref2.multi_metrics)) {
      const m = keras.metrics[c.class](camel(c.options) as never);
      m.updateState(rows(t, 0, 13), rows(p, 0, 13));
      m.updateState(rows(t, 13, 30), rows(p, 13, 30));
      expectClose([m.result().item()], [c.result], 1e-5, 1e-6, name);
      m.resetState();
      m.updateState(t, p, Float32Array.from(d.sampleWeight));
      expectClose([m.result().item()], [c.weighted], 1e-5, 1e-6, `${name} weighted`);
    }
    expect(() => keras.metrics.Precision({ topK: 0 })).toThrow(/^metrics.Precision: topK must be an integer >= 1, got number 0$/);
    expect(() => keras.metrics.AUC({ labelWeights: [1] })).toThrow(/^metrics.AUC: numLabels and labelWeights need multiLabel: true$/);
    const auc = keras.metrics.AUC({ multiLabel: true, numLabels: 3 });
    expect(() => auc.updateState(t, p)).toThrow(/^metric 'auc': multiLabel predictions have 4 labels on the last axis, not 3$/);
  });

  it('onTest*/onPredict* hooks in Keras\'s order: fit with validation data, evaluate and predict', () => {
    const calls: string[] = [];
    const hooks = Object.fromEntries(keras.callbacks.HOOKS.map((h) => [h, (...a: unknown[]) => {
      const snake = h.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
      calls.push(h.includes('Batch') ? `${snake}:${String(a[0])}` : snake);
    }]));
    const m = keras.Sequential([keras.layers.Dense(1, { inputShape: [3] })]);
    m.compile({ optimizer: 'sgd', loss: 'mse' });
    const x = new keras.Tensor('float32', [8, 3], Float32Array.from({ length: 24 }, (_, i) => Math.sin(i))), y = new keras.Tensor('float32', [8, 1], new Float32Array(8));
    const x6 = new keras.Tensor('float32', [6, 3], x.data.slice(0, 18)), y6 = new keras.Tensor('float32', [6, 1], new Float32Array(6));
    m.fit(x, y, { epochs: 2, batchSize: 4, validationData: [x6, y6], verbose: 0, callbacks: [hooks], backend: 'interpreter' });
    expect(calls.splice(0)).toEqual(ref2.hooks.fit);
    m.evaluate(x, y, { batchSize: 3, verbose: 0, callbacks: [hooks], backend: 'interpreter' });
    expect(calls.splice(0)).toEqual(ref2.hooks.evaluate);
    const outputs: number[][] = [];
    m.predict(x, { batchSize: 5, callbacks: [{ ...hooks, onPredictBatchEnd: (b, logs) => { hooks['onPredictBatchEnd']!(b); outputs.push([...(logs.outputs as keras.Tensor).shape]); } }], backend: 'interpreter' });
    expect(calls).toEqual(ref2.hooks.predict);
    expect(outputs).toEqual([[5, 1], [3, 1]]);
    expect(() => m.predict(x, { callbacks: [{ onPredictBach: () => {} }] as never })).toThrow(/^predict: callbacks\[0\]: unknown hook 'onPredictBach'; hooks: /);
  });

  it('a sample weight per output (a list, a record) and weightedMetrics: fit\'s history and weights, evaluate', () => {
    const d = ref2.per_output;
    const x = new keras.Tensor('float32', [10, 3], Float32Array.from(d.x));
    const ys = [new keras.Tensor('float32', [10, 1], Float32Array.from(d.ya)), new keras.Tensor('int32', [10], Int32Array.from(d.yb))];
    const [swa, swb] = [Float32Array.from(d.swa), Float32Array.from(d.swb)];
    for (const sampleWeight of [[swa, swb], { b: swb, a: swa }]) {
      const input = keras.Input({ shape: [3] });
      const h = keras.layers.Dense(4, { activation: 'tanh' })(input);
      const m = keras.Model({ inputs: input, outputs: [keras.layers.Dense(1, { activation: 'sigmoid', name: 'a' })(h), keras.layers.Dense(3, { activation: 'softmax', name: 'b' })(h)] });
      m.setWeights(d.weights0.map((w, i) => new keras.Tensor('float32', m.weights[i]!.shape, Float32Array.from(w))));
      m.compile({
        optimizer: keras.optimizers.SGD({ learningRate: 0.3 }), loss: ['binary_crossentropy', 'sparse_categorical_crossentropy'], lossWeights: [1, 0.5],
        metrics: [['accuracy'], ['accuracy']], weightedMetrics: [['accuracy', 'mae'], ['accuracy']],
      });
      const hist = m.fit(x, ys, { sampleWeight, epochs: 2, batchSize: 4, shuffle: false, verbose: 0, backend: 'interpreter' });
      expect(Object.keys(hist.history).sort()).toEqual(Object.keys(d.history).sort());
      for (const [k, v] of Object.entries(d.history)) expectClose(hist.history[k]!, v, 2e-5, 2e-6, k);
      m.weights.forEach((w, i) => expectClose(w.data, d.weights[i]!, 2e-5, 2e-6, w.path));
      const ev = m.evaluate(x, ys, { sampleWeight, batchSize: 3, verbose: 0, returnDict: true, backend: 'interpreter' });
      for (const [k, v] of Object.entries(d.evaluate)) expectClose([ev[k]!], [v], 2e-5, 2e-6, `evaluate ${k}`);
      expect(() => m.fit(x, ys, { sampleWeight: { a: swa }, verbose: 0 })).toThrow(/^fit: sampleWeight: missing weights for output 'b'$/);
      expect(() => m.fit(x, ys, { sampleWeight: [swa, swb.subarray(0, 9)], verbose: 0 })).toThrow(/^fit: sampleWeight of output 'b' must hold one weight per sample \(shape \[10\]\), got shape \[9\]$/);
    }
  });
});
