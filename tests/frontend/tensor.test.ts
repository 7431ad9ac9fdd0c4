// The tensor API: keras.ops.array dtype inference, shape/dtype/data/toArray, and NumPy-style printing.
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';

const ops = keras.ops;

describe('keras.ops.array dtype inference (as Keras)', () => {
  it.each([
    ['nested integers', [[1, 2, 3], [4, 5, 6]], 'int32', [2, 3]],
    ['a float among integers', [1.5, 2], 'float32', [2]],
    ['booleans', [true, false], 'bool', [2]],
    ['nested booleans', [[true], [false]], 'bool', [2, 1]],
    ['booleans mixed with numbers', [true, 2], 'int32', [2]],
    ['an integer scalar', 5, 'int32', []],
    ['a float scalar', 2.5, 'float32', []],
    ['a boolean scalar', true, 'bool', []],
    ['an empty list', [], 'float32', [0]],
    ['int32 limits', [2147483647, -2147483648], 'int32', [2]],
    ['integers beyond int32', [1e30, 1], 'float32', [2]],
    ['a Float32Array', Float32Array.of(1, 2), 'float32', [2]],
    ['an Int32Array', Int32Array.of(1, 2, 3), 'int32', [3]],
    ['a Uint8Array (bool storage)', Uint8Array.of(1, 0), 'bool', [2]],
  ] as const)('%s -> %s', (_name, values, dtype, shape) => {
    const t = ops.array(values as keras.ops.TensorLike);
    expect(t.dtype).toBe(dtype);
    expect(t.shape).toEqual(shape);
  });

  it('an explicit dtype wins; float to int truncates toward zero as NumPy casts', () => {
    expect(ops.array([1, 2], 'float32').data).toEqual(Float32Array.of(1, 2));
    expect(ops.array([1.7, -2.7], 'int32').data).toEqual(Int32Array.of(1, -2));
    expect(ops.array(Int32Array.of(1, 2), 'float32').dtype).toBe('float32');
  });

  it('rejects ragged nesting', () => {
    expect(() => ops.array([[1, 2], [3]])).toThrow(/ragged/);
  });
});

describe('tensor accessors', () => {
  const x = ops.array([[1, 2, 3], [4, 5, 6]]);

  it('shape, dtype, rank, size and keras.ops.shape/ndim/size (seed: 张量操作)', () => {
    expect(x.shape).toEqual([2, 3]);
    expect(x.dtype).toBe('int32');
    expect(ops.shape(x)).toEqual([2, 3]);
    expect(ops.ndim(x)).toBe(2);
    expect(ops.size(x)).toBe(6);
    expect(ops.ndim(ops.array(5))).toBe(0);
  });

  it('data is the row-major typed array', () => {
    expect(x.data).toBeInstanceOf(Int32Array);
    expect(Array.from(x.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(ops.array([0.5]).data).toBeInstanceOf(Float32Array);
    expect(ops.array([true]).data).toBeInstanceOf(Uint8Array);
  });

  it.each([
    [[[1, 2, 3], [4, 5, 6]]], [[[[1.5]], [[-2.5]]]], [[true, false]], [7], [2.5], [[]],
  ])('toArray() gives back %j', (values) => {
    expect(ops.array(values).toArray()).toEqual(values);
  });

  it('item() of a one-element tensor', () => {
    expect(ops.mean(ops.array([[1, 2], [3, 4]])).item()).toBe(2.5);
    expect(() => x.item()).toThrow(/one-element/);
  });
});

/** What NumPy 2 prints (str(np.array(values, dtype))) for each case. */
const printed: [string, keras.Tensor, string][] = [
  ['int matrix', ops.array([[1, 2, 3], [4, 5, 6]]), '[[1 2 3]\n [4 5 6]]'],
  ['float matrix', ops.array([[1, 2], [3, 4]], 'float32'), '[[1. 2.]\n [3. 4.]]'],
  ['floats with padding on the right', ops.array([0.5, 0.25]), '[0.5  0.25]'],
  ['scalar mean', ops.mean(ops.array([[1, 2], [3, 4]])), '2.5'],
  ['integral float scalar', ops.sum(ops.array([[1, 2], [3, 4]], 'float32')), '10.0'],
  ['int scalar', ops.array(7), '7'],
  ['bools', ops.array([true, false]), '[ True False]'],
  ['all true', ops.array([true, true]), '[ True  True]'],
  ['bool scalar', ops.array(true), 'True'],
  ['negative ints', ops.array([[1, -2], [30, 4]]), '[[ 1 -2]\n [30  4]]'],
  ['mixed signs and decimals', ops.array([1.5, -2.25, 3]), '[ 1.5  -2.25  3.  ]'],
  ['rank 3', ops.reshape(ops.arange(8), [2, 2, 2]), '[[[0 1]\n  [2 3]]\n\n [[4 5]\n  [6 7]]]'],
  ['small values in scientific notation', ops.array([1e-5, 1]), '[1.e-05 1.e+00]'],
  ['a wide range in scientific notation', ops.array([1, 2000], 'float32'), '[1.e+00 2.e+03]'],
  ['a range of 1000 stays positional', ops.array([1, 1000], 'float32'), '[   1. 1000.]'],
  ['float32 round-trip digits', ops.divide(ops.array([1, 2]), 3), '[0.33333334 0.6666667 ]'],
  ['nan and inf', ops.array([NaN, Infinity, -Infinity, 1.5]), '[ nan  inf -inf  1.5]'],
  ['scalar in scientific notation', ops.array(1e-5), '1e-05'],
  ['empty', ops.array([]), '[]'],
  ['a long row wraps at 75 columns', ops.arange(30),
    '[ 0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15 16 17 18 19 20 21 22 23\n 24 25 26 27 28 29]'],
  ['over 1000 elements are summarized', ops.arange(1001), '[   0    1    2 ...  998  999 1000]'],
];

describe('printing like NumPy', () => {
  it.each(printed)('%s', (_name, t, want) => {
    expect(String(t)).toBe(want);
    expect(`${t}`).toBe(want);
  });

  it('a variable prints like a Keras 3 Variable', () => {
    const dense = keras.layers.Dense(2, { name: 'd' });
    dense.build([null, 1]);
    dense.setWeights([[[1, 2]], [0, 0]]);
    expect(String(dense.kernel)).toBe('<Variable path=d/kernel, shape=(1, 2), dtype=float32, value=[[1. 2.]]>');
    expect(String(dense.bias)).toBe('<Variable path=d/bias, shape=(2,), dtype=float32, value=[0. 0.]>');
  });
});
