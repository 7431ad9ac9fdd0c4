// examples/seed/cnn.ts, imported from the build (it imports 'kiln' by package name): shapes, parameters, a predict.
import { beforeAll, describe, expect, it } from 'vitest';
import type * as keras from '../../frontend/index.js';
import { ensureBuilt } from '../built.js';


beforeAll(ensureBuilt, 120_000);

describe('examples/seed/cnn', () => {
  it('is a Sequential CNN on [28, 28, 1] with Keras parameter counts, predicting probabilities', async () => {
    const model = (await import('../../dist/examples/seed/cnn.js' as string) as { default: keras.Sequential }).default;
    expect(model.layers.map((l) => l.className)).toEqual(['Conv2D', 'MaxPooling2D', 'Conv2D', 'GlobalAveragePooling2D', 'Dense']);
    expect(model.countParams()).toBe((3 * 3 * 1 * 8 + 8) + (3 * 3 * 8 * 16 + 16) + (16 * 10 + 10));
    const kiln = (await import('../../dist/frontend/index.js' as string)) as typeof keras;
    const y = model.predict(kiln.ops.ones([2, 28, 28, 1])) as keras.Tensor;
    expect(y.shape).toEqual([2, 10]);
    for (let r = 0; r < 2; r++) expect(Array.from(y.data.slice(r * 10, r * 10 + 10)).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });
});
