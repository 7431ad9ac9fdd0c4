// BatchNormalization({ synchronized: true }) (Keras's SyncBatchNormalization): batch statistics all-reduced over the
// ranks of a data-parallel step; on one process (the all-reduce the identity) plain BatchNormalization bit for bit.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { strFromU8, unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasTool } from '../../codegen/llvm/firmware.js';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import { LLVM_CAPS } from '../../codegen/llvm/target.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { compile } from '../../compiler.js';
import { describePlan } from '../../driver/pipeline.js';
import { Builder, topoSort } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { fuse } from '../../passes/fuse.js';
import type { TypedArray } from '../../ir/types.js';
import * as keras from '../../frontend/index.js';
import { compileModel, traceSplitStep, traceTrainStep } from '../../frontend/models/training.js';
import { readNpy, writeNpy } from '../../runtime/npy.js';
import { readTensors, relativeDiff } from '../native.js';
import { runBoth } from '../passes/differential.js';

function data(seed: number, n: number, classes?: number): Float32Array | Int32Array {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  return classes ? Int32Array.from({ length: n }, () => Math.floor(next() * classes)) : Float32Array.from({ length: n }, () => Math.fround(next() * 2 - 1));
}

/** Dense, BatchNormalization (synchronized or not), Dense: the same initial weights for a given seed. */
function mlp(synchronized: boolean): keras.Model {
  keras.utils.setRandomSeed(5);
  const model = keras.Sequential([
    keras.layers.Dense(16, { activation: 'relu', inputShape: [12], name: 'd1' }), keras.layers.BatchNormalization({ synchronized, momentum: 0.5, name: 'bn' }),
    keras.layers.Dense(4, { activation: 'softmax', name: 'd2' }),
  ]);
  model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  return model;
}

describe('synchronized BatchNormalization on one process', () => {
  it('trains what plain BatchNormalization trains, bit for bit: the interpreter, and the loop program scheduled for wasm, llvm and cuda', () => {
    const steps = [true, false].map((sync) => {
      const model = mlp(sync), c = compileModel(model, { optimizer: keras.optimizers.SGD({ learningRate: 0.5 }), loss: 'sparse_categorical_crossentropy' });
      return traceTrainStep(model, c, [[8, 12]], [[8]]);
    });
    const [sync, plain] = steps as [ReturnType<typeof traceTrainStep>, ReturnType<typeof traceTrainStep>];
    expect(topoSort(sync.graph).filter((n) => n.op === 'allreduce').length).toBe(4); // two forward, two backward
    const params: Record<string, TypedArray> = Object.fromEntries(plain.variables.map((v) => [v.path, v.data]));
    const feed = (g: typeof plain.graph) => ({ [g.inputs[0]!.attrs['name'] as string]: data(1, 8 * 12), [g.inputs[1]!.attrs['name'] as string]: data(2, 8, 4) });
    const inputs = feed(sync.graph), want = interpret(plain.graph, feed(plain.graph), params), got = interpret(sync.graph, inputs, params);
    for (const [p, v] of want.updates) expect(Array.from(got.updates.get(p)!.data), p).toEqual(Array.from(v.data));
    for (const [o, v] of want.outputs) expect(Array.from(got.outputs.get(o)!.data), o).toEqual(Array.from(v.data));
    for (const caps of [WASM_CAPS, LLVM_CAPS, CUDA_CAPS]) {
      const d = runBoth(sync.graph, inputs, params, caps);
      expect(d.diffs).toEqual([]);
      if (!caps.gpu) for (const [p, v] of want.updates) expect(Array.from(d.got.updates.get(p)!), p).toEqual(Array.from(v.data));
    }
  });

  it('local statistics on two halves of a batch train other weights than the whole batch (so the mpirun checks below tell)', () => {
    const model = mlp(false), c = compileModel(model, { optimizer: keras.optimizers.SGD({ learningRate: 0.5 }), loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[16, 12]], [[16]]), { grad, apply } = traceSplitStep(model, c, [[8, 12]], [[8]]);
    const params: Record<string, TypedArray> = Object.fromEntries(step.variables.map((v) => [v.path, v.data]));
    const x = data(1, 16 * 12), y = data(2, 16, 4), [xn, yn] = step.graph.inputs.map((n) => n.attrs['name'] as string) as [string, string];
    const whole = interpret(step.graph, { [xn]: x, [yn]: y }, params);
    let sum: Float32Array | undefined;
    for (const first of [0, 8]) {
      const g = interpret(grad, { [xn]: x.subarray(first * 12, (first + 8) * 12), [yn]: y.subarray(first, first + 8) }, params);
      const v = Float32Array.from([...g.outputs].filter(([n]) => !n.startsWith('pred/')).flatMap(([, t]) => Array.from(t.data)));
      sum = sum ? sum.map((s, i) => Math.fround(s + v[i]!)) : v;
    }
    const halves = interpret(apply, { grads: sum!.map((s) => Math.fround(s / 2)) }, params);
    const kernel = 'd1/kernel', want = whole.updates.get(kernel)!.data, got = halves.updates.get(kernel)!.data;
    expect(Math.max(...Array.from(got, (v, i) => Math.abs(v - want[i]!)))).toBeGreaterThan(1e-3 * Math.max(...Array.from(want, Math.abs)));
  });

  it('each all-reduce is a kernel of its own', () => {
    const model = mlp(true), c = compileModel(model, { optimizer: 'sgd', loss: 'sparse_categorical_crossentropy' });
    const plan = fuse(traceTrainStep(model, c, [[8, 12]], [[8]]).graph);
    const alone = plan.kernels.filter((k) => k.ops.includes('allreduce'));
    expect(alone.length).toBe(4);
    for (const k of alone) expect([k.ops, k.nests.length, k.nests[0]!.roots.map((r) => r.op)]).toEqual([['allreduce'], 1, ['allreduce']]);
    expect(describePlan(plan)).toMatch(/k\d+_allreduce: 1 nest\(s\) \[allreduce\]/);
  });

  it('eager training calls equal plain BatchNormalization\'s', () => {
    const x = new keras.Tensor('float32', [6, 12], data(3, 6 * 12) as Float32Array);
    const [a, b] = [mlp(true), mlp(false)].map((m) => m(x, { training: true }) as keras.Tensor);
    expect(Array.from(a!.data)).toEqual(Array.from(b!.data));
    // over several axes: channels last and axis 1 of a 4-d input
    const x4 = new keras.Tensor('float32', [2, 3, 4, 5], data(4, 120) as Float32Array);
    for (const axis of [-1, 1]) {
      const [c, d] = [true, false].map((synchronized) => keras.layers.BatchNormalization({ axis, synchronized })(x4, { training: true }) as keras.Tensor);
      expect(Array.from(c!.data)).toEqual(Array.from(d!.data));
    }
  });
});

