// TimeDistributed at any number of rows: its reshape merges the batch with the time axis and splits it back, which
// passes/rows.ts follows, so a model compiled at the default batch takes n = 1, 7, 16 (its max batch) and 37 rows
// on wasm and llvm (model_main's kiln_run_rows), against the reference interpreter.
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../compiler.js';
import * as keras from '../frontend/index.js';
import { traceModel } from '../frontend/models/executor.js';
import { interpret } from '../ir/interpreter.js';
import { readNpy, writeNpy } from '../runtime/npy.js';
import { close } from '../fuzz/targets.js';
import { rowSeparability } from '../passes/rows.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-td-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const slow = { timeout: 600_000 };
const T = 5, F = 4, MAX_BATCH = 16, ROWS = [1, 7, MAX_BATCH, 37];
const N = Math.max(...ROWS);

// [n, 5, 4] → TimeDistributed(Dense) per step → a [n, 5, 3] sequence output and a pooled [n, 2] output
const input = keras.Input({ shape: [T, F], name: 'x' });
const h = keras.layers.TimeDistributed(keras.layers.Dense(6, { activation: 'relu' }))(input);
const seq = keras.layers.TimeDistributed(keras.layers.Dense(3), { name: 'seq' })(h);
const pooled = keras.layers.Dense(2, { name: 'pooled' })(keras.layers.GlobalAveragePooling1D()(h));
const model = keras.Model({ inputs: input, outputs: [seq, pooled] });
const widths = [T * 3, 2];

const x = Float32Array.from({ length: N * T * F }, (_, i) => Math.sin(i * 0.37));
const traced = traceModel(model, N);
const want = [...interpret(traced.graph, { x }, new Map(traced.variables.map((v) => [v.path, v.data]))).outputs.values()].map((o) => o.data);

function diffs(k: number, got: ArrayLike<number>, n: number, label: string): string[] {
  if (got.length !== n * widths[k]!) return [`${label}: ${got.length} values, want ${n * widths[k]!}`];
  const bad: string[] = [];
  for (let i = 0; i < got.length && bad.length < 4; i++) if (!close(want[k]![i]!, got[i]!)) bad.push(`${label}[${i}]: ${got[i]}, interpreter ${want[k]![i]}`);
  return bad;
}

/** model_main on the first n rows: both outputs. */
function runMain(exe: string, n: number): { stderr: string; ys: { shape: number[]; data: ArrayLike<number> }[] } {
  const dir = path.dirname(exe), file = path.join(dir, `x${n}.npy`);
  writeFileSync(file, writeNpy('float32', [n, T, F], x.subarray(0, n * T * F)));
  const r = spawnSync(exe, ['--out', path.join(dir, `out${n}`), file], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return { stderr: r.stderr, ys: model.outputNames.map((name) => readNpy(new Uint8Array(readFileSync(path.join(dir, `out${n}`, `${name}.npy`))))) };
}

describe('TimeDistributed takes any number of rows', () => {
  it('its predict graph is row-separable, and eager predict agrees with the interpreter', () => {
    expect(rowSeparability(traced.graph)).toEqual({ separable: true });
    for (const n of [1, 7]) {
      const got = model.predict(keras.ops.reshape(keras.ops.array(x.subarray(0, n * T * F)), [n, T, F])) as keras.Tensor[];
      got.forEach((y, k) => expect(diffs(k, y.data as Float32Array, n, `eager ${model.outputNames[k]} n=${n}`)).toEqual([]));
    }
  });

  it('wasm, --max-batch 16', slow, async () => {
    const dir = path.join(tmp, 'wasm');
    await compile(model, { target: 'wasm', outDir: dir, maxBatch: MAX_BATCH });
    const m = await ((await import(/* @vite-ignore */ pathToFileURL(path.join(dir, 'model.mjs')).href)) as { load(): Promise<{ predict(i: ArrayLike<number>[]): ArrayLike<number>[]; manifest: Record<string, unknown> }> }).load();
    expect(m.manifest).toMatchObject({ maxBatch: MAX_BATCH, entries: { predict: { batchSize: MAX_BATCH, anyRows: true } } });
    for (const n of ROWS) m.predict([x.subarray(0, n * T * F)]).forEach((y, k) => expect(diffs(k, y, n, `wasm ${model.outputNames[k]} n=${n}`)).toEqual([]));
  });

  // (the CUDA build runs rows through the same kiln_rows.c as llvm: tests/any_batch.test.ts covers it)
  it('llvm, --max-batch 16', slow, async () => {
    const dir = path.join(tmp, 'llvm');
    await compile(model, { target: 'llvm', outDir: dir, maxBatch: MAX_BATCH });
    for (const n of ROWS) {
      const r = runMain(path.join(dir, 'model_main'), n);
      expect(r.stderr).toBe('');
      expect(r.ys.map((y) => y.shape)).toEqual([[n, T, 3], [n, 2]]);
      r.ys.forEach((y, k) => expect(diffs(k, y.data, n, `llvm ${model.outputNames[k]} n=${n}`)).toEqual([]));
    }
  });
});
