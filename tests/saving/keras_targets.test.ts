// The Keras 3 fixtures compiled to wasm, llvm and cuda (its CPU-emulated build) give what Keras predicted;
// `kiln compile model.keras` and `kiln compile model.ts --weights m.weights.h5` on the command line.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../../compiler.js';
import * as keras from '../../frontend/index.js';
import { readNpy } from '../../runtime/npy.js';

const FIX = path.join(import.meta.dirname, '..', 'fixtures', 'keras');
const ROOT = path.join(import.meta.dirname, '..', '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-keras-t-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const slow = { timeout: 600_000 };
const npy = (file: string) => readNpy(new Uint8Array(readFileSync(file)));
/** How many <name>.x*.npy (or .y*) the fixture has. */
const count = (name: string, xy = 'x') => { let n = 0; while (existsSync(path.join(FIX, `${name}.${xy}${n}.npy`))) n++; return n; };
const near = (got: ArrayLike<number>, want: ArrayLike<number>) => {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-5 + 1e-5 * Math.abs(want[i]!));
};

describe.each(['mlp', 'multi_io', 'cnn', 'rnn', 'mha', 'seq', 'vol', 'masked'])('the Keras 3 fixture %s compiled', (name) => {
  const xs = Array.from({ length: count(name) }, (_, i) => npy(path.join(FIX, `${name}.x${i}.npy`)));
  const ys = Array.from({ length: count(name, 'y') }, (_, i) => npy(path.join(FIX, `${name}.y${i}.npy`)));
  // TimeDistributed folds the steps into the batch, so rows are not independent: compiled for all 3 rows at once
  const batch = name === 'masked' ? { batchSize: 3 } : {};

  it('to wasm predicts what Keras predicted', slow, async () => {
    const dir = path.join(tmp, `${name}-wasm`);
    await compile(await keras.saving.loadModel(path.join(FIX, `${name}.keras`)), { target: 'wasm', outDir: dir, ...batch });
    const { load } = (await import(pathToFileURL(path.join(dir, 'model.mjs')).href)) as { load(): Promise<{ predict(x: ArrayLike<number>[]): ArrayLike<number>[] }> };
    const got = (await load()).predict(xs.map((x) => x.data));
    ys.forEach((y, i) => near(got[i]!, y.data));
  });

  it('to llvm (kiln compile model.keras) predicts what Keras predicted', slow, () => {
    const dir = path.join(tmp, `${name}-llvm`);
    const c = spawnSync('node', [path.join(ROOT, 'dist/cli/main.js'), 'compile', path.join(FIX, `${name}.keras`), '--target', 'llvm', '-o', dir, ...(batch.batchSize ? ['--batch-size', '3'] : [])], { encoding: 'utf8' });
    expect(c.status, c.stderr).toBe(0);
    const files = xs.map((x, i) => path.join(FIX, `${name}.x${i}.npy`));
    const r = spawnSync(path.join(dir, 'model_main'), ['--out', path.join(dir, 'out'), ...files], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { outputs: { name: string }[] };
    ys.forEach((y, i) => near(npy(path.join(dir, 'out', `${manifest.outputs[i]!.name}.npy`)).data, y.data));
  });
});

describe('kiln compile model.keras --target cuda', () => {
  it('seq (every 1-D layer, an int32 input): the CPU-emulated build (model_main_emu) predicts what Keras predicted', slow, () => {
    const dir = path.join(tmp, 'seq-cuda');
    const c = spawnSync('node', [path.join(ROOT, 'dist/cli/main.js'), 'compile', path.join(FIX, 'seq.keras'), '--target', 'cuda', '-o', dir], { encoding: 'utf8' });
    expect(c.status, c.stderr).toBe(0);
    const r = spawnSync(path.join(dir, 'model_main_emu'), ['--out', path.join(dir, 'out'), path.join(FIX, 'seq.x0.npy'), path.join(FIX, 'seq.x1.npy')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { inputs: { dtype: string }[]; outputs: { name: string }[] };
    expect(manifest.inputs.map((i) => i.dtype)).toEqual(['int32', 'float32']);
    near(npy(path.join(dir, 'out', `${manifest.outputs[0]!.name}.npy`)).data, npy(path.join(FIX, 'seq.y0.npy')).data);
  });
});

describe('kiln compile --weights', () => {
  it('loads a Keras .weights.h5 into the model of a model.ts; a weights file that does not fit is one error line', slow, () => {
    const model = path.join(tmp, 'mlp.ts');
    writeFileSync(model, `import * as keras from 'kiln';
export default keras.Sequential([keras.Input({ shape: [8] }), keras.layers.Dense(16, { activation: 'relu' }), keras.layers.Dropout(0.25), keras.layers.Dense(3, { activation: 'softmax' })]);
`);
    const dir = path.join(tmp, 'mlp-w');
    const kiln = (...args: string[]) => spawnSync('node', [path.join(ROOT, 'dist/cli/main.js'), 'compile', model, '--target', 'llvm', '-o', dir, ...args], { encoding: 'utf8' });
    const c = kiln('--weights', path.join(FIX, 'mlp.weights.h5'));
    expect(c.status, c.stderr).toBe(0);
    const r = spawnSync(path.join(dir, 'model_main'), ['--out', path.join(dir, 'out'), path.join(FIX, 'mlp.x0.npy')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    near(npy(path.join(dir, 'out', 'dense_1.npy')).data, npy(path.join(FIX, 'mlp.y0.npy')).data);
    const bad = kiln('--weights', path.join(FIX, 'cnn.keras'));
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split('\n').at(-1)).toBe(`kiln: ${path.join(FIX, 'cnn.keras')}: a weights file must end in .weights.h5 or .h5 or .safetensors`);
  });
});
