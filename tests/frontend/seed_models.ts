// The seed's models (and a few more topologies), each written once in kiln and once in TF.js layers.
import * as keras from '../../frontend/index.js';
import { tf } from './helpers.js';

export interface ModelCase {
  readonly name: string;
  /** Per-sample input shapes, in model input order. */
  readonly inputs: readonly (readonly number[])[];
  readonly kiln: () => keras.Model;
  readonly tf: () => tf.LayersModel;
}

type Sym = tf.SymbolicTensor;
const apply = (layer: tf.layers.Layer, x: Sym | Sym[]): Sym => layer.apply(x) as Sym;

export const seedMlp: ModelCase = {
  name: 'seed Sequential MLP (784-64-10, dropout)',
  inputs: [[784]],
  kiln: () => keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]),
  tf: () => tf.sequential({
    layers: [
      tf.layers.dense({ units: 64, activation: 'relu', inputShape: [784] }),
      tf.layers.dropout({ rate: 0.2 }),
      tf.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  }),
};

export const functionalMlp: ModelCase = {
  name: 'seed Functional MLP',
  inputs: [[784]],
  kiln: () => {
    const inputs = keras.Input({ shape: [784] });
    let x = keras.layers.Dense(64, { activation: 'relu' })(inputs);
    x = keras.layers.Dropout(0.2)(x);
    const outputs = keras.layers.Dense(10, { activation: 'softmax' })(x);
    return keras.Model({ inputs, outputs });
  },
  tf: () => {
    const inputs = tf.input({ shape: [784] });
    let x = apply(tf.layers.dense({ units: 64, activation: 'relu' }), inputs);
    x = apply(tf.layers.dropout({ rate: 0.2 }), x);
    return tf.model({ inputs, outputs: apply(tf.layers.dense({ units: 10, activation: 'softmax' }), x) });
  },
};

export const titleBody: ModelCase = {
  name: 'seed title/body model (two inputs, two outputs)',
  inputs: [[100], [500]],
  kiln: () => {
    const titleInput = keras.Input({ shape: [100], name: 'title' });
    const bodyInput = keras.Input({ shape: [500], name: 'body' });
    const titleFeatures = keras.layers.Dense(64, { activation: 'relu' })(titleInput);
    const bodyFeatures = keras.layers.Dense(64, { activation: 'relu' })(bodyInput);
    const x = keras.layers.concatenate([titleFeatures, bodyFeatures]);
    const priority = keras.layers.Dense(1, { activation: 'sigmoid', name: 'priority' })(x);
    const department = keras.layers.Dense(4, { activation: 'softmax', name: 'department' })(x);
    return keras.Model({ inputs: [titleInput, bodyInput], outputs: [priority, department] });
  },
  tf: () => {
    const title = tf.input({ shape: [100], name: 'title' });
    const body = tf.input({ shape: [500], name: 'body' });
    const x = apply(tf.layers.concatenate(), [
      apply(tf.layers.dense({ units: 64, activation: 'relu' }), title),
      apply(tf.layers.dense({ units: 64, activation: 'relu' }), body),
    ]);
    const priority = apply(tf.layers.dense({ units: 1, activation: 'sigmoid', name: 'priority' }), x);
    const department = apply(tf.layers.dense({ units: 4, activation: 'softmax', name: 'department' }), x);
    return tf.model({ inputs: [title, body], outputs: [priority, department] });
  },
};

export const activationArguments: ModelCase = {
  name: 'seed activations as arguments (string and function)',
  inputs: [[784]],
  kiln: () => {
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu' }),
      keras.layers.Dense(64, { activation: keras.activations.relu }),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    model.build([null, 784]);
    return model;
  },
  tf: () => tf.sequential({
    layers: [
      tf.layers.dense({ units: 64, activation: 'relu', inputShape: [784] }),
      tf.layers.dense({ units: 64, activation: 'relu' }),
      tf.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  }),
};

export const activationLayers: ModelCase = {
  name: 'seed activations as Activation layers',
  inputs: [[784]],
  kiln: () => {
    const model = keras.Sequential([
      keras.layers.Dense(64), keras.layers.Activation('relu'), keras.layers.Dense(10), keras.layers.Activation('softmax'),
    ]);
    model.build([null, 784]);
    return model;
  },
  tf: () => tf.sequential({
    layers: [
      tf.layers.dense({ units: 64, inputShape: [784] }), tf.layers.activation({ activation: 'relu' }),
      tf.layers.dense({ units: 10 }), tf.layers.activation({ activation: 'softmax' }),
    ],
  }),
};

export const sharedResidual: ModelCase = {
  name: 'shared Dense on two inputs, residual Add',
  inputs: [[16], [16]],
  kiln: () => {
    const a = keras.Input({ shape: [16] }), b = keras.Input({ shape: [16] });
    const shared = keras.layers.Dense(16, { activation: 'tanh' });
    const res = keras.layers.Add()([shared(a), a]);
    const out = keras.layers.Dense(3)(keras.layers.concatenate([res, shared(b)]));
    return keras.Model({ inputs: [a, b], outputs: out });
  },
  tf: () => {
    const a = tf.input({ shape: [16] }), b = tf.input({ shape: [16] });
    const shared = tf.layers.dense({ units: 16, activation: 'tanh' });
    const res = apply(tf.layers.add(), [apply(shared, a), a]);
    const out = apply(tf.layers.dense({ units: 3 }), apply(tf.layers.concatenate(), [res, apply(shared, b)]));
    return tf.model({ inputs: [a, b], outputs: out });
  },
};

export const flattenReshape: ModelCase = {
  name: 'Flatten and Reshape around Dense on rank-3 inputs',
  inputs: [[2, 3, 4]],
  kiln: () => keras.Sequential([
    keras.layers.Flatten({ inputShape: [2, 3, 4] }),
    keras.layers.Dense(12, { activation: 'elu' }),
    keras.layers.Reshape([3, -1]),
    keras.layers.Dense(2),
    keras.layers.Reshape([2, 3]),
    keras.layers.Flatten(),
  ]),
  tf: () => tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [2, 3, 4] }),
      tf.layers.dense({ units: 12, activation: 'elu' }),
      tf.layers.reshape({ targetShape: [3, 4] }),
      tf.layers.dense({ units: 2 }),
      tf.layers.reshape({ targetShape: [2, 3] }),
      tf.layers.flatten(),
    ],
  }),
};

export const modelCases: readonly ModelCase[] = [seedMlp, functionalMlp, titleBody, activationArguments, activationLayers, sharedResidual, flattenReshape];
