// Seed: Sequential 模型 — the MLP 784-64-10 with dropout.
import * as keras from 'kiln';

const model = keras.Sequential([
  keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
  keras.layers.Dropout(0.2),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);

export default model;
