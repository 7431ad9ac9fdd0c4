// Any number of rows at run time on every target: the seed MLP and the CNN example compiled with --max-batch 16 (so
// full chunks, single-row tails and padded tails all run) and with the default, n = 1 ... 1000 rows through the wasm
// loader's predict, model_main (kiln_run_rows) and the emulated CUDA build, against the reference interpreter.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../compiler.js';
import * as keras from '../frontend/index.js';
import { traceModel } from '../frontend/models/executor.js';
import { interpret } from '../ir/interpreter.js';
import type { TypedArray } from '../ir/types.js';
import { readNpy, writeNpy } from '../runtime/npy.js';
import { close } from '../fuzz/targets.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-rows-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const slow = { timeout: 600_000 };
const ROWS = [1, 2, 7, 33, 256, 1000];
const MAX = Math.max(...ROWS);

const mlp = () => keras.Sequential([
  keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
  keras.layers.Dropout(0.2),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);
const cnn = () => keras.Sequential([
  keras.layers.Conv2D(8, 3, { activation: 'relu', padding: 'same', inputShape: [28, 28, 1] }),
  keras.layers.MaxPooling2D(2),
  keras.layers.Conv2D(16, 3, { activation: 'relu' }),
  keras.layers.GlobalAveragePooling2D(),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);

/** A layer that centres each feature over the batch: every row depends on every other. */
class BatchCenter extends keras.layers.Layer {
  call(x: keras.Tensor): keras.Tensor {
    return keras.ops.subtract(x, keras.ops.mean(x, { axis: 0, keepdims: true }));
  }
}

/** MAX rows of inputs in [-1, 1) and the interpreter's outputs for them (rows are independent: n rows are a prefix). */
function reference(model: keras.Model): { x: Float32Array; row: number; y: TypedArray; yRow: number } {
  const t = traceModel(model, MAX);
  const input = t.graph.inputs[0]!;
  const x = new Float32Array(input.type.shape.reduce((a, b) => a * b, 1));
  let s = 12345;
  for (let i = 0; i < x.length; i++) x[i] = ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const params = new Map(t.variables.map((v) => [v.path, v.data]));
  const y = interpret(t.graph, { [String(input.attrs['name'])]: x }, params).outputs.values().next().value!.data;
  return { x, row: x.length / MAX, y, yRow: y.length / MAX };
}

/** The first elements (at most 4) where `got` is not close to the interpreter's first rows. */
function diffs(want: TypedArray, got: ArrayLike<number>, n: number, yRow: number, label: string): string[] {
  const bad: string[] = [];
  if (got.length !== n * yRow) return [`${label}: ${got.length} values, want ${n * yRow}`];
  for (let i = 0; i < got.length && bad.length < 4; i++) if (!close(want[i]!, got[i]!)) bad.push(`${label}[${i}]: ${got[i]}, interpreter ${want[i]}`);
  return bad;
}

/** model_main (or model_main_emu) on the first n rows: the first output's values. */
function runMain(exe: string, model: keras.Model, inShape: readonly number[], x: Float32Array, n: number): { code: number; stderr: string; y?: TypedArray; shape?: number[] } {
  const dir = path.dirname(exe), row = x.length / MAX;
  const file = path.join(dir, `x${n}.npy`);
  writeFileSync(file, writeNpy('float32', [n, ...inShape.slice(1)], x.subarray(0, n * row)));
  const r = spawnSync(exe, ['--out', path.join(dir, `out${n}`), file], { encoding: 'utf8' });
  if (r.status !== 0) return { code: r.status ?? 1, stderr: r.stderr };
  const y = readNpy(new Uint8Array(readFileSync(path.join(dir, `out${n}`, `${model.outputNames[0]!}.npy`))));
  return { code: 0, stderr: r.stderr, y: y.data, shape: y.shape };
}

type Loaded = { predict(inputs: ArrayLike<number>[]): TypedArray[]; manifest: Record<string, unknown> };
const loadWasm = async (dir: string): Promise<Loaded> =>
  ((await import(/* @vite-ignore */ pathToFileURL(path.join(dir, 'model.mjs')).href)) as { load(): Promise<Loaded> }).load();

describe.each([['the seed MLP', mlp], ['the CNN example', cnn]] as const)('%s takes any number of rows', (_name, build) => {
  const model = build();
  const ref = reference(model);
  const inShape = traceModel(model, 1).graph.inputs[0]!.type.shape;

  it('wasm: predict with --max-batch 16', slow, async () => {
    const dir = path.join(tmp, `${_name}-wasm`);
    await compile(model, { target: 'wasm', outDir: dir, maxBatch: 16 });
    const m = await loadWasm(dir);
    expect(m.manifest).toMatchObject({ maxBatch: 16, entries: { predict: { batchSize: 16, anyRows: true }, predict_1: { batchSize: 1 } } });
    expect((m.manifest['inputs'] as { shape: unknown[] }[])[0]!.shape[0]).toBeNull();
    for (const n of ROWS) {
      const [y] = m.predict([ref.x.subarray(0, n * ref.row)]);
      expect(diffs(ref.y, y!, n, ref.yRow, `wasm n=${n}`)).toEqual([]);
    }
    // a plain array works as a typed one does
    expect(diffs(ref.y, m.predict([Array.from(ref.x.subarray(0, 3 * ref.row))])[0]!, 3, ref.yRow, 'wasm plain n=3')).toEqual([]);
  });

  it('llvm: model_main (kiln_run_rows) with --max-batch 16', slow, async () => {
    const dir = path.join(tmp, `${_name}-llvm`);
    await compile(model, { target: 'llvm', outDir: dir, maxBatch: 16 });
    expect(readFileSync(path.join(dir, 'model.h'), 'utf8')).toMatch(/#define KILN_MAX_BATCH 16L/);
    for (const n of ROWS) {
      const r = runMain(path.join(dir, 'model_main'), model, inShape, ref.x, n);
      expect(r.stderr).toBe('');
      expect(r.shape).toEqual([n, 10]);
      expect(diffs(ref.y, r.y!, n, ref.yRow, `llvm n=${n}`)).toEqual([]);
    }
  });

  it('cuda: the emulated build (model_main_emu) with --max-batch 16', slow, async () => {
    const dir = path.join(tmp, `${_name}-cuda`);
    await compile(model, { target: 'cuda', outDir: dir, maxBatch: 16 });
    for (const n of ROWS) {
      const r = runMain(path.join(dir, 'model_main_emu'), model, inShape, ref.x, n);
      expect(r.stderr).toBe('');
      expect(diffs(ref.y, r.y!, n, ref.yRow, `cuda n=${n}`)).toEqual([]);
    }
  });
});

describe('any number of rows', () => {
  it('the default --max-batch (256) on llvm; model_train trains a last, smaller batch, and validates through kiln_run_rows', slow, async () => {
    const model = mlp();
    model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
    const ref = reference(model);
    const dir = path.join(tmp, 'default');
    await compile(model, { target: 'llvm', outDir: dir, train: true, batchSize: 32 });
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({ maxBatch: 256, entries: { predict: { batchSize: 256 }, predict_1: { batchSize: 1 }, trainStep: { batchSize: 32, anyRows: false } } });
    for (const n of [7, 1000]) {
      const r = runMain(path.join(dir, 'model_main'), model, [1, 784], ref.x, n);
      expect(diffs(ref.y, r.y!, n, ref.yRow, `llvm n=${n}`)).toEqual([]);
    }
    // 100 rows, a fifth held out: 80 training rows are 2 batches of 32 and a last batch of 16 (tests/training/partial_batch.test.ts)
    writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [100, 784], ref.x.subarray(0, 100 * 784)));
    writeFileSync(path.join(dir, 'y.npy'), writeNpy('int32', [100], Int32Array.from({ length: 100 }, (_, i) => i % 10)));
    const t = spawnSync(path.join(dir, 'model_train'), ['--validation-split', '0.2', '--out', path.join(dir, 'w.safetensors'), 'x.npy', 'y.npy'], { cwd: dir, encoding: 'utf8' });
    expect(t.status, t.stderr).toBe(0);
    expect(t.stderr).toBe('');
    expect(t.stdout).toMatch(/^3\/3 - /m);
    expect(t.stdout).toMatch(/val_accuracy: 0\.\d{4}/);
  });

  it('a model whose rows are not independent takes exactly its batch size, and says why', slow, async () => {
    const model = keras.Sequential([keras.layers.Dense(4, { inputShape: [3] }), new BatchCenter()]);
    const t = traceModel(model, 4);
    const x = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i));
    const want = interpret(t.graph, { [String(t.graph.inputs[0]!.attrs['name'])]: x }, new Map(t.variables.map((v) => [v.path, v.data]))).outputs.values().next().value!.data;
    const reason = 'reduce_sum f32[1,4] reduces over the batch axis 0';
    const llvm = path.join(tmp, 'fixed-llvm');
    await compile(model, { target: 'llvm', outDir: llvm, batchSize: 4, maxBatch: 16 });
    const manifest = JSON.parse(readFileSync(path.join(llvm, 'manifest.json'), 'utf8')) as { inputs: { shape: unknown[] }[]; maxBatch: unknown; fixedRows: string; entries: object };
    expect(manifest.inputs[0]!.shape).toEqual([4, 3]);
    expect(manifest).toMatchObject({ maxBatch: null, fixedRows: reason });
    expect(Object.keys(manifest.entries)).toEqual(['predict']);
    const ok = runMain(path.join(llvm, 'model_main'), model, [4, 3], padTo(x, 3), 4);
    expect(diffs(want, ok.y!, 4, 4, 'llvm')).toEqual([]);
    const bad = runMain(path.join(llvm, 'model_main'), model, [4, 3], padTo(x, 3), 7);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`model_main: ${path.join(llvm, 'x7.npy')}: batch dimension is 7, but 'predict' takes exactly 4 rows: ${reason} (input '${model.inputSpecs[0]!.name}' has shape [4, 3])\n`);
    const wasm = path.join(tmp, 'fixed-wasm');
    await compile(model, { target: 'wasm', outDir: wasm, batchSize: 4 });
    const m = await loadWasm(wasm);
    expect(diffs(want, m.predict([x])[0]!, 4, 4, 'wasm')).toEqual([]);
    expect(() => m.predict([new Float32Array(21)])).toThrow(`kiln: predict takes exactly 4 rows, got 7: its rows are not independent (${reason})`);
  });

  it('no rows, ragged rows and a bad max batch are one-line errors', slow, async () => {
    const model = mlp();
    const dir = path.join(tmp, 'errors');
    await compile(model, { target: 'wasm', outDir: dir, maxBatch: 4 });
    const m = await loadWasm(dir);
    expect(() => m.predict([new Float32Array(0)])).toThrow(/^kiln: predict needs at least one row, got 0$/);
    expect(() => m.predict([new Float32Array(785)])).toThrow(/^kiln: input \S+ needs whole rows of 784 values, got 785$/);
    for (const maxBatch of [0, -1, 1.5, Number.NaN]) {
      await expect(compile(model, { target: 'wasm', outDir: dir, maxBatch }), String(maxBatch)).rejects.toThrow(/^max batch must be a positive integer, got /);
    }
    // too many rows to trace (its arrays would be over the typed-array limit): an error, not a predict of one row
    await expect(compile(model, { target: 'wasm', outDir: path.join(tmp, 'huge'), maxBatch: 1e11 })).rejects
      .toThrow(/^cannot trace model '\w+' at its max batch of 100000000000 rows \(.*\); give a smaller max batch \(--max-batch\)$/);
    expect(existsSync(path.join(tmp, 'huge'))).toBe(false);
    const cli = path.join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
    if (!existsSync(cli)) return; // the CLI half runs where dist/ is built (npm test builds it)
    for (const v of ['0', 'x', '2.5']) {
      const r = spawnSync(process.execPath, [cli, 'compile', 'examples/seed/sequential.ts', '--max-batch', v], { encoding: 'utf8', cwd: path.join(import.meta.dirname, '..') });
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split('\n')).toEqual([`error: option '--max-batch <n>' argument '${v}' is invalid. expected a positive integer`]);
    }
  });
});

