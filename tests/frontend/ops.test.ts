// keras.ops against TF.js ops: broadcasting, reductions, movement, matmul, softmax/logsumexp, where, oneHot, argmax.
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { expectClose, tf, toTf, uniform } from './helpers.js';

const ops = keras.ops;
type T = keras.Tensor;

// seeded inputs by shape; `pos` ones are in [0.5, 2) for log, sqrt and divisors
const x = (shape: number[], seed = 1): T => uniform(shape, seed, -3, 3);
const pos = (shape: number[], seed = 2): T => uniform(shape, seed, 0.5, 2);

/** tf.matMul after broadcasting the batch dimensions explicitly (TF.js 4.22's cpu matMul gets [2,1,3,4] @ [5,4,2] wrong). */
function bmm(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const batch = tf.broadcastArgs(tf.tensor1d(a.shape.slice(0, -2), 'int32'), tf.tensor1d(b.shape.slice(0, -2), 'int32')).arraySync() as number[];
  return tf.matMul(tf.broadcastTo(a, [...batch, ...a.shape.slice(-2)]), tf.broadcastTo(b, [...batch, ...b.shape.slice(-2)]));
}

/** [name, inputs, kiln op, TF.js reference op] */
type Case = [string, T[], (...a: T[]) => T, (...a: tf.Tensor[]) => tf.Tensor];

const binary: Case[] = [
  ['add same shape', [x([2, 3]), x([2, 3], 2)], ops.add, tf.add],
  ['add [2,3,4] + [4]', [x([2, 3, 4]), x([4], 2)], ops.add, tf.add],
  ['add [3,1] + [1,4]', [x([3, 1]), x([1, 4], 2)], ops.add, tf.add],
  ['subtract [4] - [2,3,4]', [x([4]), x([2, 3, 4], 2)], ops.subtract, tf.sub],
  ['multiply [2,1,4] * [3,1]', [x([2, 1, 4]), x([3, 1], 2)], ops.multiply, tf.mul],
  ['divide [2,3] / [3]', [x([2, 3]), pos([3])], ops.divide, tf.div],
  ['divide [3,1] / [1,3]', [x([3, 1]), pos([1, 3])], ops.divide, tf.div],
  ['maximum with broadcast', [x([2, 3]), x([3], 2)], ops.maximum, tf.maximum],
  ['minimum with broadcast', [x([2, 3]), x([2, 1], 2)], ops.minimum, tf.minimum],
  ['power', [pos([2, 3]), x([3], 2)], ops.power, tf.pow],
  ['matmul [3,4] @ [4,5]', [x([3, 4]), x([4, 5], 2)], ops.matmul, (a, b) => tf.matMul(a!, b!)],
  ['matmul batched [2,3,4] @ [2,4,5]', [x([2, 3, 4]), x([2, 4, 5], 2)], ops.matmul, (a, b) => tf.matMul(a!, b!)],
  ['matmul broadcast [2,1,3,4] @ [5,4,2]', [x([2, 1, 3, 4]), x([5, 4, 2], 2)], ops.matmul, bmm],
  ['matmul broadcast [3,4] @ [2,4,5]', [x([3, 4]), x([2, 4, 5], 2)], ops.matmul, bmm],
  ['matmul broadcast [2,3,4] @ [4,5]', [x([2, 3, 4]), x([4, 5], 2)], ops.matmul, bmm],
  ['matmul vector [4] @ [4,5]', [x([4]), x([4, 5], 2)], ops.matmul, tf.dot],
  ['matmul vector [3,4] @ [4]', [x([3, 4]), x([4], 2)], ops.matmul, tf.dot],
  ['matmul vector [4] @ [4]', [x([4]), x([4], 2)], ops.matmul, tf.dot],
];

const unary: Case[] = [
  ['exp', [x([2, 3])], ops.exp, tf.exp],
  ['log', [pos([2, 3])], ops.log, tf.log],
  ['sqrt', [pos([2, 3])], ops.sqrt, tf.sqrt],
  ['tanh', [x([2, 3])], ops.tanh, tf.tanh],
  ['abs', [x([2, 3])], ops.abs, tf.abs],
  ['negative', [x([2, 3])], ops.negative, tf.neg],
  ['square', [x([2, 3])], ops.square, tf.square],
  ['log1p', [pos([2, 3])], ops.log1p, tf.log1p],
  ['expm1', [x([2, 3])], ops.expm1, tf.expm1],
];

