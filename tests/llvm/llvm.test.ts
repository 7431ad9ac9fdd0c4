// The llvm target against the reference interpreter: model_main on .npy inputs, model_train, a C program on model.h.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Builder, type Graph } from '../../ir/graph.js';
import type { TypedArray } from '../../ir/types.js';
import { compileLlvm } from '../../codegen/llvm/target.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { readNpy, writeNpy } from '../../runtime/npy.js';
import { readSafetensors } from '../../runtime/safetensors.js';
import { type Data, modelInputs } from '../passes/differential.js';
import { buildUpdateMain, outputDiffs, readTensors, runMain, runWithUpdates, seedMlpAccuracy, seedMlpTrainer, updateDiffs, weightsOf, withUpdates } from '../native.js';
import { UPDATE_GRAPHS, updateCase } from '../passes/update_graphs.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-llvm-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

/** Compiles one graph as the predict entry, runs model_main on its inputs, returns outputs by name. */
function runLlvm(g: Graph, inputs: Data, params: Data, threads = 1): { outputs: Map<string, TypedArray>; dir: string } {
  const dir = path.join(tmp, `m${n++}`);
  compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, params), threads });
  return { outputs: runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: String(threads) }), dir };
}

function compare(g: Graph, inputs: Data, params: Data, threads = 1): string[] {
  return outputDiffs(g, inputs, params, runLlvm(g, inputs, params, threads).outputs, 'llvm');
}

const params = (vars: readonly keras.Variable[]): Data => Object.fromEntries(vars.map((v) => [v.path, v.data]));

describe('llvm target', () => {
  it('the seed MLP: model_main equals the interpreter', () => {
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    for (const b of [1, 8]) {
      const t = traceModel(model, b);
      expect(compare(t.graph, modelInputs(t.graph, b), params(t.variables))).toEqual([]);
    }
  });

  it('parallel outer loops on the thread pool (3 threads) give the same results', () => {
    const model = keras.Sequential([keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }), keras.layers.Dense(10, { activation: 'softmax' })]);
    const t = traceModel(model, 64);
    expect(compare(t.graph, modelInputs(t.graph, 2), params(t.variables), 3)).toEqual([]);
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[32, 784]], [[32]]);
    const g = withUpdates(step.graph);
    expect(compare(g, modelInputs(g, 4), params(step.variables), 3)).toEqual([]);
  });

  it('under taskset -c 0 and -c 0,1 (the pool sized by the affinity mask, KILN_NUM_THREADS unset) the training step equals the interpreter', () => {
    const model = keras.Sequential([keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }), keras.layers.Dense(10, { activation: 'softmax' })]);
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[32, 784]], [[32]]);
    const g = withUpdates(step.graph), inputs = modelInputs(g, 4), ps = params(step.variables);
    const dir = path.join(tmp, 'taskset');
    compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 32 }], weights: weightsOf(g, ps), threads: 2 });
    for (const cpus of ['0', '0,1']) {
      const outputs = runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: undefined }, 'predict', ['taskset', '-c', cpus]);
      expect(outputDiffs(g, inputs, ps, outputs, `llvm on CPUs ${cpus}`)).toEqual([]);
    }
  });

  it('the title/body model (two inputs, two outputs)', () => {
    const title = keras.Input({ shape: [100], name: 'title' }), body = keras.Input({ shape: [500], name: 'body' });
    const x = keras.layers.concatenate([keras.layers.Dense(64, { activation: 'relu' })(title), keras.layers.Dense(64, { activation: 'relu' })(body)]);
    const model = keras.Model({ inputs: [title, body], outputs: [keras.layers.Dense(1, { activation: 'sigmoid', name: 'priority' })(x), keras.layers.Dense(4, { activation: 'softmax', name: 'department' })(x)] });
    const t = traceModel(model, 3);
    expect(compare(t.graph, modelInputs(t.graph, 3), params(t.variables))).toEqual([]);
  });

  it('empty tensors: model_main reads a (0, 3) .npy and an empty weight, writes a (0, 3) output and the products over no row (1)', () => {
    const b = new Builder();
    const x = b.input('x', { dtype: 'float32', shape: [0, 3] }), w = b.param('w', { dtype: 'float32', shape: [0, 3] });
    const s = b.emit('reduce_prod', [b.emit('mul', [x, w])], { axes: [0], keepdims: false });
    const g = b.finish('empty', [{ name: 'y', node: b.emit('add', [x, w]) }, { name: 's', node: b.emit('neg', [s]) }]);
    const { outputs, dir } = runLlvm(g, { x: new Float32Array(0) }, { w: new Float32Array(0) });
    expect(readNpy(new Uint8Array(readFileSync(path.join(dir, 'out', 'y.npy')))).shape).toEqual([0, 3]);
    expect([...outputs.get('s')!]).toEqual([-1, -1, -1]);
    expect(outputDiffs(g, { x: new Float32Array(0) }, { w: new Float32Array(0) }, outputs, 'llvm')).toEqual([]);
  });

  it('the Adam training step as the predict entry (all outputs and updates through outputs)', () => {
    const model = keras.Sequential([keras.layers.Dense(16, { activation: 'relu', inputShape: [20] }), keras.layers.Dropout(0.5), keras.layers.Dense(5, { activation: 'softmax' })]);
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[4, 20]], [[4]]);
    // expose every update as an output so model_main writes it
    const g = withUpdates(step.graph);
    expect(compare(g, modelInputs(g, 4), params(step.variables))).toEqual([]);
  });

  it('a CNN (register-blocked conv micro-kernels): inference and the Adam training step', () => {
    const model = keras.Sequential([
      keras.layers.Conv2D(8, 3, { activation: 'relu', padding: 'same', inputShape: [12, 12, 2] }),
      keras.layers.MaxPooling2D(2),
      keras.layers.Conv2D(16, 3, { activation: 'relu', strides: 2 }),
      keras.layers.Flatten(),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    const t = traceModel(model, 2);
    expect(compare(t.graph, modelInputs(t.graph, 2), params(t.variables))).toEqual([]);
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[3, 12, 12, 2]], [[3]]);
    const g = withUpdates(step.graph);
    expect(compare(g, modelInputs(g, 5), params(step.variables))).toEqual([]);
  });

});

