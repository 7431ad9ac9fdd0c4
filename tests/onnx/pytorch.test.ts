// ONNX files exported by PyTorch (tests/fixtures/make_onnx_fixtures.py): kiln imports them and predicts what PyTorch
// predicted (the stored .npy) and what onnxruntime-node predicts, on the interpreter and compiled to wasm and llvm (and
// cuda, its kernels emulated on the CPU);
// `kiln compile` takes them, and an op kiln does not read (LSTM) is one error naming it and its node.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { traceModel } from '../../frontend/models/executor.js';
import { loadOnnx } from '../../io/onnx/import.js';
import { interpret } from '../../ir/interpreter.js';
import { readNpy } from '../../runtime/npy.js';
import { ensureBuilt, root } from '../built.js';
import { diffs, runOrt } from './helpers.js';
import { type Inputs, runCompiled } from './targets.js';

const dir = path.join(root, 'tests/fixtures/onnx');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-onnx-pt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const FIXTURES = ['mlp', 'cnn', 'attention', 'two_in_two_out'];

/** A fixture's model, its inputs by model input name, and PyTorch's outputs in order. */
function fixture(name: string) {
  const model = loadOnnx(path.join(dir, `${name}.onnx`));
  const npy = (f: string) => readNpy(new Uint8Array(readFileSync(path.join(dir, f))));
  const inputs: Inputs = Object.fromEntries(model.inputSpecs.map((s, i) => [s.name, npy(`${name}.in${i}.npy`)]));
  const expected = model.outputNames.map((_, i) => npy(`${name}.out${i}.npy`).data);
  return { model, inputs, expected };
}

describe('ONNX files exported by PyTorch', () => {
  it.each(FIXTURES)('%s.onnx: the interpreter predicts what PyTorch and onnxruntime predict', async (name) => {
    const { model, inputs, expected } = fixture(name);
    expect(model.inputSpecs.every((s) => s.shape[0] === null)).toBe(true);
    const batch = Object.values(inputs)[0]!.shape[0]!;
    const data = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.data]));
    const got = interpret(traceModel(model, batch).graph, data, Object.fromEntries(model.weights.map((w) => [w.path, w.data]))).outputs;
    expect(model.outputNames.flatMap((n, i) => diffs(`${name} ${n}`, got.get(n)?.data, expected[i]!))).toEqual([]);
    const ort = await runOrt(readFileSync(path.join(dir, `${name}.onnx`)), inputs);
    expect(model.outputNames.flatMap((n) => diffs(`${name} ${n} vs onnxruntime`, got.get(n)?.data, ort[n]!))).toEqual([]);
  });

  describe.each(['wasm', 'llvm'] as const)('compiled to %s', (target) => {
    it.each(FIXTURES)('%s.onnx predicts what PyTorch predicted', async (name) => {
      const { model, inputs, expected } = fixture(name);
      const got = await runCompiled(model, target, path.join(tmp, `${name}-${target}`), inputs);
      expect(model.outputNames.flatMap((n, i) => diffs(`${name} ${n}`, got[n], expected[i]!))).toEqual([]);
    }, 300_000);
  });

  it.each(['cnn', 'attention'])('%s.onnx compiled to cuda predicts what PyTorch predicted (model_main_emu: the kernels on the CPU)', async (name) => {
    const { model, inputs, expected } = fixture(name);
    const got = await runCompiled(model, 'cuda', path.join(tmp, `${name}-cuda`), inputs);
    expect(model.outputNames.flatMap((n, i) => diffs(`${name} ${n}`, got[n], expected[i]!))).toEqual([]);
  }, 300_000);

  it('an LSTM (not imported) is one error naming the op and its node', () => {
    const f = path.join(dir, 'lstm.onnx');
    expect(() => loadOnnx(f)).toThrow(`${f}: 1 unsupported ONNX op(s): LSTM (/lstm/LSTM)`);
  });
});

describe('kiln compile model.onnx', () => {
  const cli = path.join(root, 'dist/cli/main.js');
  const kiln = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, ...args], { cwd: tmp }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });

  it('compiles a PyTorch export to wasm, which predicts what PyTorch predicted', async () => {
    ensureBuilt();
    const out = path.join(tmp, 'cli-mlp');
    const r = await kiln(['compile', path.join(dir, 'mlp.onnx'), '--target', 'wasm', '-o', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { inputs, expected } = fixture('mlp');
    const { load } = (await import(pathToFileURL(path.join(out, 'model.mjs')).href)) as { load: () => Promise<{ predict: (x: Float32Array[]) => Float32Array[] }> };
    const [y] = (await load()).predict([inputs['x0']!.data as Float32Array]);
    expect(diffs('y0', y, expected[0]!)).toEqual([]);
  }, 300_000);

  it('an unsupported op is a one-line error and no output', async () => {
    ensureBuilt();
    const out = path.join(tmp, 'cli-lstm');
    const r = await kiln(['compile', path.join(dir, 'lstm.onnx'), '--target', 'wasm', '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`kiln: ${path.relative(tmp, path.join(dir, 'lstm.onnx'))}: 1 unsupported ONNX op(s): LSTM (/lstm/LSTM)\n`);
    expect(existsSync(out)).toBe(false);
  });
});
