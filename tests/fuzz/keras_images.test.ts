// The fuzzer's Keras mode builds image models (Conv2D, pooling, BatchNormalization, their gradients) besides the
// sequence models: every layer kind is generated, a layer the image has become too small for is left out, and a few
// fixed seeds run on each target against the graph interpreter.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { kerasFamily, kerasStep } from '../../fuzz/keras_models.js';
import { TARGETS, fuzzCase, runCases } from '../../fuzz/targets.js';
import { nodeName, topoSort } from '../../ir/graph.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-keras-images-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the keras mode\'s image models', () => {
  it('are about half the seeds, and have every layer kind, option and kind of graph among seeds 0-119', () => {
    const seeds = Array.from({ length: 120 }, (_, s) => s).filter((s) => kerasFamily(s) === 'image');
    expect(seeds.length).toBeGreaterThan(40);
    expect(seeds.length).toBeLessThan(80);
    const summaries = seeds.map((s) => kerasStep(s).summary).join('\n');
    for (const what of ['predict of', 'train of', 'grad of', 'apply of', 'Conv2D(', 'MaxPooling2D(', 'AveragePooling2D(', 'BatchNormalization',
      'Dropout', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Flatten', 'same', 'valid', 'relu', 'tanh', 'no bias', 'strides 2', 'strides [',
      'left out', 'softmax', 'sigmoid', 'huber', 'adamw']) expect(summaries).toContain(what);
    expect(summaries).toMatch(/x1$/m); // one channel, and three
    expect(summaries).toMatch(/x3$/m);
    expect(summaries).not.toMatch(/Embedding|Masking|RNN|LSTM|GRU/);
  });

  it('leave out a layer whose window the image has become smaller than (valid padding), and run the rest', () => {
    // seed 16: a 3x12 image pooled [3, 2] with strides 3 to 1x4: a later valid 2x2 Conv2D no longer fits
    const k = kerasStep(16);
    expect(k.summary).toMatch(/^train of AveragePooling2D\(\[3, 2\], strides 3, same\), .*\(Conv2D\(\d, 2, strides \d, valid.*\) left out\).* image 3x12x3$/);
    expect(runCases('loop', [fuzzCase(16, true, 'keras')], { schedule: 'plain', workDir: work, timeoutMs: 60_000 })).toEqual([undefined]);
  });

  it('take the gradients of Conv2D, max and average pooling and BatchNormalization in the training step', () => {
    // seed 32: Conv2D, BatchNormalization, MaxPooling2D (valid, then same), Flatten; the fused step
    const k = kerasStep(32);
    expect(k.summary).toMatch(/^train of Conv2D.*BatchNormalization, MaxPooling2D.*valid.*MaxPooling2D.*same.*Flatten/);
    const ops = topoSort(k.graph).map((n) => n.op);
    // the forward conv, and the gradients: the kernel's and the input's (a conv too), the pooling's windows
    expect(ops.filter((o) => o === 'conv').length).toBeGreaterThanOrEqual(3);
    expect(ops).toContain('reduce_window');
    expect(ops).toContain('rsqrt');
    // BatchNormalization's moving statistics are updated with the weights
    expect(k.graph.updates.map((u) => nodeName(u.param))).toEqual(expect.arrayContaining([expect.stringMatching(/moving_mean/), expect.stringMatching(/moving_variance/)]));
  });

  // 32 train (max pooling's gradient), 24 grad (strided convs, max pooling same), 4 predict (average pooling),
  // 60 apply: each target, its updates in place, against the interpreter (the split step also against the fused one)
  const seeds = [32, 24, 4, 60];
  it.each(TARGETS)('run on %s as the interpreter does', (target) => {
    const cases = seeds.map((s) => fuzzCase(s, true, 'keras'));
    expect(cases.map((c) => c.keras!.kind)).toEqual(['train', 'grad', 'predict', 'apply']);
    expect(runCases(target, cases, { schedule: target === 'loop' ? 'cuda' : undefined, workDir: work, timeoutMs: 60_000 })).toEqual(cases.map(() => undefined));
  }, 120_000);
});
