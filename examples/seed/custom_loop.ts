// Seed: 自定义训练循环 — a custom training loop with a gradient tape, on the bundled MNIST digits.
import * as keras from 'kiln';

const model = keras.Sequential([
  keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);

const optimizer = keras.optimizers.Adam();
const lossFn = keras.losses.SparseCategoricalCrossentropy();
const trainAccMetric = keras.metrics.SparseCategoricalAccuracy();

// train_dataset: batches of 64 from 2,048 of the bundled digits
const [[xAll, yAll]] = keras.datasets.mnist.loadData({ trainCount: 8000 });
const trainDataset: [keras.Tensor, keras.Tensor][] = [];
for (let i = 0; i < 2048; i += 64) {
  trainDataset.push([
    keras.ops.reshape(keras.ops.slice(xAll, [i, 0, 0], [64, 28, 28]), [64, 784]),
    keras.ops.slice(yAll, [i], [64]),
  ]);
}

export const losses: number[] = [];
export const accuracies: number[] = [];
const epochs = Number(process.env['KILN_EPOCHS'] ?? 5);
for (let epoch = 0; epoch < epochs; epoch++) {
  let epochLoss = 0;
  for (const [step, [xBatch, yBatch]] of trainDataset.entries()) {
    const tape = keras.backend.GradientTape();
    const logits = tape.record(() => model(xBatch, { training: true }));
    const loss = tape.record(() => lossFn(yBatch, logits));
    const grads = tape.gradient(loss, model.trainableWeights);
    optimizer.applyGradients(grads.map((g, i) => [g, model.trainableWeights[i]!] as const));
    trainAccMetric.updateState(yBatch, logits);
    epochLoss += loss.item();
    void step;
  }
  const trainAcc = trainAccMetric.result();
  console.log(`Epoch ${epoch}, Accuracy: ${trainAcc.item().toFixed(4)}, Loss: ${(epochLoss / trainDataset.length).toFixed(4)}`);
  losses.push(epochLoss / trainDataset.length);
  accuracies.push(trainAcc.item());
  trainAccMetric.resetState();
}

export default model;