const reductions: Case[] = [];
for (const [name, kop, top] of [
  ['sum', ops.sum, tf.sum], ['mean', ops.mean, tf.mean], ['max', ops.max, tf.max], ['min', ops.min, tf.min],
  ['logsumexp', ops.logsumexp, tf.logSumExp],
] as const) {
  for (const axis of [null, 0, -1, 1, [0, 2], [-1, 0, 1]] as const) {
    for (const keepdims of [false, true]) {
      reductions.push([
        `${name} axis=${JSON.stringify(axis)} keepdims=${keepdims}`, [x([2, 3, 4])],
        (t) => kop(t, { axis, keepdims }), (t) => top(t, axis === null ? undefined : [...(Array.isArray(axis) ? axis : [axis])], keepdims),
      ]);
    }
  }
}

const movement: Case[] = [
  ['transpose (reverse)', [x([2, 3, 4])], (t) => ops.transpose(t), (t) => tf.transpose(t)],
  ['transpose [1,0,2]', [x([2, 3, 4])], (t) => ops.transpose(t, [1, 0, 2]), (t) => tf.transpose(t, [1, 0, 2])],
  ['transpose negative axes', [x([2, 3, 4])], (t) => ops.transpose(t, [-1, 0, 1]), (t) => tf.transpose(t, [2, 0, 1])],
  ['reshape [4,-1]', [x([2, 3, 4])], (t) => ops.reshape(t, [4, -1]), (t) => tf.reshape(t, [4, -1])],
  ['reshape [24]', [x([2, 3, 4])], (t) => ops.reshape(t, [24]), (t) => tf.reshape(t, [24])],
  ['concatenate axis -1', [x([2, 3]), x([2, 2], 2), x([2, 1], 3)], (...t) => ops.concatenate(t), (...t) => tf.concat(t, -1)],
  ['concatenate axis 0', [x([2, 3]), x([1, 3], 2)], (...t) => ops.concatenate(t, 0), (...t) => tf.concat(t, 0)],
  ['concatenate axis 1 of rank 3', [x([2, 1, 3]), x([2, 2, 3], 2)], (...t) => ops.concatenate(t, 1), (...t) => tf.concat(t, 1)],
  ['stack axis 1', [x([2, 3]), x([2, 3], 2)], (...t) => ops.stack(t, 1), (...t) => tf.stack(t, 1)],
  ['expandDims -1', [x([2, 3])], (t) => ops.expandDims(t, -1), (t) => tf.expandDims(t, -1)],
  ['squeeze', [x([2, 1, 3])], (t) => ops.squeeze(t), (t) => tf.squeeze(t)],
];

const nn: Case[] = [
  ['softmax last axis', [x([2, 3, 4])], (t) => ops.softmax(t), (t) => tf.softmax(t)],
  ['softmax axis 0', [x([3, 4])], (t) => ops.softmax(t, 0), (t) => tf.transpose(tf.softmax(tf.transpose(t)))],
  ['logSoftmax', [x([2, 5])], (t) => ops.logSoftmax(t), (t) => tf.logSoftmax(t)],
  ['logsumexp of large values', [ops.multiply(x([2, 3]), 1000)], (t) => ops.logsumexp(t, { axis: -1 }), (t) => tf.logSumExp(t, -1)],
  ['where with broadcast', [ops.greater(x([3]), 0), x([2, 3], 2), x([1, 3], 3)], ops.where, (c, a, b) => tf.where(c!, a!, b!)],
  ['where [2,1] condition', [ops.greater(x([2, 1]), 0), x([2, 3], 2), x([2, 3], 3)], ops.where, (c, a, b) => tf.where(tf.broadcastTo(c!, [2, 3]), a!, b!)],
  ['gelu (keras.ops default: approximate)', [x([2, 5])], (t) => ops.gelu(t),
    (t) => tf.mul(tf.mul(t, 0.5), tf.add(tf.tanh(tf.mul(tf.add(t, tf.mul(tf.pow(t, 3), 0.044715)), Math.sqrt(2 / Math.PI))), 1))],
];

