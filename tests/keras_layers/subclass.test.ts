// Model subclassing (`class MyModel extends keras.Model`) against TF.js models with the same weights: eager calls,
// compiled predict and compiled SGD steps through fit; several inputs and outputs; errors name the model.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { copyWeights, expectClose, tf, toTf, uniform } from '../frontend/helpers.js';

beforeEach(() => keras.backend.clearSession());
const L = keras.layers;

class Residual extends keras.Model {
  dense1 = L.Dense(8, { activation: 'relu' });
  dense2 = L.Dense(4);
  head = L.Dense(3, { activation: 'softmax' });
  call(x: keras.Tensor): keras.Tensor {
    const h = this.dense2(this.dense1(x));
    return this.head(keras.ops.add(h, keras.ops.tanh(h)));
  }
}

/** The same computation as a TF.js functional model. */
function tfResidual(): tf.LayersModel {
  const x = tf.input({ shape: [5] });
  const h = tf.layers.dense({ units: 4 }).apply(tf.layers.dense({ units: 8, activation: 'relu' }).apply(x)) as tf.SymbolicTensor;
  const t = tf.layers.activation({ activation: 'tanh' }).apply(h) as tf.SymbolicTensor;
  const y = tf.layers.dense({ units: 3, activation: 'softmax' }).apply(tf.layers.add().apply([h, t])) as tf.SymbolicTensor;
  return tf.model({ inputs: x, outputs: y });
}

describe('a subclassed model', () => {
  it('is built by its first data; eager, compiled predict and fit equal TF.js', async () => {
    const x = uniform([6, 5], 1), y = keras.ops.array([0, 1, 2, 2, 1, 0], 'int32');
    const model = new Residual();
    expect(model).toBeInstanceOf(keras.Model);
    expect(keras.Sequential([L.Dense(1, { inputShape: [2] })])).toBeInstanceOf(keras.Model);
    expect(() => model.countParams()).toThrow(/not built yet/);
    model(x);
    expect(model.layers.map((l) => l.name)).toEqual(['dense', 'dense_1', 'dense_2']);
    expect(model.countParams()).toBe(5 * 8 + 8 + 8 * 4 + 4 + 4 * 3 + 3);
    model.setWeights(model.weights.map((w, i) => uniform(w.shape, 10 + i, -0.6, 0.6)));
    const ref = tfResidual();
    copyWeights(model, ref);
    const want = ref.predict(toTf(x)) as tf.Tensor;
    expectClose(model(x), want);
    expectClose(model.predict(x) as keras.Tensor, want);
    model.compile({ optimizer: keras.optimizers.SGD({ learningRate: 0.3 }), loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
    ref.compile({ optimizer: tf.train.sgd(0.3), loss: 'sparseCategoricalCrossentropy' });
    const h = model.fit(x, y, { epochs: 2, batchSize: 3, verbose: 0, shuffle: false });
    const hr = await ref.fit(toTf(x), toTf(y).cast('float32'), { epochs: 2, batchSize: 3, verbose: 0, shuffle: false });
    expect(h.history['loss']![1]!).toBeCloseTo(hr.history['loss']![1] as number, 5);
    model.getWeights().forEach((w, i) => expectClose(w, ref.getWeights()[i]!, 1e-4));
  });

  it('fit builds it (int32 token inputs kept), several inputs and outputs, nested in a functional model', () => {
    class TwoHeads extends keras.Model {
      emb = L.Embedding(10, 4);
      layers_ = [L.Dense(3), L.Dense(2)];
      call([ids, extra]: keras.Tensor[]): keras.Tensor[] {
        const pooled = keras.ops.mean(this.emb(ids!), { axis: 1 });
        const joined = keras.ops.concatenate([pooled, extra!], -1);
        return [this.layers_[0]!(joined), this.layers_[1]!(joined)];
      }
    }
    const ids = keras.ops.array([[1, 2, 3], [4, 5, 0]], 'int32'), extra = uniform([2, 2], 3);
    const m = new TwoHeads({ name: 'two' });
    const [a, b] = m.predict([ids, extra]) as keras.Tensor[];
    expect(m.inputSpecs.map((s) => [s.shape, s.dtype])).toEqual([[[null, 3], 'int32'], [[null, 2], 'float32']]);
    // the same from the layers by hand, eagerly
    const joined = keras.ops.concatenate([keras.ops.mean(m.emb(ids), { axis: 1 }), extra], -1);
    expectClose(a!, toTf(m.layers_[0]!(joined)));
    expectClose(b!, toTf(m.layers_[1]!(joined)));
    expect(m.layers.map((l) => l.name)).toEqual(['embedding', 'dense', 'dense_1']);
    const i1 = keras.Input({ shape: [3], dtype: 'int32' }), i2 = keras.Input({ shape: [2] });
    const outs = m([i1, i2]) as unknown as keras.KerasTensor[];
    expect(outs.map((o) => o.shape)).toEqual([[null, 3], [null, 2]]);
  });

  it('a custom trainStep (tape, computeLoss, applyGradients) runs in fit: its logs, and the SGD weights of TF.js', async () => {
    class Custom extends Residual {
      override trainStep([x, y]: [keras.Tensor, keras.Tensor]) {
        const tape = keras.backend.GradientTape();
        const loss = tape.record(() => this.computeLoss(y, this(x, { training: true }) as keras.Tensor));
        const ws = this.trainableWeights;
        this.optimizer!.applyGradients(tape.gradient(loss, ws).map((g, i) => [g, ws[i]!] as const));
        return { loss, twice: keras.ops.multiply(loss, 2) };
      }
    }
    const x = uniform([6, 5], 2), y = keras.ops.array([2, 1, 0, 0, 1, 2], 'int32');
    const model = new Custom();
    model(x);
    model.setWeights(model.weights.map((w, i) => uniform(w.shape, 30 + i, -0.6, 0.6)));
    const ref = tfResidual();
    copyWeights(model, ref);
    model.compile({ optimizer: keras.optimizers.SGD({ learningRate: 0.3 }), loss: 'sparse_categorical_crossentropy' });
    ref.compile({ optimizer: tf.train.sgd(0.3), loss: 'sparseCategoricalCrossentropy' });
    const h = model.fit(x, y, { epochs: 2, batchSize: 3, verbose: 0, shuffle: false });
    await ref.fit(toTf(x), toTf(y).cast('float32'), { epochs: 2, batchSize: 3, verbose: 0, shuffle: false });
    model.getWeights().forEach((w, i) => expectClose(w, ref.getWeights()[i]!, 1e-4));
    expect(Object.keys(h.history)).toEqual(['loss', 'twice']);
    expect(h.history['twice']![1]).toBeCloseTo(2 * h.history['loss']![1]!, 5);
    class Bad extends Residual {
      override trainStep() { return 3 as never; }
    }
    const bad = new Bad();
    bad.compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy' });
    expect(() => bad.fit(x, y, { verbose: 0 })).toThrow(/Model 'bad': trainStep must return a record of logs/);
  });

  it('an error in call names the model', () => {
    class Broken extends keras.Model {
      d = L.Dense(2);
      call(x: keras.Tensor): keras.Tensor { return this.d(keras.ops.reshape(x, [7])); }
    }
    expect(() => new Broken().predict(uniform([2, 3], 1))).toThrow(/Layer 'broken' \(Broken\) could not be built: /);
  });
});
