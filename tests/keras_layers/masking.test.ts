// Masks against TF.js with the same weights: Embedding maskZero and Masking feeding SimpleRNN/LSTM/GRU (a masked step
// keeps the states and repeats the previous output), Bidirectional (masked steps of sequences are zeros, as Keras 3),
// GlobalAveragePooling1D over the real steps only; eager, compiled predict, and a compiled SGD step.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { copyWeights, expectClose, tf, toTf, uniform } from '../frontend/helpers.js';

beforeEach(() => keras.backend.clearSession());
const L = keras.layers;
const randomWeights = (m: { weights: { shape: readonly number[] }[]; setWeights(w: keras.Tensor[]): void }, seed: number) =>
  m.setWeights(m.weights.map((w, i) => uniform(w.shape, seed + i, -0.5, 0.5)));

// padded at the end, at the start, in the middle, and one row all padding
const ids = keras.ops.array([[3, 1, 4, 0, 0, 0], [0, 0, 2, 7, 1, 8], [5, 0, 9, 0, 2, 6], [0, 0, 0, 0, 0, 0]], 'float32');
const mask = tf.notEqual(toTf(ids), 0);

type Kind = 'SimpleRNN' | 'LSTM' | 'GRU';
const tfRnn = (kind: Kind, units: number, o: { returnSequences: boolean; goBackwards: boolean }) =>
  kind === 'SimpleRNN' ? tf.layers.simpleRNN({ units, ...o }) : kind === 'LSTM' ? tf.layers.lstm({ units, ...o, recurrentActivation: 'sigmoid' })
    : tf.layers.gru({ units, ...o, recurrentActivation: 'sigmoid', resetAfter: false });
const kilnRnn = (kind: Kind, units: number, o: { returnSequences: boolean; goBackwards: boolean }) =>
  kind === 'GRU' ? L.GRU(units, { ...o, resetAfter: false }) : L[kind](units, o);

describe.each(['SimpleRNN', 'LSTM', 'GRU'] as const)('Embedding(maskZero) -> %s', (kind) => {
  it.each([
    { returnSequences: false, goBackwards: false }, { returnSequences: true, goBackwards: false }, { returnSequences: true, goBackwards: true },
  ])('%o equals TF.js, eager and compiled', (o) => {
    const model = keras.Sequential([L.Embedding(10, 3, { maskZero: true, inputShape: [6] }), kilnRnn(kind, 4, o)]);
    const ref = tf.sequential({ layers: [tf.layers.embedding({ inputDim: 10, outputDim: 3, maskZero: true, inputLength: 6 }), tfRnn(kind, 4, o)] });
    randomWeights(model, 7);
    copyWeights(model, ref);
    const want = ref.predict(toTf(ids)) as tf.Tensor;
    expectClose(model(ids) as keras.Tensor, want);
    // compiled once per cell kind (the loop and its mask are the same code for the three options)
    if (!o.returnSequences) expectClose(model.predict(ids) as keras.Tensor, want);
    // the unrolled form agrees with the loop
    const unrolled = keras.Sequential([L.Embedding(10, 3, { maskZero: true, inputShape: [6] }), kind === 'GRU' ? L.GRU(4, { ...o, resetAfter: false, unroll: true }) : L[kind](4, { ...o, unroll: true })]);
    unrolled.setWeights(model.getWeights());
    expectClose(unrolled(ids) as keras.Tensor, want);
  });
});

describe('masks', () => {
  it('Masking(maskValue) -> LSTM equals TF.js, and the output is zero at masked steps', () => {
    const x = keras.ops.where(keras.ops.expandDims(keras.ops.equal(ids, 0), -1), -1, uniform([4, 6, 3], 2));
    const model = keras.Sequential([L.Masking({ maskValue: -1, inputShape: [6, 3] }), L.LSTM(4, { returnSequences: true })]);
    const ref = tf.sequential({ layers: [tf.layers.masking({ maskValue: -1, inputShape: [6, 3] }), tfRnn('LSTM', 4, { returnSequences: true, goBackwards: false })] });
    randomWeights(model, 11);
    copyWeights(model, ref);
    const want = ref.predict(toTf(x)) as tf.Tensor;
    expectClose(model(x) as keras.Tensor, want);
    expectClose(model.predict(x) as keras.Tensor, want);
    expectClose(L.Masking({ maskValue: -1 })(x), tf.layers.masking({ maskValue: -1 }).apply(toTf(x)) as tf.Tensor);
  });

  it('GlobalAveragePooling1D averages the real steps only (Keras formula), eager and compiled', () => {
    const model = keras.Sequential([L.Embedding(10, 3, { maskZero: true, inputShape: [6] }), L.GlobalAveragePooling1D()]);
    randomWeights(model, 3);
    const e = tf.gather(toTf(model.getWeights()[0]!), toTf(ids).cast('int32'));
    const m = mask.cast('float32').expandDims(-1);
    const want = tf.div(tf.sum(tf.mul(e, m), 1), tf.sum(m, 1)); // the all-padding row is 0/0, NaN, as in Keras
    expectClose(model(ids) as keras.Tensor, want);
    expectClose(model.predict(ids) as keras.Tensor, want);
    // without a mask, the plain mean
    expectClose(L.GlobalAveragePooling1D()(toKiln(e)), tf.mean(e, 1));
  });

  it('a mask given explicitly to an RNN call, and a wrong-shaped one named', () => {
    const x = uniform([4, 6, 3], 5);
    const lstm = L.LSTM(4);
    const explicit = lstm(x, { mask: keras.ops.notEqual(ids, 0) }) as keras.Tensor;
    const ref = tfRnn('LSTM', 4, { returnSequences: false, goBackwards: false });
    ref.apply(toTf(x));
    ref.setWeights(lstm.getWeights().map(toTf));
    expectClose(explicit, ref.apply(toTf(x), { mask }) as tf.Tensor);
    expect(() => lstm(x, { mask: keras.ops.ones([4, 5], 'bool') })).toThrow(/'lstm' \(LSTM\) failed: expects a mask of shape \[4, 6\], got \(4, 5\)/);
    expect(() => L.Dense(2)(x, { mask: keras.ops.ones([4, 6], 'bool') } as never)).toThrow(/Dense 'dense' call: unknown option 'mask'/);
  });
});

