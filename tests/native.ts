// Helpers for the native targets' tests (llvm, cuda): run a built model_main on a graph's inputs, compare with
// the reference interpreter.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { type Graph, updatesAsOutputs } from '../ir/graph.js';
import { interpret } from '../ir/interpreter.js';
import type { TypedArray } from '../ir/types.js';
import * as keras from '../frontend/index.js';
import { readNpy, writeNpy } from '../runtime/npy.js';
import { type NamedTensor, readSafetensors } from '../runtime/safetensors.js';
import type { Data } from './passes/differential.js';
import { close } from '../fuzz/targets.js';

/** Weights of g's params from a name -> data map, as the targets' compile functions take them. */
export function weightsOf(g: Graph, params: Data): { name: string; dtype: 'float32' | 'int32' | 'bool'; shape: readonly number[]; data: TypedArray }[] {
  return g.params.map((p) => ({ name: String(p.attrs['name']), dtype: p.type.dtype as 'float32', shape: p.type.shape, data: params[String(p.attrs['name'])]! }));
}

/**
 * Writes g's inputs as .npy in dir, runs `[...wrap] exe [...args] --entry entry --out dir/out in0.npy ...` (wrap: e.g. taskset),
 * reads back one .npy per output.
 */
export function runMain(exe: string, dir: string, g: Graph, inputs: Data, env: NodeJS.ProcessEnv = {}, entry = 'predict', wrap: readonly string[] = [], args: readonly string[] = []): Map<string, TypedArray> {
  const files = g.inputs.map((node, i) => {
    const f = path.join(dir, `in${i}.npy`);
    writeFileSync(f, writeNpy(node.type.dtype, node.type.shape, inputs[String(node.attrs['name'])]!));
    return f;
  });
  const [cmd, ...rest] = [...wrap, exe, ...args, '--entry', entry, '--out', path.join(dir, 'out'), ...files];
  execFileSync(cmd!, rest, { cwd: dir, env: { ...process.env, ...env } });
  return new Map(g.outputs.map((o) => [o.name, readNpy(new Uint8Array(readFileSync(path.join(dir, 'out', `${o.name.replace(/\//g, '_')}.npy`)))).data]));
}

/** Outputs outside rtol 1e-5 + atol 1e-6 of the interpreter's (NaN must match NaN), at most 4 lines. */
export function outputDiffs(g: Graph, inputs: Data, params: Data, outputs: ReadonlyMap<string, TypedArray>, label: string): string[] {
  const ref = interpret(g, inputs, params);
  const bad: string[] = [];
  for (const [k, v] of ref.outputs) {
    const got = outputs.get(k)!;
    for (let i = 0; i < v.data.length; i++) {
      const w = v.data[i]!, h = got[i]!;
      if (!close(w, h) && bad.length < 4) bad.push(`${k}[${i}]: ${label} ${h}, interpreter ${w}`);
    }
  }
  return bad;
}

/** Links tests/c/update_main.c with `objects` (files in dir) and `libs` into dir/update_main. */
export function buildUpdateMain(dir: string, objects: string[], libs: string[] = []): void {
  // copied next to the artifact's model.h: "model.h" is looked up first beside the source (tests/c has a fake one)
  copyFileSync(path.join(root, 'tests/c/update_main.c'), path.join(dir, 'update_main.c'));
  execFileSync('gcc', ['-O2', '-std=c99', '-pthread', 'update_main.c', ...objects, ...libs, '-lm', '-o', 'update_main'], { cwd: dir });
}

/**
 * Runs one entry of the native artifact in dir once through dir/update_main (buildUpdateMain): the outputs, and
 * every param's value afterwards (in-place updates and copies applied, as the C runtime leaves them).
 */
export function runWithUpdates(dir: string, entry: string, g: Graph, inputs: Data): { outputs: Map<string, TypedArray>; params: Map<string, TypedArray> } {
  const files = g.inputs.map((node, i) => {
    const f = path.join(dir, `in${i}.npy`);
    writeFileSync(f, writeNpy(node.type.dtype, node.type.shape, inputs[String(node.attrs['name'])]!));
    return f;
  });
  execFileSync(path.join(dir, 'update_main'), [entry, 'new.safetensors', ...files], { cwd: dir });
  return {
    outputs: new Map(g.outputs.map((o, i) => [o.name, readNpy(new Uint8Array(readFileSync(path.join(dir, `out${i}.npy`)))).data])),
    params: new Map(readTensors(path.join(dir, 'new.safetensors')).map((t) => [t.name, t.data])),
  };
}

