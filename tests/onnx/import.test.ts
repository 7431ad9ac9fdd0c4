// ONNX import of files kiln exported: each seed model read back predicts what the original model predicts and what
// onnxruntime-node predicts from the same file (within 1e-5), compiled to wasm and llvm too; ops kiln does not read
// are one error listing them with their node names.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as keras from '../../frontend/index.js';
import type { exportOnnx } from '../../io/onnx/export.js';
import { loadOnnx } from '../../io/onnx/import.js';
import { onnx } from '../../io/onnx/proto.js';
import { sizeOf, toTyped } from '../../ir/types.js';
import { traceModel } from '../../frontend/models/executor.js';
import { interpret } from '../../ir/interpreter.js';
import { SEED_FILES, seedModels } from '../seed_examples.js';
import { diffs, runOrt } from './helpers.js';
import { type Inputs, runCompiled } from './targets.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-onnx-import-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let distExport: typeof exportOnnx, distTrace: typeof traceModel, distInterpret: typeof interpret;
const files = new Map<string, { file: string; model: keras.Model }>();
const SEED = SEED_FILES.filter((f) => f !== 'tensors');

beforeAll(async () => {
  const seed = await seedModels();
  distTrace = seed.dist.traceModel;
  distExport = ((await import('../../dist/io/onnx/export.js')) as { exportOnnx: typeof exportOnnx }).exportOnnx;
  distInterpret = ((await import('../../dist/ir/interpreter.js')) as { interpret: typeof interpret }).interpret;
  for (const f of SEED) {
    const model = seed.models.get(`${f}.ts default`);
    if (!model) continue;
    const file = path.join(tmp, `${f}.onnx`);
    writeFileSync(file, distExport(model));
    files.set(f, { file, model });
  }
}, 300_000);

/** Inputs for a batch (word ids below 20 for the Embedding model). */
function inputsFor(model: keras.Model, batch: number): Inputs {
  const ids = model.layers[0]?.className === 'Embedding';
  return Object.fromEntries(model.inputSpecs.map((s, k) => {
    const shape = s.shape.map((d, i) => (i === 0 ? batch : d!));
    const v = Array.from({ length: sizeOf(shape) }, (_, i) => Math.cos(7 * k + i * 0.91) * 2);
    return [s.name, { data: toTyped(s.dtype, ids ? v.map((x) => Math.floor((x + 2) * 5)) : v), shape }];
  }));
}

describe('ONNX import of files kiln exported', () => {
  it.each(SEED)('examples/seed/%s.ts: the imported model predicts as the original and as onnxruntime', async (f) => {
    const { file, model } = files.get(f)!;
    const imported = loadOnnx(file);
    expect(imported.inputSpecs.map((s) => [s.name, s.shape])).toEqual(model.inputSpecs.map((s) => [s.name, s.shape]));
    expect(imported.outputNames).toEqual(model.outputNames);
    expect(imported.outputShapes).toEqual(model.outputShapes);
    expect(imported.weights.map((w) => [w.path, Array.from(w.data)])).toEqual(model.weights.map((w) => [w.path, Array.from(w.data)]));
    const inputs = inputsFor(model, 3);
    const data = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.data]));
    const want = distInterpret(distTrace(model, 3).graph, data, Object.fromEntries(model.weights.map((w) => [w.path, w.data]))).outputs;
    const mine = interpret(traceModel(imported, 3).graph, data, Object.fromEntries(imported.weights.map((w) => [w.path, w.data]))).outputs;
    const got = model.outputNames.map((n) => mine.get(n)!.data);
    expect(got.flatMap((g, i) => diffs(`${f} ${model.outputNames[i]}`, g, want.get(model.outputNames[i]!)!.data))).toEqual([]);
    const ort = await runOrt(readFileSync(file), inputs);
    expect(got.flatMap((g, i) => diffs(`${f} ${model.outputNames[i]} vs onnxruntime`, g, ort[model.outputNames[i]!]!))).toEqual([]);
  }, 120_000);

  // the recurrent model is left out here: its unrolled graph takes minutes to compile on this machine's two cores
  describe.each(['wasm', 'llvm'] as const)('compiled to %s', (target) => {
    it.each(['cnn', 'multi_io', 'transformer'])('examples/seed/%s.ts agrees with onnxruntime', async (f) => {
      const { file } = files.get(f)!;
      const imported = loadOnnx(file);
      const inputs = inputsFor(imported, 5);
      const got = await runCompiled(imported, target, path.join(tmp, `${f}-${target}`), inputs);
      const ort = await runOrt(readFileSync(file), inputs);
      expect(imported.outputNames.flatMap((n) => diffs(`${f} ${n}`, got[n], ort[n]!))).toEqual([]);
    }, 300_000);
  });
});

