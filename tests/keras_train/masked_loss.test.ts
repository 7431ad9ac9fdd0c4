// Masks in losses and metrics against Keras 3 (keras_reference2.json): a model whose outputs carry Embedding's
// maskZero mask weighs its padded steps 0 in the loss (compiled in the training step, and eagerly) and in its mean
// metrics, in fit and evaluate, on wasm and the interpreter; eager losses by reduction, an all-padding batch is 0.
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { getMask } from '../../frontend/layers/layer.js';
import { expectClose, ref2 } from './reference.js';

const d = ref2.mask_data;
const x = new keras.Tensor('int32', [10, 5], Int32Array.from(d.x));
const targets = { binary: new keras.Tensor('float32', [10, 5, 1], Float32Array.from(d.yBinary)), sparse: new keras.Tensor('int32', [10, 5], Int32Array.from(d.ySparse)) };
const setup = {
  binary: { units: 1, activation: 'sigmoid', loss: 'binary_crossentropy', metrics: ['accuracy', 'mae'] },
  sparse: { units: 3, activation: 'softmax', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] },
} as const;

function model(name: keyof typeof setup, weights: number[][]): keras.Model {
  const s = setup[name];
  const input = keras.Input({ shape: [5], dtype: 'int32' });
  let h = keras.layers.Embedding(7, 3, { maskZero: true })(input) as keras.Tensor;
  h = keras.layers.Dense(4, { activation: 'tanh' })(h) as keras.Tensor;
  const m = keras.Model({ inputs: input, outputs: keras.layers.Dense(s.units, { activation: s.activation })(h) });
  m.setWeights(weights.map((w, i) => new keras.Tensor('float32', m.weights[i]!.shape, Float32Array.from(w))));
  m.compile({ optimizer: keras.optimizers.SGD({ learningRate: 0.5 }), loss: s.loss, metrics: [...s.metrics] });
  return m;
}

describe('masks in losses and metrics, against Keras 3', () => {
  for (const backend of ['wasm', 'interpreter'] as const) {
    for (const name of ['binary', 'sparse'] as const) {
      it(`${name}: evaluate, then fit's loss and metrics and the trained weights (${backend})`, () => {
        const want = ref2.mask_fits[name]!;
        const m = model(name, want.weights0);
        expectClose((m.predict(x, { backend }) as keras.Tensor).data, want.pred0, 1e-5, 1e-6, 'predict');
        const ev = m.evaluate(x, targets[name], { batchSize: 4, verbose: 0, returnDict: true, backend }) as Record<string, number>;
        for (const [k, v] of Object.entries(want.evaluate0)) expectClose([ev[k]!], [v], 1e-5, 1e-6, `evaluate ${k}`);
        const h = m.fit(x, targets[name], { epochs: 2, batchSize: 4, shuffle: false, verbose: 0, backend });
        expect(Object.keys(h.history).sort()).toEqual(Object.keys(want.history_masked_metrics).sort());
        for (const [k, v] of Object.entries(want.history_masked_metrics)) expectClose(h.history[k]!, v, 2e-5, 2e-6, k);
        m.weights.forEach((w, i) => expectClose(w.data, want.weights[i]!, 2e-5, 2e-6, w.path));
      });
    }
  }

  it('eagerly: a loss on a masked output by reduction, an all-padding batch, a metric over two batches', () => {
    const e = ref2.mask_eager;
    const m = model('binary', e.weights);
    const yp = m.__call__(x) as keras.Tensor;
    expect(getMask(yp)?.shape).toEqual([10, 5]);
    for (const red of ['sum_over_batch_size', 'sum', 'mean'] as const) {
      expectClose([keras.losses.BinaryCrossentropy({ reduction: red })(targets.binary, yp).item()], [e.losses[red]!], 1e-5, 1e-6, red);
    }
    const row4 = (t: keras.Tensor) => new keras.Tensor(t.dtype, [1, ...t.shape.slice(1)], t.data.slice(4 * (t.size / 10), 5 * (t.size / 10)));
    expect(keras.losses.BinaryCrossentropy()(row4(targets.binary), m.__call__(row4(x)) as keras.Tensor).item()).toBe(e.losses['all_padding']);
    // the unmasked loss differs: the mask is what makes these numbers
    expect(Math.abs(keras.losses.BinaryCrossentropy()(targets.binary, new keras.Tensor('float32', yp.shape, yp.data)).item() - e.losses['sum_over_batch_size']!)).toBeGreaterThan(1e-3);
    const acc = keras.metrics.BinaryAccuracy();
    const rows = (t: keras.Tensor, a: number, b: number) => new keras.Tensor(t.dtype, [b - a, ...t.shape.slice(1)], t.data.slice(a * (t.size / 10), b * (t.size / 10)));
    acc.updateState(rows(targets.binary, 0, 6), m.__call__(rows(x, 0, 6)) as keras.Tensor);
    acc.updateState(rows(targets.binary, 6, 10), m.__call__(rows(x, 6, 10)) as keras.Tensor);
    expectClose([acc.result().item()], [e.binary_accuracy], 1e-6, 1e-7, 'binary_accuracy');
  });

  it('a padded batch (the training step\'s rows input): the loss of its first rows, and bit for bit at a full batch', () => {
    const m = model('sparse', ref2.mask_fits['sparse']!.weights0);
    const rows = (t: keras.Tensor, n: number) => new keras.Tensor(t.dtype, [n, ...t.shape.slice(1)], t.data.slice(0, n * (t.size / 10)));
    const yp = m.__call__(x) as keras.Tensor;
    for (const reduction of ['sum_over_batch_size', 'sum'] as const) {
      const loss = keras.losses.SparseCategoricalCrossentropy({ reduction });
      const first = loss(rows(targets.sparse, 6), m.__call__(rows(x, 6)) as keras.Tensor).item();
      expectClose([loss.masked(targets.sparse, yp, keras.ops.array(6, 'int32')).item()], [first], 1e-6, 1e-7, reduction);
      expect(loss.masked(targets.sparse, yp, keras.ops.array(10, 'int32')).item()).toBe(loss(targets.sparse, yp).item());
    }
  });
});
