// Seed: 优化器配置 — Adam with explicit hyper-parameters, and SGD with Nesterov momentum.
import * as keras from 'kiln';

const model = keras.Sequential([
  keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
  keras.layers.Dense(10),
]);

let optimizer: keras.optimizers.Optimizer = keras.optimizers.Adam({
  learningRate: 0.001,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-07,
});
model.compile({ optimizer, loss: 'mse' });

optimizer = keras.optimizers.SGD({
  learningRate: 0.01,
  momentum: 0.9,
  nesterov: true,
});
model.compile({ optimizer, loss: 'mse' });

export default model;
