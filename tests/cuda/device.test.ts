// The cuda target's host path, on the emulated build (KILN_CUDA_EMULATE) and nvcc where installed: params and
// optimizer state stay on the device until kiln_cuda_sync(), launches fail by kernel name, __launch_bounds__ from
// the schedule, no register spills, and a clear compile error past 32-bit indexing.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCuda, hasNvcc } from '../../codegen/cuda/target.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { writeNpy } from '../../runtime/npy.js';
import { type Data, modelInputs } from '../passes/differential.js';
import { readTensors, seedMlpTrainer, weightsOf, expectNvccClean } from '../native.js';
import { close } from '../../fuzz/targets.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-cuda-device-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const params = (vars: readonly keras.Variable[]): Data => Object.fromEntries(vars.map((v) => [v.path, v.data]));

/** The seed MLP's Adam training step at batch 16 (dropout included): its graph, params and inputs. */
function mlpStep(): { g: Graph; params: Data; inputs: Data } {
  const model = keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
  const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  const step = traceTrainStep(model, c, [[16, 784]], [[16]]);
  return { g: step.graph, params: params(step.variables), inputs: modelInputs(step.graph, 3) };
}

/** Differences between a saved safetensors file and want (name -> values), at most 4 lines. */
function diffs(file: string, want: ReadonlyMap<string, ArrayLike<number>>): string[] {
  const got = new Map(readTensors(file).map((t) => [t.name, t.data]));
  const bad: string[] = [];
  for (const [name, w] of want) {
    const h = got.get(name);
    for (let i = 0; i < w.length && bad.length < 4; i++) if (!h || !close(w[i]!, h[i]!)) bad.push(`${name}[${i}]: ${h?.[i]}, want ${w[i]}`);
  }
  return bad;
}

describe('cuda device-resident params (emulated)', () => {
  it('two training steps leave the host block as loaded; kiln_cuda_sync() brings both steps\' updates back', () => {
    const { g, params: p0, inputs } = mlpStep();
    const dir = path.join(tmp, 'sync');
    compileCuda({ outDir: dir, entries: [{ name: 'trainStep', graph: g, batchSize: 16 }], weights: weightsOf(g, p0), nvcc: false });
    copyFileSync(path.join(here, 'sync_main.c'), path.join(dir, 'sync_main.c'));
    execFileSync('gcc', ['-O2', '-std=c99', 'sync_main.c', 'model_emu.o', 'model_desc.o', 'kiln_runtime.o', 'kiln_math.o', '-lstdc++', '-lm', '-o', 'sync_main'], { cwd: dir });
    const files = g.inputs.map((node, i) => {
      writeFileSync(path.join(dir, `in${i}.npy`), writeNpy(node.type.dtype, node.type.shape, inputs[String(node.attrs['name'])]!));
      return `in${i}.npy`;
    });
    execFileSync(path.join(dir, 'sync_main'), ['trainStep', '2', 'before.safetensors', 'after.safetensors', ...files], { cwd: dir });
    // the reference: two steps of the interpreter, the second from the first's updated params
    const once = interpret(g, inputs, p0).updates;
    const p1: Data = { ...p0, ...Object.fromEntries([...once].map(([k, v]) => [k, v.data])) };
    const twice = new Map([...interpret(g, inputs, p1).updates].map(([k, v]) => [k, v.data]));
    expect(twice.has('adam/iteration')).toBe(true);
    expect(Array.from(twice.get('adam/iteration')!)).toEqual([2]);
    expect(diffs(path.join(dir, 'before.safetensors'), new Map([...twice.keys()].map((k) => [k, p0[k]!])))).toEqual([]);
    expect(diffs(path.join(dir, 'after.safetensors'), twice)).toEqual([]);
    // model.h documents the contract
    expect(readFileSync(path.join(dir, 'model.h'), 'utf8')).toMatch(/void kiln_cuda_sync\(void\);/);
  });
});

