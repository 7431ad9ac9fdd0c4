// The seed CNN (examples/seed/cnn.ts) trained on the bundled MNIST digits (tests/fixtures/quant/make_cnn_mnist.mts),
// quantized to int8 and built for llvm: it keeps its held-out accuracy within 1 point of float32's, with int8 weights
// at most 27% of float32's bytes, its convs, pooling and Dense all int8.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { topoSort } from '../../ir/graph.js';
import type { TypedArray } from '../../ir/types.js';
import { compile, quantize } from '../../compiler.js';
import { runMain } from '../native.js';
import { seedCnn } from '../fixtures/quant/make_cnn_mnist.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-quant-cnn-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the seed CNN on the bundled MNIST digits, int8', () => {
  it('loses at most 1 point of held-out accuracy against float32 (llvm), with at most 27% of the weight bytes', async () => {
    const model = await seedCnn();
    await model.loadWeights(path.join(here, '..', 'fixtures', 'quant', 'cnn_mnist.safetensors'));
    const [[xTrain], [xTest, yTest]] = keras.datasets.mnist.loadData({ trainCount: 8000 });
    const n = yTest.data.length, test = { input_layer: xTest.data as Float32Array };
    // 200 training digits calibrate
    const calibration = { shape: [200, 28, 28, 1], data: (xTrain.data as Float32Array).subarray(0, 200 * 784) };
    const q = quantize(model, calibration, { batchSize: 1 });
    const ops = topoSort(q.graph).map((o) => o.op);
    expect(ops.filter((o) => o === 'qconv')).toHaveLength(2);
    expect(ops.filter((o) => o === 'quantize')).toHaveLength(1); // the image in; nothing dequantized before the logits
    const bytes = (vs: Iterable<TypedArray>) => [...vs].reduce((a, v) => a + v.byteLength, 0);
    expect(bytes(q.params.values()) / bytes(model.weights.map((w) => w.data))).toBeLessThanOrEqual(0.27);
    const g = traceModel(model, n).graph;
    const accuracy = async (dir: string, options: object) => {
      await compile(model, { target: 'llvm', outDir: path.join(tmp, dir), maxBatch: 200, ...options });
      const p = runMain(path.join(tmp, dir, 'model_main'), path.join(tmp, dir), g, test).get('dense')!;
      let right = 0;
      for (let r = 0; r < n; r++) {
        let best = 0;
        for (let c = 1; c < 10; c++) if (p[r * 10 + c]! > p[r * 10 + best]!) best = c;
        if (best === yTest.data[r]) right++;
      }
      return right / n;
    };
    const f32 = await accuracy('f32', {}), i8 = await accuracy('i8', { quantize: 'int8', calibrate: calibration });
    console.log(`seed CNN held-out accuracy: float32 ${f32}, int8 ${i8}`);
    expect(f32).toBeGreaterThan(0.5);
    expect(i8).toBeGreaterThanOrEqual(f32 - 0.01);
  }, 240_000);
});
