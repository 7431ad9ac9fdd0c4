// A masked sequence model (Embedding maskZero -> Bidirectional(LSTM, sequences) -> masked GlobalAveragePooling1D ->
// Dense) compiled for llvm: model_main equals the in-process wasm predict, so the mask's `where`s in the scan body
// (a bool sequence of the loop) lower on the native target too.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { compile } from '../../compiler.js';
import * as keras from '../../frontend/index.js';
import { readNpy, writeNpy } from '../../runtime/npy.js';
import { expectClose, tf, uniform } from '../frontend/helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-mask-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

it('llvm model_main equals wasm predict on a masked Bidirectional model', async () => {
  keras.backend.clearSession();
  const L = keras.layers;
  const model = keras.Sequential([
    keras.Input({ shape: [6], dtype: 'int32' }), L.Embedding(10, 3, { maskZero: true }),
    L.Bidirectional(L.LSTM(4, { returnSequences: true }), { mergeMode: 'sum' }), L.GlobalAveragePooling1D(), L.Dense(2),
  ]);
  model.setWeights(model.weights.map((w, i) => uniform(w.shape, 50 + i, -0.5, 0.5)));
  const ids = new Int32Array([3, 1, 4, 0, 0, 0, 0, 0, 2, 7, 1, 8, 5, 0, 9, 0, 2, 6]);
  const want = model.predict(keras.ops.reshape(keras.ops.array(ids, 'int32'), [3, 6])) as keras.Tensor;
  const dir = path.join(tmp, 'llvm');
  await compile(model, { target: 'llvm', outDir: dir, maxBatch: 4 });
  const file = path.join(dir, 'ids.npy');
  writeFileSync(file, writeNpy('int32', [3, 6], ids));
  const r = spawnSync(path.join(dir, 'model_main'), ['--out', path.join(dir, 'out'), file], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  const got = readNpy(new Uint8Array(readFileSync(path.join(dir, 'out', `${model.outputNames[0]!}.npy`))));
  expectClose({ shape: got.shape, dtype: 'float32', data: got.data as Float32Array }, tf.tensor(want.data, [...want.shape]), 1e-5);
});
