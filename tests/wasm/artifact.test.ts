// `kiln compile --target wasm` artifacts: loaded from another directory in Node and over HTTP as in a browser (also
// from servers without the wasm MIME type), equal to the interpreter; their types check with tsc; bad weights
// files are rejected naming the tensor.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { interpret } from '../../ir/interpreter.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { traceModel } from '../../frontend/models/executor.js';
import { readSafetensors, writeSafetensors } from '../../runtime/safetensors.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-artifact-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const artifacts = new Map<string, Promise<string>>();

/** `kiln compile example --target wasm ...args` into tmp/name, once per name (tests share artifacts). */
function artifact(name: string, example: string, ...args: string[]): Promise<string> {
  let p = artifacts.get(name);
  if (!p) {
    const out = path.join(tmp, name);
    p = run(process.execPath, [path.join(root, 'dist/cli/main.js'), 'compile', `examples/seed/${example}.ts`, '--target', 'wasm', ...args, '-o', out], { cwd: root }).then(() => out);
    artifacts.set(name, p);
  }
  return p;
}

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
    const out = await artifact('losses', 'losses', '--train', '--batch-size', '2');
    for (const f of ['model.wasm', 'model-threads.wasm', 'model.worker.mjs', 'model.mjs', 'model.d.mts', 'manifest.json', 'weights.safetensors', 'model.ir']) expect(existsSync(path.join(out, f))).toBe(true);
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
console.log(JSON.stringify({ y: Array.from(y), loss: Array.from(loss), kernel: Array.from(m.getWeights().get('dense_1/kernel')), names: [...m.getWeights().keys()] }));`);
    // every param, the optimizer state of trainStep included
    expect([...got['names']!].sort()).toEqual(manifest.params.map((p: { name: string }) => p.name).sort());

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
    const out = await artifact('embedded', 'sequential', '--embed-weights');
    const weights = new Map(readSafetensors(new Uint8Array(readFileSync(path.join(out, 'weights.safetensors')))).tensors.map((t) => [t.name, t.data as Float32Array]));
    rmSync(path.join(out, 'weights.safetensors'));
    const one = x.subarray(0, 784);
    const got = await useArtifact(out, `const [y] = m.predict([Float32Array.from(${JSON.stringify(Array.from(one))})]);\nconsole.log(JSON.stringify({ y: Array.from(y) }));`);
    const model = seedModel(weights);
    const t = traceModel(model, 1);
    const ref = interpret(t.graph, { [String(t.graph.inputs[0]!.attrs['name'])]: one }, Object.fromEntries(t.variables.map((v) => [v.path, v.data])));
    close(got['y']!, ref.outputs.get(t.graph.outputs[0]!.name)!.data);
  });

  it('loads over HTTP as in a browser: streamed where the server sends application/wasm, else compiled from the bytes', async () => {
    const out = await artifact('plain', 'sequential');
    const served: string[] = [];
    // /octet/... answers as a server that does not know .wasm files does
    const server = http.createServer((req, res) => {
      const url = req.url ?? '', file = path.join(out, path.basename(url));
      served.push(url);
      if (!existsSync(file)) { res.writeHead(404).end(); return; }
      const type = url.startsWith('/octet/') || file.endsWith('.safetensors') ? 'application/octet-stream' : file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
      res.writeHead(200, { 'Content-Type': type }).end(readFileSync(file));
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
console.log(JSON.stringify({ y: Array.from(y), streams }));`;
      const elsewhere = mkdtempSync(path.join(tmp, 'user-'));
      const script = (name: string, options: string) => {
        const f = path.join(elsewhere, name);
        writeFileSync(f, `import { load } from ${JSON.stringify(new URL(`file://${out}/model.mjs`).href)};\n${body(options)}`);
        return f;
      };
      const runScript = async (name: string, options: string) => JSON.parse((await run(process.execPath, [script(name, options)], { cwd: elsewhere })).stdout);
      const weights = `weights: new URL('${base}/weights.safetensors')`;
      // one thread: model.wasm (threads load model-threads.wasm beside it, as threads.test.ts checks)
      const overHttp = await runScript('http.mjs', `{ wasm: new URL('${base}/model.wasm'), ${weights}, threads: 1 }`);
      const octet = await runScript('octet.mjs', `{ wasm: new URL('${base}/octet/model.wasm'), ${weights}, threads: 1 }`);
      const fromFile = await runScript('file.mjs', '');
      expect([overHttp.streams, octet.streams, fromFile.streams]).toEqual([1, 1, 0]);
      // streamed once; without application/wasm streaming refuses the response and the bytes are fetched again
      expect(served).toEqual(['/model.wasm', '/weights.safetensors', '/octet/model.wasm', '/octet/model.wasm', '/weights.safetensors']);
      expect(overHttp.y).toEqual(fromFile.y);
      expect(octet.y).toEqual(fromFile.y);
      // not a wasm module at all, or no file: one line naming the URL
      const fails = async (name: string, wasm: string) => {
        const e = await run(process.execPath, [script(name, `{ wasm: new URL('${base}/${wasm}'), ${weights}, threads: 1 }`)], { cwd: elsewhere }).then(() => undefined, (err: { stderr: string }) => err.stderr);
        return e?.split('\n').find((l) => l.startsWith('Error: '));
      };
      expect(await fails('bad.mjs', 'octet/model.mjs')).toMatch(new RegExp(`^Error: kiln: ${base}/octet/model.mjs: WebAssembly.instantiate\\(\\): expected magic word`));
      expect(await fails('missing.mjs', 'missing.wasm')).toBe(`Error: kiln: cannot fetch ${base}/missing.wasm: HTTP 404`);
    } finally {
      server.close();
    }
  });

  it('a bad weights file or load option is one error naming the tensor or the option', async () => {
    const out = await artifact('plain', 'sequential');
    const { load } = await import(pathToFileURL(path.join(out, 'model.mjs')).href) as { load: (o?: object) => Promise<{ predict: (x: Float32Array[]) => Float32Array[] }> };
    const good = readSafetensors(new Uint8Array(readFileSync(path.join(out, 'weights.safetensors')))).tensors;
    const swap = good.map((t) => (t.name === 'dense_1/kernel' ? { ...t, shape: [10, 64] } : t));
    const int = good.map((t) => (t.name === 'dense/bias' ? { ...t, dtype: 'int32' as const, data: new Int32Array(t.data.buffer) } : t));
    const bytes = writeSafetensors(good);
    await expect(load({ weights: writeSafetensors(swap) })).rejects.toThrow(/^kiln: weights: tensor "dense_1\/kernel" has shape \[10,64\], the model expects \[64,10\]$/);
    await expect(load({ weights: writeSafetensors(int) })).rejects.toThrow(/^kiln: weights: tensor "dense\/bias" is I32, the model expects F32$/);
    await expect(load({ weights: writeSafetensors(good.slice(1)) })).rejects.toThrow(/^kiln: weights: has no tensor "dense\/kernel"$/);
    await expect(load({ weights: bytes.subarray(0, bytes.length - 4) })).rejects.toThrow(/^kiln: weights: tensor "dense_1\/bias" has data_offsets \[\d+, \d+\] past the end of the data/);
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    await expect(load({ weights: longer })).rejects.toThrow(/^kiln: weights: 1 bytes of data follow the last tensor$/);
    await expect(load({ weights: 'weights.safetensors' })).rejects.toThrow(/^kiln: load: weights must be a URL or a Uint8Array, got "weights.safetensors"$/);
    await expect(load({ weight: bytes })).rejects.toThrow(/^kiln: load: unknown option 'weight'; options: wasm, weights, threads, relaxedSimd$/);
    for (const threads of [0, 1.5, '2', 257]) await expect(load({ threads })).rejects.toThrow(new RegExp(`^kiln: load: threads must be an integer from 1 to 256, got ${JSON.stringify(threads).replace('.', '\\.')}$`));
    await expect(load(null as never)).rejects.toThrow(/^kiln: load: options must be an object, got null$/);
    await expect(load('weights.safetensors' as never)).rejects.toThrow(/^kiln: load: options must be an object, got "weights.safetensors"$/);
    await expect(load({ weights: pathToFileURL(path.join(out, 'nothing.safetensors')) })).rejects.toThrow(/^kiln: cannot read file:.*nothing.safetensors: ENOENT/);
    const m = await load({ weights: bytes });
    expect(m.predict([new Float32Array(784)])[0]!.length).toBe(10);
    // plain arrays: numbers (and booleans) only, not NaN where a string or a hole was
    expect(() => m.predict([Array.from({ length: 784 }, (_, i) => (i === 5 ? 'x' : 0)) as never])).toThrow(/^kiln: input input_layer: value 5 is "x", not a number$/);
    expect(() => m.predict([new Array(784) as never])).toThrow(/^kiln: input input_layer: value 0 is undefined, not a number$/);
    expect(m.predict([new Array(784).fill(0) as never])[0]).toEqual(m.predict([new Float32Array(784)])[0]);
  });

  it('model.d.mts types model.mjs for TypeScript: a strict consumer type-checks with tsc, a misuse does not', async () => {
    const out = await artifact('losses', 'losses', '--train', '--batch-size', '2');
    const dir = mkdtempSync(path.join(tmp, 'consumer-'));
    const rel = JSON.stringify(`./${path.relative(dir, path.join(out, 'model.mjs'))}`);
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true, types: [] },
      files: ['use.mts', 'misuse.mts'],
    }));
    writeFileSync(path.join(dir, 'use.mts'), `import { type KilnArray, type KilnModel, load } from ${rel};
const m: KilnModel = await load({ weights: new URL('./weights.safetensors', import.meta.url) });
const [y] = m.predict([new Float32Array(1568)]);
const first: number | undefined = y?.[0];
const [loss] = m.trainStep([new Float32Array(1568), Int32Array.of(3, 7), Int32Array.of(0)]);
const weights: Map<string, KilnArray> = m.getWeights();
const batch: number | null | undefined = m.manifest.inputs[0]?.shape[0];
const threads: number = (await load({ threads: 2 })).threads;
m.close();
export { first, loss, weights, batch, threads };
`);
    const misuse = [
      "m.predict('x');", // not a list of arrays
      "const s: string = m.predict([new Float32Array(1568)]);", // arrays, not a string
      "await load({ wasm: 'model.wasm' });", // a URL, not a string
      "await load({ weight: new Uint8Array() });", // no such option
      "await load({ threads: '2' });", // a number, not a string
      'm.fit();', // no such method
    ];
    writeFileSync(path.join(dir, 'misuse.mts'), `import { load } from ${rel};\nconst m = await load();\n${misuse.join('\n')}\nexport {};\n`);
    const tsc = path.join(root, 'node_modules/.bin/tsc');
    const result = await run(tsc, ['-p', dir], { cwd: dir }).then(() => '', (e: { stdout: string }) => e.stdout);
    const errors = result.split('\n').filter((l) => l.includes('error TS'));
    // use.mts is clean (no TS7016 "implicitly has an 'any' type"); each misuse line is an error
    expect(errors.filter((l) => l.startsWith('use.mts'))).toEqual([]);
    expect([...new Set(errors.map((l) => Number(/^misuse\.mts\((\d+),/.exec(l)?.[1])))]).toEqual(misuse.map((_, i) => i + 3));
    expect(errors.join('\n')).not.toContain('TS7016');
  });
});
