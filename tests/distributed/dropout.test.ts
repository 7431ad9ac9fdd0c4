// Dropout in data-parallel training: each rank draws the mask of its rows' GLOBAL index (random_uniform's first-row
// operand, gradStep's rng_row input), so k ranks train what one process trains with the whole batch.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasTool } from '../../codegen/llvm/firmware.js';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import { LLVM_CAPS } from '../../codegen/llvm/target.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { compile } from '../../compiler.js';
import { Builder } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { philoxUniform } from '../../ir/philox.js';
import type { TypedArray } from '../../ir/types.js';
import * as keras from '../../frontend/index.js';
import { compileModel, traceSplitStep, traceTrainStep } from '../../frontend/models/training.js';
import { writeNpy } from '../../runtime/npy.js';
import { readTensors, relativeDiff } from '../native.js';
import { runBoth } from '../passes/differential.js';

function data(seed: number, n: number, classes?: number): Float32Array | Int32Array {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  return classes ? Int32Array.from({ length: n }, () => Math.floor(next() * classes)) : Float32Array.from({ length: n }, () => Math.fround(next() * 2 - 1));
}

/** An MLP with a heavy Dropout (a wrong mask changes the gradients a lot). */
function mlp(features: number): keras.Model {
  return keras.Sequential([
    keras.layers.Dense(32, { activation: 'relu', inputShape: [features] }), keras.layers.Dropout(0.5, { seed: 7 }), keras.layers.Dense(4, { activation: 'softmax' }),
  ]);
}

describe('random_uniform with a first row', () => {
  it('draws rows [first, first + n) of the draw for the whole batch', () => {
    const whole = philoxUniform(10 * 6, 99, 5);
    for (const first of [0, 1, 3, 7]) expect(Array.from(philoxUniform(3 * 6, 99, 5, first * 6))).toEqual(Array.from(whole.subarray(first * 6, (first + 3) * 6)));
  });

  it.each([['wasm', WASM_CAPS], ['llvm', LLVM_CAPS], ['cuda', CUDA_CAPS]] as const)('the loop program scheduled for %s draws the interpreter\'s bits', (_t, caps) => {
    const b = new Builder();
    const x = b.input('x', { dtype: 'float32', shape: [5, 3, 2] });
    const u = b.emit('random_uniform', [b.input('rng_counter', { dtype: 'int32', shape: [] }), b.input('rng_row', { dtype: 'int32', shape: [] })], { seed: 11, shape: [5, 3, 2] });
    const g = b.finish('drop', [{ name: 'y', node: b.emit('mul', [x, u]) }]);
    const d = runBoth(g, { x: Float32Array.from({ length: 30 }, (_, i) => i + 1), rng_counter: Int32Array.of(4), rng_row: Int32Array.of(9) }, {}, caps);
    expect(d.diffs).toEqual([]);
    expect(Array.from(d.ref.outputs.get('y')!.data)).toEqual(Array.from(philoxUniform(30, 11, 4, 9 * 6), (v, i) => Math.fround((i + 1) * v)));
  });
});

describe('gradStep with Dropout on two halves of a batch', () => {
  it('the halves (rng_row 0 and 4), weighted and summed, give the fused step on the whole batch (within 1e-6)', () => {
    const model = mlp(12);
    const c = compileModel(model, { optimizer: keras.optimizers.SGD({ learningRate: 0.5 }), loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[8, 12]], [[8]]);
    const { grad, apply } = traceSplitStep(model, c, [[4, 12]], [[4]]);
    expect(grad.inputs.map((n) => n.attrs['name'])).toContain('rng_row');
    const params: Record<string, TypedArray> = Object.fromEntries(step.variables.map((v) => [v.path, v.data]));
    const x = data(1, 8 * 12) as Float32Array, y = data(2, 8, 4) as Int32Array, name = model.inputSpecs[0]!.name, target = `target/${model.outputNames[0]}`;
    const fused = interpret(step.graph, { [name]: x, [target]: y, rng_counter: Int32Array.of(3) }, params);
    let flat: Float32Array | undefined;
    for (const first of [0, 4]) {
      const g = interpret(grad, { [name]: x.subarray(first * 12, (first + 4) * 12), [target]: y.subarray(first, first + 4), rng_counter: Int32Array.of(3), rng_row: Int32Array.of(first) }, params);
      const values = [...g.outputs].filter(([n]) => !n.startsWith('pred/')).flatMap(([, v]) => Array.from(v.data, (e) => Math.fround(e * 4)));
      flat = flat ? flat.map((v, i) => Math.fround(v + values[i]!)) : Float32Array.from(values);
    }
    const a = interpret(apply, { grads: flat!.map((v) => Math.fround(v / 8)) }, params);
    for (const [p, v] of fused.updates) {
      const got = a.updates.get(p)!.data, scale = Math.max(...Array.from(v.data, Math.abs));
      for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - v.data[i]!), p).toBeLessThanOrEqual(1e-6 * scale);
    }
  });
});

const missing = ['mpicc', 'mpirun'].filter((t) => !hasTool(t));
describe.skipIf(missing.length > 0)(`Dropout under mpirun${missing.length ? `: skipped, ${missing.join(' and ')} not installed (openmpi-bin, libopenmpi-dev)` : ''}`, () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-dropout-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', OMPI_MCA_rmaps_base_oversubscribe: '1' };
  const dirs = new Map<number, string>();
  beforeAll(async () => {
    const model = mlp(64);
    model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    for (const b of [16, 8]) {
      const outDir = path.join(tmp, `b${b}`);
      await compile(model, { target: 'llvm', train: true, distributed: 'mpi', batchSize: b, maxBatch: 1, outDir });
      dirs.set(b, outDir);
    }
    // 10 steps of 16 (the last has 6 rows, all rank 0's)
    writeFileSync(path.join(tmp, 'x.npy'), writeNpy('float32', [150, 64], data(12345, 150 * 64)));
    writeFileSync(path.join(tmp, 'y.npy'), writeNpy('int32', [150], data(54321, 150, 4)));
  }, 240_000);

  it('llvm: 2 ranks at 8 rows give the weights 1 rank at 16 gives after 10 steps with Dropout 0.5 (within 1e-6)', () => {
    const run = (ranks: number, b: number, out: string) =>
      execFileSync('mpirun', ['--oversubscribe', '-np', String(ranks), path.join(dirs.get(b)!, 'model_train'), '--out', out, 'x.npy', 'y.npy'], { cwd: tmp, env });
    run(1, 16, 'r1.safetensors');
    run(2, 8, 'r2.safetensors');
    const kernel = (f: string) => readTensors(path.join(tmp, f))[0]!.data, initial = readTensors(path.join(dirs.get(16)!, 'weights.safetensors'))[0]!.data;
    expect(Math.max(...kernel('r1.safetensors').map((v, i) => Math.abs(v - initial[i]!)))).toBeGreaterThan(1e-3); // it trained
    expect(relativeDiff(path.join(tmp, 'r1.safetensors'), path.join(tmp, 'r2.safetensors'))).toBeLessThanOrEqual(1e-6);
  }, 120_000);
});