describe('two inputs and two outputs (the seed multi_io model)', () => {
  const title = keras.Input({ shape: [100], name: 'title' });
  const body = keras.Input({ shape: [500], name: 'body' });
  const x = keras.layers.concatenate([keras.layers.Dense(64, { activation: 'relu' })(title), keras.layers.Dense(64, { activation: 'relu' })(body)]);
  const model = keras.Model({
    inputs: [title, body],
    outputs: [keras.layers.Dense(1, { activation: 'sigmoid', name: 'priority' })(x), keras.layers.Dense(4, { activation: 'softmax', name: 'department' })(x)],
  });
  const N = 19, t = traceModel(model, N);
  const xs = t.graph.inputs.map((node, k) => Float32Array.from({ length: node.type.shape[1]! * N }, (_, i) => Math.sin(i * (k + 1.5))));
  const ref = [...interpret(t.graph, Object.fromEntries(t.graph.inputs.map((node, k) => [String(node.attrs['name']), xs[k]!])), new Map(t.variables.map((v) => [v.path, v.data]))).outputs.values()].map((o) => o.data);
  const widths = [100, 500], outWidths = [1, 4];
  // --max-batch 8: 1 row alone, 5 padded, 9 a chunk and a row, 19 two chunks and a padded 3
  const ns = [1, 5, 9, 19];

  it('wasm and llvm, --max-batch 8', slow, async () => {
    const wasm = path.join(tmp, 'multi-wasm'), llvm = path.join(tmp, 'multi-llvm');
    await compile(model, { target: 'wasm', outDir: wasm, maxBatch: 8 });
    await compile(model, { target: 'llvm', outDir: llvm, maxBatch: 8 });
    const m = await loadWasm(wasm);
    for (const n of ns) {
      const ins = xs.map((v, k) => v.subarray(0, n * widths[k]!));
      const got = m.predict(ins);
      got.forEach((y, k) => expect(diffs(ref[k]!, y, n, outWidths[k]!, `wasm ${model.outputNames[k]} n=${n}`)).toEqual([]));
      const files = ins.map((v, k) => {
        const f = path.join(llvm, `in${k}_${n}.npy`);
        writeFileSync(f, writeNpy('float32', [n, widths[k]!], v));
        return f;
      });
      execFileSync(path.join(llvm, 'model_main'), ['--out', path.join(llvm, `out${n}`), ...files]);
      model.outputNames.forEach((name, k) => {
        const y = readNpy(new Uint8Array(readFileSync(path.join(llvm, `out${n}`, `${name}.npy`))));
        expect(y.shape).toEqual([n, outWidths[k]]);
        expect(diffs(ref[k]!, y.data, n, outWidths[k]!, `llvm ${name} n=${n}`)).toEqual([]);
      });
    }
    // rows must agree across inputs
    const two = path.join(llvm, 'two.npy'), three = path.join(llvm, 'three.npy');
    writeFileSync(two, writeNpy('float32', [2, 100], xs[0]!.subarray(0, 200)));
    writeFileSync(three, writeNpy('float32', [3, 500], xs[1]!.subarray(0, 1500)));
    const r = spawnSync(path.join(llvm, 'model_main'), ['--out', path.join(llvm, 'bad'), two, three], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`model_main: ${three}: 3 rows, but ${two} has 2 rows (every input has one row per sample)\n`);
    expect(() => m.predict([xs[0]!.subarray(0, 200), xs[1]!.subarray(0, 1500)])).toThrow(/^kiln: input body has 3 rows, but input title has 2$/);
  });
});