describe('names in C source', () => {
  it('weights, inputs and outputs named with trigraphs, comment ends, quotes, backslashes, newlines and non-ASCII are found by name', () => {
    // decoys: what the trigraphs ??- and ??/ would turn the first two names into
    const names = ['q??-/kernel', 'q~/kernel', 'x??/', 'x\\', 'a*/b', '/* c */', 'say "hi"', 'back\\slash', 'new\nline', 'ünï€😀', 'tab\there?', "it's ??= ??' ??!"];
    const b = new Builder();
    const x = b.input('x??/"in"', { dtype: 'float32', shape: [3] });
    const outs = names.map((name, i) => ({ name: i ? `o${i}` : 'out??-"\n*/', node: b.emit('mul', [x, b.param(name, { dtype: 'float32', shape: [3] })]) }));
    const g = b.finish('names', outs);
    const ps: Data = Object.fromEntries(names.map((name, i) => [name, Float32Array.of(i + 1, -(i + 2), (i + 3) / 4)]));
    const inputs: Data = { 'x??/"in"': Float32Array.of(1.5, 2, -3) };
    const { outputs, dir } = runLlvm(g, inputs, ps);
    expect(outputDiffs(g, inputs, ps, outputs, 'llvm')).toEqual([]);
    expect(readFileSync(path.join(dir, 'model_desc.c'), 'utf8')).not.toMatch(/\?\?/);
  });
});

describe('llvm in-place updates (issue 11: a nest overwrote param elements before reading them)', () => {
  it('graphs reading the param they update through transposes, gathers, slices, reshapes and reductions', () => {
    // one module, an entry per graph; each run starts from the weights file and saves every param afterwards
    const cases = Object.keys(UPDATE_GRAPHS).map((name) => ({ name, ...updateCase(name) }));
    const dir = path.join(tmp, 'updates');
    compileLlvm({ outDir: dir, entries: cases.map((c) => ({ name: c.name, graph: c.g, batchSize: 1 })), weights: cases.flatMap((c) => weightsOf(c.g, c.params)), threads: 1 });
    buildUpdateMain(dir, ['libmodel.a']);
    for (const c of cases) expect(updateDiffs(c.g, c.inputs, c.params, runWithUpdates(dir, c.name, c.g, c.inputs), 'llvm'), c.name).toEqual([]);
  });
});

