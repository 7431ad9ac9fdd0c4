// A small CNN (conv, max pooling, conv, global average pooling, dense) against TF.js: forward, one SGD step, both backends.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { copyWeights, expectClose, tf, toTf, uniform } from './helpers.js';

beforeEach(() => keras.backend.clearSession());
afterEach(() => keras.config.setBackend('wasm'));

function kilnCnn(): keras.Sequential {
  keras.utils.setRandomSeed(17);
  return keras.Sequential([
    keras.layers.Conv2D(8, 3, { activation: 'relu', padding: 'same', inputShape: [12, 12, 3] }),
    keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(6, 3, { activation: 'relu' }),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(5, { activation: 'softmax' }),
  ]);
}

function tfCnn(): tf.Sequential {
  return tf.sequential({ layers: [
    tf.layers.conv2d({ filters: 8, kernelSize: 3, activation: 'relu', padding: 'same', inputShape: [12, 12, 3] }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.conv2d({ filters: 6, kernelSize: 3, activation: 'relu' }),
    tf.layers.globalAveragePooling2d({}),
    tf.layers.dense({ units: 5, activation: 'softmax' }),
  ] });
}

const x = uniform([4, 12, 12, 3], 5, -1, 1);
const y = keras.ops.array([0, 3, 1, 4]);

/** Relative closeness of weights: |a - b| <= tol * max(1, |b|) elementwise. */
function expectWeightsClose(a: keras.Tensor[], b: ArrayLike<number>[], tol: number): void {
  expect(a.length).toBe(b.length);
  a.forEach((w, i) => {
    const want = b[i]!;
    let worst = 0;
    w.data.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - Number(want[j])) / Math.max(1, Math.abs(Number(want[j])))); });
    expect(worst, `weight ${i}`).toBeLessThanOrEqual(tol);
  });
}

describe('CNN on [4, 12, 12, 3]', () => {
  it('has Keras parameter counts', () => {
    const m = kilnCnn();
    expect(m.countParams()).toBe((3 * 3 * 3 * 8 + 8) + (3 * 3 * 8 * 6 + 6) + (6 * 5 + 5));
    expect(m.countParams()).toBe(tfCnn().countParams());
  });

  it('forward equals TF.js (predict on wasm, eager call)', () => {
    const m = kilnCnn(), ref = tfCnn();
    copyWeights(m, ref);
    const want = ref.predict(toTf(x)) as tf.Tensor;
    expectClose(m.predict(x) as keras.Tensor, want);
    expectClose(m(x), want);
  });

  it('one SGD step with fit equals TF.js within 1e-4', async () => {
    const m = kilnCnn(), ref = tfCnn();
    copyWeights(m, ref);
    m.compile({ optimizer: keras.optimizers.SGD({ learningRate: 0.5 }), loss: 'sparse_categorical_crossentropy' });
    ref.compile({ optimizer: tf.train.sgd(0.5), loss: 'sparseCategoricalCrossentropy' });
    const hk = m.fit(x, y, { epochs: 1, batchSize: 4, shuffle: false, verbose: 0 });
    const ht = await ref.fit(toTf(x), toTf(keras.ops.cast(y, 'float32')), { epochs: 1, batchSize: 4, shuffle: false, verbose: 0 });
    expect(Math.abs(hk.history['loss']![0]! - (ht.history['loss']![0] as number))).toBeLessThan(1e-5);
    expectWeightsClose(m.getWeights(), ref.getWeights().map((w) => w.dataSync()), 1e-4);
    // the step moved every weight tensor
    const before = kilnCnn().getWeights();
    m.getWeights().forEach((w, i) => expect(w.data).not.toEqual(before[i]!.data));
  });

  it("the interpreter backend gives the wasm backend's step and predictions within 1e-5", () => {
    const run = (backend: 'wasm' | 'interpreter') => {
      keras.backend.clearSession();
      keras.config.setBackend(backend);
      const m = kilnCnn();
      m.compile({ optimizer: keras.optimizers.SGD({ learningRate: 0.5, momentum: 0.9 }), loss: 'sparse_categorical_crossentropy' });
      const h = m.fit(x, y, { epochs: 2, batchSize: 2, shuffle: false, verbose: 0 });
      return { loss: h.history['loss']!, weights: m.getWeights(), pred: m.predict(x) as keras.Tensor };
    };
    const w = run('wasm'), i = run('interpreter');
    w.loss.forEach((l, k) => expect(Math.abs(l - i.loss[k]!)).toBeLessThan(1e-5));
    expectWeightsClose(w.weights, i.weights.map((t) => t.data), 1e-5);
    expectClose(w.pred, toTf(i.pred));
  });
});