/** x as MAX rows of `row` values (zeros past its end), as runMain takes its inputs. */
function padTo(x: Float32Array, row: number): Float32Array {
  const out = new Float32Array(MAX * row);
  out.set(x);
  return out;
}

describe('kiln_rows.c', () => {
  it.skipIf(!hasTool('arm-none-eabi-gcc'))('builds freestanding for a Cortex-M4: no stdio, malloc or threads (skipped where arm-none-eabi-gcc is not installed)', () => {
    const rt = path.join(import.meta.dirname, '..', 'runtime', 'c');
    const obj = path.join(tmp, 'kiln_rows_m4.o');
    execFileSync('arm-none-eabi-gcc', ['-mcpu=cortex-m4', '-mthumb', '-mfloat-abi=hard', '-ffreestanding', '-nostdlib', '-std=c99', '-Wall', '-Wextra', '-Werror', '-O2', '-c', path.join(rt, 'kiln_rows.c'), '-o', obj]);
    const undefinedSymbols = execFileSync('arm-none-eabi-nm', ['-u', obj], { encoding: 'utf8' }).split('\n').map((l) => l.trim().split(/\s+/).pop()).filter(Boolean).sort();
    // the runtime core it calls, and what gcc may emit for copies
    expect(undefinedSymbols.filter((s) => !['kiln_dtype_size', 'kiln_fail', 'kiln_find_entry', 'kiln_run_entry', 'memcpy', 'memset'].includes(s!))).toEqual([]);
  });
});

function hasTool(cmd: string): boolean {
  return spawnSync(cmd, ['--version']).status === 0;
}
