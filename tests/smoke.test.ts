import { describe, expect, it } from 'vitest';
import * as keras from '../frontend/index.js';

describe('seed MLP', () => {
  it('has 50,890 parameters', () => {
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    expect(model.countParams()).toBe(50890);
  });
});
