// examples/imdb_like.ts from the build: the masked Bidirectional(LSTM) classifier learns the synthetic reviews, and
// its predictions ignore the padding (changing the pad token's embedding changes nothing).
import { beforeAll, expect, it } from 'vitest';
import { ensureBuilt } from '../built.js';

beforeAll(ensureBuilt, 600_000);

it('trains to high held-out accuracy with EarlyStopping, and the padding is masked', async () => {
  const ex = await import('../../dist/examples/imdb_like.js');
  const { model, history, accuracy } = ex.train({ count: 400, maxLen: 12, epochs: 3, verbose: 0 });
  expect(history.epoch.length).toBeGreaterThan(0);
  expect(history.history['val_loss']).toHaveLength(history.epoch.length);
  expect(accuracy).toBeGreaterThan(0.9);
  const { x } = ex.makeReviews({ count: 64, maxLen: 12, seed: 5 });
  expect(Array.from(x.data as Int32Array).filter((v) => v === 0).length).toBeGreaterThan(64); // there is padding
  const before = Array.from((model.predict(x) as { data: Float32Array }).data);
  const w = model.getWeights();
  const table = w[0]!.data as Float32Array;
  for (let j = 0; j < 8; j++) table[j] = 5 * Math.sin(j + 1); // row 0: the pad token
  model.setWeights(w);
  const after = Array.from((model.predict(x) as { data: Float32Array }).data);
  after.forEach((v, i) => expect(v).toBe(before[i]));
});