describe('llvm artifacts', () => {
  const root = path.resolve(import.meta.dirname, '../..');

  it('kiln compile --target llvm builds a C library a C program can use through model.h', () => {
    const dir = path.join(tmp, 'cli');
    execFileSync(process.execPath, [path.join(root, 'dist/cli/main.js'), 'compile', 'examples/seed/sequential.ts', '--target', 'llvm', '-o', dir], { cwd: root });
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    expect(manifest.entries.predict.kernels.length).toBeLessThanOrEqual(2);
    const header = readFileSync(path.join(dir, 'model.h'), 'utf8');
    expect(header).toMatch(/#define KILN_ARENA_BYTES \d+L/);
    // a user's C program: static memory, init from the weights file, predict on one row
    writeFileSync(path.join(dir, 'app.c'), `#include <stdio.h>
#include "model.h"
static unsigned char mem[KILN_MEMORY_BYTES] __attribute__((aligned(64)));
int main(void) {
  static float x[784], y[10];
  for (int i = 0; i < 784; i++) x[i] = (float)(i % 7) / 7.0f;
  if (kiln_init(&kiln_model, mem, "weights.safetensors") != 0) { fprintf(stderr, "%s\\n", kiln_error()); return 1; }
  const void *in[1] = {x}; void *out[1] = {y};
  if (kiln_run_rows(&kiln_model, mem, "predict", 1, in, out) != 0) { fprintf(stderr, "%s\\n", kiln_error()); return 1; }
  for (int i = 0; i < 10; i++) printf("%.9g\\n", y[i]);
  return 0;
}
`);
    execFileSync('gcc', ['-O2', '-std=c99', '-pthread', 'app.c', 'libmodel.a', '-lm', '-o', 'app'], { cwd: dir });
    const got = execFileSync(path.join(dir, 'app'), { cwd: dir }).toString().trim().split('\n').map(Number);
    // the same model with the artifact's weights, on the interpreter
    const weights = readSafetensorsFile(path.join(dir, 'weights.safetensors'));
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    model.setWeights(model.weights.map((w, i) => new keras.Tensor('float32', w.shape, weights.get(String(i))!)));
    const x = Float32Array.from({ length: 784 }, (_, i) => Math.fround((i % 7) / 7));
    const want = model.predict(new keras.Tensor('float32', [1, 784], x), { backend: 'interpreter' }) as keras.Tensor;
    got.forEach((v, i) => expect(Math.abs(v - want.data[i]!)).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(want.data[i]!)));
  });
});

function readSafetensorsFile(file: string): Map<string, Float32Array> {
  const { tensors } = readSafetensors(new Uint8Array(readFileSync(file)));
  // weights come in Keras order: map them by position onto a fresh model's weights
  return new Map(tensors.map((t, i) => [String(i), t.data as Float32Array]));
}

describe('model_train', () => {
  it('trains the seed MLP on 8,000 bundled digits to at least 90% held-out accuracy (5 epochs, batch 32, Adam)', () => {
    const dir = path.join(tmp, 'train');
    const { xTest, yTest } = seedMlpTrainer('llvm', dir);
    const log = execFileSync(path.join(dir, 'model_train'), ['--epochs', '5', '--batch-size', '32', '--out', 'trained.safetensors', 'x.npy', 'y.npy'], { cwd: dir }).toString();
    expect(log).toMatch(/Epoch 5\/5/);
    const accuracy = seedMlpAccuracy(readTensors(path.join(dir, 'trained.safetensors')), xTest, yTest);
    expect(accuracy).toBeGreaterThanOrEqual(0.9);
  });
});

describe('llvm cross-compilation and embedded weights', () => {
  const root = path.resolve(import.meta.dirname, '../..');

  it.each([['aarch64-linux-gnu', 183, 2], ['thumbv7em-none-eabihf', 40, 1]] as const)('--triple %s builds an ELF object for that machine', (triple, machine, elfClass) => {
    const dir = path.join(tmp, `triple-${triple}`);
    execFileSync(process.execPath, [path.join(root, 'dist/cli/main.js'), 'compile', 'examples/seed/sequential.ts', '--target', 'llvm', '--triple', triple, '--embed-weights', '-o', dir], { cwd: root });
    const elf = readFileSync(path.join(dir, 'model.o'));
    expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(elf[4]).toBe(elfClass); // 1: 32-bit, 2: 64-bit
    expect(elf.readUInt16LE(18)).toBe(machine); // e_machine: 183 AArch64, 40 ARM
    // weights inside the object's tables: copied into memory at init (hosted), or read in place from flash (freestanding)
    expect(readFileSync(path.join(dir, 'model_desc.c'), 'utf8')).toMatch(triple.includes('-none-') ? /const unsigned char kiln_flash\[\d+\]/ : /segment0\[\]/);
  });

  it('--embed-weights: model_main needs no weights file', () => {
    const dir = path.join(tmp, 'embedded');
    execFileSync(process.execPath, [path.join(root, 'dist/cli/main.js'), 'compile', 'examples/seed/sequential.ts', '--target', 'llvm', '--embed-weights', '-o', dir], { cwd: root });
    const weights = readSafetensors(new Uint8Array(readFileSync(path.join(dir, 'weights.safetensors')))).tensors;
    rmSync(path.join(dir, 'weights.safetensors'));
    const x = Float32Array.from({ length: 784 }, (_, i) => Math.fround(Math.cos(i)));
    writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [1, 784], x));
    execFileSync(path.join(dir, 'model_main'), ['--out', 'out', 'x.npy'], { cwd: dir });
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    const y = readNpy(new Uint8Array(readFileSync(path.join(dir, 'out', `${manifest.outputs[0].name}.npy`)))).data;
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    model.setWeights(model.weights.map((w, i) => new keras.Tensor('float32', w.shape, weights[i]!.data as Float32Array)));
    const want = model.predict(new keras.Tensor('float32', [1, 784], x), { backend: 'interpreter' }) as keras.Tensor;
    Array.from(y).forEach((v, i) => expect(Math.abs(v - want.data[i]!)).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(want.data[i]!)));
  });
});
