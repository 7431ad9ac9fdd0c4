// Threads: an artifact loaded with { threads: 2 } runs its parallel loops on a worker thread over a shared memory,
// and predict and trainStep equal the interpreter (and one thread) bit for bit.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { interpret } from '../../ir/interpreter.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { traceModel } from '../../frontend/models/executor.js';
import { readSafetensors } from '../../runtime/safetensors.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-threads-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const B = 64, ROWS = 70; // predict: a full chunk of 64 rows and a padded one of 6
const x = Float32Array.from({ length: ROWS * 784 }, (_, i) => (Math.sin(i * 0.37) + 1) / 2);
const y = Int32Array.from({ length: B }, (_, i) => (i * 7) % 10);

/** The seed MLP with the artifact's weights, and its optimizer state as the artifact starts it. */
function seedModel(weights: Map<string, Float32Array>): keras.Sequential {
  const model = keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
  model.setWeights([...weights.values()].slice(0, 4).map((d, i) => new keras.Tensor('float32', model.weights[i]!.shape, d)));
  return model;
}

describe('wasm threads', () => {
  it('predict and two training steps on 2 threads equal the interpreter bit for bit', async () => {
    const file = path.join(tmp, 'mlp.ts'), out = path.join(tmp, 'mlp');
    writeFileSync(file, `import * as keras from 'kiln';
const model = keras.Sequential([
  keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
  keras.layers.Dropout(0.2),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);
model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
export default model;
`);
    await run(process.execPath, [path.join(root, 'dist/cli/main.js'), 'compile', file, '--target', 'wasm', '--train', '--batch-size', String(B), '-o', out], { cwd: root });
    expect(readdirSync(out)).toEqual(expect.arrayContaining(['model-threads.wasm', 'model.worker.mjs']));
    // the schedule made loops parallel: the threaded module exports their chunks
    const chunks = WebAssembly.Module.exports(new WebAssembly.Module(readFileSync(path.join(out, 'model-threads.wasm')))).filter((e) => /^chunk\d+$/.test(e.name));
    expect(chunks.length).toBeGreaterThanOrEqual(4);

    const bin = path.join(tmp, 'x.bin');
    writeFileSync(bin, new Uint8Array(x.buffer));
    const script = path.join(tmp, 'use.mjs');
    writeFileSync(script, `import { readFileSync } from 'node:fs';
import { load } from ${JSON.stringify(`file://${out}/model.mjs`)};
const x = new Float32Array(readFileSync(${JSON.stringify(bin)}).buffer.slice(0));
const y = Int32Array.from(${JSON.stringify(Array.from(y))});
const res = {};
for (const threads of [1, 2]) {
  const m = await load({ threads });
  const [pred] = m.predict([x]);
  const steps = [0, 1].map((s) => Array.from(m.trainStep([x.subarray(0, ${B * 784}), y, Int32Array.of(s)])[0]));
  res[threads] = { threads: m.threads, pred: Array.from(pred), steps, weights: Object.fromEntries([...m.getWeights()].map(([k, v]) => [k, Array.from(v)])) };
  m.close();
}
console.log(JSON.stringify(res));`);
    const got = JSON.parse((await run(process.execPath, [script], { cwd: tmp, maxBuffer: 1 << 26 })).stdout) as Record<string, { threads: number; pred: number[]; steps: number[][]; weights: Record<string, number[]> }>;
    expect([got['1']!.threads, got['2']!.threads]).toEqual([1, 2]);

    const weights = new Map(readSafetensors(new Uint8Array(readFileSync(path.join(out, 'weights.safetensors')))).tensors.map((t) => [t.name, t.data as Float32Array]));
    const model = seedModel(weights);
    const t = traceModel(model, ROWS);
    const input = String(t.graph.inputs[0]!.attrs['name']), output = t.graph.outputs[0]!.name;
    const pred = interpret(t.graph, { [input]: x }, Object.fromEntries(t.variables.map((v) => [v.path, v.data]))).outputs.get(output)!.data;
    const step = traceTrainStep(model, compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' }), [[B, 784]], [[B]]);
    const params = new Map(step.variables.map((v) => [v.path, weights.get(v.path) ?? v.data]));
    const losses: number[][] = [];
    for (const s of [0, 1]) {
      const r = interpret(step.graph, { [input]: x.subarray(0, B * 784), [`target/${output}`]: y, rng_counter: Int32Array.of(s) }, Object.fromEntries(params));
      losses.push(Array.from(r.outputs.get('loss')!.data));
      for (const [k, v] of r.updates) params.set(k, v.data as Float32Array);
    }
    for (const threads of ['1', '2']) {
      const g = got[threads]!;
      expect(g.pred).toEqual(Array.from(pred));
      expect(g.steps).toEqual(losses);
      expect(Object.keys(g.weights).sort()).toEqual([...params.keys()].sort());
      for (const [k, v] of params) expect(g.weights[k], k).toEqual(Array.from(v));
    }
  }, 300_000);
});
