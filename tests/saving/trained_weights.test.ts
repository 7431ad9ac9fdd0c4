// model_train's output weights (llvm target, --train) load with model.loadWeights, and the model then predicts what
// the artifact's model_main predicts with the same weights file.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { compile } from '../../compiler.js';
import * as keras from '../../frontend/index.js';
import { readNpy, writeNpy } from '../../runtime/npy.js';

const FIX = path.join(import.meta.dirname, '..', 'fixtures', 'keras');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-trained-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

it('weights model_train writes load with loadWeights and predict what model_main predicts with them', { timeout: 600_000 }, async () => {
  // the Keras CNN fixture: conv, batch norm (moving statistics that training updates too), pooling, dense
  const model = await keras.saving.loadModel(path.join(FIX, 'cnn.keras'));
  model.compile({ optimizer: keras.optimizers.Adam({ learningRate: 0.01 }), loss: 'mse' });
  const dir = path.join(tmp, 'llvm');
  await compile(model, { target: 'llvm', outDir: dir, train: true, batchSize: 4 });
  let s = 3;
  const rand = (n: number) => Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1);
  writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [16, 8, 8, 2], rand(16 * 128)));
  writeFileSync(path.join(dir, 'y.npy'), writeNpy('float32', [16, 2], rand(32)));
  const t = spawnSync(path.join(dir, 'model_train'), ['--epochs', '3', '--out', 'w.safetensors', 'x.npy', 'y.npy'], { cwd: dir, encoding: 'utf8' });
  expect(t.status, t.stderr).toBe(0);

  const x0 = path.join(FIX, 'cnn.x0.npy');
  const r = spawnSync(path.join(dir, 'model_main'), ['--weights', 'w.safetensors', '--out', 'out', x0], { cwd: dir, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const [output] = (JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { outputs: { name: string }[] }).outputs;
  const native = readNpy(new Uint8Array(readFileSync(path.join(dir, 'out', `${output!.name}.npy`)))).data;

  const a = readNpy(new Uint8Array(readFileSync(x0)));
  const x = new keras.Tensor(a.dtype, a.shape, a.data);
  const before = model.weights.map((w) => Float32Array.from(w.data as Float32Array));
  const untrained = model.predict(x).data;
  await model.loadWeights(path.join(dir, 'w.safetensors'));
  // training moved every weight, the batch norm's moving statistics included
  model.weights.forEach((w, i) => expect(w.data, w.path).not.toEqual(before[i]));
  const y = model.predict(x).data;
  expect(Math.max(...y.map((v, i) => Math.abs(v - untrained[i]!)))).toBeGreaterThan(1e-3);
  expect(y.length).toBe(native.length);
  y.forEach((v, i) => expect(Math.abs(v - native[i]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(v))));
});
