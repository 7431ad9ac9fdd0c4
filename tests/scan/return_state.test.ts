// returnState on SimpleRNN, LSTM and GRU against TF.js's layers (eager, and a functional model using the states
// compiled through predict), and the symbolic shapes of the states.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { expectClose, tf, toTf, uniform } from '../frontend/helpers.js';

beforeEach(() => keras.backend.clearSession());
const L = keras.layers;

const KINDS = [
  ['SimpleRNN', (o: Record<string, unknown>) => L.SimpleRNN(4, o), (o: Record<string, unknown>) => tf.layers.simpleRNN({ units: 4, ...o })],
  ['LSTM', (o: Record<string, unknown>) => L.LSTM(4, o), (o: Record<string, unknown>) => tf.layers.lstm({ units: 4, recurrentActivation: 'sigmoid', ...o })],
  ['GRU', (o: Record<string, unknown>) => L.GRU(4, { resetAfter: false, ...o }), (o: Record<string, unknown>) => tf.layers.gru({ units: 4, recurrentActivation: 'sigmoid', resetAfter: false, ...o })],
] as const;

describe.each(KINDS)('%s returnState', (_name, kiln, ref) => {
  it.each([{}, { returnSequences: true, goBackwards: true }])('%o: [output, ...states] equal TF.js eagerly and through a compiled model', (o) => {
    const x = uniform([2, 5, 3], 4);
    const layer = kiln({ ...o, returnState: true }), r = ref({ ...o, returnState: true });
    layer(x);
    r.apply(toTf(x));
    layer.setWeights(layer.weights.map((w, i) => uniform(w.shape, 20 + i, -0.6, 0.6)));
    r.setWeights(layer.getWeights().map(toTf));
    const want = r.apply(toTf(x)) as tf.Tensor[];
    const got = layer(x) as unknown as keras.Tensor[];
    expect(got.length).toBe(want.length);
    got.forEach((g, i) => expectClose(g, want[i]!));
    // symbolic: the states' shapes, and a model reading the last state, compiled
    const input = keras.Input({ shape: [5, 3] });
    const outs = layer(input) as unknown as keras.KerasTensor[];
    expect(outs.map((t) => t.shape)).toEqual(want.map((w) => [null, ...w.shape.slice(1)]));
    const m = keras.Model({ inputs: input, outputs: outs[outs.length - 1]! });
    expectClose(m.predict(x, { verbose: 0 }) as keras.Tensor, want[want.length - 1]!);
  });
});