describe('cuda launches', () => {
  const model = keras.Sequential([keras.layers.Dense(8, { activation: 'relu', inputShape: [5] }), keras.layers.Dense(3, { activation: 'softmax' })]);
  const t = traceModel(model, 4);
  const dir = path.join(tmp, 'launch');

  it('every kernel has __launch_bounds__ of the block size it is launched with', () => {
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: t.graph, batchSize: 4 }], weights: weightsOf(t.graph, params(t.variables)), nvcc: false });
    const cu = readFileSync(path.join(dir, 'model.cu'), 'utf8');
    const bounds = new Map([...cu.matchAll(/^KILN_KERNEL\((\w+), (\d+)\)/gm)].map((m) => [m[1]!, Number(m[2])]));
    const launches = [...cu.matchAll(/KILN_LAUNCH\((\w+), \d+, (\d+), stream, mem\)/g)];
    expect(launches.length).toBeGreaterThan(1);
    expect(bounds.size).toBe(launches.length);
    for (const m of launches) expect(bounds.get(m[1]!), m[1]).toBe(Number(m[2]));
    expect(readFileSync(path.join(dir, 'kiln_cuda.h'), 'utf8')).toContain('__launch_bounds__(threads)');
  });

  it('a failed launch exits 1 with one line naming its kernel, and writes no output', () => {
    const cu = readFileSync(path.join(dir, 'model.cu'), 'utf8');
    const kernel = [...cu.matchAll(/KILN_LAUNCH\((\w+),/g)][1]![1]!;
    writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [4, 5], new Float32Array(20).fill(0.5)));
    const r = spawnSync(path.join(dir, 'model_main_emu'), ['--out', 'out', 'x.npy'], { cwd: dir, encoding: 'utf8', env: { ...process.env, KILN_CUDA_EMULATE_FAIL: kernel } });
    expect(r.stderr).toBe(`kiln: kernel ${kernel} failed to launch: emulated failure (KILN_CUDA_EMULATE_FAIL)\n`);
    expect(r.status).toBe(1);
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
    expect(spawnSync(path.join(dir, 'model_main_emu'), ['--out', 'out', 'x.npy'], { cwd: dir }).status).toBe(0);
  });
});

/** The models of examples/seed/losses.ts (the seed MLP) and examples/seed/cnn.ts, compiled as they are there. */
const EXAMPLES: Record<string, () => keras.Sequential> = {
  losses: () => keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]),
  cnn: () => keras.Sequential([
    keras.layers.Conv2D(8, 3, { activation: 'relu', padding: 'same', inputShape: [28, 28, 1] }),
    keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(16, 3, { activation: 'relu' }),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]),
};

describe('cuda examples with nvcc -Xptxas -v', () => {
  // the CNN at batch 1024: its kernel and bias gradients run as trees split over blocks (schedules/gpu_split_tree.ts),
  // conv2's kernel gradient as a split-K GEMM
  it.each([['losses', 32], ['cnn', 1024]] as const)('examples/seed/%s.ts: inference and the Adam step at batch %i compile for sm_90 with no spills and no warnings', (name, batch, ctx) => {
    if (!hasNvcc()) return ctx.skip('nvcc is not installed');
    const model = EXAMPLES[name]!();
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[batch, ...model.inputSpecs[0]!.shape.slice(1) as number[]]], [[batch]]);
    const pred = traceModel(model, batch);
    const dir = path.join(tmp, `ptxas-${name}`);
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: pred.graph, batchSize: batch }, { name: 'trainStep', graph: step.graph, batchSize: batch }], weights: weightsOf(step.graph, params(step.variables)), nvcc: false });
    if (name === 'cnn') expect(readFileSync(path.join(dir, 'model.cu'), 'utf8')).toMatch(/float \*const split\w+ = /);
    // conv2's kernel gradient as a split-K GEMM (gpu_split_k.ts, gpu_conv.ts): its partials' buffer
    if (name === 'cnn') expect(readFileSync(path.join(dir, 'model.cu'), 'utf8')).toMatch(/float \*const splitk\w+ = /);
    expectNvccClean(dir);
  }, 300_000);
});

describe('cuda model_train keeps the dataset on the device (emulated)', () => {
  it('a step copies in its row numbers and the dropout counter, not its rows; training still learns', () => {
    const dir = path.join(tmp, 'fit');
    seedMlpTrainer('cuda', dir);
    const r = spawnSync(path.join(dir, 'model_train_emu'), ['--epochs', '1', '--batch-size', '32', '--out', 'trained.safetensors', 'x.npy', 'y.npy'], { cwd: dir, encoding: 'utf8', env: { ...process.env, KILN_CUDA_PROFILE: '1' } });
    expect(r.status, r.stderr).toBe(0);
    // 8,000 rows in batches of 32: 250 steps; after the first (which copies the whole block in), each copies 32 row
    // numbers (8 bytes), the int32 rng counter and the int32 count of valid rows (the last batch may be partial)
    expect(r.stderr).toContain(`kiln cuda: inputs ${32 * 8 + 4 + 4} bytes in per call over 249 calls\n`);
    expect(Number(/loss: ([\d.]+)/.exec(r.stdout)![1])).toBeLessThan(1);
    expect(Array.from(readTensors(path.join(dir, 'trained.safetensors')).find((t) => t.name === 'adam/iteration')!.data)).toEqual([250]);
  });
});
