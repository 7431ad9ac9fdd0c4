// fit updates BatchNormalization's moving statistics in its compiled step exactly as an eager training call does.
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';

function build() {
  return keras.Sequential([
    keras.layers.Dense(6, { inputShape: [4] }),
    keras.layers.BatchNormalization({ momentum: 0.9 }),
    keras.layers.Dense(2, { activation: 'softmax' }),
  ]);
}

describe('BatchNormalization in fit', () => {
  it.each(['wasm', 'interpreter'] as const)('moving statistics after a fit step equal an eager training call (%s)', (backend) => {
    keras.utils.setRandomSeed(3);
    const fitted = build();
    const eager = build();
    eager.setWeights(fitted.getWeights());
    const x = new keras.Tensor('float32', [8, 4], Float32Array.from({ length: 32 }, (_, i) => Math.sin(i * 1.3) * 2 + 0.5));
    const y = keras.ops.array([0, 1, 1, 0, 1, 0, 0, 1]);
    fitted.compile({ optimizer: keras.optimizers.SGD({ learningRate: 0 }), loss: 'sparse_categorical_crossentropy' });
    fitted.fit(x, y, { epochs: 1, batchSize: 8, shuffle: false, verbose: 0, backend });
    eager(x, { training: true });
    const [fm, fv] = fitted.weights.filter((w) => w.path.includes('moving'));
    const [em, ev] = eager.weights.filter((w) => w.path.includes('moving'));
    expect(Array.from(fm!.data).some((v) => v !== 0)).toBe(true);
    for (const [a, b] of [[fm!, em!], [fv!, ev!]] as const) {
      Array.from(a.data).forEach((v, i) => expect(Math.abs(v - b.data[i]!)).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(b.data[i]!)));
    }
  });
});
