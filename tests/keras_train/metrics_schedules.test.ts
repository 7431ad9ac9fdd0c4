// AUC, Precision, Recall, TopKCategoricalAccuracy and the learning-rate schedules against Keras 3 (keras_reference.json),
// Precision and Recall also against TF.js; the schedules eagerly and inside a compiled step.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { camel, expectClose, ref } from './reference.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const md = ref.metric_data;
const yTrue = new keras.Tensor('float32', [40, 1], Float32Array.from(md.yTrue));
const yPred = new keras.Tensor('float32', [40, 1], Float32Array.from(md.yPred));
const rows = (t: keras.Tensor, a: number, b: number) => new keras.Tensor('float32', [b - a, 1], t.data.slice(a, b));

function make(name: string, options: Record<string, unknown>): keras.metrics.AUC | keras.metrics.Precision | keras.metrics.Recall {
  if (name.startsWith('auc')) return keras.metrics.AUC(options);
  return name.startsWith('precision') ? keras.metrics.Precision(options) : keras.metrics.Recall(options);
}

describe('confusion metrics against Keras 3', () => {
  for (const [name, c] of Object.entries(ref.metrics)) {
    it(name, () => {
      const m = make(name, camel(c.options));
      m.updateState(rows(yTrue, 0, 25), rows(yPred, 0, 25));
      m.updateState(rows(yTrue, 25, 40), rows(yPred, 25, 40));
      expectClose([m.result().item()], [c.result], 1e-5, 1e-6, name);
      m.resetState();
      m.updateState(yTrue, yPred, Float32Array.from(md.sampleWeight));
      expectClose([m.result().item()], [c.weighted], 1e-5, 1e-6, `${name} weighted`);
    });
  }

  it('Precision and Recall agree with TF.js on thresholded predictions', () => {
    const p = keras.metrics.Precision(), r = keras.metrics.Recall();
    p.updateState(yTrue, yPred);
    r.updateState(yTrue, yPred);
    const t = tf.tensor(md.yTrue), hard = tf.tensor(md.yPred.map((v) => (v > 0.5 ? 1 : 0)));
    expectClose([p.result().item()], tf.metrics.precision(t, hard).dataSync(), 1e-6);
    expectClose([r.result().item()], tf.metrics.recall(t, hard).dataSync(), 1e-6);
  });

  it('a list of thresholds gives one value per threshold', () => {
    const m = keras.metrics.Precision({ thresholds: [0.3, 0.5, 0.7] });
    m.updateState(yTrue, yPred);
    expectClose(m.result().data, [0.3, 0.5, 0.7].map((t) => ref.metrics[`precision_${t}`]!.result), 1e-6);
    // fit logs one number per metric: said before training
    const model = keras.Sequential([keras.layers.Dense(1, { activation: 'sigmoid', inputShape: [1] })]);
    model.compile({ optimizer: 'sgd', loss: 'binary_crossentropy', metrics: [keras.metrics.Precision({ thresholds: [0.3, 0.5] })] });
    expect(() => model.fit(yPred, yTrue, { verbose: 0, backend: 'interpreter' })).toThrow("metric 'precision' has 2 values (one per threshold); fit and evaluate log one number per metric: give it one threshold");
  });

  it('TopKCategoricalAccuracy (ties count in, as Keras 3 in_top_k)', () => {
    const t = new keras.Tensor('float32', [30, 6], Float32Array.from(ref.topk_data.yTrue));
    const p = new keras.Tensor('float32', [30, 6], Float32Array.from(ref.topk_data.yPred));
    for (const [k, want] of Object.entries(ref.topk)) {
      const m = keras.metrics.TopKCategoricalAccuracy({ k: Number(k) });
      m.updateState(t, p);
      expectClose([m.result().item()], [want], 1e-6, 1e-7, `k=${k}`);
    }
  });

  it('bad options are one-line errors naming the metric', () => {
    expect(() => keras.metrics.AUC({ curve: 'ROCK' as 'ROC' })).toThrow("metrics.AUC: curve must be 'ROC' or 'PR', got the string \"ROCK\"");
    expect(() => keras.metrics.AUC({ numThresholds: 1 })).toThrow('metrics.AUC: numThresholds must be an integer > 1, got number 1');
    expect(() => keras.metrics.Precision({ thresholds: 1.5 })).toThrow('metrics.Precision: thresholds must be a number in [0, 1] or a non-empty list of them, got number 1.5');
    expect(() => keras.metrics.Recall({ topK: 2.5 })).toThrow('metrics.Recall: topK must be an integer >= 1, got number 2.5');
    expect(() => keras.metrics.TopKCategoricalAccuracy({ k: 0 })).toThrow('metrics.TopKCategoricalAccuracy: k must be a positive integer, got number 0');
    expect(() => keras.metrics.AUC({ multiLabel: 1 } as never)).toThrow('metrics.AUC: multiLabel must be true or false, got number 1');
  });
});

const S = keras.optimizers.schedules;
function schedule(name: string, o: Record<string, unknown>): keras.optimizers.schedules.LearningRateSchedule {
  if (name.startsWith('exp')) return S.ExponentialDecay(o as never);
  if (name.startsWith('cosine')) return S.CosineDecay(o as never);
  return S.PiecewiseConstantDecay(o as never);
}

describe('learning-rate schedules against Keras 3', () => {
  for (const [name, c] of Object.entries(ref.schedules)) {
    it(`${name}, eagerly`, () => {
      const s = schedule(name, c.options);
      expectClose(c.values.map((_, i) => s.valueAt(i)), c.values, 1e-6, 1e-9, name);
    });
  }

  it('compiled into the training step: SGD on a loss of slope 1 moves the weight by each step\'s rate', () => {
    // loss = mean(x * w) with x = 1: the gradient is 1, so each step subtracts exactly the scheduled rate
    for (const [name, c] of Object.entries(ref.schedules)) {
      const m = keras.Sequential([keras.layers.Dense(1, { useBias: false, kernelInitializer: 'zeros', inputShape: [1] })]);
      m.compile({ optimizer: keras.optimizers.SGD({ learningRate: schedule(name, c.options) }), loss: (_t: keras.Tensor, p: keras.Tensor) => p });
      const seen: number[] = [];
      m.fit([[1]], [[0]], { epochs: 16, verbose: 0, callbacks: [{ onTrainBatchEnd: () => { seen.push(m.weights[0]!.data[0]!); } }] });
      const steps = seen.map((w, i) => (i === 0 ? 0 : seen[i - 1]!) - w);
      expectClose(steps, c.values, 1e-5, 1e-7, name);
    }
  });

  it('bad options are one-line errors naming the schedule', () => {
    expect(() => S.ExponentialDecay({ initialLearningRate: 0.1, decaySteps: 0, decayRate: 0.5 })).toThrow('optimizers.schedules.ExponentialDecay: decaySteps must be a number > 0, got number 0');
    expect(() => S.PiecewiseConstantDecay({ boundaries: [1, 2], values: [1, 2] })).toThrow('optimizers.schedules.PiecewiseConstantDecay: needs one more value than boundaries and at least one boundary, got 2 boundaries and 2 values');
    expect(() => S.CosineDecay({ initialLearningRate: 0.1, decaySteps: 5, warmup: 3 } as never)).toThrow("optimizers.schedules.CosineDecay: unknown option 'warmup'");
    const opt = keras.optimizers.Adam({ learningRate: S.CosineDecay({ initialLearningRate: 0.1, decaySteps: 5 }) });
    expect(() => { opt.learningRate = 0.5; }).toThrow('adam: the learning rate follows a CosineDecay schedule and cannot be set');
  });
});
