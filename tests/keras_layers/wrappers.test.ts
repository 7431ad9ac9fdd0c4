// Lambda, TimeDistributed and Bidirectional against TF.js with the same weights: eager calls, symbolic shapes, and
// compiled (wasm) predict; Bidirectional also through a compiled SGD step against TF.js's.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { copyWeights, expectClose, tf, toTf, uniform } from '../frontend/helpers.js';

beforeEach(() => keras.backend.clearSession());
const L = keras.layers;
const randomWeights = (m: { weights: { shape: readonly number[] }[]; setWeights(w: keras.Tensor[]): void }, seed: number) =>
  m.setWeights(m.weights.map((w, i) => uniform(w.shape, seed + i, -0.5, 0.5)));

describe('Lambda', () => {
  it('traces a function of ops: eager, symbolic shape inferred, compiled', () => {
    const x = uniform([4, 3, 5], 1);
    const f = (t: keras.Tensor | keras.Tensor[]) => keras.ops.sum(keras.ops.square(t as keras.Tensor), { axis: -1 });
    const want = tf.sum(tf.square(toTf(x)), -1);
    expectClose(L.Lambda(f)(x), want);
    const inp = keras.Input({ shape: [3, 5] });
    const out = L.Lambda(f)(inp);
    expect(out.shape).toEqual([null, 3]);
    expectClose(keras.Model({ inputs: inp, outputs: out }).predict(x) as keras.Tensor, want);
  });

  it('rejects a non-function and unknown options, naming the layer', () => {
    expect(() => L.Lambda(3 as never)).toThrow(/Lambda: the first argument must be a function/);
    expect(() => L.Lambda((t) => t, { outputShap: [3] } as never)).toThrow(/Lambda.*unknown option 'outputShap'/);
    expect(() => L.Lambda(() => 3 as never)(uniform([2, 2], 1))).toThrow(/Lambda\) failed: the function must return a tensor/);
  });
});

describe('TimeDistributed', () => {
  it('Dense on every step equals TF.js, eager and compiled', () => {
    const x = uniform([3, 4, 5], 2);
    const td = L.TimeDistributed(L.Dense(6, { activation: 'tanh' }));
    td(x);
    randomWeights(td, 10);
    const ref = tf.layers.timeDistributed({ layer: tf.layers.dense({ units: 6, activation: 'tanh' }) });
    ref.apply(toTf(x));
    ref.setWeights(td.getWeights().map(toTf));
    const want = ref.apply(toTf(x)) as tf.Tensor;
    expectClose(td(x), want);
    expect(td(keras.Input({ shape: [4, 5] })).shape).toEqual([null, 4, 6]);
    const model = keras.Sequential([L.TimeDistributed(L.Dense(6, { activation: 'tanh' }), { inputShape: [4, 5] })]);
    model.setWeights(td.getWeights());
    expectClose(model.predict(x) as keras.Tensor, want);
  });

  it('rejects a rank-2 input with the layer named', () => {
    expect(() => L.TimeDistributed(L.Dense(2), { name: 'td' })(uniform([2, 3], 1))).toThrow(/'td' \(TimeDistributed\).*rank 3 or more/);
  });
});

describe.each(['concat', 'sum', 'mul', 'ave'] as const)('Bidirectional mergeMode %s', (mergeMode) => {
  it.each([false, true])('LSTM returnSequences=%s equals TF.js, eager and compiled', (returnSequences) => {
    const x = uniform([3, 6, 4], 3);
    const bi = L.Bidirectional(L.LSTM(5, { returnSequences }), { mergeMode });
    bi(x);
    randomWeights(bi, 20);
    const ref = tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 5, returnSequences, recurrentActivation: 'sigmoid' }) as tf.RNN, mergeMode });
    ref.apply(toTf(x));
    expect(bi.getWeights().map((w) => w.shape)).toEqual(ref.getWeights().map((w) => w.shape));
    ref.setWeights(bi.getWeights().map(toTf));
    const want = ref.apply(toTf(x)) as tf.Tensor;
    expectClose(bi(x) as keras.Tensor, want);
    expect((bi(keras.Input({ shape: [6, 4] })) as keras.KerasTensor).shape).toEqual([null, ...want.shape.slice(1)]);
    if (mergeMode !== 'concat' && mergeMode !== 'ave') return; // compiled: two modes are enough (the merge is one op)
    const model = keras.Sequential([L.Bidirectional(L.LSTM(5, { returnSequences }), { mergeMode, inputShape: [6, 4] })]);
    model.setWeights(bi.getWeights());
    expectClose(model.predict(x) as keras.Tensor, want);
  });
});

describe('Bidirectional', () => {
  it('GRU(resetAfter: false) in a classifier: a compiled SGD step equals TF.js', async () => {
    const x = uniform([4, 5, 3], 4);
    const y = keras.ops.array([0, 1, 1, 0], 'int32');
    const model = keras.Sequential([L.Bidirectional(L.GRU(4, { resetAfter: false }), { inputShape: [5, 3] }), L.Dense(2, { activation: 'softmax' })]);
    const ref = tf.sequential({ layers: [
      tf.layers.bidirectional({ layer: tf.layers.gru({ units: 4, recurrentActivation: 'sigmoid' }) as tf.RNN, inputShape: [5, 3] }),
      tf.layers.dense({ units: 2, activation: 'softmax' }),
    ] });
    randomWeights(model, 40);
    copyWeights(model, ref);
    model.compile({ optimizer: keras.optimizers.SGD({ learningRate: 0.5 }), loss: 'sparse_categorical_crossentropy' });
    ref.compile({ optimizer: tf.train.sgd(0.5), loss: 'sparseCategoricalCrossentropy' });
    model.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0, shuffle: false });
    await ref.fit(toTf(x), toTf(y).cast('float32'), { epochs: 1, batchSize: 4, verbose: 0, shuffle: false });
    model.getWeights().forEach((w, i) => expectClose(w, ref.getWeights()[i]!, 1e-4));
  });

  it('returnState gives [output, forward states, backward states]', () => {
    const x = uniform([2, 4, 3], 5);
    const bi = L.Bidirectional(L.LSTM(3, { returnState: true }));
    const out = bi(x) as keras.Tensor[];
    expect(out.map((t) => t.shape)).toEqual([[2, 6], [2, 3], [2, 3], [2, 3], [2, 3]]);
    expect(Array.from(out[0]!.data.slice(0, 3))).toEqual(Array.from(out[1]!.data.slice(0, 3)));
  });

  it('rejects a non-RNN layer and an unknown merge mode', () => {
    expect(() => L.Bidirectional(L.Dense(3) as never)).toThrow(/Bidirectional: needs a SimpleRNN, LSTM or GRU layer/);
    expect(() => L.Bidirectional(L.LSTM(3), { mergeMode: 'max' as never })).toThrow(/Bidirectional: mergeMode must be one of concat, sum, mul, ave, got "max"/);
    expect(() => L.Bidirectional(L.LSTM(3), { merge_mode: 'sum' } as never)).toThrow(/Bidirectional.*unknown option 'merge_mode' \(did you mean 'mergeMode'\?\)/);
  });
});
