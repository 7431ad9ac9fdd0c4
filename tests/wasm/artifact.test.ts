// `kiln compile --target wasm` artifacts: loaded from another directory in Node and over HTTP as in a browser,
// equal to the interpreter.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { interpret } from '../../ir/interpreter.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { traceModel } from '../../frontend/models/executor.js';
import { readSafetensors } from '../../runtime/safetensors.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-artifact-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs a script in a directory outside the artifact's, importing model.mjs by file URL. */
async function useArtifact(dir: string, body: string): Promise<Record<string, number[]>> {
  const elsewhere = mkdtempSync(path.join(tmp, 'user-'));
  const script = path.join(elsewhere, 'use.mjs');
  writeFileSync(script, `import { load } from ${JSON.stringify(new URL(`file://${dir}/model.mjs`).href)};\nconst m = await load();\n${body}`);
  const { stdout } = await run(process.execPath, [script], { cwd: elsewhere });
  return JSON.parse(stdout) as Record<string, number[]>;
}

function close(a: ArrayLike<number>, b: ArrayLike<number>): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(b[i]!));
}

/** The seed MLP (as in examples/seed/losses.ts) with the weights of an artifact. */
function seedModel(weights: Map<string, Float32Array>): keras.Sequential {
  const model = keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
  model.setWeights([...weights.values()].slice(0, 4).map((d, i) => new keras.Tensor('float32', model.weights[i]!.shape, d)));
  return model;
}