describe('synchronized in Keras files', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-syncbn-keras-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('loads a file Keras 3 wrote ("synchronized": true), predicts what Keras predicted, and saves it back as such', async () => {
    const fix = path.join(import.meta.dirname, '..', 'fixtures', 'keras');
    const npy = (f: string) => readNpy(new Uint8Array(readFileSync(path.join(fix, f))));
    const model = await keras.saving.loadModel(path.join(fix, 'syncbn.keras'));
    const bn = () => model.layers.find((l) => l instanceof keras.layers.BatchNormalization) as keras.layers.BatchNormalization;
    expect(bn().synchronized).toBe(true);
    const x = npy('syncbn.x0.npy'), want = npy('syncbn.y0.npy').data;
    const got = (model.predict(new keras.Tensor('float32', x.shape, x.data as Float32Array), { verbose: 0, backend: 'interpreter' }) as keras.Tensor).data;
    got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-5 + 1e-5 * Math.abs(want[i]!)));
    const file = path.join(tmp, 'm.keras');
    await model.save(file);
    const layers = (JSON.parse(strFromU8(unzipSync(readFileSync(file))['config.json']!)) as { config: { layers: { class_name: string; config: Record<string, unknown> }[] } }).config.layers;
    expect(layers.find((l) => l.class_name === 'BatchNormalization')!.config['synchronized']).toBe(true);
    expect((await keras.saving.loadModel(file)).layers.some((l) => l instanceof keras.layers.BatchNormalization && l.synchronized)).toBe(true);
  });

  it('the allreduce op takes one float32 operand', () => {
    const b = new Builder();
    expect(() => b.emit('allreduce', [b.input('i', { dtype: 'int32', shape: [2] })])).toThrow('allreduce: expects float32, got i32[2]');
    expect(() => b.emit('allreduce', [])).toThrow('allreduce: expects 1 operand(s), got 0');
  });

  it('a non-boolean is refused in one line', () => {
    expect(() => keras.layers.BatchNormalization({ synchronized: 'yes' as unknown as boolean })).toThrow('BatchNormalization: synchronized must be true or false, got yes');
  });
});

