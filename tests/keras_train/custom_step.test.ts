// A subclass's custom trainStep traced into one compiled step (as Keras jit-compiles train_step): the same weights,
// optimizer state and logs as running it eagerly (runEagerly) and as the built-in step; its body runs once per batch
// shape. A step that reads values or reads a variable after updating it runs eagerly instead, and says why.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { customStepModes } from '../../frontend/models/custom_step.js';
import type { Compiled } from '../../frontend/models/training.js';
import { expectClose } from './reference.js';

beforeEach(() => keras.backend.clearSession());
const L = keras.layers;
const x = new keras.Tensor('float32', [10, 5], Float32Array.from({ length: 50 }, (_, i) => Math.sin(i * 1.7)));
const y = new keras.Tensor('int32', [10], Int32Array.from({ length: 10 }, (_, i) => (i * 7) % 3));

type Step = (m: Net, x: keras.Tensor, y: keras.Tensor) => Record<string, number | keras.Tensor>;

class Net extends keras.Model {
  dense1 = L.Dense(8, { activation: 'relu' });
  norm = L.BatchNormalization();
  head = L.Dense(3, { activation: 'softmax' });
  calls = 0;
  step: Step | undefined;
  call(x: keras.Tensor): keras.Tensor {
    return this.head(this.norm(this.dense1(x)));
  }
}

/** The tape, computeLoss and applyGradients, as the README's example. */
const standard: Step = (m, x, y) => {
  const tape = keras.backend.GradientTape();
  const loss = tape.record(() => m.computeLoss(y, m(x, { training: true }) as keras.Tensor));
  const ws = m.trainableWeights;
  m.optimizer!.applyGradients(tape.gradient(loss, ws).map((g, i) => [g, ws[i]!] as const));
  return { loss, twice: keras.ops.multiply(loss, 2), constant: 7 };
};

class Custom extends Net {
  override trainStep([x, y]: [keras.Tensor, keras.Tensor]) {
    this.calls++;
    return this.step!(this, x, y);
  }
}

function make(cls: typeof Net, step: Step | undefined, runEagerly: boolean): Net {
  const m = new cls();
  m.step = step;
  m(x);
  m.setWeights(m.weights.map((w, i) => new keras.Tensor('float32', w.shape, Float32Array.from({ length: w.size }, (_, j) => (w.path.includes('variance') || w.path.includes('gamma') ? 1 : 0.6 * Math.cos(j * 0.9 + i))))));
  m.compile({ optimizer: keras.optimizers.Adam({ learningRate: 0.05 }), loss: 'sparse_categorical_crossentropy', runEagerly });
  return m;
}

const fit = (m: Net, backend: 'wasm' | 'interpreter' = 'interpreter') => m.fit(x, y, { epochs: 2, batchSize: 4, shuffle: false, verbose: 0, backend });
const modes = (m: Net) => customStepModes(m.compiled as Compiled);

describe('a custom trainStep, compiled', () => {
  it('equals the eager step and the built-in step: weights, optimizer state, moving statistics, logs; traced once per batch shape', () => {
    const compiled = make(Custom, standard, false), eager = make(Custom, standard, true), builtin = make(Net, undefined, false);
    const [hc, he, hb] = [fit(compiled, 'wasm'), fit(eager), fit(builtin)];
    expect(modes(compiled)).toEqual(['compiled', 'compiled']); // batches of 4 and the last of 2
    expect(compiled.calls).toBe(2);
    expect(eager.calls).toBe(6);
    expect(modes(eager)).toEqual([]);
    expect(Object.keys(hc.history)).toEqual(['loss', 'twice', 'constant']);
    for (const k of ['loss', 'twice', 'constant']) expectClose(hc.history[k]!, he.history[k]!, 1e-5, 1e-6, k);
    // (fit logs what a custom step returns for its last batch, the built-in step a mean over the batches: not compared)
    for (const [a, b] of [[compiled, eager], [compiled, builtin]] as const) {
      a.weights.forEach((w, i) => expectClose(w.data, b.weights[i]!.data, 1e-5, 1e-6, w.path));
      a.optimizer!.variables.forEach((v, i) => expectClose(v.data, b.optimizer!.variables[i]!.data, 1e-5, 1e-6, v.path));
    }
    expect(compiled.optimizer!.iterations.data[0]).toBe(6);
  });

  it('ops outside tape.record are not differentiated, as eagerly: the gradients are zeros', () => {
    const outside: Step = (m, x, y) => {
      const tape = keras.backend.GradientTape();
      const yPred = m(x, { training: true }) as keras.Tensor;
      const loss = tape.record(() => m.computeLoss(y, yPred));
      const ws = m.trainableWeights;
      const gs = tape.gradient(loss, ws);
      m.optimizer!.applyGradients(gs.map((g, i) => [g, ws[i]!] as const));
      return { loss, gradSum: gs.reduce((s, g) => keras.ops.add(s, keras.ops.sum(keras.ops.abs(g))), keras.ops.array(0)) };
    };
    const compiled = make(Custom, outside, false), eager = make(Custom, outside, true);
    const [hc, he] = [fit(compiled), fit(eager)];
    expect(modes(compiled)).toEqual(['compiled', 'compiled']);
    expect(hc.history['gradSum']).toEqual([0, 0]);
    expect(he.history['gradSum']).toEqual([0, 0]);
    compiled.trainableWeights.forEach((w, i) => expectClose(w.data, eager.trainableWeights[i]!.data, 1e-6, 1e-7, w.path));
  });

  it('falls back to eager where it cannot be traced: a value read, a variable read after its update; runEagerly is checked', () => {
    const reads: Step = (m, x, y) => {
      const logs = standard(m, x, y);
      return { ...logs, loss: (logs['loss'] as keras.Tensor).item() };
    };
    const after: Step = (m, x, y) => {
      const logs = standard(m, x, y);
      return { ...logs, after: m.computeLoss(y, m(x) as keras.Tensor) };
    };
    for (const [step, why] of [[reads, /^it cannot be traced \(.+\)$/], [after, /^it reads variable '.+' after updating it$/]] as const) {
      const compiled = make(Custom, step, false), eager = make(Custom, step, true);
      const [hc, he] = [fit(compiled), fit(eager)];
      const m = modes(compiled);
      expect(m).toHaveLength(2); // tried once per batch shape
      for (const r of m) expect(r).toMatch(why);
      expect(compiled.calls).toBe(eager.calls + 2);
      for (const k of Object.keys(he.history)) expectClose(hc.history[k]!, he.history[k]!, 1e-6, 1e-7, k);
    }
    expect(() => make(Custom, standard, 'yes' as never)).toThrow(/^Model 'custom_\d+': compile: runEagerly must be true or false, got "yes"$/);
  });
});
