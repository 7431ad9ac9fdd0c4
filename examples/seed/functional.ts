// Seed: Functional API 模型 — the same MLP written with keras.Input and layer calls.
import * as keras from 'kiln';

const inputs = keras.Input({ shape: [784] });
let x = keras.layers.Dense(64, { activation: 'relu' })(inputs);
x = keras.layers.Dropout(0.2)(x);
const outputs = keras.layers.Dense(10, { activation: 'softmax' })(x);
const model = keras.Model({ inputs, outputs });

export default model;
