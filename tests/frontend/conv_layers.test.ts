// Conv, pooling and normalization layers against TF.js layers with the same weights: eager calls and compiled predict.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { expectClose, tf, toTf, uniform } from './helpers.js';

beforeEach(() => keras.backend.clearSession());

type KLayer = keras.layers.Layer;
interface Case {
  name: string;
  /** Input shape, batch included. */
  shape: number[];
  kiln: (o: { inputShape?: number[] }) => KLayer;
  tf: () => tf.layers.Layer;
  /** A reference from TF.js ops instead, where the TF.js layer lacks the feature or gets it wrong (weights in Keras order). */
  ref?: (x: tf.Tensor, w: tf.Tensor[]) => tf.Tensor;
  training?: boolean;
  /** Replaces the initial weights by random ones (so zeros/ones initializers do not hide mistakes). */
  randomWeights?: boolean;
}

const conv = (name: string, shape: number[], k: Case['kiln'], t: Case['tf']): Case => ({ name, shape, kiln: k, tf: t, randomWeights: true });
const L = keras.layers;

/** Batch normalization from TF.js ops: (x - mean) / sqrt(var + eps) * gamma + beta, parameters over `axis`. */
function bnRef(axis: number, eps: number, training: boolean, center = true, scale = true) {
  return (x: tf.Tensor, w: tf.Tensor[]): tf.Tensor => {
    const shape = x.shape.map((d, i) => (i === axis ? d : 1));
    const ws = [...w];
    const g = scale ? ws.shift()! : undefined, b = center ? ws.shift()! : undefined;
    let [m, v] = ws.map((t) => t.reshape(shape));
    if (training) {
      const mo = tf.moments(x, x.shape.map((_, i) => i).filter((i) => i !== axis), true);
      [m, v] = [mo.mean, mo.variance];
    }
    let y = tf.div(tf.sub(x, m!), tf.sqrt(tf.add(v!, eps)));
    if (g) y = tf.mul(y, g.reshape(shape));
    if (b) y = tf.add(y, b.reshape(shape));
    return y;
  };
}

