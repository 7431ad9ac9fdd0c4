// The cuda target: model.cu built with nvcc for sm_90 (where nvcc is installed: a compile check, no GPU here), and
// the same source built for the CPU (KILN_CUDA_EMULATE: blocks and thread loops in order, per-thread arrays) run
// on .npy inputs against the reference interpreter.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCuda, hasNvcc } from '../../codegen/cuda/target.js';
import { H100 } from '../../codegen/loop/gpu.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import type { Graph } from '../../ir/graph.js';
import { parseGraph } from '../../ir/parser.js';
import type { TypedArray } from '../../ir/types.js';
import { writeNpy } from '../../runtime/npy.js';
import { type Data, modelInputs } from '../passes/differential.js';
import { buildUpdateMain, outputDiffs, readTensors, runMain, runWithUpdates, seedMlpAccuracy, seedMlpTrainer, updateDiffs, weightsOf, withUpdates } from '../native.js';
import { UPDATE_GRAPHS, updateCase } from '../passes/update_graphs.js';
import { randomBindings, randomGraph } from '../passes/random_graphs.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-cuda-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const withNvcc = hasNvcc();

/** Compiles g as the predict entry, runs model_main_emu on its inputs, returns outputs by name. */
function runEmu(g: Graph, inputs: Data, params: Data, nvcc = false): { outputs: Map<string, TypedArray>; dir: string } {
  const dir = path.join(tmp, `m${n++}`);
  compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, params), nvcc });
  return { outputs: runMain(path.join(dir, 'model_main_emu'), dir, g, inputs), dir };
}

/** The emulated build against the interpreter on g with the reduction trees the CUDA pipeline declares. */
function compare(g0: Graph, inputs: Data, params: Data, nvcc = false): string[] {
  const g = reductionTrees(g0, H100);
  return outputDiffs(g, inputs, params, runEmu(g, inputs, params, nvcc).outputs, 'cuda (emulated)');
}

const params = (vars: readonly keras.Variable[]): Data => Object.fromEntries(vars.map((v) => [v.path, v.data]));

