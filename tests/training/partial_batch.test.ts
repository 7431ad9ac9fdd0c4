// The last, smaller batch of an epoch in the compiled training step ("rows" input), against in-process fit.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../../compiler.js';
import * as keras from '../../frontend/index.js';
import { type Compiled, traceTrainStep } from '../../frontend/models/training.js';
import { interpret } from '../../ir/interpreter.js';
import type { TypedArray } from '../../ir/types.js';
import { writeNpy } from '../../runtime/npy.js';
import { readTensors, runMain, weightsOf as weightFiles, withUpdates } from '../native.js';
import { compileLlvm } from '../../codegen/llvm/target.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-partial-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const slow = { timeout: 600_000 };
const B = 4, N = 10, FEATURES = 20, CLASSES = 5;

/** An MLP, with Dropout between its layers when `dropout` (the seed's model). */
function mlp(dropout = false): keras.Sequential {
  keras.utils.setRandomSeed(7);
  const model = keras.Sequential([
    keras.layers.Dense(16, { activation: 'relu', inputShape: [FEATURES] }),
    ...(dropout ? [keras.layers.Dropout(0.25)] : []),
    keras.layers.Dense(CLASSES, { activation: 'softmax' }),
  ]);
  model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  return model;
}

const x = Float32Array.from({ length: N * FEATURES }, (_, i) => Math.sin(i * 0.37) * 1.5);
const y = Int32Array.from({ length: N }, (_, i) => (i * 3) % CLASSES);
const weightsOf = (m: keras.Model) => new Map([...m.weights].map((w) => [w.path, Float32Array.from(w.data)]));
const paramsOf = (m: keras.Model): Record<string, TypedArray> =>
  Object.fromEntries([...m.weights, ...m.compiled!.optimizer.variables].map((v) => [v.path, v.data]));
/** Rows [from, from + count) of a row-major array of `width` values a row, zero-padded to `rows` rows. */
const rowsOf = <T extends TypedArray>(a: T, width: number, from: number, count: number, rows = count): T => {
  const out = new (a.constructor as new (n: number) => T)(rows * width);
  out.set(a.subarray(from * width, (from + count) * width));
  return out;
};

/** The largest |a - b| - tol(b) over the weights; <= 0 when every value is within tolerance. */
function worst(a: ReadonlyMap<string, ArrayLike<number>>, b: ReadonlyMap<string, ArrayLike<number>>, atol: number, rtol: number): number {
  let w = -Infinity;
  for (const [k, va] of a) {
    const vb = b.get(k)!;
    expect(vb.length, k).toBe(va.length);
    for (let i = 0; i < va.length; i++) w = Math.max(w, Math.abs(va[i]! - vb[i]!) - atol - rtol * Math.abs(vb[i]!));
  }
  return w;
}