const cases: Case[] = [
  conv('Conv1D valid', [2, 9, 3], (o) => L.Conv1D(4, 3, o), () => tf.layers.conv1d({ filters: 4, kernelSize: 3 })),
  conv('Conv1D same stride 2 relu', [2, 10, 3], (o) => L.Conv1D(5, 4, { ...o, strides: 2, padding: 'same', activation: 'relu' }),
    () => tf.layers.conv1d({ filters: 5, kernelSize: 4, strides: 2, padding: 'same', activation: 'relu' })),
  conv('Conv1D dilation 2 same', [2, 11, 2], (o) => L.Conv1D(3, 3, { ...o, dilationRate: 2, padding: 'same' }),
    () => tf.layers.conv1d({ filters: 3, kernelSize: 3, dilationRate: 2, padding: 'same' })),
  { // TF.js layers do not implement causal padding: left-pad by (k-1)*d, then a valid convolution
    ...conv('Conv1D causal dilation 2', [2, 8, 2], (o) => L.Conv1D(3, 3, { ...o, padding: 'causal', dilationRate: 2 }),
      () => tf.layers.conv1d({ filters: 3, kernelSize: 3, dilationRate: 2 })),
    ref: (x, [k, b]) => tf.add(tf.conv1d(tf.pad(x, [[0, 0], [4, 0], [0, 0]]) as tf.Tensor3D, k as tf.Tensor3D, 1, 'valid', 'NWC', 2), b!),
  },
  conv('Conv2D valid 3x3', [2, 7, 6, 3], (o) => L.Conv2D(4, 3, o), () => tf.layers.conv2d({ filters: 4, kernelSize: 3 })),
  conv('Conv2D same 3x3 relu', [2, 7, 6, 3], (o) => L.Conv2D(8, 3, { ...o, padding: 'same', activation: 'relu' }),
    () => tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' })),
  conv('Conv2D same 2x3 strides [2, 3]', [2, 9, 10, 2], (o) => L.Conv2D(4, [2, 3], { ...o, strides: [2, 3], padding: 'same' }),
    () => tf.layers.conv2d({ filters: 4, kernelSize: [2, 3], strides: [2, 3], padding: 'same' })),
  conv('Conv2D valid 4x4 stride 2 no bias', [2, 10, 9, 3], (o) => L.Conv2D(3, 4, { ...o, strides: 2, useBias: false }),
    () => tf.layers.conv2d({ filters: 3, kernelSize: 4, strides: 2, useBias: false })),
  conv('Conv2D dilation 2 same', [1, 9, 8, 2], (o) => L.Conv2D(3, 3, { ...o, dilationRate: 2, padding: 'same' }),
    () => tf.layers.conv2d({ filters: 3, kernelSize: 3, dilationRate: 2, padding: 'same' })),
  conv('Conv2D dilation [2, 1] valid', [1, 9, 8, 2], (o) => L.Conv2D(3, 3, { ...o, dilationRate: [2, 1] }),
    () => tf.layers.conv2d({ filters: 3, kernelSize: 3, dilationRate: [2, 1] })),
  conv('Conv3D valid', [2, 5, 6, 4, 2], (o) => L.Conv3D(3, [2, 3, 2], o), () => tf.layers.conv3d({ filters: 3, kernelSize: [2, 3, 2] })),
  conv('Conv3D same stride 2 tanh', [1, 6, 5, 7, 2], (o) => L.Conv3D(4, 3, { ...o, strides: 2, padding: 'same', activation: 'tanh' }),
    () => tf.layers.conv3d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'tanh' })),
  { name: 'MaxPooling1D 2', shape: [2, 9, 3], kiln: (o) => L.MaxPooling1D(2, o), tf: () => tf.layers.maxPooling1d({ poolSize: 2 }) },
  { name: 'MaxPooling1D 3 stride 2 same', shape: [2, 10, 3], kiln: (o) => L.MaxPooling1D(3, { ...o, strides: 2, padding: 'same' }),
    tf: () => tf.layers.maxPooling1d({ poolSize: 3, strides: 2, padding: 'same' }) },
  { name: 'AveragePooling1D 3 stride 2 same', shape: [2, 10, 3], kiln: (o) => L.AveragePooling1D(3, { ...o, strides: 2, padding: 'same' }),
    tf: () => tf.layers.averagePooling1d({ poolSize: 3, strides: 2, padding: 'same' }) },
  { name: 'MaxPooling2D 2', shape: [2, 7, 8, 3], kiln: (o) => L.MaxPooling2D(2, o), tf: () => tf.layers.maxPooling2d({ poolSize: 2 }) },
  { name: 'MaxPooling2D 3 stride 2 same', shape: [2, 7, 8, 3], kiln: (o) => L.MaxPooling2D(3, { ...o, strides: 2, padding: 'same' }),
    tf: () => tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }) },
  { name: 'AveragePooling2D 2', shape: [2, 7, 8, 3], kiln: (o) => L.AveragePooling2D(2, o), tf: () => tf.layers.averagePooling2d({ poolSize: 2 }) },
  { name: 'AveragePooling2D [3, 2] strides 1 same', shape: [2, 5, 6, 2], kiln: (o) => L.AveragePooling2D([3, 2], { ...o, strides: 1, padding: 'same' }),
    tf: () => tf.layers.averagePooling2d({ poolSize: [3, 2], strides: 1, padding: 'same' }) },
  { name: 'AveragePooling2D 3 stride 2 same', shape: [2, 7, 8, 3], kiln: (o) => L.AveragePooling2D(3, { ...o, strides: 2, padding: 'same' }),
    tf: () => tf.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same' }) },
  { name: 'MaxPooling3D 2', shape: [2, 4, 5, 4, 2], kiln: (o) => L.MaxPooling3D(2, o), tf: () => tf.layers.maxPooling3d({ poolSize: 2 }) },
  { name: 'AveragePooling3D 2 same', shape: [2, 5, 5, 3, 2], kiln: (o) => L.AveragePooling3D(2, { ...o, padding: 'same' }),
    tf: () => tf.layers.averagePooling3d({ poolSize: 2, padding: 'same' }) },
  { name: 'GlobalAveragePooling1D', shape: [3, 7, 4], kiln: (o) => L.GlobalAveragePooling1D(o), tf: () => tf.layers.globalAveragePooling1d() },
  { name: 'GlobalMaxPooling1D', shape: [3, 7, 4], kiln: (o) => L.GlobalMaxPooling1D(o), tf: () => tf.layers.globalMaxPooling1d() },
  { name: 'GlobalAveragePooling2D', shape: [3, 5, 6, 4], kiln: (o) => L.GlobalAveragePooling2D(o), tf: () => tf.layers.globalAveragePooling2d({}) },
  { name: 'GlobalMaxPooling2D', shape: [3, 5, 6, 4], kiln: (o) => L.GlobalMaxPooling2D(o), tf: () => tf.layers.globalMaxPooling2d({}) },
  { name: 'BatchNormalization inference', shape: [4, 5, 6], kiln: (o) => L.BatchNormalization(o), tf: () => tf.layers.batchNormalization({}), randomWeights: true },
  { name: 'BatchNormalization axis 1 inference', shape: [4, 5, 6], kiln: (o) => L.BatchNormalization({ ...o, axis: 1, epsilon: 0.01 }),
    // TF.js's layer broadcasts its parameters wrongly for a non-last axis (the reference is built from TF.js ops)
    tf: () => tf.layers.batchNormalization({ axis: 1, epsilon: 0.01 }), ref: bnRef(1, 0.01, false), randomWeights: true },
  { name: 'BatchNormalization axis 1 training', shape: [4, 5, 6], kiln: (o) => L.BatchNormalization({ ...o, axis: 1 }),
    tf: () => tf.layers.batchNormalization({ axis: 1 }), ref: bnRef(1, 1e-3, true), randomWeights: true, training: true },
  { name: 'BatchNormalization training (batch statistics)', shape: [6, 3, 4, 5], kiln: (o) => L.BatchNormalization(o),
    tf: () => tf.layers.batchNormalization({}), randomWeights: true, training: true },
  { name: 'BatchNormalization no center/scale, training', shape: [6, 5], kiln: (o) => L.BatchNormalization({ ...o, center: false, scale: false }),
    // TF.js's layer fails in training without gamma and beta
    tf: () => tf.layers.batchNormalization({ center: false, scale: false }), ref: bnRef(1, 1e-3, true, false, false), randomWeights: true, training: true },
  { name: 'LayerNormalization', shape: [3, 4, 6], kiln: (o) => L.LayerNormalization(o), tf: () => tf.layers.layerNormalization({}), randomWeights: true },
  { name: 'LayerNormalization axes [1, 2] epsilon 1e-5', shape: [3, 4, 6], kiln: (o) => L.LayerNormalization({ ...o, axis: [1, 2], epsilon: 1e-5 }),
    tf: () => tf.layers.layerNormalization({ axis: [1, 2], epsilon: 1e-5 }), randomWeights: true },
];