const missing = ['mpicc', 'mpirun'].filter((t) => !hasTool(t));
describe.skipIf(missing.length > 0)(`synchronized BatchNormalization under mpirun${missing.length ? `: skipped, ${missing.join(' and ')} not installed (openmpi-bin, libopenmpi-dev)` : ''}`, () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-syncbn-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', OMPI_MCA_rmaps_base_oversubscribe: '1' };
  const dirs = new Map<string, string>();
  beforeAll(async () => {
    for (const b of [16, 8]) {
      const outDir = path.join(tmp, `llvm-b${b}`);
      await compile(mlp(true), { target: 'llvm', train: true, distributed: 'mpi', batchSize: b, maxBatch: 1, outDir });
      dirs.set(`llvm${b}`, outDir);
    }
    // cuda --distributed nccl, emulated on the CPU (kiln_mpi.c's ring for NCCL): nvcc off the PATH skips its builds
    const PATH = process.env['PATH'];
    process.env['PATH'] = (PATH ?? '').split(':').filter((d) => !existsSync(path.join(d, 'nvcc'))).join(':');
    try {
      await compile(mlp(true), { target: 'cuda', train: true, distributed: 'nccl', batchSize: 8, maxBatch: 1, outDir: path.join(tmp, 'cuda-b8') });
    } finally {
      process.env['PATH'] = PATH;
    }
    // 10 steps of 16; 6 rows left over, which a BatchNormalization model leaves out (it trains whole batches)
    writeFileSync(path.join(tmp, 'x.npy'), writeNpy('float32', [166, 12], data(12345, 166 * 12)));
    writeFileSync(path.join(tmp, 'y.npy'), writeNpy('int32', [166], data(54321, 166, 4)));
  }, 240_000);
  const run = (ranks: number, dir: string, out: string) =>
    spawnSync('mpirun', ['--oversubscribe', '-np', String(ranks), path.join(dirs.get(dir)!, 'model_train'), '--out', out, 'x.npy', 'y.npy'], { cwd: tmp, env });

  it('llvm: 2 ranks at 8 rows give the weights 1 rank at 16 gives after 10 steps (within 1e-6)', () => {
    const one = run(1, 'llvm16', 'r1.safetensors'), two = run(2, 'llvm8', 'r2.safetensors');
    expect(one.status, one.stderr.toString()).toBe(0);
    expect(two.status, two.stderr.toString()).toBe(0);
    expect(one.stderr.toString()).toContain('6 of the 166 training rows are left out of each epoch');
    const moving = (f: string) => readTensors(path.join(tmp, f)).find((t) => t.name.endsWith('moving_mean'))!.data;
    const initial = readTensors(path.join(dirs.get('llvm16')!, 'weights.safetensors'))[0]!.data;
    expect(Math.max(...readTensors(path.join(tmp, 'r1.safetensors'))[0]!.data.map((v, i) => Math.abs(v - initial[i]!)))).toBeGreaterThan(1e-3); // it trained
    expect(Math.max(...moving('r1.safetensors').map(Math.abs))).toBeGreaterThan(1e-2);
    expect(relativeDiff(path.join(tmp, 'r1.safetensors'), path.join(tmp, 'r2.safetensors'))).toBeLessThanOrEqual(1e-6);
  }, 120_000);

  it('cuda (emulated): 2 ranks at 8 rows train the llvm build\'s weights of 1 rank at 16 (within 1e-5: FMA and GPU sum orders)', () => {
    const r = spawnSync('mpirun', ['--oversubscribe', '-np', '2', path.join(tmp, 'cuda-b8', 'model_train_emu'), '--out', 'c2.safetensors', 'x.npy', 'y.npy'], { cwd: tmp, env });
    expect(r.status, r.stderr.toString()).toBe(0);
    if (!existsSync(path.join(tmp, 'r1.safetensors'))) expect(run(1, 'llvm16', 'r1.safetensors').status).toBe(0);
    expect(relativeDiff(path.join(tmp, 'r1.safetensors'), path.join(tmp, 'c2.safetensors'))).toBeLessThanOrEqual(1e-5);
    expect(readFileSync(path.join(tmp, 'cuda-b8', 'model.cu'), 'utf8').match(/KILN_ALLREDUCE\(\(float \*\)\(mem \+ \d+\), \d+, stream\);/g)?.length).toBe(4);
  }, 120_000);

  it('two runs on 2 ranks write bitwise identical weights', () => {
    run(2, 'llvm8', 'a.safetensors');
    run(2, 'llvm8', 'b.safetensors');
    expect(readFileSync(path.join(tmp, 'a.safetensors')).equals(readFileSync(path.join(tmp, 'b.safetensors')))).toBe(true);
  }, 120_000);

  it('the model file calls kiln_allreduce (after each all-reduce kernel)', () => {
    expect(execFileSync('nm', ['-u', path.join(dirs.get('llvm8')!, 'model.o')]).toString()).toMatch(/\bkiln_allreduce\b/);
  });
});
