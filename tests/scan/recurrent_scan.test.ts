// SimpleRNN, LSTM and GRU as scan loops against the same layers unrolled (unroll: true): eager outputs bit for bit,
// the training step's gradients, a graph whose size does not grow with the sequence length, and clear errors.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { scan } from '../../frontend/layers/recurrent_scan.js';
import { traceModel } from '../../frontend/models/executor.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { topoSort } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { modelInputs } from '../passes/differential.js';

beforeEach(() => keras.backend.clearSession());
const L = keras.layers;

type Make = (o: Record<string, unknown>) => keras.layers.Layer;
const LAYERS: [string, Make][] = [
  ['SimpleRNN', (o) => L.SimpleRNN(4, o)],
  ['LSTM', (o) => L.LSTM(5, o)],
  ['GRU', (o) => L.GRU(3, o)],
  ['GRU resetAfter false', (o) => L.GRU(3, { resetAfter: false, ...o })],
];
const VARIANTS = [{}, { returnSequences: true }, { goBackwards: true }, { goBackwards: true, returnSequences: true }];

/** A model of one recurrent layer and a Dense head, weights seeded alike for the scan and the unrolled form. */
function model(make: Make, o: Record<string, unknown>, time: number, unroll: boolean): keras.Model {
  keras.utils.setRandomSeed(42);
  const x = keras.Input({ shape: [time, 3] });
  return keras.Model({ inputs: x, outputs: L.Dense(2)(make({ ...o, unroll })(x)) });
}

describe.each(LAYERS)('%s as a scan loop', (_name, make) => {
  it.each(VARIANTS)('%o: eager output equals the unrolled layer bit for bit', (o) => {
    const a = model(make, o, 6, false), b = model(make, o, 6, true);
    const x = keras.ops.reshape(keras.ops.array(Float32Array.from({ length: 36 }, (_, i) => Math.sin(i * 1.7))), [2, 6, 3]);
    expect([...(a(x) as keras.Tensor).data]).toEqual([...(b(x) as keras.Tensor).data]);
  });

  it.each(VARIANTS)('%o: the training step gives the unrolled step\'s loss and gradients', (o) => {
    const step = (unroll: boolean) => {
      const m = model(make, o, 5, unroll);
      const c = compileModel(m, { optimizer: 'sgd', loss: 'mse' });
      const s = traceTrainStep(m, c, [[2, 5, 3]], [[2, ...m.outputs[0]!.shape.slice(1).map((d) => d ?? 1)]]);
      const params = Object.fromEntries(s.variables.map((v) => [v.path, v.data]));
      return interpret(s.graph, modelInputs(s.graph, 7), params);
    };
    const a = step(false), b = step(true);
    const got = [...a.updates.values()];
    expect(got.length).toBeGreaterThan(0);
    for (const [k, [name, v]] of [...b.updates].entries()) {
      const got = [...a.updates.values()][k]!.data;
      v.data.forEach((want, i) => expect(Math.abs(got[i]! - want), `${name}[${i}]`).toBeLessThan(1e-6 + 1e-5 * Math.abs(want)));
    }
    expect(Math.abs(a.outputs.get('loss')!.data[0]! - b.outputs.get('loss')!.data[0]!)).toBeLessThan(1e-6);
  });

  it('the predict graph and the training step do not grow with the sequence length', () => {
    const size = (time: number) => {
      const m = model(make, {}, time, false);
      const c = compileModel(m, { optimizer: 'adam', loss: 'mse' });
      return [topoSort(traceModel(m, 2).graph).length, topoSort(traceTrainStep(m, c, [[2, time, 3]], [[2, 2]]).graph).length];
    };
    expect(size(50)).toEqual(size(7));
  });
});

describe('keras-side scan', () => {
  it('names the captured variable or outer value the step reads', () => {
    const v = new keras.Variable('w', 'float32', [2, 2], Float32Array.of(1, 1, 1, 1));
    const h = keras.ops.zeros([1, 2]), xs = keras.ops.ones([3, 1, 2]);
    expect(() => scan('rnn', ([c]) => [[keras.ops.matmul(c!, v)], []], [h], [xs], [])).toThrow(/rnn: the step reads variable 'w'; pass it in the step's consts/);
    const out = scan('rnn', ([c], [x], [w]) => [[keras.ops.add(keras.ops.matmul(c!, w!), x!)], [c!]], [h], [xs], [v]);
    expect([...out.carries[0]!.data]).toEqual([7, 7]);
    expect([...out.ys[0]!.data]).toEqual([0, 0, 1, 1, 3, 3]);
  });
});
