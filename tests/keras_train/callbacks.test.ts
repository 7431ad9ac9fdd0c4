// Callbacks: EarlyStopping and ReduceLROnPlateau decide as Keras 3 does on the same logs (keras_reference.json); in fit,
// the hooks, stopTraining, restoreBestWeights, checkpoints, the CSV log, TerminateOnNaN and learning rates set between
// epochs on the compiled step.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import type { Model } from '../../frontend/models/model.js';
import { camel, expectClose, ref } from './reference.js';

const logs = ref.callback_logs;
const params = { epochs: 20, steps: 1, verbose: 0, directions: { accuracy: 'up' as const } };

describe('monitoring callbacks decide as Keras 3 on the same logs', () => {
  for (const [name, c] of Object.entries(ref.early_stopping)) {
    it(`EarlyStopping ${name}`, () => {
      const cb = keras.callbacks.EarlyStopping(camel(c.options));
      const model = { stopTraining: false, weights: [] } as unknown as Model;
      cb.setModel(model);
      cb.setParams(params);
      cb.onTrainBegin({});
      let stopped: number | null = null;
      for (let e = 0; e < logs.val_loss.length; e++) {
        cb.onEpochEnd(e, { val_loss: logs.val_loss[e]!, accuracy: logs.accuracy[e]! });
        if (model.stopTraining) {
          stopped = e;
          break;
        }
      }
      expect([stopped, cb.bestEpoch]).toEqual([c.stopped, c.best_epoch]);
    });
  }

  for (const [name, c] of Object.entries(ref.reduce_lr)) {
    it(`ReduceLROnPlateau ${name}`, () => {
      const cb = keras.callbacks.ReduceLROnPlateau(camel(c.options));
      const optimizer = keras.optimizers.SGD({ learningRate: 0.1 });
      cb.setModel({ optimizer } as unknown as Model);
      cb.setParams(params);
      cb.onTrainBegin({});
      const lrs = logs.val_loss.map((v, e) => {
        cb.onEpochEnd(e, { val_loss: v });
        return optimizer.learningRate;
      });
      expectClose(lrs, c.lr, 1e-7, 0, name);
    });
  }
});

// a small classifier with fixed weights, trained without shuffling, so that runs can be compared exactly
const x = new keras.Tensor('float32', [16, 3], Float32Array.from({ length: 48 }, (_, i) => Math.sin(i * 1.7)));
const y = new keras.Tensor('float32', [16], Float32Array.from({ length: 16 }, (_, i) => (Math.sin(i * 5.1) > 0 ? 1 : 0)));
function net(optimizer: keras.optimizers.SGD | keras.optimizers.Adam = keras.optimizers.SGD({ learningRate: 0.1 })): keras.Sequential {
  keras.utils.setRandomSeed(3);
  const m = keras.Sequential([keras.layers.Dense(4, { activation: 'tanh', inputShape: [3] }), keras.layers.Dense(1, { activation: 'sigmoid' })]);
  m.compile({ optimizer, loss: 'binary_crossentropy' });
  return m;
}
const backend = 'interpreter';
const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'kiln-cb-'));
  dirs.push(d);
  return d;
}
const snapshot = (m: keras.Sequential) => m.weights.map((w) => Array.from(w.data));

