// Attention and MultiHeadAttention against references written with TF.js ops (TF.js has neither layer), same
// weights: eager calls and compiled predict; a Transformer encoder block built from them trains through fit.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { expectClose, tf, toTf, uniform } from './helpers.js';

beforeEach(() => keras.backend.clearSession());
const L = keras.layers;

/** Keras 3's MultiHeadAttention (einsum form), weights in Keras order. */
function mhaRef(q: tf.Tensor, v: tf.Tensor, k: tf.Tensor, w: tf.Tensor[], keyDim: number): tf.Tensor {
  return tf.tidy(() => {
    const [qk, qb, kk, kb, vk, vb, ok, ob] = w as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    const query = tf.add(tf.einsum('abc,cde->abde', q, qk), qb);
    const key = tf.add(tf.einsum('abc,cde->abde', k, kk), kb);
    const value = tf.add(tf.einsum('abc,cde->abde', v, vk), vb);
    const scores = tf.einsum('aecd,abcd->acbe', key, tf.mul(query, 1 / Math.sqrt(keyDim)));
    const attn = tf.einsum('acbe,aecd->abcd', tf.softmax(scores, -1), value);
    return tf.add(tf.einsum('abcd,cde->abe', attn, ok), ob);
  });
}

describe('MultiHeadAttention equals the Keras formula', () => {
  const cases: [string, number, number, number | undefined, boolean][] = [
    ['self-attention, 2 heads of 3', 2, 3, undefined, true],
    ['cross-attention with a key, 3 heads, valueDim 2', 3, 4, 2, false],
  ];
  it.each(cases)('%s', (_name, numHeads, keyDim, valueDim, self) => {
    const q = uniform([2, 5, 6], 1), v = uniform([2, 4, 7], 2), k = uniform([2, 4, 5], 3);
    const mha = L.MultiHeadAttention({ numHeads, keyDim, valueDim });
    const inputs = self ? [q, q] : [q, v, k];
    mha(inputs);
    mha.setWeights(mha.weights.map((w, i) => uniform(w.shape, 20 + i, -0.7, 0.7)));
    expect(mha.weights.map((w) => w.name)).toEqual(['query/kernel', 'query/bias', 'key/kernel', 'key/bias', 'value/kernel', 'value/bias', 'attention_output/kernel', 'attention_output/bias']);
    const [tq, tv, tk] = self ? [q, q, q] : [q, v, k];
    const want = mhaRef(toTf(tq), toTf(tv), toTf(tk), mha.getWeights().map(toTf), keyDim);
    expectClose(mha(inputs), want);
    // compiled: a functional model of the same layer
    const qi = keras.Input({ shape: [5, 6] });
    const extra = self ? [] : [keras.Input({ shape: [4, 7] }), keras.Input({ shape: [4, 5] })];
    const layer = L.MultiHeadAttention({ numHeads, keyDim, valueDim });
    const model = keras.Model({ inputs: [qi, ...extra], outputs: layer(self ? [qi, qi] : [qi, ...extra]) });
    model.setWeights(mha.getWeights());
    expectClose(model.predict(self ? q : [q, v, k]) as keras.Tensor, want);
  });
});

describe('Attention', () => {
  it.each([false, true])('dot-product attention, useScale %s, equals softmax(q k^T) v', (useScale) => {
    const q = uniform([2, 3, 4], 4), v = uniform([2, 5, 6], 5), k = uniform([2, 5, 4], 6);
    const att = L.Attention({ useScale });
    att([q, v, k]);
    if (useScale) att.setWeights([keras.ops.array(0.7, 'float32')]);
    const scores = tf.matMul(toTf(q), toTf(k), false, true);
    const want = tf.matMul(tf.softmax(useScale ? tf.mul(scores, 0.7) : scores, -1), toTf(v));
    expectClose(att([q, v, k]), want);
    const inputs = [keras.Input({ shape: [3, 4] }), keras.Input({ shape: [5, 6] }), keras.Input({ shape: [5, 4] })];
    const model = keras.Model({ inputs, outputs: L.Attention({ useScale })(inputs) });
    model.setWeights(att.getWeights());
    expectClose(model.predict([q, v, k]) as keras.Tensor, want);
  });

  it('rejects a single input with the layer named', () => {
    expect(() => L.Attention()(uniform([2, 3, 4], 1) as never)).toThrow(/Attention takes a list \[query, value\]/);
  });
});

describe('a Transformer encoder block (MultiHeadAttention, residuals, LayerNormalization, feed-forward)', () => {
  it('trains with fit on the compiled backend and lowers its loss', () => {
    keras.utils.setRandomSeed(5);
    const x = keras.Input({ shape: [6, 8] });
    const attn = L.MultiHeadAttention({ numHeads: 2, keyDim: 4 })([x, x]);
    const h = L.LayerNormalization()(L.Add()([x, attn]));
    const ff = L.Dense(8)(L.Dense(16, { activation: 'relu' })(h));
    const y = L.Dense(3, { activation: 'softmax' })(L.GlobalAveragePooling1D()(L.LayerNormalization()(L.Add()([h, ff]))));
    const model = keras.Model({ inputs: x, outputs: y });
    model.compile({ optimizer: keras.optimizers.Adam({ learningRate: 0.01 }), loss: 'sparse_categorical_crossentropy' });
    const xs = uniform([32, 6, 8], 9);
    const labels = keras.ops.array(Array.from({ length: 32 }, (_, i) => i % 3), 'int32');
    const hist = model.fit(xs, labels, { epochs: 15, batchSize: 8, verbose: 0 });
    const loss = hist.history['loss']!;
    expect(loss[loss.length - 1]!).toBeLessThan(loss[0]! * 0.8);
  });
});

describe('MultiHeadAttention called as in Keras', () => {
  it('mha(query, value[, key]) equals mha([query, value, key]), concrete and symbolic', () => {
    const mha = keras.layers.MultiHeadAttention({ numHeads: 2, keyDim: 3 });
    const t = (shape: number[], k: number) => new keras.Tensor('float32', shape, Float32Array.from({ length: shape.reduce((a, b) => a * b) }, (_, i) => Math.sin(i * 0.3 + k)));
    const q = t([2, 4, 6], 0), v = t([2, 5, 6], 1), k = t([2, 5, 6], 2);
    expect(Array.from(mha(q, v).data)).toEqual(Array.from(mha([q, v]).data));
    expect(Array.from(mha(q, v, k, { training: false }).data)).toEqual(Array.from(mha([q, v, k]).data));
    expect(Array.from(mha(q, v, k).data)).not.toEqual(Array.from(mha(q, v).data));
    const qi = keras.Input({ shape: [4, 6] }), vi = keras.Input({ shape: [5, 6] });
    const model = keras.Model({ inputs: [qi, vi], outputs: mha(qi, vi) });
    expect(Array.from((model.predict([q, v], { verbose: 0 }) as keras.Tensor).data)).toEqual(Array.from(mha([q, v]).data));
  });
});