/** As outputDiffs, for the outputs and the updated params of a run with in-place updates. */
export function updateDiffs(g: Graph, inputs: Data, params: Data, got: ReturnType<typeof runWithUpdates>, label: string): string[] {
  const ref = interpret(g, inputs, params);
  const bad: string[] = [];
  const check = (what: string, want: ArrayLike<number>, have: ArrayLike<number> | undefined) => {
    if (!have || have.length !== want.length) { bad.push(`${what}: ${have?.length ?? 'no'} elements, want ${want.length}`); return; }
    for (let i = 0; i < want.length; i++) {
      const w = want[i]!, h = have[i]!;
      const ok = Number.isNaN(w) ? Number.isNaN(h) : w === h || Math.abs(w - h) <= 1e-6 + 1e-5 * Math.abs(w);
      if (!ok && bad.length < 4) bad.push(`${what}[${i}]: ${label} ${h}, interpreter ${w}`);
    }
  };
  for (const [k, v] of ref.outputs) check(`output ${k}`, v.data, got.outputs.get(k));
  for (const [k, v] of ref.updates) check(`update ${k}`, v.data, got.params.get(k));
  return bad;
}

/** g with every update also an output `new/<param>` (model_main writes outputs only). */
export const withUpdates = updatesAsOutputs;

const root = path.resolve(import.meta.dirname, '..');

/**
 * `kiln compile examples/seed/losses.ts --target T --train --batch-size 32 -o dir` (the seed MLP with Adam), and
 * 8,000 bundled digits written there as x.npy and y.npy; returns the 2,000 held-out ones.
 */
export function seedMlpTrainer(target: 'llvm' | 'cuda', dir: string): { xTest: keras.Tensor; yTest: keras.Tensor } {
  execFileSync(process.execPath, [path.join(root, 'dist/cli/main.js'), 'compile', 'examples/seed/losses.ts', '--target', target, '--train', '--batch-size', '32', '-o', dir], { cwd: root });
  const [[xTrain, yTrain], [xTest, yTest]] = keras.datasets.mnist.loadData({ trainCount: 8000 });
  writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [8000, 784], xTrain.data));
  writeFileSync(path.join(dir, 'y.npy'), writeNpy('int32', [8000], yTrain.data));
  return { xTest, yTest };
}

/** The tensors of a safetensors file. */
export const readTensors = (file: string): NamedTensor[] => readSafetensors(new Uint8Array(readFileSync(file))).tensors;

/** Accuracy of the seed MLP with trained weights (Keras order) on held-out digits. */
export function seedMlpAccuracy(trained: readonly NamedTensor[], xTest: keras.Tensor, yTest: keras.Tensor): number {
  const model = keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
  model.setWeights(model.weights.map((w, i) => new keras.Tensor('float32', w.shape, trained[i]!.data as Float32Array)));
  const pred = keras.ops.argmax(model.predict(keras.ops.reshape(xTest, [-1, 784]), { batchSize: 500 }) as keras.Tensor, -1);
  return keras.ops.sum(keras.ops.cast(keras.ops.equal(pred, yTest), 'int32')).item() / yTest.shape[0]!;
}

/** The largest difference of two weight files, tensor by tensor, relative to the tensor's largest magnitude. */
export function relativeDiff(a: string, b: string): number {
  const x = readTensors(a), y = readTensors(b);
  expect(y.map((t) => t.name)).toEqual(x.map((t) => t.name));
  let worst = 0;
  x.forEach((t, i) => {
    const u = t.data, v = y[i]!.data;
    const scale = Math.max(...Array.from(u, Math.abs));
    for (let k = 0; k < u.length; k++) worst = Math.max(worst, Math.abs(u[k]! - v[k]!) / (scale || 1));
  });
  return worst;
}

/** nvcc builds dir/model.cu for sm_90 with -Xptxas -v: no error, no warning, and no kernel spills a register. */
export function expectNvccClean(dir: string): void {
  const r = spawnSync('nvcc', ['-O3', '-arch=sm_90', '-std=c++17', '-Xptxas', '-v', '-Werror', 'all-warnings', '-c', 'model.cu', '-o', 'model_gpu.o'], { cwd: dir, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const reports = r.stderr.split('\n').filter((l) => /bytes spill stores/.test(l));
  expect(reports.length).toBeGreaterThan(0);
  expect(reports.filter((l) => !/ 0 bytes spill stores, 0 bytes spill loads/.test(l))).toEqual([]);
  expect(r.stderr).not.toMatch(/warning/i);
}