describe('callbacks in fit', () => {
  it('calls the hooks in Keras\'s order with the logs, and stops where stopTraining is set', () => {
    const calls: string[] = [];
    class Recorder extends keras.callbacks.Callback {
      override onTrainBegin() { calls.push('trainBegin'); }
      override onEpochBegin(e: number) { calls.push(`epochBegin ${e}`); }
      override onTrainBatchBegin(b: number) { calls.push(`batchBegin ${b}`); }
      override onTrainBatchEnd(b: number, l: keras.callbacks.Logs) {
        calls.push(`batchEnd ${b} ${Object.keys(l).join(',')}`);
        if (b === 1 && calls.includes('epochBegin 1')) this.model.stopTraining = true;
      }
      override onEpochEnd(e: number, l: keras.callbacks.Logs) { calls.push(`epochEnd ${e} ${Object.keys(l).join(',')}`); }
      override onTrainEnd() { calls.push('trainEnd'); }
    }
    const m = net();
    const plain: number[] = [];
    const h = m.fit(x, y, { epochs: 5, batchSize: 6, shuffle: false, verbose: 0, backend, validationData: [x, y], callbacks: [new Recorder(), { onEpochEnd: (e: number) => { plain.push(e); } }] });
    expect(calls).toEqual([
      'trainBegin', 'epochBegin 0', 'batchBegin 0', 'batchEnd 0 loss', 'batchBegin 1', 'batchEnd 1 loss', 'batchBegin 2', 'batchEnd 2 loss', 'epochEnd 0 loss,val_loss',
      'epochBegin 1', 'batchBegin 0', 'batchEnd 0 loss', 'batchBegin 1', 'batchEnd 1 loss', 'epochEnd 1 loss,val_loss', 'trainEnd',
    ]);
    expect(plain).toEqual([0, 1]);
    expect(h.epoch).toEqual([0, 1]);
    expect(m.history).toBe(h);
  });

  it('EarlyStopping restores the best epoch\'s weights', () => {
    const m = net(), seen: number[][][] = [];
    // mode 'max' on a falling loss: the first epoch is the best, and patience 2 stops at the third
    const h = m.fit(x, y, { epochs: 10, batchSize: 8, shuffle: false, verbose: 0, backend, callbacks: [
      { onEpochEnd: () => { seen.push(snapshot(m)); } },
      keras.callbacks.EarlyStopping({ monitor: 'loss', mode: 'max', patience: 2, restoreBestWeights: true }),
    ] });
    expect(h.epoch).toEqual([0, 1, 2]);
    expect(h.history['loss']![1]!).toBeLessThan(h.history['loss']![0]!);
    expect(snapshot(m)).toEqual(seen[0]);
    expect(snapshot(m)).not.toEqual(seen[2]);
  });

  it('ModelCheckpoint writes the weights of each epoch it is due to, named by the format fields', async () => {
    const dir = tmp(), m = net(), seen: number[][][] = [];
    const every = keras.callbacks.ModelCheckpoint(path.join(dir, 'w-{epoch:02d}-{loss:.3f}.weights.h5'), { saveWeightsOnly: true });
    const best = keras.callbacks.ModelCheckpoint(path.join(dir, 'best.keras'), { monitor: 'loss', saveBestOnly: true, mode: 'max' });
    const h = m.fit(x, y, { epochs: 3, batchSize: 8, shuffle: false, verbose: 0, backend, callbacks: [{ onEpochEnd: () => { seen.push(snapshot(m)); } }, every, best] });
    await every.saved;
    await best.saved;
    const names = readdirSync(dir).sort();
    expect(names).toEqual(['best.keras', ...h.history['loss']!.map((l, e) => `w-0${e + 1}-${l.toFixed(3)}.weights.h5`)]);
    for (let e = 0; e < 3; e++) {
      const fresh = net();
      await fresh.loadWeights(path.join(dir, names[e + 1]!));
      expect(snapshot(fresh)).toEqual(seen[e]);
    }
    // saveBestOnly with mode 'max' on a falling loss: only the first epoch was saved
    expect(snapshot(await keras.saving.loadModel(path.join(dir, 'best.keras')) as keras.Sequential)).toEqual(seen[0]);
  });

  it('CSVLogger writes a row per epoch as Keras does (sorted keys, val_ columns of NA without validation)', () => {
    const file = path.join(tmp(), 'log.csv'), m = net();
    const h = m.fit(x, y, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0, backend, callbacks: [keras.callbacks.CSVLogger(file)] });
    const l = h.history['loss']!;
    expect(readFileSync(file, 'utf8')).toBe(`epoch,loss,val_loss\r\n0,${l[0]},NA\r\n1,${l[1]},NA\r\n`);
  });

  it('TerminateOnNaN stops at the first batch whose loss is NaN', () => {
    const bad = new keras.Tensor('float32', x.shape, x.data.slice());
    bad.data[8 * 3] = NaN; // the second batch of 8
    const m = net(), batches: number[] = [];
    const h = m.fit(bad, y, { epochs: 3, batchSize: 8, shuffle: false, verbose: 0, backend, callbacks: [keras.callbacks.TerminateOnNaN(), { onTrainBatchEnd: (b: number) => { batches.push(b); } }] });
    expect(batches).toEqual([0, 1]);
    expect(h.epoch).toEqual([0]);
    expect(Number.isNaN(h.history['loss']![0]!)).toBe(true);
  });

  it('a learning rate set between epochs takes effect on the compiled wasm step, as a second fit after setting it does', () => {
    const sched = net(), manual = net(), constant = net();
    const h = sched.fit(x, y, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0, callbacks: [keras.callbacks.LearningRateScheduler((e: number) => (e === 0 ? 0.1 : 0.02))] });
    manual.fit(x, y, { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 });
    manual.optimizer!.learningRate = 0.02;
    manual.fit(x, y, { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 });
    constant.fit(x, y, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0, backend });
    expect(snapshot(sched)).toEqual(snapshot(manual));
    expect(snapshot(sched)).not.toEqual(snapshot(constant));
    expect(h.history['learning_rate']).toEqual([Math.fround(0.1), Math.fround(0.02)]);
  });

  it('ReduceLROnPlateau lowers the rate in fit and logs it', () => {
    const m = net();
    const h = m.fit(x, y, { epochs: 3, batchSize: 8, shuffle: false, verbose: 0, backend, callbacks: [keras.callbacks.ReduceLROnPlateau({ monitor: 'loss', mode: 'max', patience: 1, factor: 0.5 })] });
    // logged before the reduction, as Keras: epoch 1 is the first without improvement
    expect(h.history['learning_rate']).toEqual([0.1, 0.1, 0.05].map(Math.fround));
    expect(m.optimizer!.learningRate).toBe(Math.fround(0.025));
  });

  it('initialEpoch resumes the epoch count', () => {
    const lines: string[] = [];
    const h = net().fit(x, y, { epochs: 4, initialEpoch: 2, batchSize: 8, verbose: 2, print: (t: string) => { lines.push(t); }, backend });
    expect(h.epoch).toEqual([2, 3]);
    expect(lines.filter((l) => l.startsWith('Epoch'))).toEqual(['Epoch 3/4\n', 'Epoch 4/4\n']);
  });

  it('classWeight of one-hot targets weighs each sample by its argmax class, as the same sampleWeight does', () => {
    const softmax = () => {
      keras.utils.setRandomSeed(5);
      const m = keras.Sequential([keras.layers.Dense(3, { activation: 'softmax', inputShape: [3] })]);
      m.compile({ optimizer: keras.optimizers.SGD({ learningRate: 0.1 }), loss: 'categorical_crossentropy' });
      return m;
    };
    const cls = Array.from({ length: 16 }, (_, i) => i % 3);
    const oneHot = new keras.Tensor('float32', [16, 3], Float32Array.from(cls.flatMap((c) => [0, 1, 2].map((j) => (j === c ? 1 : 0)))));
    const a = softmax(), b = softmax(), c = softmax();
    a.fit(x, oneHot, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0, backend, classWeight: { 0: 2, 2: 0.5 } });
    b.fit(x, oneHot, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0, backend, sampleWeight: Float32Array.from(cls.map((k) => [2, 1, 0.5][k]!)) });
    c.fit(x, oneHot, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0, backend });
    expect(snapshot(a)).toEqual(snapshot(b));
    expect(snapshot(a)).not.toEqual(snapshot(c));
  });

  it('bad callbacks and options are one-line errors naming them', () => {
    const m = net();
    const fit = (callbacks: unknown) => () => m.fit(x, y, { verbose: 0, backend, callbacks: callbacks as never });
    expect(fit({ onEpochEnd: () => {} })).toThrow('fit: callbacks must be a list, got an object');
    expect(fit([{ onEpochStart: () => {} }])).toThrow("fit: callbacks[0]: unknown hook 'onEpochStart'; hooks: onTrainBegin, onTrainEnd, onEpochBegin, onEpochEnd, onTrainBatchBegin, onTrainBatchEnd");
    expect(fit([3])).toThrow('fit: callbacks[0] must be a keras.callbacks.Callback or an object of hook functions');
    expect(() => keras.callbacks.EarlyStopping({ patience: 2, restore_best_weights: true } as never)).toThrow("callbacks.EarlyStopping: unknown option 'restore_best_weights' (did you mean 'restoreBestWeights'?)");
    expect(() => keras.callbacks.EarlyStopping({ mode: 'maximum' as 'max' })).toThrow("callbacks.EarlyStopping: mode must be 'auto', 'min' or 'max', got \"maximum\"");
    expect(() => keras.callbacks.ReduceLROnPlateau({ factor: 1.5 })).toThrow('callbacks.ReduceLROnPlateau: factor must be < 1, got 1.5');
    expect(() => keras.callbacks.ModelCheckpoint('model.h5')).toThrow('callbacks.ModelCheckpoint: the filepath must end in .keras');
    expect(() => keras.callbacks.ModelCheckpoint('m-{epoch:x}.keras')).toThrow('callbacks.ModelCheckpoint: cannot format {epoch:x}');
    expect(fit([keras.callbacks.EarlyStopping({ monitor: 'val_auc' })])).not.toThrow(); // a missing log warns, as Keras
    expect(() => m.fit(x, y, { verbose: 0, backend, sampleWeight: new Float32Array(16), classWeight: { 0: 1 } })).toThrow('fit: give sampleWeight or classWeight, not both (as Keras)');
    expect(() => m.fit(x, y, { verbose: 0, backend, sampleWeight: new Float32Array(3) })).toThrow('fit: sampleWeight must hold one weight per sample (shape [16]), got shape [3]');
    expect(() => m.fit(x, y, { verbose: 0, backend, classWeight: { one: 2 } as never })).toThrow("fit: classWeight: key 'one' is not a class id (a non-negative integer)");
    expect(() => keras.optimizers.SGD({ clipnorm: 1, clipvalue: 0.5 })).toThrow('optimizers.SGD: only one of clipnorm, clipvalue and globalClipnorm can be set, got clipnorm=1, clipvalue=0.5, globalClipnorm=null');
  });
});
