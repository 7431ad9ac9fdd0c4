// Loss values and full optimizer steps against TF.js layers, same weights, dropout off.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function rand(shape: number[], seed: number, scale = 1): keras.Tensor {
  let s = seed;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, () => {
    s = (s * 16807) % 2147483647;
    return (s / 2147483647 - 0.5) * 2 * scale;
  });
  return new keras.Tensor('float32', shape, data);
}

const toTf = (t: keras.Tensor) => tf.tensor(Array.from(t.data), t.shape, t.dtype === 'int32' ? 'int32' : 'float32');

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = 1e-5, atol = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) - (atol + rtol * Math.abs(expected[i]!));
    worst = Math.max(worst, err);
  }
  expect(worst).toBeLessThanOrEqual(0);
}

function mlp(tfLayers: boolean, outAct = 'softmax') {
  if (tfLayers) {
    return tf.sequential({ layers: [
      tf.layers.dense({ units: 16, activation: 'relu', inputShape: [20] }),
      tf.layers.dense({ units: 5, activation: outAct as 'softmax' }),
    ] });
  }
  return keras.Sequential([
    keras.layers.Dense(16, { activation: 'relu', inputShape: [20] }),
    keras.layers.Dropout(0),
    keras.layers.Dense(5, { activation: outAct }),
  ]);
}

describe('losses equal TF.js', () => {
  const yPred = keras.ops.softmax(rand([6, 4], 3, 2));
  const yTrue = keras.ops.oneHot(keras.ops.array([0, 3, 1, 1, 2, 3]), 4);
  const cases: [string, () => keras.Tensor, () => tf.Tensor][] = [
    ['mse', () => keras.losses.MeanSquaredError()(yTrue, yPred), () => tf.metrics.meanSquaredError(toTf(yTrue), toTf(yPred)).mean()],
    ['mae', () => keras.losses.get('mae')(yTrue, yPred), () => tf.metrics.meanAbsoluteError(toTf(yTrue), toTf(yPred)).mean()],
    ['binary_crossentropy', () => keras.losses.BinaryCrossentropy()(yTrue, yPred), () => tf.metrics.binaryCrossentropy(toTf(yTrue), toTf(yPred)).mean()],
    ['categorical_crossentropy', () => keras.losses.CategoricalCrossentropy()(yTrue, yPred), () => tf.metrics.categoricalCrossentropy(toTf(yTrue), toTf(yPred)).mean()],
    ['sparse_categorical_crossentropy', () => keras.losses.SparseCategoricalCrossentropy()(keras.ops.array([0, 3, 1, 1, 2, 3]), yPred),
      () => tf.metrics.categoricalCrossentropy(toTf(yTrue), toTf(yPred)).mean()],
    ['categorical from logits', () => keras.losses.CategoricalCrossentropy({ fromLogits: true })(yTrue, rand([6, 4], 3, 2)),
      () => tf.losses.softmaxCrossEntropy(toTf(yTrue), toTf(rand([6, 4], 3, 2)))],
    ['binary from logits', () => keras.losses.BinaryCrossentropy({ fromLogits: true })(yTrue, rand([6, 4], 5, 30)),
      () => tf.losses.sigmoidCrossEntropy(toTf(yTrue), toTf(rand([6, 4], 5, 30)))],
    ['huber', () => keras.losses.Huber({ delta: 0.3 })(rand([6, 4], 8), rand([6, 4], 9)),
      () => tf.losses.huberLoss(toTf(rand([6, 4], 8)), toTf(rand([6, 4], 9)), undefined, 0.3)],
  ];
  it.each(cases)('%s', (_name, kiln, ref) => {
    expectClose(kiln().data, ref().dataSync(), 1e-5);
  });
});

async function stepBoth(
  kOpt: keras.optimizers.Optimizer, tOpt: tf.Optimizer, loss: string, tfLoss: string,
  y: keras.Tensor, batches: number, outAct = 'softmax',
): Promise<void> {
  const km = mlp(false, outAct) as keras.Sequential;
  const tm = mlp(true, outAct) as tf.Sequential;
  tm.setWeights(km.getWeights().map(toTf));
  const x = rand([8 * batches, 20], 11);
  km.compile({ optimizer: kOpt, loss });
  tm.compile({ optimizer: tOpt, loss: tfLoss });
  const hk = km.fit(x, y, { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 });
  const ht = await tm.fit(toTf(x), toTf(keras.ops.cast(y, 'float32')), { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 });
  expectClose([hk.history['loss']![0]!], [ht.history['loss']![0] as number], 1e-5);
  km.getWeights().forEach((w, i) => expectClose(w.data, tm.getWeights()[i]!.dataSync(), 1e-5, 1e-6));
}