/** Random weights of the layer's shapes; variances (moving_variance) kept positive. */
function randomize(layer: KLayer, seed: number): void {
  layer.setWeights(layer.weights.map((w, i) => uniform(w.shape, seed + i, w.name === 'moving_variance' ? 0.2 : -1, 1.5)));
}

describe.each(cases)('$name equals TF.js', (c) => {
  const setup = () => {
    keras.utils.setRandomSeed(3);
    const x = uniform(c.shape, 11, -2, 2);
    const layer = c.kiln({});
    layer(x); // builds
    if (c.randomWeights) randomize(layer, 40);
    const ref = c.tf();
    ref.apply(toTf(x)); // builds
    expect(layer.getWeights().map((w) => w.shape)).toEqual(ref.getWeights().map((w) => w.shape));
    ref.setWeights(layer.getWeights().map(toTf));
    const want = c.ref ? c.ref(toTf(x), layer.getWeights().map(toTf)) : ref.apply(toTf(x), { training: c.training ?? false }) as tf.Tensor;
    return { x, layer, want };
  };

  it('eager call', () => {
    const { x, layer, want } = setup();
    const got = layer(x, { training: c.training ?? false });
    expectClose(got, want);
    // the symbolic output shape agrees with the computed one
    const sym = layer(keras.Input({ shape: c.shape.slice(1) }));
    expect(sym.shape).toEqual([null, ...got.shape.slice(1)]);
  });

  it('compiled (wasm) predict', () => {
    const { x, layer, want } = setup();
    if (c.training) return; // predict runs in inference mode
    const model = keras.Sequential([c.kiln({ inputShape: c.shape.slice(1) })]);
    model.setWeights(layer.getWeights());
    expectClose(model.predict(x) as keras.Tensor, want);
  });
});

describe('Conv2D groups', () => {
  it('equals one TF.js convolution per group, concatenated', () => {
    keras.utils.setRandomSeed(5);
    const x = uniform([2, 6, 7, 4], 21);
    const layer = L.Conv2D(6, 3, { groups: 2, padding: 'same' });
    const got = layer(x);
    expect(layer.kernel.shape).toEqual([3, 3, 2, 6]);
    const [k, b] = layer.getWeights().map(toTf) as [tf.Tensor4D, tf.Tensor1D];
    const xs = tf.split(toTf(x) as tf.Tensor4D, 2, 3), ks = tf.split(k, 2, 3);
    const want = tf.add(tf.concat(xs.map((xi, i) => tf.conv2d(xi, ks[i]!, 1, 'same')), 3), b);
    expectClose(got, want);
    const model = keras.Sequential([L.Conv2D(6, 3, { groups: 2, padding: 'same', inputShape: [6, 7, 4] })]);
    model.setWeights(layer.getWeights());
    expectClose(model.predict(x) as keras.Tensor, want);
  });
});

