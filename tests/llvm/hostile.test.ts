// model_main and model_train of compiled llvm models on bad data (labels outside [0, classes), non-finite inputs,
// losses and weights: one line, exit 1, the weights file untouched), also built with ASan and UBSan.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../compiler.js';
import * as keras from '../../frontend/index.js';
import { readNpy, writeNpy } from '../../runtime/npy.js';
import { readSafetensors, writeSafetensors } from '../../runtime/safetensors.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-llvm-hostile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SANITIZE = ['-O1', '-g', '-std=c99', '-pthread', '-fsanitize=address,undefined', '-fno-sanitize-recover=all'];

interface Result { code: number | null; signal: string | null; out: string; err: string }

/** Runs a program in dir; a sanitizer report fails the test (the programs keep their buffers until exit: no leak check). */
function run(dir: string, exe: string, args: string[]): Result {
  const r = spawnSync(path.join(dir, exe), args, { cwd: dir, encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' } });
  if (/Sanitizer|runtime error:/.test(r.stderr)) throw new Error(`${exe} ${args.join(' ')}: sanitizer report\n${r.stderr}`);
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

function expectFailure(r: Result, re: RegExp): void {
  expect(r.signal).toBeNull();
  expect(r.code).toBe(1);
  expect(r.err.trim().split('\n')).toHaveLength(1);
  expect(r.err).toMatch(re);
}

/** Compiles model with --train for llvm into dir, and model_main_san / model_train_san from the same sources. */
async function build(model: keras.Model, dir: string): Promise<void> {
  await compile(model, { target: 'llvm', train: true, batchSize: 4, outDir: dir });
  for (const m of ['model_main', 'model_train']) {
    const r = spawnSync('gcc', [...SANITIZE, `${m}.c`, 'kiln_runtime.c', 'kiln_rows.c', 'kiln_math.c', 'model_desc.c', 'model.o', '-lm', '-o', `${m}_san`], { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`gcc ${m}_san: ${r.stderr}`);
  }
}

// 40 rows of 4 features; the label is the largest of the first three
const ROWS = 40;
const x = Float32Array.from({ length: ROWS * 4 }, (_, i) => Math.fround(Math.sin(i * 1.7) + (i % 4 === 3 ? 0.5 : 0)));
const labels = Int32Array.from({ length: ROWS }, (_, r) => [0, 1, 2].reduce((b, j) => (x[r * 4 + j]! > x[r * 4 + b]! ? j : b), 0));

describe('llvm model_train and model_main on bad data', () => {
  const dir = path.join(tmp, 'adam');
  let model: keras.Model;

  beforeAll(async () => {
    model = keras.Sequential([keras.layers.Dense(8, { activation: 'relu', inputShape: [4] }), keras.layers.Dense(3, { activation: 'softmax' })]);
    model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    await build(model, dir);
    writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [ROWS, 4], x));
    writeFileSync(path.join(dir, 'y.npy'), writeNpy('int32', [ROWS], labels));
  }, 120_000);

  it('a normal run under the sanitizers trains as the plain build does, and model_main equals the interpreter', () => {
    const args = (out: string) => ['--epochs', '3', '--seed', '7', '--validation-split', '0.2', '--out', out, 'x.npy', 'y.npy'];
    const plain = run(dir, 'model_train', args('plain.safetensors'));
    const san = run(dir, 'model_train_san', args('san.safetensors'));
    expect(plain.err).toBe('');
    expect(san.err).toBe('');
    const log = (r: Result): string => r.out.replace(/ - \d+s - \d+\w+\/step/g, '').replace(/\w+\.safetensors/, 'W');
    expect(log(san)).toBe(log(plain));
    expect(readFileSync(path.join(dir, 'san.safetensors'))).toEqual(readFileSync(path.join(dir, 'plain.safetensors')));

    const trained = readSafetensors(new Uint8Array(readFileSync(path.join(dir, 'san.safetensors')))).tensors;
    writeFileSync(path.join(dir, 'x4.npy'), writeNpy('float32', [4, 4], x.subarray(0, 16)));
    expect(run(dir, 'model_main_san', ['--weights', 'san.safetensors', '--out', 'out', 'x4.npy']).err).toBe('');
    const got = readNpy(new Uint8Array(readFileSync(path.join(dir, 'out', `${model.outputNames[0]}.npy`)))).data;
    model.setWeights(model.weights.map((w, i) => new keras.Tensor('float32', w.shape, trained[i]!.data as Float32Array)));
    const want = model.predict(new keras.Tensor('float32', [4, 4], x.slice(0, 16)), { backend: 'interpreter' }) as keras.Tensor;
    Array.from(want.data).forEach((w, i) => expect(Math.abs(got[i]! - w)).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(w)));
  });

  it('labels outside [0, classes), non-finite inputs and a NaN loss stop training with one line; the weights file stays as it was', () => {
    const out = path.join(dir, 'trained.safetensors');
    writeFileSync(out, 'the previous weights');
    const file = (name: string, bytes: Uint8Array): string => { writeFileSync(path.join(dir, name), bytes); return name; };
    const edit = <T extends Float32Array | Int32Array>(a: T, i: number, v: number): T => { const b = a.slice() as T; b[i] = v; return b; };
    const nanWeights = readSafetensors(new Uint8Array(readFileSync(path.join(dir, 'weights.safetensors')))).tensors;
    (nanWeights[0]!.data as Float32Array)[5] = NaN;
    const out0 = model.outputNames[0]!;
    const cases: [string[], RegExp][] = [
      [['x.npy', file('y3.npy', writeNpy('int32', [ROWS], edit(labels, 5, 3)))], new RegExp(`y3\\.npy: label 3 at row 5 is outside \\[0, 3\\) \\(output '${out0}' has 3 classes\\)`)],
      [['x.npy', file('yneg.npy', writeNpy('int32', [ROWS], edit(labels, 31, -2)))], /yneg\.npy: label -2 at row 31 is outside \[0, 3\)/],
      [[file('xnan.npy', writeNpy('float32', [ROWS, 4], edit(x, 17 * 4 + 2, NaN))), 'y.npy'], /xnan\.npy: value nan at row 17; training data must be finite/],
      [['--weights', file('wnan.safetensors', writeSafetensors(nanWeights)), 'x.npy', 'y.npy'], /epoch 1, batch 1: invalid loss nan, terminating training; trained\.safetensors was not written/],
    ];
    for (const exe of ['model_train', 'model_train_san'])
      for (const [args, re] of cases) {
        expectFailure(run(dir, exe, ['--out', 'trained.safetensors', ...args]), re);
        expect(readFileSync(out, 'utf8'), `${exe} ${args.join(' ')}`).toBe('the previous weights');
      }
  });
});

describe('llvm model_train: weights that overflow while the loss is finite', () => {
  it('are not saved', async () => {
    // SGD with a learning rate of 1e38 on a linear regression: the first loss is finite, the updated kernel is not
    const dir = path.join(tmp, 'sgd');
    const model = keras.Sequential([keras.layers.Dense(1, { inputShape: [4] })]);
    model.compile({ optimizer: keras.optimizers.SGD({ learningRate: 1e38 }), loss: 'mean_squared_error' });
    await build(model, dir);
    writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [4, 4], x.subarray(0, 16).map((v) => v * 10)));
    writeFileSync(path.join(dir, 'y.npy'), writeNpy('float32', [4, 1], new Float32Array(4)));
    for (const exe of ['model_train', 'model_train_san']) {
      const r = run(dir, exe, ['--out', 'trained.safetensors', 'x.npy', 'y.npy']);
      expect(r.out).toMatch(/loss: \d+\.\d+/);
      expectFailure(r, /trained weight '[^']+' holds -?inf; trained\.safetensors was not written/);
    }
  }, 120_000);
});