// NaN, ±inf, zero, negatives and tiny/huge magnitudes; and empty shapes
const specials = ops.array([0, -0, -1, 1, Infinity, -Infinity, NaN, 1e-30, 1e30], 'float32');
const special: Case[] = [
  ...([['exp', ops.exp, tf.exp], ['log', ops.log, tf.log], ['sqrt', ops.sqrt, tf.sqrt], ['tanh', ops.tanh, tf.tanh],
    ['abs', ops.abs, tf.abs], ['relu', ops.relu, tf.relu], ['sigmoid', ops.sigmoid, tf.sigmoid]] as const)
    .map(([n, k, t]): Case => [`${n} of special values`, [specials], k, (a) => t(a!)]),
  ['add of special values', [specials, ops.array([Infinity], 'float32')], ops.add, tf.add],
  ['max with NaN propagates', [ops.array([[1, NaN, 3], [4, 5, 6]], 'float32')], (t) => ops.max(t, { axis: 1 }), (t) => tf.max(t, 1)],
  ['sum over an empty axis', [ops.zeros([0, 3])], (t) => ops.sum(t, { axis: 0 }), (t) => tf.sum(t, 0)],
  ['matmul with an empty inner dimension', [ops.zeros([2, 0]), ops.zeros([0, 3])], ops.matmul, (a, b) => tf.matMul(a!, b!)],
  ['concatenate with an empty part', [x([2, 3]), ops.zeros([0, 3])], (...t) => ops.concatenate(t, 0), (...t) => tf.concat(t, 0)],
];

describe.each([
  ['special values and empty shapes', special],
  ['binary and matmul', binary], ['unary', unary], ['reductions', reductions], ['movement', movement], ['nn', nn],
] as const)('%s', (_group, cases) => {
  it.each(cases)('%s', (_name, inputs, kop, top) => {
    expectClose(kop(...inputs), top(...inputs.map(toTf)));
  });
});

describe('integer ops', () => {
  const a = ops.array([[1, 2], [3, 4]]), b = ops.array([[5, 6], [7, 8]]);
  it.each([
    ['add', ops.add, tf.add, 'int32'], ['subtract', ops.subtract, tf.sub, 'int32'], ['multiply', ops.multiply, tf.mul, 'int32'],
    ['matmul', ops.matmul, (a: tf.Tensor, b: tf.Tensor) => tf.matMul(a, b), 'int32'], ['divide', ops.divide, tf.div, 'float32'],
  ] as const)('%s of int32 tensors', (_n, kop, top, dtype) => {
    const y = kop(a, b);
    expect(y.dtype).toBe(dtype); // Keras: true division of integers gives float
    expectClose(y, top(tf.cast(toTf(a), dtype), tf.cast(toTf(b), dtype)));
  });

  it('mean of int32 is float32; sum keeps int32', () => {
    expect(ops.mean(a).dtype).toBe('float32');
    expect(ops.sum(a).dtype).toBe('int32');
  });

  it('a JS number next to a tensor takes the tensor dtype (weak typing)', () => {
    expect(ops.add(a, 1).dtype).toBe('int32');
    expect(ops.add(a, 0.5).dtype).toBe('float32');
    expect(ops.multiply(x([2]), 2).dtype).toBe('float32');
  });
});

describe('oneHot and argmax', () => {
  it.each([[[0, 2, 1, 3]], [[[1, 0], [2, 2]]]])('oneHot(%j, 4)', (labels) => {
    const y = ops.oneHot(ops.array(labels), 4);
    expect(y.dtype).toBe('float32');
    expectClose(y, tf.oneHot(tf.tensor(labels.flat(), [labels.flat().length], 'int32'), 4).reshape(y.shape));
  });

  const m = ops.array([[1, 5, 5, 0], [7, 2, 7, 3], [0, 0, -1, 9]]); // ties: the first index wins, as in NumPy and TF
  it.each([[0], [1], [-1]])('argmax axis %d', (axis) => {
    const y = ops.argmax(m, axis);
    expect(y.dtype).toBe('int32');
    expectClose(y, tf.argMax(toTf(m), axis));
  });

  it('argmax without axis indexes the flattened tensor, like Keras', () => {
    expectClose(ops.argmax(m), tf.argMax(tf.reshape(toTf(m), [-1])));
    expectClose(ops.argmax(x([3, 4]), -1), tf.argMax(toTf(x([3, 4])), -1));
  });

  it('argmin', () => {
    expectClose(ops.argmin(m, 1), tf.argMin(toTf(m), 1));
  });
});

describe('shape errors', () => {
  it.each([
    ['add', () => ops.add(x([2, 3]), x([4])), /add: shapes \[2,3\] and \[4\] do not broadcast/],
    ['matmul', () => ops.matmul(x([2, 3]), x([4, 5])), /matmul: inner dimensions do not match/],
    ['reshape', () => ops.reshape(x([2, 3]), [4, -1]), /cannot reshape/],
    ['transpose axis', () => ops.sum(x([2, 3]), { axis: 2 }), /axis 2 is out of range for rank 2/],
  ])('%s', (_n, fn, message) => {
    expect(fn).toThrow(message);
  });
});