/** A one-node-per-op ONNX model over x: float32[batch, 4], as bytes. */
function tinyModel(ops: { op: string; name: string; domain?: string }[], opset = 17, dim1: { dimValue?: number; dimParam?: string } = { dimValue: 4 }, dim0: { dimValue?: number; dimParam?: string } = { dimParam: 'batch' }): Uint8Array {
  const node = ops.map((o, i) => ({ opType: o.op, name: o.name, domain: o.domain ?? '', input: [i ? `v${i - 1}` : 'x'], output: [i === ops.length - 1 ? 'y' : `v${i}`] }));
  const info = (name: string) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: [dim0, dim1] } } } });
  return onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 8, opsetImport: [{ domain: '', version: opset }], graph: { name: 'g', node, input: [info('x')], output: [info('y')] },
  })).finish();
}

describe('ONNX import errors', () => {
  const write = (name: string, bytes: Uint8Array) => {
    const f = path.join(tmp, name);
    writeFileSync(f, bytes);
    return f;
  };
  it('lists every unsupported op with its node names, in one error', () => {
    const f = write('bad.onnx', tinyModel([
      { op: 'Relu', name: 'r' }, { op: 'LSTM', name: 'lstm_a' }, { op: 'Hardmax', name: 'h' }, { op: 'LSTM', name: 'lstm_b' }, { op: 'Relu', name: 'q', domain: 'com.microsoft' },
    ]));
    expect(() => loadOnnx(f)).toThrow(`${f}: 3 unsupported ONNX op(s): LSTM (lstm_a, lstm_b); Hardmax (h); com.microsoft.Relu (q)`);
  });
  it('an opset older than 13 is an error saying how to export again', () => {
    expect(() => loadOnnx(write('old.onnx', tinyModel([{ op: 'Relu', name: 'r' }], 11)))).toThrow('opset 11 is older than 13, the oldest kiln reads; export it again with opset_version=13 or later');
  });
  it('a symbolic dimension other than the batch is an error naming the input', () => {
    expect(() => loadOnnx(write('sym.onnx', tinyModel([{ op: 'Relu', name: 'r' }], 17, { dimParam: 'seq' })))).toThrow("input 'x' has the symbolic dimension 1 ('seq')");
  });
  it('a fixed batch dimension runs at that batch only, and any other is an error saying how to export again', () => {
    const m = loadOnnx(write('fixed.onnx', tinyModel([{ op: 'Relu', name: 'r' }], 17, { dimValue: 4 }, { dimValue: 1 })));
    expect(m.inputSpecs[0]!.shape).toEqual([1, 4]);
    expect(traceModel(m, 1).graph.outputs[0]!.node.type.shape).toEqual([1, 4]);
    expect(() => traceModel(m, 2)).toThrow("input 'x' has the fixed batch dimension 1, and kiln runs it with 2 rows; export it again with a dynamic batch");
  });
  it('a fixed-batch file compiles at its batch, and the artifact runs that many rows (wasm)', async () => {
    const m = loadOnnx(write('fixed1.onnx', tinyModel([{ op: 'Relu', name: 'r' }], 17, { dimValue: 4 }, { dimValue: 1 })));
    const x = new Float32Array([-1, 2, -3, 4]);
    const got = await runCompiled(m, 'wasm', path.join(tmp, 'fixed1'), { x: { data: x, shape: [1, 4] } });
    expect(Array.from(Object.values(got)[0]!)).toEqual([0, 2, 0, 4]);
    const manifest = JSON.parse(readFileSync(path.join(tmp, 'fixed1', 'manifest.json'), 'utf8')) as { maxBatch: unknown; fixedRows?: string };
    expect(manifest.maxBatch).toBe(null);
    expect(manifest.fixedRows).toMatch(/cannot be traced at 8 rows/);
  }, 120_000);
  it('a file that is not ONNX is an error naming it', () => {
    const f = write('junk.onnx', new TextEncoder().encode('not a protobuf at all'));
    expect(() => loadOnnx(f)).toThrow(`${f}: not an ONNX model`);
  });
});
