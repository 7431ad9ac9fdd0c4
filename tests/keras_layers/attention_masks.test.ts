// MultiHeadAttention's masks against Keras 3's formula written with TF.js ops (TF.js has no such layer): attentionMask,
// useCausalMask, and the query/value masks carried from Embedding(maskZero); eager and compiled predict.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { expectClose, tf, toTf, uniform } from '../frontend/helpers.js';

beforeEach(() => keras.backend.clearSession());
const L = keras.layers;

/** Keras 3's MultiHeadAttention (einsum form) with a [b, tq, tk] mask: masked scores set to -1e9 before the softmax. */
function mhaRef(q: tf.Tensor, v: tf.Tensor, w: tf.Tensor[], keyDim: number, mask?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [qk, qb, kk, kb, vk, vb, ok, ob] = w as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    const query = tf.add(tf.einsum('abc,cde->abde', q, qk), qb);
    const key = tf.add(tf.einsum('abc,cde->abde', v, kk), kb);
    const value = tf.add(tf.einsum('abc,cde->abde', v, vk), vb);
    let scores = tf.einsum('aecd,abcd->acbe', key, tf.mul(query, 1 / Math.sqrt(keyDim)));
    if (mask) scores = tf.where(tf.expandDims(mask.cast('bool'), 1).broadcastTo(scores.shape), scores, tf.fill(scores.shape, -1e9));
    const attn = tf.einsum('acbe,aecd->abcd', tf.softmax(scores, -1), value);
    return tf.add(tf.einsum('abcd,cde->abe', attn, ok), ob);
  });
}

const q = uniform([2, 4, 6], 1), v = uniform([2, 5, 6], 2);
const setup = () => {
  const mha = L.MultiHeadAttention({ numHeads: 2, keyDim: 3 });
  mha(q, v);
  mha.setWeights(mha.weights.map((w, i) => uniform(w.shape, 20 + i, -0.7, 0.7)));
  return { mha, w: mha.getWeights().map(toTf) };
};

describe('MultiHeadAttention masks equal the Keras formula', () => {
  it('attentionMask [b, tq, tk], a fully masked row included', () => {
    const { mha, w } = setup();
    const am = tf.tensor3d(Array.from({ length: 2 * 4 * 5 }, (_, i) => (i % 3 === 0 || i >= 35 ? 0 : 1)), [2, 4, 5]);
    const want = mhaRef(toTf(q), toTf(v), w, 3, am);
    expectClose(mha(q, v, undefined, { attentionMask: keras.ops.reshape(keras.ops.cast(keras.ops.array(Array.from(am.dataSync())), 'bool'), [2, 4, 5]) }), want);
    expect(() => mha(q, v, undefined, { attentionMask: keras.ops.ones([2, 4, 4], 'bool') })).toThrow(/MultiHeadAttention\) failed: attentionMask must have shape \[2, 4, 5\]/);
  });

  it('useCausalMask, eager and compiled in a functional model', () => {
    const { mha, w } = setup();
    const x = uniform([2, 5, 6], 3);
    const causal = tf.linalg.bandPart(tf.ones([5, 5]), -1, 0).expandDims(0).tile([2, 1, 1]);
    const want = mhaRef(toTf(x), toTf(x), w, 3, causal);
    expectClose(mha(x, x, undefined, { useCausalMask: true }), want);
    const inp = keras.Input({ shape: [5, 6] });
    const layer = L.MultiHeadAttention({ numHeads: 2, keyDim: 3 });
    const model = keras.Model({ inputs: inp, outputs: layer(inp, inp, undefined, { useCausalMask: true }) });
    model.setWeights(mha.getWeights());
    expectClose(model.predict(x) as keras.Tensor, want);
  });

  it('query and value masks from Embedding(maskZero) with the causal mask, compiled', () => {
    const { mha, w } = setup();
    const ids = keras.ops.array([[3, 1, 4, 0, 0], [0, 2, 7, 1, 8]], 'float32');
    const inp = keras.Input({ shape: [5] });
    const emb = L.Embedding(10, 6, { maskZero: true });
    const e = emb(inp);
    const layer = L.MultiHeadAttention({ numHeads: 2, keyDim: 3 });
    const model = keras.Model({ inputs: inp, outputs: layer(e, e, undefined, { useCausalMask: true }) });
    model.setWeights([uniform([10, 6], 9), ...mha.getWeights()]);
    const x = tf.gather(toTf(model.getWeights()[0]!), toTf(ids).cast('int32'));
    const m = tf.notEqual(toTf(ids), 0);
    const mask = tf.logicalAnd(tf.logicalAnd(m.expandDims(2), m.expandDims(1)), tf.linalg.bandPart(tf.ones([5, 5]), -1, 0).cast('bool').expandDims(0));
    const want = mhaRef(x, x, w, 3, mask);
    expectClose(model(ids) as keras.Tensor, want);
    expectClose(model.predict(ids) as keras.Tensor, want);
  });
});

describe('Attention masks equal the Keras formula', () => {
  /** Keras 3's Attention (dot scores): masked value steps (and later steps, causal) lowered by 1e9; masked queries zero. */
  function attentionRef(q: tf.Tensor, v: tf.Tensor, qm: tf.Tensor, vm: tf.Tensor, causal: boolean): tf.Tensor {
    let keep = vm.cast('bool').expandDims(1);
    if (causal) keep = tf.logicalAnd(keep, tf.linalg.bandPart(tf.ones([q.shape[1]!, v.shape[1]!]), -1, 0).cast('bool').expandDims(0));
    const scores = tf.sub(tf.matMul(q, v, false, true), tf.mul(tf.logicalNot(keep).cast('float32'), 1e9));
    return tf.mul(tf.matMul(tf.softmax(scores, -1), v), qm.cast('float32').expandDims(-1));
  }

  it.each([false, true])('masks from Embedding(maskZero), useCausalMask=%s: eager and compiled', (useCausalMask) => {
    const ids = keras.ops.array([[3, 1, 4, 0, 0], [0, 2, 7, 1, 8]], 'float32');
    const inp = keras.Input({ shape: [5] });
    const e = L.Embedding(10, 4, { maskZero: true })(inp);
    const model = keras.Model({ inputs: inp, outputs: L.Attention()([e, e], { useCausalMask } as never) });
    model.setWeights([uniform([10, 4], 9)]);
    const x = tf.gather(toTf(model.getWeights()[0]!), toTf(ids).cast('int32'));
    const m = tf.notEqual(toTf(ids), 0);
    const want = attentionRef(x, x, m, m, useCausalMask);
    expectClose(model(ids) as keras.Tensor, want);
    expectClose(model.predict(ids) as keras.Tensor, want);
  });
});