describe('wasm artifacts', () => {
  const x = Float32Array.from({ length: 2 * 784 }, (_, i) => (Math.sin(i) + 1) / 2);

  it('predict and trainStep of a compiled model file equal the interpreter', async () => {
    const out = path.join(tmp, 'losses');
    await run(process.execPath, [path.join(root, 'dist/cli/main.js'), 'compile', 'examples/seed/losses.ts', '--target', 'wasm', '--train', '--batch-size', '2', '-o', out], { cwd: root });
    for (const f of ['model.wasm', 'model.mjs', 'model.d.ts', 'manifest.json', 'weights.safetensors', 'model.ir']) expect(existsSync(path.join(out, f))).toBe(true);
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.inputs).toEqual([{ name: 'input_layer', shape: [null, 784], dtype: 'float32' }]);
    expect(manifest.entries.predict.kernels.length).toBeLessThanOrEqual(2);
    expect(manifest.entries.trainStep.kernels.length).toBeLessThanOrEqual(6);
    const file = readSafetensors(new Uint8Array(readFileSync(path.join(out, 'weights.safetensors'))));
    const weights = new Map(file.tensors.map((t) => [t.name, t.data as Float32Array]));
    expect([...weights.keys()].slice(0, 4)).toEqual(['dense/kernel', 'dense/bias', 'dense_1/kernel', 'dense_1/bias']);

    const got = await useArtifact(out, `
const [y] = m.predict([Float32Array.from(${JSON.stringify(Array.from(x))})]);
const [loss] = m.trainStep([Float32Array.from(${JSON.stringify(Array.from(x))}), Int32Array.of(3, 7), Int32Array.of(0)]);
console.log(JSON.stringify({ y: Array.from(y), loss: Array.from(loss), kernel: Array.from(m.getWeights().get('dense_1/kernel')) }));`);

    const model = seedModel(weights);
    const t = traceModel(model, 2);
    const params = Object.fromEntries(t.variables.map((v) => [v.path, v.data]));
    const input = String(t.graph.inputs[0]!.attrs['name']), output = t.graph.outputs[0]!.name;
    close(got['y']!, interpret(t.graph, { [input]: x }, params).outputs.get(output)!.data);

    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[2, 784]], [[2]]);
    const all = Object.fromEntries(step.variables.map((v) => [v.path, weights.get(v.path) ?? v.data]));
    const ref = interpret(step.graph, { [input]: x, [`target/${output}`]: Int32Array.of(3, 7), rng_counter: Int32Array.of(0) }, all);
    close(got['loss']!, ref.outputs.get('loss')!.data);
    close(got['kernel']!, ref.updates.get('dense_1/kernel')!.data);
  });

  it('--embed-weights needs no weights file', async () => {
    const out = path.join(tmp, 'embedded');
    await run(process.execPath, [path.join(root, 'dist/cli/main.js'), 'compile', 'examples/seed/sequential.ts', '--embed-weights', '-o', out], { cwd: root });
    const weights = new Map(readSafetensors(new Uint8Array(readFileSync(path.join(out, 'weights.safetensors')))).tensors.map((t) => [t.name, t.data as Float32Array]));
    rmSync(path.join(out, 'weights.safetensors'));
    const one = x.subarray(0, 784);
    const got = await useArtifact(out, `const [y] = m.predict([Float32Array.from(${JSON.stringify(Array.from(one))})]);\nconsole.log(JSON.stringify({ y: Array.from(y) }));`);
    const model = seedModel(weights);
    const t = traceModel(model, 1);
    const ref = interpret(t.graph, { [String(t.graph.inputs[0]!.attrs['name'])]: one }, Object.fromEntries(t.variables.map((v) => [v.path, v.data])));
    close(got['y']!, ref.outputs.get(t.graph.outputs[0]!.name)!.data);
  });

  it('loads over HTTP as in a browser: the module streamed by WebAssembly.instantiateStreaming, the weights fetched', async () => {
    const out = path.join(tmp, 'http');
    await run(process.execPath, [path.join(root, 'dist/cli/main.js'), 'compile', 'examples/seed/sequential.ts', '-o', out], { cwd: root });
    const served: string[] = [];
    const types: Record<string, string> = { '.wasm': 'application/wasm', '.safetensors': 'application/octet-stream' };
    const server = http.createServer((req, res) => {
      const file = path.join(out, path.basename(req.url ?? ''));
      served.push(path.basename(file));
      if (!existsSync(file)) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'Content-Type': types[path.extname(file)] ?? 'text/plain' }).end(readFileSync(file));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const one = Array.from(x.subarray(0, 784));
      const body = (options: string) => `
const streamed = WebAssembly.instantiateStreaming;
let streams = 0;
WebAssembly.instantiateStreaming = (...a) => { streams++; return streamed(...a); };
const m = await load(${options});
const [y] = m.predict([Float32Array.from(${JSON.stringify(one)})]);
console.log(JSON.stringify({ y: Array.from(y), streams: [streams] }));`;
      const elsewhere = mkdtempSync(path.join(tmp, 'user-'));
      const script = (name: string, options: string) => {
        const f = path.join(elsewhere, name);
        writeFileSync(f, `import { load } from ${JSON.stringify(new URL(`file://${out}/model.mjs`).href)};\n${body(options)}`);
        return f;
      };
      const overHttp = JSON.parse((await run(process.execPath, [script('http.mjs', `{ wasm: new URL('${base}/model.wasm'), weights: new URL('${base}/weights.safetensors') }`)], { cwd: elsewhere })).stdout);
      const fromFile = JSON.parse((await run(process.execPath, [script('file.mjs', '')], { cwd: elsewhere })).stdout);
      expect(served.sort()).toEqual(['model.wasm', 'weights.safetensors']);
      expect(overHttp.streams).toEqual([1]);
      expect(fromFile.streams).toEqual([0]);
      expect(overHttp.y).toEqual(fromFile.y);
      // a server without the wasm MIME type: streaming compilation refuses it, with the browser's error
      const bad = JSON.stringify(`${base}/model.mjs`);
      await expect(run(process.execPath, [script('bad.mjs', `{ wasm: new URL(${bad}), weights: new URL('${base}/weights.safetensors') }`)], { cwd: elsewhere })).rejects.toThrow(/MIME|mime|Content-Type|application\/wasm/);
    } finally {
      server.close();
    }
  });
});
