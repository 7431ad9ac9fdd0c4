// Regressions found in review: model structure changes, shared outputs, argument checks, Keras conveniences.
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';

keras.config.setBackend('interpreter');

describe('models', () => {
  it('inputs may be named like Object.prototype members (constructor, toString)', () => {
    const x = keras.ops.array([[1, 2], [-3, 0.5]]);
    const predict = (name: string) => {
      const inputs = keras.Input({ shape: [2], name });
      const m = keras.Model({ inputs, outputs: keras.layers.Dense(1, { kernelInitializer: 'ones', biasInitializer: 'ones' })(inputs) });
      return Array.from((m.predict(x) as keras.Tensor).data);
    };
    for (const name of ['constructor', 'toString', 'x']) expect(predict(name), name).toEqual([4, -1.5]);
  });

  it('predict follows pop() and add() (no stale traced graph)', () => {
    const m = keras.Sequential([keras.layers.Dense(3, { inputShape: [2] }), keras.layers.Dense(4)]);
    const x = keras.ops.ones([1, 2]);
    expect((m.predict(x) as keras.Tensor).shape).toEqual([1, 4]);
    m.pop();
    m.add(keras.layers.Dense(5));
    expect((m.predict(x) as keras.Tensor).shape).toEqual([1, 5]);
  });

  it('a layer producing two outputs gets two output names and trains', () => {
    const a = keras.Input({ shape: [3] }), b = keras.Input({ shape: [3] });
    const d = keras.layers.Dense(2);
    const m = keras.Model({ inputs: [a, b], outputs: [d(a), d(b)] });
    expect(new Set(m.outputNames).size).toBe(2);
    m.compile({ optimizer: 'sgd', loss: 'mse' });
    const h = m.fit([keras.ops.ones([4, 3]), keras.ops.zeros([4, 3])], [keras.ops.ones([4, 2]), keras.ops.zeros([4, 2])], { verbose: 0 });
    expect(h.history['loss']).toHaveLength(1);
  });

  it('predict([x]) on a one-input model and evaluate with lists of tensors', () => {
    const m = keras.Sequential([keras.layers.Dense(2, { inputShape: [3] })]);
    const x = keras.ops.array([[1, 2, 3]]);
    expect((m.predict([x]) as keras.Tensor).shape).toEqual([1, 2]);
    m.compile({ optimizer: 'sgd', loss: 'mse', metrics: [] });
    const [loss] = m.evaluate([x], [keras.ops.zeros([1, 2])], { verbose: 0 });
    expect(Number.isFinite(loss)).toBe(true);
  });

  it('rejects bad fit arguments and duplicate layer names with clear errors', () => {
    const m = keras.Sequential([keras.layers.Dense(1, { inputShape: [1] })]);
    m.compile({ optimizer: 'sgd', loss: 'mse' });
    expect(() => m.fit(keras.ops.ones([2, 1]), keras.ops.ones([2, 1]), { batchSize: 0, verbose: 0 })).toThrow(/batchSize must be a positive integer/);
    expect(() => m.predict(keras.ops.zeros([0, 1]))).toThrow(/no samples/);
    expect(() => keras.Sequential([keras.layers.Dense(1, { name: 'd', inputShape: [1] }), keras.layers.Dense(1, { name: 'd' })])).toThrow(/already named 'd'/);
  });

  it('regression targets [n] against predictions [n, 1], as Keras', () => {
    const loss = keras.losses.MeanSquaredError()(keras.ops.array([1, 2], 'float32'), keras.ops.array([[1], [4]], 'float32'));
    expect(loss.item()).toBeCloseTo(2, 6);
  });

  it('sparse labels out of range are an error, not a zero loss', () => {
    expect(() => keras.losses.SparseCategoricalCrossentropy()(keras.ops.array([0, 7]), keras.ops.softmax(keras.ops.ones([2, 3])))).toThrow(/label 7 at row 1 is not a class id in \[0, 3\)/);
  });
});

describe('ops and layers', () => {
  it('take counts negative indices from the end', () => {
    expect(keras.ops.take(keras.ops.array([1, 2, 3]), keras.ops.array([-1, 0])).toArray()).toEqual([3, 1]);
  });

  it('Concatenate takes its axis as the leading positional argument', () => {
    const out = keras.layers.Concatenate(0)([keras.ops.ones([1, 2]), keras.ops.zeros([1, 2])]);
    expect(out.shape).toEqual([2, 2]);
  });
});

describe('trainable', () => {
  it('a layer built frozen can be unfrozen', () => {
    const d = keras.layers.Dense(2, { trainable: false, inputShape: [3] });
    const m = keras.Sequential([d]);
    expect(m.trainableWeights).toHaveLength(0);
    d.trainable = true;
    expect(m.trainableWeights.map((w) => w.path)).toEqual([d.kernel.path, d.bias!.path]);
  });
});

describe('a Sequential model without an input shape (the seed\'s activation snippet)', () => {
  const build = (inputShape?: number[]) => keras.Sequential([
    keras.layers.Dense(16, { activation: 'relu', ...(inputShape ? { inputShape } : {}) }),
    keras.layers.Dense(3, { activation: 'softmax' }),
  ]);
  const x = new keras.Tensor('float32', [12, 5], Float32Array.from({ length: 60 }, (_, i) => Math.sin(i * 0.7)));
  const y = new keras.Tensor('int32', [12], Int32Array.from({ length: 12 }, (_, i) => i % 3));

  it('compiles before it is built; fit builds it from the data and trains as the same model built up front', () => {
    keras.utils.setRandomSeed(3);
    const lazy = build();
    lazy.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
    expect(lazy.built).toBe(false);
    const h1 = lazy.fit(x, y, { epochs: 3, batchSize: 4, verbose: 0 });
    expect(lazy.built).toBe(true);
    keras.utils.setRandomSeed(3);
    const eager = build([5]);
    eager.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
    const h2 = eager.fit(x, y, { epochs: 3, batchSize: 4, verbose: 0 });
    expect(h1.history['loss']).toEqual(h2.history['loss']);
    expect(lazy.evaluate(x, y, { verbose: 0 })).toEqual(eager.evaluate(x, y, { verbose: 0 }));
  });
});

describe('losses by name', () => {
  it('accepts the Keras function names and class names alike, and names the known ones otherwise', () => {
    const yTrue = new keras.Tensor('float32', [2, 2], Float32Array.of(0, 1, 1, 0)), yPred = new keras.Tensor('float32', [2, 2], Float32Array.of(0.2, 0.7, 0.6, 0.1));
    for (const [fn, cls] of [['mse', 'MeanSquaredError'], ['mae', 'MeanAbsoluteError'], ['huber', 'Huber'], ['binary_crossentropy', 'BinaryCrossentropy'], ['categorical_crossentropy', 'CategoricalCrossentropy']]) {
      expect(keras.losses.get(cls!)(yTrue, yPred).item(), cls).toBeCloseTo(keras.losses.get(fn!)(yTrue, yPred).item(), 7);
    }
    expect(() => keras.losses.get('MeanSquaredErrorr')).toThrow(/unknown loss 'MeanSquaredErrorr'; known: .*MeanSquaredError/);
  });
});
