// Embedding, SimpleRNN, LSTM and GRU against TF.js layers with the same weights (GRU with Keras 3's resetAfter
// against TF.js ops, which TF.js's layer does not implement): eager calls, compiled predict, a compiled SGD step,
// and the orthogonal initializer.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { orthogonal } from '../../frontend/initializers.js';
import { copyWeights, expectClose, tf, toTf, uniform } from './helpers.js';

beforeEach(() => keras.backend.clearSession());
const L = keras.layers;

type RnnKind = 'SimpleRNN' | 'LSTM' | 'GRU';
interface Case {
  name: string;
  kiln: (o: Record<string, unknown>) => keras.layers.Layer;
  tf?: () => tf.layers.Layer;
  /** reference from TF.js ops (x [batch, time, features], weights in Keras order) where the TF.js layer lacks the feature */
  ref?: (x: tf.Tensor, w: tf.Tensor[]) => tf.Tensor;
}

/** Keras 3's GRU step with reset_after (bias rows: input, recurrent), unrolled with TF.js ops. */
function gruResetAfter(units: number, returnSequences: boolean) {
  return (x: tf.Tensor, [k, rk, b]: tf.Tensor[]): tf.Tensor => tf.tidy(() => {
    const [batch, time] = x.shape as [number, number, number];
    const [bi, br] = tf.split(b!, 2, 0) as [tf.Tensor, tf.Tensor];
    let h = tf.zeros([batch, units]);
    const outs: tf.Tensor[] = [];
    for (let t = 0; t < time; t++) {
      const xt = x.slice([0, t, 0], [batch, 1, -1]).reshape([batch, -1]);
      const [xz, xr, xh] = tf.split(tf.add(tf.matMul(xt, k!), bi.reshape([-1])), 3, 1);
      const [hz, hr, hh] = tf.split(tf.add(tf.matMul(h, rk!), br.reshape([-1])), 3, 1);
      const z = tf.sigmoid(tf.add(xz!, hz!)), r = tf.sigmoid(tf.add(xr!, hr!));
      const cand = tf.tanh(tf.add(xh!, tf.mul(r, hh!)));
      h = tf.add(tf.mul(z, h), tf.mul(tf.sub(1, z), cand));
      outs.push(h);
    }
    return returnSequences ? tf.stack(outs, 1) : h;
  });
}

const rnn = (kind: RnnKind, units: number, o: { returnSequences?: boolean; goBackwards?: boolean; activation?: string } = {}): Case => ({
  name: `${kind}(${units}) ${JSON.stringify(o)}`,
  kiln: (k) => L[kind](units, { ...o, ...k, ...(kind === 'GRU' ? { resetAfter: false } : {}) }),
  tf: () => {
    const args = { units, returnSequences: o.returnSequences ?? false, goBackwards: o.goBackwards ?? false, ...(o.activation ? { activation: o.activation as 'relu' } : {}) };
    // TF.js's gates default to hardSigmoid (Keras 2); Keras 3's to sigmoid
    const gated = { ...args, recurrentActivation: 'sigmoid' as const };
    return kind === 'SimpleRNN' ? tf.layers.simpleRNN(args) : kind === 'LSTM' ? tf.layers.lstm(gated) : tf.layers.gru({ ...gated, resetAfter: false });
  },
});

const cases: Case[] = [
  rnn('SimpleRNN', 5), rnn('SimpleRNN', 4, { returnSequences: true, activation: 'relu' }), rnn('SimpleRNN', 3, { goBackwards: true, returnSequences: true }),
  rnn('LSTM', 5), rnn('LSTM', 4, { returnSequences: true }), rnn('LSTM', 3, { goBackwards: true }),
  rnn('GRU', 5), rnn('GRU', 4, { returnSequences: true }),
  { name: 'GRU(4) resetAfter (Keras 3 default)', kiln: (k) => L.GRU(4, k), ref: gruResetAfter(4, false) },
  { name: 'GRU(3) resetAfter, returnSequences', kiln: (k) => L.GRU(3, { ...k, returnSequences: true }), ref: gruResetAfter(3, true) },
];

