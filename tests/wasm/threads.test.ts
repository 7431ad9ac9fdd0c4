// Threads and relaxed SIMD: an artifact loaded with { threads: 2 } runs its parallel loops on a worker thread over a
// shared memory, and predict and trainStep equal the interpreter (and one thread) bit for bit; its relaxed-SIMD
// build (Node 20: --experimental-wasm-relaxed-simd) is within the error bound of fused multiply-adds.
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
import binaryen from 'binaryen';
import { writePoolArtifact } from './pool.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-threads-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const B = 256, ROWS = 262; // predict: a full chunk of 256 rows (the first layer's matmul in row-tile order: cpu_matmul.ts columnsOuter) and a padded one of 6
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
  it('predict and two training steps on 2 threads equal the interpreter bit for bit; relaxed SIMD within the bound of fused rounding', async () => {
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
for (const threads of [1, 2]) for (const relaxedSimd of [false, true]) {
  const m = await load({ threads, relaxedSimd });
  const [pred] = m.predict([x]);
  const steps = [0, 1].map((s) => Array.from(m.trainStep([x.subarray(0, ${B * 784}), y, Int32Array.of(s)])[0]));
  res[threads + (relaxedSimd ? 'r' : '')] = { threads: m.threads, relaxedSimd: m.relaxedSimd, pred: Array.from(pred), steps, weights: Object.fromEntries([...m.getWeights()].map(([k, v]) => [k, Array.from(v)])) };
  m.close();
}
console.log(JSON.stringify(res));`);
    const got = JSON.parse((await run(process.execPath, ['--experimental-wasm-relaxed-simd', script], { cwd: tmp, maxBuffer: 1 << 27 })).stdout) as Record<string, { threads: number; relaxedSimd: boolean; pred: number[]; steps: number[][]; weights: Record<string, number[]> }>;
    expect(['1', '1r', '2', '2r'].map((k) => [got[k]!.threads, got[k]!.relaxedSimd])).toEqual([[1, false], [1, true], [2, false], [2, true]]);

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

    // relaxed SIMD: one thread or two, the same bits; fused rounding changes some of them
    const r = got['1r']!;
    expect(got['2r']).toEqual({ ...r, threads: 2 });
    expect(r.pred).not.toEqual(Array.from(pred));
    // Each dot product of length K accumulated with fused or with separate rounding is within gamma_K * sum|a b| of
    // the exact one (gamma_K = K u / (1 - K u), u = 2^-24), so the two within twice that; relu passes the error on
    // (1-Lipschitz), the second layer adds its own and |W2| times the first's, and softmax moves no probability by
    // more than the largest change of a logit.
    const gamma = (k: number) => (k * 2 ** -24) / (1 - k * 2 ** -24);
    const [W1, b1, W2, b2] = [...weights.values()] as Float32Array[];
    for (let row = 0; row < ROWS; row++) {
      const h: number[] = [], e1: number[] = [];
      for (let j = 0; j < 64; j++) {
        let v = b1![j]!, s = Math.abs(b1![j]!);
        for (let k = 0; k < 784; k++) { v += x[row * 784 + k]! * W1![k * 64 + j]!; s += Math.abs(x[row * 784 + k]! * W1![k * 64 + j]!); }
        h.push(Math.max(v, 0));
        e1.push(2 * gamma(785) * s);
      }
      let e2 = 0;
      for (let j = 0; j < 10; j++) {
        let s = Math.abs(b2![j]!), prop = 0;
        for (let i = 0; i < 64; i++) { s += Math.abs(h[i]! * W2![i * 10 + j]!); prop += e1[i]! * Math.abs(W2![i * 10 + j]!); }
        e2 = Math.max(e2, 2 * gamma(65) * s + prop);
      }
      // plus a few ulps of exp and the division in softmax, computed alike in both builds
      for (let j = 0; j < 10; j++) expect(Math.abs(r.pred[row * 10 + j]! - pred[row * 10 + j]!)).toBeLessThanOrEqual(e2 + 4e-7);
    }
    // training: the loss and every updated param close to the exact step's (Adam scales steps to about the
    // learning rate whatever the gradient's size, so a last-bit change of a gradient moves a weight by far less)
    const near = (a: readonly number[], b: ArrayLike<number>) => a.every((v, i) => Math.abs(v - b[i]!) <= 1e-6 + 1e-5 * Math.abs(b[i]!));
    expect(r.steps.every((l, i) => near(l, losses[i]!))).toBe(true);
    for (const [k, v] of params) expect(near(r.weights[k]!, v), k).toBe(true);

    // without its worker script, threads are one error line naming it; one thread needs none
    rmSync(path.join(out, 'model.worker.mjs'));
    const missing = path.join(tmp, 'missing.mjs');
    writeFileSync(missing, `import { load } from ${JSON.stringify(`file://${out}/model.mjs`)};
console.log((await load({ threads: 1 })).threads);
await load({ threads: 2 });`);
    const e = await run(process.execPath, [missing], { cwd: tmp }).then(() => undefined, (err: { stdout: string; stderr: string }) => err);
    expect(e?.stdout.trim()).toBe('1');
    expect(e?.stderr.split('\n').find((l) => l.startsWith('Error: '))).toMatch(/^Error: kiln: thread 1 of 2 \(file:.*\/model\.worker\.mjs\): Cannot find module/);
  }, 300_000);

  it('a trap in a piece a worker runs is an Error of the call naming the thread, and the pool runs the next call', async () => {
    // chunk0 over 8 iterations, one piece each: piece 0 waits for another piece to start (a flag in memory); every
    // other piece sets the flag and traps. The calling thread claims piece 0 first, so the worker runs (and traps
    // in) the others; on the second call the flag is set already and either thread may trap.
    const dir = path.join(tmp, 'trap');
    writePoolArtifact(dir, (m) => {
      const begin = () => m.local.get(0, binaryen.i32), flag = () => m.i32.atomic.load(0, m.i32.const(0));
      m.addFunction('chunk0', binaryen.createType([binaryen.i32, binaryen.i32]), binaryen.none, [], m.if(m.i32.eqz(begin()),
        m.loop('wait', m.br('wait', m.i32.eqz(flag()))),
        m.block(null, [m.i32.atomic.store(0, m.i32.const(0), m.i32.const(1)), m.unreachable()])));
      m.addFunction('trainStep', binaryen.none, binaryen.none, [], m.drop(m.call('kiln.parallel', [m.i32.const(0), m.i32.const(8)], binaryen.i32)));
    });
    const script = path.join(tmp, 'trap.mjs');
    writeFileSync(script, `import { load } from ${JSON.stringify(`file://${dir}/model.mjs`)};
const m = await load({ threads: 2, relaxedSimd: false });
const errors = [];
for (let i = 0; i < 2; i++) {
  try { m.trainStep([]); errors.push('no error'); } catch (e) { errors.push(e.message); }
}
m.close();
console.log(JSON.stringify(errors));`);
    const out = JSON.parse((await run(process.execPath, [script], { cwd: tmp, timeout: 60_000 })).stdout) as string[];
    // mostly the worker (thread 1), named; on a loaded machine a spinning worker may claim piece 0 before the calling
    // thread does, and then the calling thread traps in piece 1 and its own trap is the call's error
    expect(out[0]).toMatch(/^(kiln: a parallel loop failed on thread 1 of 2: .*)?unreachable/);
    expect(out[1]).toMatch(/unreachable/);
  }, 120_000);
});
