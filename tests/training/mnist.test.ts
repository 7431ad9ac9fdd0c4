// The seed's MLP learns real MNIST digits: fit on 8,000, held-out accuracy on the other 2,000; the custom loop too.
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';

describe('training on the bundled MNIST digits', () => {
  const [[xTrain, yTrain], [xTest, yTest]] = keras.datasets.mnist.loadData({ trainCount: 8000 });

  it('splits 8,000 / 2,000 with every class on both sides', () => {
    expect(xTrain.shape).toEqual([8000, 28, 28]);
    expect(xTest.shape).toEqual([2000, 28, 28]);
    const counts = new Array(10).fill(0);
    for (const d of yTest.data) counts[d]++;
    expect(Math.min(...counts)).toBeGreaterThan(150);
  });

  it('fit reaches at least 90% held-out accuracy in 5 epochs (Adam, batch 32)', () => {
    keras.utils.setRandomSeed(1);
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
    const lines: string[] = [];
    const history = model.fit(keras.ops.reshape(xTrain, [-1, 784]), yTrain, { epochs: 5, batchSize: 32, print: (t) => lines.push(t) });
    const loss = history.history['loss']!;
    expect(loss).toHaveLength(5);
    expect(loss[4]!).toBeLessThan(loss[0]!);
    expect(lines.join('')).toMatch(/Epoch 5\/5\n250\/250 ━+ \d+s \d+(ms|us)\/step - loss: \d\.\d{4} - accuracy: \d\.\d{4}/);
    const [testLoss, accuracy] = model.evaluate(keras.ops.reshape(xTest, [-1, 784]), yTest, { verbose: 0 }) as number[];
    expect(accuracy).toBeGreaterThanOrEqual(0.9);
    expect(testLoss).toBeLessThan(0.4);
    // evaluate agrees with predict + argmax
    const pred = keras.ops.argmax(model.predict(keras.ops.reshape(xTest, [-1, 784]), { batchSize: 256 }), -1);
    const correct = keras.ops.sum(keras.ops.cast(keras.ops.equal(pred, yTest), 'int32')).item();
    expect(correct / 2000).toBeCloseTo(accuracy!, 6);
  });

  it('the seed custom training loop with the gradient tape reduces the loss and reports accuracy', async () => {
    process.env['KILN_EPOCHS'] = '2';
    const loop = await import('../../examples/seed/custom_loop.js');
    expect(loop.losses).toHaveLength(2);
    expect(loop.losses[1]!).toBeLessThan(loop.losses[0]!);
    expect(loop.accuracies[1]!).toBeGreaterThan(0.8);
  });
});