describe('the training step with a "rows" input (interpreter; Dropout, Adam)', () => {
  const SB = 7; // not a power of two: a mean that multiplied by 1/7 would round differently
  const model = mlp(true), c = model.compiled as Compiled;
  const step = (b: number, partial: boolean) => traceTrainStep(model, c, [[b, FEATURES]], [[b]], { partial }).graph;
  /** Binds the first `count` rows of x and y, zero-padded to `pad` rows, a dropout counter and rows (when given) to g. */
  const bind = (g: ReturnType<typeof step>, count: number, rows: number | undefined, pad: number, counter = 3) => {
    const values: Record<string, TypedArray> = { rng_counter: Int32Array.of(counter), ...(rows === undefined ? {} : { rows: Int32Array.of(rows) }) };
    values[String(g.inputs[0]!.attrs['name'])] = rowsOf(x, FEATURES, 0, count, pad);
    values[String(g.inputs[1]!.attrs['name'])] = rowsOf(y, 1, 0, count, pad);
    expect(g.inputs.length).toBe(Object.keys(values).length);
    return values;
  };
  const target = `target/${model.outputNames[0]!}`;

  it('takes the int32 scalar "rows" after the data', () => {
    expect(step(SB, true).inputs.map((n) => `${String(n.attrs['name'])} ${n.type.dtype} [${n.type.shape.join(', ')}]`))
      .toEqual([`${model.inputSpecs[0]!.name} float32 [${SB}, ${FEATURES}]`, `${target} int32 [${SB}]`, 'rng_counter int32 []', 'rows int32 []']);
  });

  it.each([0, 1, 2, 3, 4, 5])('with rows = batch: the loss, the predictions and every updated param equal the step without "rows" bit for bit (dropout counter %i)', (counter) => {
    const g0 = step(SB, false), g1 = step(SB, true);
    const was = interpret(g0, bind(g0, SB, undefined, SB, counter), paramsOf(model));
    const now = interpret(g1, bind(g1, SB, SB, SB, counter), paramsOf(model));
    expect([...now.outputs.keys()]).toEqual([...was.outputs.keys()]);
    for (const [k, v] of was.outputs) expect(Array.from(now.outputs.get(k)!.data), k).toEqual(Array.from(v.data));
    expect(now.updates.size).toBe(was.updates.size);
    for (const [k, v] of was.updates) expect(Array.from(now.updates.get(k)!.data), k).toEqual(Array.from(v.data));
  });

  it.each([1, 3, 6])('with rows = %i and zero padding: the step traced for that many rows (loss = mean over them, same updates)', (r) => {
    const g0 = step(r, false), g1 = step(SB, true);
    const want = interpret(g0, bind(g0, r, undefined, r), paramsOf(model));
    const got = interpret(g1, bind(g1, r, r, SB), paramsOf(model));
    // the padded step sums the same products in the same order, with zeros after them: equal to the float32 bit
    expect(Array.from(got.outputs.get('loss')!.data)).toEqual(Array.from(want.outputs.get('loss')!.data));
    expect(want.updates.size).toBeGreaterThan(0);
    for (const [k, v] of want.updates) expect(Array.from(got.updates.get(k)!.data), k).toEqual(Array.from(v.data));
  });
});

describe('a two-output model (mse over [rows, 2, 3] and sparse crossentropy, weighted)', () => {
  it('rows = 3 of a batch of 5: the total and per-output losses and the updates of the step traced for 3 rows', () => {
    keras.utils.setRandomSeed(11);
    const input = keras.Input({ shape: [FEATURES] });
    const h = keras.layers.Dense(8, { activation: 'relu' })(input);
    const a = keras.layers.Reshape([2, 3])(keras.layers.Dense(6)(h));
    const b = keras.layers.Dense(CLASSES, { activation: 'softmax' })(h);
    const model = keras.Model({ inputs: input, outputs: [a, b] });
    model.compile({ optimizer: 'adam', loss: ['mse', 'sparse_categorical_crossentropy'], lossWeights: [0.5, 2] });
    const c = model.compiled as Compiled, ya = Float32Array.from({ length: N * 6 }, (_, i) => Math.cos(i * 0.71));
    const run = (b: number, count: number, partial: boolean) => {
      const g = traceTrainStep(model, c, [[b, FEATURES]], [[b, 2, 3], [b]], { partial }).graph;
      const names = g.inputs.map((n) => String(n.attrs['name']));
      const values = [rowsOf(x, FEATURES, 0, count, b), rowsOf(ya, 6, 0, count, b), rowsOf(y, 1, 0, count, b), ...(partial ? [Int32Array.of(count)] : [])];
      expect(names.length).toBe(values.length);
      return interpret(g, Object.fromEntries(names.map((n, i) => [n, values[i]!])), paramsOf(model));
    };
    const want = run(3, 3, false), got = run(5, 3, true);
    expect([...want.outputs.keys()].filter((k) => k.endsWith('loss'))).toHaveLength(3);
    for (const [k, v] of want.outputs) if (k.endsWith('loss')) expect(Array.from(got.outputs.get(k)!.data), k).toEqual(Array.from(v.data));
    for (const [k, v] of want.updates) expect(Array.from(got.updates.get(k)!.data), k).toEqual(Array.from(v.data));
  });
});

/** fit in process on the interpreter, shuffle off: the reference for one epoch of N rows in batches of B. */
function fitted(model: keras.Model, rows = N): Map<string, Float32Array> {
  model.fit(new keras.Tensor('float32', [rows, FEATURES], x.slice(0, rows * FEATURES)), new keras.Tensor('int32', [rows], y.slice(0, rows)),
    { epochs: 1, batchSize: B, shuffle: false, verbose: 0, backend: 'interpreter' });
  return weightsOf(model);
}

