// Scheduled, clipped training with sample and class weights against Keras 3 (keras_reference.json): the same fit, loss
// history, metrics and final weights, compiled on wasm and on the reference interpreter; one step eagerly as well.
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { GradientTape } from '../../frontend/tape.js';
import { type Reference, expectClose, ref } from './reference.js';

const S = keras.optimizers.schedules;
const d = ref.fit_data;
const x = new keras.Tensor('float32', [12, 4], Float32Array.from(d.x));
const y = new keras.Tensor('float32', [12], Float32Array.from(d.y));
const sw = Float32Array.from(d.sampleWeight);

const CASES: Record<string, { optimizer: () => keras.optimizers.Adam | keras.optimizers.SGD | keras.optimizers.RMSprop; fit: keras.FitOptions }> = {
  sgd_exp_clipnorm_sample_weight: {
    optimizer: () => keras.optimizers.SGD({ learningRate: S.ExponentialDecay({ initialLearningRate: 0.5, decaySteps: 2, decayRate: 0.5, staircase: true }), clipnorm: 0.5 }),
    fit: { sampleWeight: sw },
  },
  adam_cosine_globalclip_class_weight: {
    optimizer: () => keras.optimizers.Adam({ learningRate: S.CosineDecay({ initialLearningRate: 0.05, decaySteps: 5, alpha: 0.1, warmupTarget: 0.1, warmupSteps: 2 }), globalClipnorm: 0.3 }),
    fit: { classWeight: { 0: 0.5, 1: 3 } },
  },
  rmsprop_piecewise_clipvalue: {
    optimizer: () => keras.optimizers.RMSprop({ learningRate: S.PiecewiseConstantDecay({ boundaries: [2, 4], values: [0.01, 0.005, 0.001] }), clipvalue: 0.05 }),
    fit: {},
  },
};

function model(optimizer: keras.optimizers.Adam | keras.optimizers.SGD | keras.optimizers.RMSprop): keras.Sequential {
  const m = keras.Sequential([keras.layers.Dense(3, { activation: 'relu', inputShape: [4] }), keras.layers.Dense(1, { activation: 'sigmoid' })]);
  m.setWeights(d.weights.map((w, i) => new keras.Tensor('float32', [[4, 3], [3], [3, 1], [1]][i]!, Float32Array.from(w))));
  m.compile({
    optimizer, loss: 'binary_crossentropy',
    metrics: ['accuracy', keras.metrics.AUC({ name: 'auc' }), keras.metrics.AUC({ curve: 'PR', name: 'pr_auc' }), 'precision', 'recall'],
  });
  return m;
}

describe('fit against Keras 3: schedules, clipping, sample and class weights, AUC/precision/recall', () => {
  for (const backend of ['wasm', 'interpreter'] as const) {
    for (const [name, c] of Object.entries(CASES)) {
      it(`${name} (${backend})`, () => {
        const want: Reference['fits'][string] = ref.fits[name]!;
        const m = model(c.optimizer());
        const h = m.fit(x, y, { epochs: 2, batchSize: 4, shuffle: false, verbose: 0, backend, ...c.fit });
        expect(Object.keys(h.history).sort()).toEqual(Object.keys(want.history).sort());
        for (const [k, v] of Object.entries(want.history)) expectClose(h.history[k]!, v, 2e-5, 2e-6, k);
        m.weights.forEach((w, i) => expectClose(w.data, want.weights[i]!, 2e-5, 2e-6, w.path));
        if (backend === 'interpreter') {
          const ev = m.evaluate(x, y, { sampleWeight: sw, batchSize: 5, verbose: 0, returnDict: true, backend });
          for (const [k, v] of Object.entries(want.evaluate_weighted)) expectClose([ev[k]!], [v], 2e-5, 2e-6, `evaluate ${k}`);
        }
      });
    }
  }

  it('one step eagerly (GradientTape + applyGradients) is the first step of the compiled fit', () => {
    for (const c of Object.values(CASES)) {
      const eager = model(c.optimizer()), compiled = model(c.optimizer());
      const [x4, y4] = [new keras.Tensor('float32', [4, 4], x.data.slice(0, 16)), new keras.Tensor('float32', [4], y.data.slice(0, 4))];
      const tape = new GradientTape();
      const loss = tape.record(() => keras.losses.BinaryCrossentropy()(y4, eager.__call__(x4, { training: true }) as keras.Tensor));
      const opt = eager.optimizer!;
      // clipping and the schedule act on the gradients the tape gives
      opt.applyGradients(tape.gradient(loss, eager.trainableWeights).map((g, i) => [g, eager.trainableWeights[i]!] as const));
      compiled.fit(x4, y4, { epochs: 1, batchSize: 4, verbose: 0 });
      eager.weights.forEach((w, i) => expectClose(w.data, compiled.weights[i]!.data, 1e-5, 1e-7, w.path));
    }
  });
});
