// Parameter counts and weight shapes of the seed's layers and models, against Keras's formula n*m + m per Dense.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { activationArguments, activationLayers, flattenReshape, functionalMlp, seedMlp, sharedResidual, titleBody } from './seed_models.js';

/** Keras's parameter count of a Dense layer with n inputs and m units: kernel n×m plus bias m. */
const dense = (n: number, m: number): number => n * m + m;

beforeEach(() => keras.backend.clearSession());

describe('Dense(64) on 32 inputs (seed: Dense 层详解)', () => {
  it('has kernel [32, 64], bias [64] and 2112 parameters', () => {
    const layer = keras.layers.Dense(64, { activation: 'relu', inputShape: [32] });
    const model = keras.Sequential([layer]);
    expect(layer.kernel.shape).toEqual([32, 64]);
    expect(layer.bias!.shape).toEqual([64]);
    expect(layer.countParams()).toBe(dense(32, 64));
    expect(dense(32, 64)).toBe(2112);
    expect(model.countParams()).toBe(2112);
  });

  it('has only the kernel without bias', () => {
    const layer = keras.layers.Dense(64, { useBias: false });
    layer.build([null, 32]);
    expect(layer.bias).toBeUndefined();
    expect(layer.countParams()).toBe(32 * 64);
  });
});

describe('model parameter counts', () => {
  it.each([
    { c: seedMlp, formula: dense(784, 64) + dense(64, 10), total: 50_890 },
    { c: functionalMlp, formula: dense(784, 64) + dense(64, 10), total: 50_890 },
    { c: titleBody, formula: dense(100, 64) + dense(500, 64) + dense(128, 1) + dense(128, 4), total: 39_173 },
    { c: activationArguments, formula: dense(784, 64) + dense(64, 64) + dense(64, 10), total: 55_050 },
    { c: activationLayers, formula: dense(784, 64) + dense(64, 10), total: 50_890 },
    { c: sharedResidual, formula: dense(16, 16) + dense(32, 3), total: 371 }, // the shared layer counts once
    { c: flattenReshape, formula: dense(24, 12) + dense(4, 2), total: 310 },
  ])('$c.name', ({ c, formula, total }) => {
    expect(formula).toBe(total);
    const model = c.kiln();
    expect(model.countParams()).toBe(total);
    expect(model.getWeights().reduce((n, w) => n + w.size, 0)).toBe(total);
    expect(c.tf().countParams()).toBe(total);
  });
});