// llvm kernels may associate float32 sums (matmul over the batch, vector lanes) differently from the interpreter: each
// op's result is within a few ulps (the differential tests hold every target to 1e-5 relative), and three Adam steps
// move a weight by at most ~3 lr = 3e-3, so the trained weights agree to far less than 1e-6 (on Zen 2 llvm differs
// by at most 1.5e-8, wasm not at all); leaving out the last 2 rows, as model_train did before, moves them by 1e-3
const ATOL = 1e-6, RTOL = 1e-5;

describe('model_train (llvm) trains the last, smaller batch of an epoch as Keras does', () => {
  it.each([false, true])(`${N} rows in batches of ${B}: the weights after one epoch equal fit's (shuffle off; dropout %s)`, slow, async (dropout) => {
    const model = mlp(dropout), dir = path.join(tmp, `llvm-${dropout}`);
    await compile(model, { target: 'llvm', outDir: dir, train: true, batchSize: B });
    writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [N, FEATURES], x));
    writeFileSync(path.join(dir, 'y.npy'), writeNpy('int32', [N], y));
    const run = spawnSync(path.join(dir, 'model_train'), ['--no-shuffle', '--out', 'trained.safetensors', 'x.npy', 'y.npy'], { cwd: dir, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^3\/3 - /m);
    const initial = weightsOf(model);
    const trained = new Map(readTensors(path.join(dir, 'trained.safetensors')).filter((t) => initial.has(t.name)).map((t) => [t.name, t.data]));
    expect(trained.size).toBe(initial.size);
    const reference = fitted(model);
    expect(worst(trained, reference, ATOL, RTOL)).toBeLessThanOrEqual(0);
    // the last batch mattered: fit on the 8 rows of the whole batches alone is far from it
    const wholeOnly = mlp(dropout);
    wholeOnly.setWeights(model.weights.map((w) => new keras.Tensor('float32', w.shape, initial.get(w.path)!)));
    const byName = new Map([...fitted(wholeOnly, 8).values()].map((v, i) => [model.weights[i]!.path, v]));
    expect(worst(byName, reference, 1e-4, 0)).toBeGreaterThan(0);
  });

  it('the CUDA build\'s model_train (emulated on the CPU) does the same', slow, async () => {
    const model = mlp(true), dir = path.join(tmp, 'cuda');
    await compile(model, { target: 'cuda', outDir: dir, train: true, batchSize: B });
    writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [N, FEATURES], x));
    writeFileSync(path.join(dir, 'y.npy'), writeNpy('int32', [N], y));
    const run = spawnSync(path.join(dir, 'model_train_emu'), ['--no-shuffle', '--out', 'trained.safetensors', 'x.npy', 'y.npy'], { cwd: dir, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toBe('');
    const initial = weightsOf(model);
    const trained = new Map(readTensors(path.join(dir, 'trained.safetensors')).filter((t) => initial.has(t.name)).map((t) => [t.name, t.data]));
    expect(trained.size).toBe(initial.size);
    expect(worst(trained, fitted(model), ATOL, RTOL)).toBeLessThanOrEqual(0);
  });

  it('with rows = batch the compiled step (Dropout, Adam) gives the bits of the step without "rows"', slow, () => {
    const model = mlp(true), c = model.compiled as Compiled;
    const b = 7; // not a power of two: a mean that multiplied by 1/7 would round differently
    const run = (partial: boolean) => {
      const g = withUpdates(traceTrainStep(model, c, [[b, FEATURES]], [[b]], { partial }).graph), dir = path.join(tmp, `bits-${partial}`);
      const values: Record<string, TypedArray> = { rng_counter: Int32Array.of(5), rows: Int32Array.of(b) };
      values[String(g.inputs[0]!.attrs['name'])] = rowsOf(x, FEATURES, 0, b);
      values[String(g.inputs[1]!.attrs['name'])] = rowsOf(y, 1, 0, b);
      const bound = Object.fromEntries(g.inputs.map((n) => [String(n.attrs['name']), values[String(n.attrs['name'])]!]));
      compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: b }], weights: weightFiles(g, paramsOf(model)), threads: 1 });
      return runMain(path.join(dir, 'model_main'), dir, g, bound);
    };
    const was = run(false), now = run(true);
    expect([...now.keys()]).toEqual([...was.keys()]);
    for (const [k, v] of was) expect(Array.from(now.get(k)!), k).toEqual(Array.from(v));
  });

  it('a BatchNormalization model (its training forward pass mixes rows) leaves the rows out and says why', slow, async () => {
    keras.utils.setRandomSeed(7);
    const model = keras.Sequential([
      keras.layers.Dense(8, { inputShape: [FEATURES] }),
      keras.layers.BatchNormalization(),
      keras.layers.Dense(CLASSES, { activation: 'softmax' }),
    ]);
    model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const dir = path.join(tmp, 'bn');
    await compile(model, { target: 'llvm', outDir: dir, train: true, batchSize: B });
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { entries: { trainStep: { anyRows: boolean } } };
    expect(manifest.entries.trainStep.anyRows).toBe(false);
    expect(readFileSync(path.join(dir, 'model.ir'), 'utf8')).not.toMatch(/input "rows"|rows: i32\[\]/);
    writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [N, FEATURES], x));
    writeFileSync(path.join(dir, 'y.npy'), writeNpy('int32', [N], y));
    const run = spawnSync(path.join(dir, 'model_train'), ['--no-shuffle', '--out', 'trained.safetensors', 'x.npy', 'y.npy'], { cwd: dir, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/^model_train: 2 of the 10 training rows are left out of each epoch: the trainStep runs whole batches of 4 only \(its training forward pass mixes rows: reduce_sum .* reduces over the batch axis 0\)\n$/);
    expect(run.stdout).toMatch(/^2\/2 - /m);
  });
});