describe('cuda target', () => {
  it('the seed MLP and its Adam training step: the emulated kernels equal the interpreter; nvcc compiles model.cu', () => {
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    const t = traceModel(model, 8);
    expect(compare(t.graph, modelInputs(t.graph, 8), params(t.variables), withNvcc)).toEqual([]);
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[16, 784]], [[16]]);
    const g = withUpdates(step.graph);
    const { dir } = runEmu(g, modelInputs(g, 4), params(step.variables));
    expect(compare(g, modelInputs(g, 4), params(step.variables))).toEqual([]);
    const cu = readFileSync(path.join(dir, 'model.cu'), 'utf8');
    expect(cu).toMatch(/KILN_SHARED\(float, As\d+, \d+\)/);
    expect(cu).toMatch(/KILN_BARRIER\(\);/);
    // the launches of each entry replay as a CUDA graph: the host runtime beside model.cu does that
    expect(cu).toContain('#include "kiln_cuda_host.h"');
    expect(readFileSync(path.join(dir, 'kiln_cuda_host.h'), 'utf8')).toMatch(/cudaGraphLaunch/);
    if (withNvcc) expect(existsSync(path.join(tmp, `m0`, 'model_main'))).toBe(true);
  });

  it('a CNN: inference and the SGD training step (conv as direct loops on the GPU grid)', () => {
    const model = keras.Sequential([
      keras.layers.Conv2D(8, 3, { activation: 'relu', padding: 'same', inputShape: [8, 8, 2] }),
      keras.layers.MaxPooling2D(2),
      keras.layers.Flatten(),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    const t = traceModel(model, 2);
    expect(compare(t.graph, modelInputs(t.graph, 2), params(t.variables))).toEqual([]);
    const c = compileModel(model, { optimizer: keras.optimizers.SGD({ learningRate: 0.1, momentum: 0.9 }), loss: 'sparse_categorical_crossentropy' });
    const g = withUpdates(traceTrainStep(model, c, [[3, 8, 8, 2]], [[3]]).graph);
    expect(compare(g, modelInputs(g, 5), params(traceTrainStep(model, c, [[3, 8, 8, 2]], [[3]]).variables))).toEqual([]);
  });

  it('reductions as declared trees on a block of threads (column sums, a whole-tensor mean, long softmax rows)', () => {
    const g = parseGraph(`graph @trees {
  %0 = input {name="x"} : f32[256,64]
  %1 = reduce_sum %0 {axes=[0]} : f32[64]
  %2 = reduce_sum %0 {axes=[0, 1]} : f32[]
  %3 = reduce_max %0 {axes=[1], keepdims=true} : f32[256,1]
  %4 = broadcast %3 {shape=[256, 64]} : f32[256,64]
  %5 = sub %0, %4 : f32[256,64]
  %6 = exp %5 : f32[256,64]
  output "colsum" = %1
  output "total" = %2
  output "e" = %6
}`);
    const x = Float32Array.from({ length: 256 * 64 }, (_, i) => Math.sin(i * 0.7) * 100 + 1 / (1 + (i % 13)));
    const { outputs, dir } = runEmu(reductionTrees(g, H100), { x }, {}, withNvcc);
    expect(outputDiffs(reductionTrees(g, H100), { x }, {}, outputs, 'cuda (emulated)')).toEqual([]);
    const cu = readFileSync(path.join(dir, 'model.cu'), 'utf8');
    expect(cu).toMatch(/KILN_SHARED\(float, part\w*, (64|128|256)\)/);
    // the trees' last levels on one warp (__shfl_down_sync; in order in the emulated build): the sums' 5, and the
    // row maxima's 3 (a tree of 8), their combine legalize's NaN-keeping selects. The shuffle mask names the lanes of
    // the block's first warp that exist: all 32 where the kernel's block has 32 threads or more (the cost model now
    // runs the three nests side by side in one launch of 256), else its threads' (a max tree's own launch of 8: 0xff)
    expect(cu.match(/KILN_WARP_TREE\(float, part\w*, 32, 0xffffffffu, kiln_a, kiln_b, \(kiln_a \+ kiln_b\)\);/g)?.length).toBe(2);
    const maxTrees = cu.split('KILN_KERNEL(').slice(1).flatMap((k) => {
      const threads = Number(/^\w+, (\d+)\)/.exec(k)![1]);
      return [...k.matchAll(/KILN_WARP_TREE\(float, part\w*, 8, (\w+), kiln_a, kiln_b, \(\(kiln_a > kiln_b\) \? kiln_a : \(\(kiln_a != kiln_a\)/g)].map((m) => [m[1], threads]);
    });
    expect(maxTrees.length).toBe(1);
    for (const [mask, threads] of maxTrees) expect(mask).toBe(`0x${(2 ** Math.min(Number(threads), 32) - 1).toString(16)}u`);
    // the whole-tensor sum is no longer one thread: every launch has more than one thread
    for (const m of cu.matchAll(/KILN_LAUNCH\(\w+, (\d+), (\d+),/g)) expect(Number(m[2]), m[0]).toBeGreaterThan(1);
    // nvcc builds the shared-memory trees for sm_90 where it is installed
    if (withNvcc) expect(existsSync(path.join(dir, 'model_main'))).toBe(true);
  });

  it.each(Array.from({ length: 8 }, (_, i) => i * 11 + 2))('random graph %i', (seed) => {
    const rg = randomGraph(seed);
    const [inputs, ps] = randomBindings(rg.graph, seed);
    expect(compare(withUpdates(rg.graph), Object.fromEntries(inputs), Object.fromEntries(ps)), rg.steps.join(', ')).toEqual([]);
  });
});

describe('cuda in-place updates (issue 11: a grid overwrote param elements other threads still read)', () => {
  it('graphs reading the param they update through transposes, gathers, slices, reshapes and reductions (emulated)', () => {
    // one module, an entry per graph; each run starts from the weights file and saves every param afterwards
    const cases = Object.keys(UPDATE_GRAPHS).map((name) => ({ name, ...updateCase(name) }));
    const dir = path.join(tmp, 'updates');
    compileCuda({ outDir: dir, entries: cases.map((c) => ({ name: c.name, graph: c.g, batchSize: 1 })), weights: cases.flatMap((c) => weightsOf(c.g, c.params)), nvcc: false });
    buildUpdateMain(dir, ['model_emu.o', 'model_desc.o', 'kiln_runtime.o', 'kiln_math.o'], ['-lstdc++']);
    for (const c of cases) expect(updateDiffs(c.g, c.inputs, c.params, runWithUpdates(dir, c.name, c.g, c.inputs), 'cuda (emulated)'), c.name).toEqual([]);
  });
});

describe('cuda model_train (emulated device memory)', () => {
  it('predict and trainStep share the device copy: only inputs go in and outputs come out; the trained params are synced before saving', () => {
    const dir = path.join(tmp, 'train');
    const { xTest, yTest } = seedMlpTrainer('cuda', dir);
    // every update is written in place (memplan's updateInPlace): no device-to-device copy follows the launches
    expect(readFileSync(path.join(dir, 'model.cu'), 'utf8')).not.toMatch(/KILN_COPY/);
    const log = execFileSync(path.join(dir, 'model_train_emu'), ['--epochs', '2', '--batch-size', '32', '--validation-split', '0.2', '--out', 'trained.safetensors', 'x.npy', 'y.npy'], { cwd: dir }).toString();
    // validation runs the predict entry on the device copy the trainStep entry updated
    const val = [...log.matchAll(/val_accuracy: ([\d.]+)/g)].map((m) => Number(m[1]));
    expect(val).toHaveLength(2);
    expect(val[1]).toBeGreaterThanOrEqual(0.88);
    // the host copy (saved by the runtime) holds the trained weights too
    const trained = readTensors(path.join(dir, 'trained.safetensors'));
    // Adam's step count is written over its param on the device each step: 2 epochs of 6,400 rows in 32s
    expect(Array.from(trained.find((t) => t.name === 'adam/iteration')!.data)).toEqual([400]);
    expect(seedMlpAccuracy(trained, xTest, yTest)).toBeGreaterThanOrEqual(0.88);
  });
});

describe('cuda executables on a machine without a GPU', () => {
  it('model_main built by nvcc says so in one line and exits 1', (ctx) => {
    if (!withNvcc) return ctx.skip('nvcc is not installed');
    if (existsSync('/dev/nvidiactl')) return ctx.skip('this machine has an NVIDIA driver');
    const model = keras.Sequential([keras.layers.Dense(2, { inputShape: [3] })]);
    const t = traceModel(model, 1);
    const dir = path.join(tmp, 'nogpu');
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: t.graph, batchSize: 1 }], weights: weightsOf(t.graph, params(t.variables)), nvcc: true });
    writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [1, 3], Float32Array.of(1, 2, 3)));
    const r = spawnSync(path.join(dir, 'model_main'), ['--out', 'out', 'x.npy'], { cwd: dir, encoding: 'utf8' });
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('kiln: no CUDA device (or driver) found\n');
    expect(r.status).toBe(1);
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
    // the same model built for the CPU runs
    expect(spawnSync(path.join(dir, 'model_main_emu'), ['--out', 'out', 'x.npy'], { cwd: dir, encoding: 'utf8' }).status).toBe(0);
  });
});
