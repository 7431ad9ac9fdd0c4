// ONNX export of every seed model: onnxruntime-node runs the exported file, at two batch sizes through its one dynamic
// batch dimension, within 1e-5 of kiln's reference interpreter; the file holds only standard ops and the Keras weights.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as keras from '../../frontend/index.js';
import type { interpret } from '../../ir/interpreter.js';
import type { exportOnnx } from '../../io/onnx/export.js';
import { type TypedArray, sizeOf, toTyped } from '../../ir/types.js';
import { onnx } from '../../io/onnx/proto.js';
import { readNpy } from '../../runtime/npy.js';
import { root } from '../built.js';
import { type Dist as SeedDist, SEED_FILES, seedModels } from '../seed_examples.js';
import { diffs, runOrt } from './helpers.js';

/** The build's frontend (the examples import 'kiln', so they, and what traces them, come from dist/), and more of the build. */
interface Dist extends SeedDist { interpret: typeof interpret; exportOnnx: typeof exportOnnx }
let dist: Dist;
let models = new Map<string, keras.Model>();

beforeAll(async () => {
  const seed = await seedModels();
  models = seed.models;
  dist = {
    ...seed.dist,
    ...((await import('../../dist/ir/interpreter.js')) as unknown as Pick<Dist, 'interpret'>),
    ...((await import('../../dist/io/onnx/export.js')) as unknown as Pick<Dist, 'exportOnnx'>),
  };
}, 300_000);

/** Inputs for a batch: word ids (whole numbers below 20) for the Embedding model, else values in [-2, 2). */
function inputsFor(model: keras.Model, batch: number, seed: number): Record<string, { data: TypedArray; shape: number[] }> {
  const ids = model.layers[0]?.className === 'Embedding';
  return Object.fromEntries(model.inputSpecs.map((s, k) => {
    const shape = s.shape.map((d, i) => (i === 0 ? batch : d!));
    const v = Array.from({ length: sizeOf(shape) }, (_, i) => Math.sin(seed + 31 * k + i * 1.37) * 2);
    return [s.name, { data: toTyped(s.dtype, ids ? v.map((x) => Math.floor((x + 2) * 5)) : v), shape }];
  }));
}

describe('ONNX export of the seed models', () => {
  it('every example file builds at least one model', () => {
    expect(models.size).toBeGreaterThanOrEqual(SEED_FILES.length - 1); // tensors.ts builds none
  });

  it.each(SEED_FILES.filter((f) => f !== 'tensors'))('examples/seed/%s.ts runs in onnxruntime as in the interpreter', async (file) => {
    for (const [name, model] of [...models].filter(([k]) => k.startsWith(`${file}.ts `))) {
      const bytes = dist.exportOnnx(model);
      const m = onnx.ModelProto.decode(bytes);
      expect(m.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
      expect(m.graph!.node.every((n) => !n.domain)).toBe(true);
      // weights are initializers named by their Keras paths, holding the model's values
      const inits = new Map(m.graph!.initializer.map((t) => [t.name, t]));
      expect(m.graph!.initializer.filter((t) => t.dataType === onnx.TensorProto.DataType.FLOAT).map((t) => t.name)).toEqual(model.weights.map((w) => w.path));
      for (const w of model.weights) {
        const t = inits.get(w.path);
        expect(t, `${name}: initializer ${w.path}`).toBeDefined();
        expect(Array.from(new Float32Array(new Uint8Array(t!.rawData).buffer))).toEqual(Array.from(w.data));
      }
      for (const i of m.graph!.input) expect(i.type!.tensorType!.shape!.dim![0]!.dimParam, `${name}: input ${i.name}`).toBe('batch');
      for (const batch of [1, 4]) {
        const inputs = inputsFor(model, batch, batch);
        const g = dist.traceModel(model, batch).graph;
        const params = Object.fromEntries(model.weights.map((w) => [w.path, w.data]));
        const ref = dist.interpret(g, Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.data])), params).outputs;
        const got = await runOrt(bytes, inputs);
        expect(Object.keys(got).sort(), name).toEqual(g.outputs.map((o) => o.name).sort());
        expect([...ref].flatMap(([k, v]) => diffs(`${name} batch ${batch} ${k}`, got[k], v.data)), name).toEqual([]);
      }
    }
  }, 120_000);
});

describe('kiln export', () => {
  const cli = path.join(root, 'dist/cli/main.js');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-onnx-export-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const kiln = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, ...args], { cwd: tmp }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });

  it('writes a model file as ONNX that onnxruntime runs as the interpreter does', async () => {
    const out = path.join(tmp, 'dense.onnx');
    const r = await kiln(['export', path.join(root, 'examples/seed/dense.ts'), '--format', 'onnx', '-o', out]);
    expect(r.code, r.stderr).toBe(0); // the model file's own prints go to stderr
    expect(r.stdout).toBe(`${out}\n`);
    // the command ran the file in a fresh process: its layer names count from 0 and its weights are drawn afresh, so
    // inputs, outputs and weights (the first initializers, in the model's weight order) go by position
    const model = models.get('dense.ts default')!;
    const bytes = readFileSync(out), graph = onnx.ModelProto.decode(bytes).graph!;
    const inputs = inputsFor(model, 2, 0);
    const g = dist.traceModel(model, 2).graph;
    const params = Object.fromEntries(model.weights.map((w, i) => [w.path, new Float32Array(new Uint8Array(graph.initializer[i]!.rawData).buffer)]));
    const ref = dist.interpret(g, Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.data])), params).outputs;
    const got = await runOrt(bytes, Object.fromEntries(Object.values(inputs).map((v, i) => [graph.input[i]!.name, v])));
    expect(g.outputs.flatMap((o, i) => diffs(o.name, got[graph.output[i]!.name], ref.get(o.name)!.data))).toEqual([]);
  }, 120_000);

  it('exports a .keras file made by Python Keras 3: onnxruntime predicts what Keras predicted', async () => {
    const out = path.join(tmp, 'mlp.onnx');
    const r = await kiln(['export', path.join(root, 'tests/fixtures/keras/mlp.keras'), '--format', 'onnx', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    const bytes = readFileSync(out), graph = onnx.ModelProto.decode(bytes).graph!;
    const x = readNpy(readFileSync(path.join(root, 'tests/fixtures/keras/mlp.x0.npy')));
    const y = readNpy(readFileSync(path.join(root, 'tests/fixtures/keras/mlp.y0.npy')));
    const got = await runOrt(bytes, { [graph.input[0]!.name]: { data: x.data, shape: x.shape } });
    expect(diffs('mlp', got[graph.output[0]!.name], y.data)).toEqual([]);
  }, 120_000);

  it('an unknown format is a one-line error and writes nothing', async () => {
    const out = path.join(tmp, 'x.tflite');
    const r = await kiln(['export', path.join(root, 'examples/seed/dense.ts'), '--format', 'tflite', '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("kiln: unknown format 'tflite'; formats are onnx\n");
    expect(existsSync(out)).toBe(false);
  });

  it('a model file that fails leaves an earlier output as it was', async () => {
    const out = path.join(tmp, 'keep.onnx'), bad = path.join(tmp, 'bad.ts');
    writeFileSync(out, 'earlier');
    writeFileSync(bad, "import * as keras from 'kiln';\nthrow new Error('no model today');\nexport default keras.Sequential([]);\n");
    const r = await kiln(['export', bad, '--format', 'onnx', '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('bad.ts:2:7 no model today\n');
    expect(readFileSync(out, 'utf8')).toBe('earlier');
  }, 120_000);
});