describe('parameter counts follow Keras', () => {
  const count = (layer: KLayer, shape: number[]): number => {
    layer(keras.Input({ shape }));
    return layer.countParams();
  };
  it.each([
    ['Conv1D(16, 5) on 3 channels', () => L.Conv1D(16, 5), [20, 3], 5 * 3 * 16 + 16],
    ['Conv2D(8, 3) on 3 channels', () => L.Conv2D(8, 3), [12, 12, 3], 3 * 3 * 3 * 8 + 8],
    ['Conv2D(8, [2, 5]) no bias', () => L.Conv2D(8, [2, 5], { useBias: false }), [12, 12, 3], 2 * 5 * 3 * 8],
    ['Conv2D(8, 3, groups 2) on 4 channels', () => L.Conv2D(8, 3, { groups: 2 }), [12, 12, 4], 3 * 3 * 2 * 8 + 8],
    ['Conv3D(4, 3) on 2 channels', () => L.Conv3D(4, 3), [6, 6, 6, 2], 27 * 2 * 4 + 4],
    ['MaxPooling2D', () => L.MaxPooling2D(), [12, 12, 3], 0],
    ['GlobalAveragePooling2D', () => L.GlobalAveragePooling2D(), [12, 12, 3], 0],
    ['BatchNormalization on 7 features', () => L.BatchNormalization(), [5, 7], 4 * 7],
    ['BatchNormalization without center', () => L.BatchNormalization({ center: false }), [5, 7], 3 * 7],
    ['LayerNormalization on 7 features', () => L.LayerNormalization(), [5, 7], 2 * 7],
  ] as [string, () => KLayer, number[], number][])('%s', (_n, make, shape, want) => {
    expect(count(make(), shape)).toBe(want);
  });

  it('BatchNormalization weights: gamma, beta, moving_mean, moving_variance; the moving ones non-trainable', () => {
    const bn = L.BatchNormalization();
    bn(keras.Input({ shape: [4] }));
    expect(bn.weights.map((w) => w.name)).toEqual(['gamma', 'beta', 'moving_mean', 'moving_variance']);
    expect(bn.trainableWeights.map((w) => w.name)).toEqual(['gamma', 'beta']);
    expect(bn.nonTrainableWeights.map((w) => w.name)).toEqual(['moving_mean', 'moving_variance']);
  });

  it('default names follow Keras', () => {
    expect([L.Conv2D(1, 1).name, L.MaxPooling2D().name, L.GlobalAveragePooling2D().name, L.BatchNormalization().name, L.Conv2D(1, 1).name])
      .toEqual(['conv2d', 'max_pooling2d', 'global_average_pooling2d', 'batch_normalization', 'conv2d_1']);
  });

  it('output shapes: same keeps ceil(n / stride), valid shrinks', () => {
    expect(L.Conv2D(4, 3, { strides: 2, padding: 'same' })(keras.Input({ shape: [7, 8, 3] })).shape).toEqual([null, 4, 4, 4]);
    expect(L.Conv2D(4, 3, { strides: 2 })(keras.Input({ shape: [7, 8, 3] })).shape).toEqual([null, 3, 3, 4]);
    expect(L.MaxPooling2D(2)(keras.Input({ shape: [7, 8, 3] })).shape).toEqual([null, 3, 4, 3]);
    expect(L.GlobalMaxPooling2D({ keepdims: true })(keras.Input({ shape: [7, 8, 3] })).shape).toEqual([null, 1, 1, 3]);
  });

  it('rejects strides > 1 together with dilation > 1, and bad groups', () => {
    expect(() => L.Conv2D(4, 3, { strides: 2, dilationRate: 2 })).toThrow(/strides > 1 is not supported together with dilationRate > 1/);
    expect(() => L.Conv2D(5, 3, { groups: 2 })).toThrow(/divisible by groups/);
    expect(() => L.Conv2D(4, 3, { groups: 2 })(keras.Input({ shape: [5, 5, 3] }))).toThrow(/input channels \(3\) must be divisible by groups \(2\)/);
  });
});

describe('BatchNormalization moving statistics (eager training calls)', () => {
  it('moving = moving * momentum + batch * (1 - momentum), biased variance as Keras 3', () => {
    const x = uniform([8, 3], 9, -2, 3);
    const bn = L.BatchNormalization({ momentum: 0.9 });
    bn(x, { training: true });
    const mean = keras.ops.mean(x, { axis: 0 }), variance = keras.ops.variance(x, { axis: 0 });
    expectClose(bn.movingMean, toTf(keras.ops.multiply(mean, 0.1)));
    expectClose(bn.movingVariance, toTf(keras.ops.add(keras.ops.multiply(variance, 0.1), 0.9)));
    bn(x); // inference: no update
    expectClose(bn.movingMean, toTf(keras.ops.multiply(mean, 0.1)));
  });
});
