// Helpers for the native targets' tests (llvm, cuda): run a built model_main on a graph's inputs, compare with
// the reference interpreter.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
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
 * Writes g's inputs as .npy in dir, runs `[...wrap] exe --entry entry --out dir/out in0.npy ...` (wrap: e.g. taskset),
 * reads back one .npy per output.
 */
export function runMain(exe: string, dir: string, g: Graph, inputs: Data, env: NodeJS.ProcessEnv = {}, entry = 'predict', wrap: readonly string[] = []): Map<string, TypedArray> {
  const files = g.inputs.map((node, i) => {
    const f = path.join(dir, `in${i}.npy`);
    writeFileSync(f, writeNpy(node.type.dtype, node.type.shape, inputs[String(node.attrs['name'])]!));
    return f;
  });
  const [cmd, ...args] = [...wrap, exe, '--entry', entry, '--out', path.join(dir, 'out'), ...files];
  execFileSync(cmd!, args, { cwd: dir, env: { ...process.env, ...env } });
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
