// keras.activations against TF.js: the functions, their string names in Activation layers, and extreme inputs.
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { expectClose, tf, toTf, uniform } from './helpers.js';

type Fn = (x: keras.Tensor) => keras.Tensor;
type TfFn = (x: tf.Tensor) => tf.Tensor;

/** Inputs: a random batch plus the edges (±100 saturates sigmoid/tanh/softmax, ±3 bounds hard_sigmoid, 0 and ±6 bound relu6). */
const edges = keras.ops.array([[-100, -30, -6, -3, -2.5, -1, -1e-3, 0], [1e-3, 0.5, 1, 2.5, 3, 6, 30, 100]]);
const inputs: [string, keras.Tensor][] = [['random', uniform([4, 7], 3, -5, 5)], ['edges', edges]];

/** [Keras name, keras.activations function, TF.js reference, TF.js layers activation name if it has one]. */
const cases: [string, Fn, TfFn, string | undefined][] = [
  ['relu', keras.activations.relu, (x) => tf.relu(x), 'relu'],
  ['relu6', keras.activations.relu6, (x) => tf.relu6(x), 'relu6'],
  ['sigmoid', keras.activations.sigmoid, (x) => tf.sigmoid(x), 'sigmoid'],
  ['tanh', keras.activations.tanh, (x) => tf.tanh(x), 'tanh'],
  ['softmax', (x) => keras.activations.softmax(x), (x) => tf.softmax(x), 'softmax'],
  ['log_softmax', (x) => keras.activations.logSoftmax(x), (x) => tf.logSoftmax(x), undefined],
  ['elu', (x) => keras.activations.elu(x), (x) => tf.elu(x), 'elu'],
  ['selu', keras.activations.selu, (x) => tf.selu(x), 'selu'],
  ['softplus', keras.activations.softplus, (x) => tf.softplus(x), 'softplus'],
  ['softsign', keras.activations.softsign, (x) => tf.div(x, tf.add(tf.abs(x), 1)), 'softsign'],
  ['linear', keras.activations.linear, (x) => x, 'linear'],
  // Keras 3: hard_sigmoid(x) = relu6(x + 3) / 6 (TF.js's own hardSigmoid is the Keras 2 form 0.2x + 0.5)
  ['hard_sigmoid', keras.activations.hardSigmoid, (x) => tf.div(tf.relu6(tf.add(x, 3)), 6), undefined],
  ['silu', keras.activations.silu, (x) => tf.mul(x, tf.sigmoid(x)), 'swish'],
  ['swish', keras.activations.swish, (x) => tf.mul(x, tf.sigmoid(x)), 'swish'],
  ['leaky_relu', (x) => keras.activations.leakyRelu(x), (x) => tf.leakyRelu(x, 0.2), undefined],
  ['exponential', keras.activations.exponential, (x) => tf.exp(x), undefined],
  // Keras 3 activations.gelu defaults to the exact (erf) form
  ['gelu', (x) => keras.activations.gelu(x), (x) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.div(x, Math.SQRT2)), 1)), undefined],
  ['gelu (approximate)', (x) => keras.activations.gelu(x, true),
    (x) => tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI))), 1)), undefined],
];

describe.each(cases)('%s', (name, fn, ref) => {
  it.each(inputs)('keras.activations on %s inputs', (_, x) => {
    const y = fn(x);
    expectClose(y, ref(toTf(x)));
    expect(y.dtype).toBe('float32');
  });
});

describe('Activation layers by Keras name', () => {
  const x = inputs[0]![1];
  it.each(cases.filter(([name]) => !name.includes(' ')))('Activation(%s)', (name, _fn, ref) => {
    expectClose(keras.layers.Activation(name)(x), ref(toTf(x)));
  });

  it.each(cases.filter(([, , , tfName]) => tfName !== undefined))('Activation(%s) equals tf.layers.activation', (name, _fn, _ref, tfName) => {
    const layer = tf.layers.activation({ activation: tfName as 'relu' });
    expectClose(keras.layers.Activation(name)(x), layer.apply(toTf(x)) as tf.Tensor);
  });
});

describe('extreme inputs', () => {
  it('sigmoid(±100) is exactly 1 and a non-negative tiny value, never NaN', () => {
    const y = keras.activations.sigmoid(keras.ops.array([-100, 100, -1000, 1000])).data;
    expect(y[1]).toBe(1);
    expect(y[3]).toBe(1);
    for (const v of [y[0]!, y[2]!]) expect(v >= 0 && v < 1e-40).toBe(true);
  });

  it('softmax of huge logits is finite and sums to 1', () => {
    const y = keras.activations.softmax(keras.ops.array([[1000, 1000, -1000], [-1e30, 0, 1e30]], 'float32'));
    expectClose(y, tf.tensor([[0.5, 0.5, 0], [0, 0, 1]]));
  });

  it('softplus(±100) and elu(-100)', () => {
    expectClose(keras.activations.softplus(keras.ops.array([-100, 100])), tf.tensor([0, 100]));
    expectClose(keras.activations.elu(keras.ops.array([-100])), tf.tensor([-1]));
  });
});

describe('keras.activations.get and serialize', () => {
  it.each(['relu', 'sigmoid', 'softmax', 'tanh', 'linear', 'hard_sigmoid', 'selu', 'elu'])('%s round-trips', (name) => {
    const layer = keras.layers.Dense(2, { activation: name });
    expect(layer.getConfig()['activation']).toBe(name);
  });

  it('null and undefined mean linear; unknown names fail with the known list', () => {
    expect(keras.activations.get(null)).toBe(keras.activations.linear);
    expect(() => keras.activations.get('relux')).toThrow(/unknown activation 'relux'.*relu/);
  });
});
