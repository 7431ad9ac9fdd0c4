// Forward outputs of the seed's models against the same models in TF.js layers, with kiln's weights copied over.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { copyWeights, expectClose, tf, toTf, uniform } from './helpers.js';
import { modelCases } from './seed_models.js';

beforeEach(() => keras.backend.clearSession());

const asList = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);

describe.each(modelCases)('$name', (c) => {
  const batch = 5;
  const setup = () => {
    keras.utils.setRandomSeed(7);
    const model = c.kiln(), ref = c.tf();
    copyWeights(model, ref); // Keras weight order and shapes, or the shapes would not line up
    const xs = c.inputs.map((s, i) => uniform([batch, ...s], 100 + i, -2, 2));
    const want = asList(ref.predict(xs.length === 1 ? toTf(xs[0]!) : xs.map(toTf)) as tf.Tensor | tf.Tensor[]);
    return { model, xs, want };
  };

  it('model.predict matches TF.js', () => {
    const { model, xs, want } = setup();
    const got = asList(model.predict(xs.length === 1 ? xs[0]! : xs) as keras.Tensor | keras.Tensor[]);
    expect(got.length).toBe(want.length);
    got.forEach((g, i) => expectClose(g, want[i]!));
  });

  it('model(x) matches TF.js', () => {
    const { model, xs, want } = setup();
    const got = asList(model(xs.length === 1 ? xs[0]! : xs) as keras.Tensor | keras.Tensor[]);
    got.forEach((g, i) => expectClose(g, want[i]!));
  });

  it('predict in batches of 2 matches TF.js', () => {
    const { model, xs, want } = setup();
    const got = asList(model.predict(xs.length === 1 ? xs[0]! : xs, { batchSize: 2 }) as keras.Tensor | keras.Tensor[]);
    got.forEach((g, i) => expectClose(g, want[i]!));
  });
});

describe('inputs by name (seed title/body model)', () => {
  it('a record keyed by input name equals the list in input order', () => {
    const c = modelCases.find((m) => m.name.startsWith('seed title/body'))!;
    const model = c.kiln();
    const title = uniform([3, 100], 1), body = uniform([3, 500], 2);
    const [p1, d1] = model.predict([title, body]) as keras.Tensor[];
    const [p2, d2] = model.predict({ body, title }) as keras.Tensor[];
    expect(p2!.data).toEqual(p1!.data);
    expect(d2!.data).toEqual(d1!.data);
    expect(p1!.shape).toEqual([3, 1]);
    expect(d1!.shape).toEqual([3, 4]);
  });
});