describe('training steps without "rows" (they take whole batches)', () => {
  const ir = async (model: keras.Model) => (await compile(model, { emit: 'ir', train: true, batchSize: B })).ir!;
  it('the step with "rows" has it; a custom loss that reduces the batch itself and a model input named "rows" do not', async () => {
    expect(await ir(mlp(true))).toMatch(/input \{name="rows"\} : i32\[\]/);
    keras.utils.setRandomSeed(7);
    const scalarLoss = keras.Sequential([keras.layers.Dense(CLASSES, { inputShape: [FEATURES] })]);
    scalarLoss.compile({ optimizer: 'sgd', loss: (t: keras.Tensor, p: keras.Tensor) => keras.ops.mean(keras.ops.square(keras.ops.subtract(p, t))) });
    expect(await ir(scalarLoss)).not.toMatch(/name="rows"/);
    const input = keras.Input({ shape: [FEATURES], name: 'rows' });
    const named = keras.Model({ inputs: input, outputs: keras.layers.Dense(CLASSES, { activation: 'softmax' })(input) });
    named.compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy' });
    const text = await ir(named);
    expect(text.match(/name="rows"/g)).toHaveLength(1);
    expect(text).toMatch(/input \{name="rows"\} : f32\[4,20\]/);
  });
});

type Wasm = { trainStep(inputs: ArrayLike<number>[]): TypedArray[]; getWeights(): Map<string, TypedArray> };

describe('the wasm trainStep takes 1 to batch rows', () => {
  it(`an epoch of ${N} rows in batches of ${B} (the last of ${N % B}) equals fit's, and pred has the rows given`, slow, async () => {
    const model = mlp(), dir = path.join(tmp, 'wasm');
    await compile(model, { target: 'wasm', outDir: dir, train: true, batchSize: B });
    const m = await ((await import(/* @vite-ignore */ pathToFileURL(path.join(dir, 'model.mjs')).href)) as { load(): Promise<Wasm> }).load();
    for (let a = 0; a < N; a += B) {
      const count = Math.min(B, N - a);
      const [loss, pred] = m.trainStep([rowsOf(x, FEATURES, a, count), rowsOf(y, 1, a, count)]);
      expect(loss!.length).toBe(1);
      expect(pred!.length).toBe(count * CLASSES);
    }
    expect(() => m.trainStep([rowsOf(x, FEATURES, 0, B + 1), rowsOf(y, 1, 0, B + 1)])).toThrow(/trainStep takes 1 to 4 rows/);
    expect(() => m.trainStep([rowsOf(x, FEATURES, 0, 3), rowsOf(y, 1, 0, 2)])).toThrow(/needs 3 rows/);
    const names = new Set(model.weights.map((w) => w.path));
    const trained = new Map([...m.getWeights()].filter(([k]) => names.has(k)));
    expect(trained.size).toBe(names.size);
    expect(worst(trained, fitted(model), ATOL, RTOL)).toBeLessThanOrEqual(0);
  });
});