describe('one optimizer step on an MLP equals TF.js', () => {
  const labels = keras.ops.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 2]);
  it('SGD with Nesterov momentum, two steps', async () => {
    await stepBoth(keras.optimizers.SGD({ learningRate: 0.1, momentum: 0.9, nesterov: true }), tf.train.momentum(0.1, 0.9, true),
      'sparse_categorical_crossentropy', 'sparseCategoricalCrossentropy', labels, 2);
  });
  it('SGD with momentum on categorical crossentropy', async () => {
    await stepBoth(keras.optimizers.SGD({ learningRate: 0.05, momentum: 0.5 }), tf.train.momentum(0.05, 0.5, false),
      'categorical_crossentropy', 'categoricalCrossentropy', keras.ops.oneHot(labels, 5), 2);
  });
  it('Adam, one step (Keras 3 bias correction)', async () => {
    // Keras puts epsilon outside the bias-corrected sqrt; for step 1 TF.js matches with eps / sqrt(1 - beta2)
    const eps = 1e-7, b2 = 0.999;
    await stepBoth(keras.optimizers.Adam({ learningRate: 0.01, epsilon: eps }), tf.train.adam(0.01, 0.9, b2, eps / Math.sqrt(1 - b2)),
      'sparse_categorical_crossentropy', 'sparseCategoricalCrossentropy', keras.ops.slice(labels, [0], [8]), 1);
  });
  it('RMSprop, two steps, on mse', async () => {
    await stepBoth(keras.optimizers.RMSprop({ learningRate: 0.01 }), tf.train.rmsprop(0.01, 0.9, 0, 1e-7),
      'mse', 'meanSquaredError', rand([16, 5], 21), 2, 'linear');
  });
});

describe('multi-output model step equals TF.js', () => {
  it('title/body model with binary and sparse categorical losses', async () => {
    const build = <T>(input: (o: { shape: number[]; name: string }) => T, dense: (u: number, a: string, name?: string) => (x: T) => T,
      concat: (xs: T[]) => T) => {
      const title = input({ shape: [10], name: 'title' }), body = input({ shape: [12], name: 'body' });
      const x = concat([dense(8, 'relu')(title), dense(8, 'relu')(body)]);
      return { inputs: [title, body], outputs: [dense(1, 'sigmoid', 'priority')(x), dense(4, 'softmax', 'department')(x)] };
    };
    const k = build((o) => keras.Input(o), (u, a, name) => (x) => keras.layers.Dense(u, { activation: a, name })(x), (xs) => keras.layers.concatenate(xs));
    const t = build((o) => tf.input(o), (u, a, name) => (x) => tf.layers.dense({ units: u, activation: a as 'relu', name }).apply(x) as tf.SymbolicTensor,
      (xs) => tf.layers.concatenate().apply(xs) as tf.SymbolicTensor);
    const km = keras.Model(k), tm = tf.model(t);
    tm.setWeights(km.getWeights().map(toTf));
    const xs = [rand([8, 10], 1), rand([8, 12], 2)];
    const ys = [keras.ops.array([[1], [0], [1], [1], [0], [0], [1], [0]], 'float32'), keras.ops.oneHot(keras.ops.array([0, 1, 2, 3, 3, 2, 1, 0]), 4)];
    km.compile({ optimizer: keras.optimizers.SGD({ learningRate: 0.1 }), loss: ['binary_crossentropy', 'categorical_crossentropy'] });
    tm.compile({ optimizer: tf.train.sgd(0.1), loss: ['binaryCrossentropy', 'categoricalCrossentropy'] });
    const hk = km.fit(xs, ys, { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 });
    const ht = await tm.fit(xs.map(toTf), ys.map(toTf), { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 });
    expectClose([hk.history['loss']![0]!], [ht.history['loss']![0] as number]);
    expectClose([hk.history['priority_loss']![0]!], [ht.history['priority_loss']![0] as number]);
    km.getWeights().forEach((w, i) => expectClose(w.data, tm.getWeights()[i]!.dataSync()));
  });
});

describe('gradient tape equals TF.js gradients', () => {
  it('MLP weights gradients of sparse categorical crossentropy', () => {
    const km = mlp(false) as keras.Sequential;
    const x = rand([8, 20], 5), y = keras.ops.array([0, 1, 2, 3, 4, 0, 1, 2]);
    const tape = keras.backend.GradientTape();
    const lossFn = keras.losses.SparseCategoricalCrossentropy();
    const loss = tape.record(() => lossFn(y, km(x, { training: true })));
    const grads = tape.gradient(loss, km.trainableWeights);
    const vars = km.getWeights().map((w) => tf.variable(toTf(w)));
    const f = () => {
      const h = tf.relu(tf.add(tf.matMul(toTf(x), vars[0]!), vars[1]!));
      const p = tf.softmax(tf.add(tf.matMul(h, vars[2]!), vars[3]!));
      return tf.metrics.categoricalCrossentropy(tf.oneHot(toTf(y) as tf.Tensor1D, 5), p).mean() as tf.Scalar;
    };
    const { value, grads: tg } = tf.variableGrads(f, vars);
    expectClose(loss.data, value.dataSync());
    grads.forEach((g, i) => expectClose(g.data, tg[vars[i]!.name]!.dataSync(), 1e-4, 1e-6));
  });
});