function toKiln(t: tf.Tensor): keras.Tensor {
  return keras.ops.reshape(keras.ops.array(t.dataSync() as Float32Array), t.shape);
}

describe.each(['concat', 'sum', 'ave', 'mul'] as const)('Embedding(maskZero) -> Bidirectional(LSTM) %s', (mergeMode) => {
  it.each([false, true])('returnSequences=%s equals TF.js (masked steps of sequences zero, as Keras 3)', (returnSequences) => {
    const model = keras.Sequential([L.Embedding(10, 3, { maskZero: true, inputShape: [6] }), L.Bidirectional(L.LSTM(4, { returnSequences }), { mergeMode })]);
    const ref = tf.sequential({ layers: [
      tf.layers.embedding({ inputDim: 10, outputDim: 3, maskZero: true, inputLength: 6 }),
      tf.layers.bidirectional({ layer: tfRnn('LSTM', 4, { returnSequences, goBackwards: false }) as tf.RNN, mergeMode }),
    ] });
    randomWeights(model, 13);
    copyWeights(model, ref);
    let want = ref.predict(toTf(ids)) as tf.Tensor;
    // TF.js repeats the previous output at masked steps; Keras 3's Bidirectional outputs zeros there
    if (returnSequences) want = tf.mul(want, mask.cast('float32').expandDims(-1));
    expectClose(model(ids) as keras.Tensor, want);
    expectClose(model.predict(ids) as keras.Tensor, want);
  });
});

describe('masked training', () => {
  it('Embedding(maskZero) -> Bidirectional(LSTM) -> Dense: a compiled SGD step equals TF.js', async () => {
    const model = keras.Sequential([L.Embedding(10, 3, { maskZero: true, inputShape: [6] }), L.Bidirectional(L.LSTM(4)), L.Dense(1, { activation: 'sigmoid' })]);
    const ref = tf.sequential({ layers: [
      tf.layers.embedding({ inputDim: 10, outputDim: 3, maskZero: true, inputLength: 6 }),
      tf.layers.bidirectional({ layer: tfRnn('LSTM', 4, { returnSequences: false, goBackwards: false }) as tf.RNN }),
      tf.layers.dense({ units: 1, activation: 'sigmoid' }),
    ] });
    randomWeights(model, 17);
    copyWeights(model, ref);
    const x = keras.ops.slice(ids, [0, 0], [3, 6]), y = keras.ops.array([[1], [0], [1]]);
    model.compile({ optimizer: keras.optimizers.SGD({ learningRate: 0.5 }), loss: 'binary_crossentropy' });
    ref.compile({ optimizer: tf.train.sgd(0.5), loss: 'binaryCrossentropy' });
    model.fit(x, y, { epochs: 2, batchSize: 3, verbose: 0, shuffle: false });
    await ref.fit(toTf(x), toTf(y), { epochs: 2, batchSize: 3, verbose: 0, shuffle: false });
    model.getWeights().forEach((w, i) => expectClose(w, ref.getWeights()[i]!, 1e-4));
  });
});

describe('masks through merges and LayerNormalization', () => {
  it('Embedding(maskZero) -> Dense -> Add -> LayerNormalization -> GlobalAveragePooling1D sees the mask; Concatenate with an unmasked input', () => {
    const inp = keras.Input({ shape: [6] });
    const e = L.Embedding(10, 4, { maskZero: true })(inp);
    const n = L.LayerNormalization()(L.Add()([e, L.Dense(4, { activation: 'tanh' })(e)]));
    // an input without a mask: its steps count as real, so the concatenation's mask is all true (Keras's any)
    const cat = L.Concatenate()([n, L.Lambda((x) => keras.ops.expandDims(x as keras.Tensor, -1))(inp)]);
    const model = keras.Model({ inputs: inp, outputs: [L.GlobalAveragePooling1D()(n), L.GlobalAveragePooling1D()(cat)] });
    model.setWeights(model.weights.map((w, i) => uniform(w.shape, 70 + i, -0.5, 0.5)));
    const [table, dk, db, gamma, beta] = model.getWeights().map(toTf) as tf.Tensor[];
    const et = tf.gather(table!, toTf(ids).cast('int32'));
    const s = tf.add(et, tf.tanh(tf.add(tf.einsum('btf,fu->btu', et, dk!), db!)));
    const { mean, variance } = tf.moments(s, -1, true);
    const nt = tf.add(tf.mul(tf.div(tf.sub(s, mean), tf.sqrt(tf.add(variance, 1e-3))), gamma!), beta!);
    const m = mask.cast('float32').expandDims(-1);
    const want0 = tf.div(tf.sum(tf.mul(nt, m), 1), tf.sum(m, 1));
    const want1 = tf.mean(tf.concat([nt, toTf(ids).expandDims(-1)], -1), 1);
    for (const got of [model(ids) as keras.Tensor[], model.predict(ids) as keras.Tensor[]]) {
      expectClose(got[0]!, want0, 1e-4);
      expectClose(got[1]!, want1, 1e-4);
    }
  });
});