describe.each(cases)('$name equals TF.js', (c) => {
  const shape = [3, 6, 4];
  const setup = () => {
    const x = uniform(shape, 5, -1, 1);
    const layer = c.kiln({});
    layer(x); // builds
    layer.setWeights(layer.weights.map((w, i) => uniform(w.shape, 30 + i, -0.6, 0.6)));
    let want: tf.Tensor;
    if (c.ref) want = c.ref(toTf(x), layer.getWeights().map(toTf));
    else {
      const ref = c.tf!();
      ref.apply(toTf(x));
      expect(layer.getWeights().map((w) => w.shape)).toEqual(ref.getWeights().map((w) => w.shape));
      ref.setWeights(layer.getWeights().map(toTf));
      want = ref.apply(toTf(x)) as tf.Tensor;
    }
    return { x, layer, want };
  };

  it('eager call, and the symbolic output shape', () => {
    const { x, layer, want } = setup();
    expectClose(layer(x), want);
    expect(layer(keras.Input({ shape: shape.slice(1) })).shape).toEqual([null, ...want.shape.slice(1)]);
  });

  it('compiled (wasm) predict', () => {
    const { x, layer, want } = setup();
    const model = keras.Sequential([c.kiln({ inputShape: shape.slice(1) })]);
    model.setWeights(layer.getWeights());
    expectClose(model.predict(x) as keras.Tensor, want);
  });
});

describe('Embedding', () => {
  it('equals TF.js eagerly and compiled, and feeds an LSTM whose compiled SGD step matches TF.js', async () => {
    const ids = keras.ops.array([[1, 4, 9, 0, 3], [7, 7, 2, 5, 8]], 'int32');
    const emb = L.Embedding(10, 4);
    const tfEmb = tf.layers.embedding({ inputDim: 10, outputDim: 4 });
    tfEmb.apply(toTf(ids));
    emb(ids);
    expect(emb.embeddings.shape).toEqual([10, 4]);
    tfEmb.setWeights(emb.getWeights().map(toTf));
    expectClose(emb(ids), tfEmb.apply(toTf(ids)) as tf.Tensor);

    // a small sequence classifier: Embedding -> LSTM -> Dense, one SGD step in kiln (compiled) and TF.js
    const model = keras.Sequential([L.Embedding(10, 4, { inputShape: [5] }), L.LSTM(6), L.Dense(3, { activation: 'softmax' })]);
    const ref = tf.sequential({ layers: [tf.layers.embedding({ inputDim: 10, outputDim: 4, inputLength: 5 }), tf.layers.lstm({ units: 6, recurrentActivation: 'sigmoid' }), tf.layers.dense({ units: 3, activation: 'softmax' })] });
    model.setWeights(model.weights.map((w, i) => uniform(w.shape, 60 + i, -0.5, 0.5)));
    copyWeights(model, ref);
    const y = keras.ops.array([2, 0], 'int32');
    expectClose(model.predict(keras.ops.cast(ids, 'float32')) as keras.Tensor, ref.predict(toTf(ids).cast('float32')) as tf.Tensor);
    model.compile({ optimizer: keras.optimizers.SGD({ learningRate: 0.5 }), loss: 'sparse_categorical_crossentropy' });
    ref.compile({ optimizer: tf.train.sgd(0.5), loss: 'sparseCategoricalCrossentropy' });
    model.fit(keras.ops.cast(ids, 'float32'), y, { epochs: 1, batchSize: 2, verbose: 0, shuffle: false });
    await ref.fit(toTf(ids).cast('float32'), toTf(y).cast('float32'), { epochs: 1, batchSize: 2, verbose: 0, shuffle: false });
    model.getWeights().forEach((w, i) => expectClose(w, ref.getWeights()[i]!, 1e-4));
  });

  it('rejects bad sizes with the layer named', () => {
    expect(() => L.Embedding(0, 4)).toThrow(/Embedding: inputDim must be a positive integer, got 0/);
  });
});

describe('orthogonal initializer (the recurrent kernels default)', () => {
  it.each([[6, 6], [8, 3], [3, 8], [2, 3, 4]])('%i x %i...: orthonormal rows or columns', (...shape) => {
    const w = orthogonal()(shape, 'float32') as Float32Array;
    const cols = shape[shape.length - 1]!, rows = w.length / cols;
    const tall = rows >= cols;
    const n = tall ? cols : rows;
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) {
        let dot = 0;
        for (let k = 0; k < (tall ? rows : cols); k++) dot += tall ? w[k * cols + a]! * w[k * cols + b]! : w[a * cols + k]! * w[b * cols + k]!;
        expect(Math.abs(dot - (a === b ? 1 : 0))).toBeLessThan(1e-5);
      }
    }
  });
});
