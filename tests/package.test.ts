// kiln as a user gets it: the npm pack'ed package installed in another project compiles a model file (the
// runtime sources it copies into artifacts and the types it checks model files with come with it).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readNpy, writeNpy } from '../runtime/npy.js';
import { ensureBuilt, root } from './built.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-package-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const project = path.join(tmp, 'project');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; optionalDependencies: Record<string, string> };

/** The files npm would publish, relative to the package root. */
let packed: string[] = [];

beforeAll(() => {
  ensureBuilt();
  const [info] = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as { filename: string; files: { path: string }[] }[];
  packed = info!.files.map((f) => f.path);
  // installed as npm lays it out: kiln in the project's node_modules, its dependencies hoisted beside it (links to
  // this checkout's, so that nothing is fetched or rebuilt)
  const modules = path.join(project, 'node_modules');
  mkdirSync(path.join(modules, 'kiln'), { recursive: true });
  execFileSync('tar', ['-xzf', path.join(tmp, info!.filename), '-C', path.join(modules, 'kiln'), '--strip-components=1']);
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
    mkdirSync(path.dirname(path.join(modules, dep)), { recursive: true });
    symlinkSync(path.join(root, 'node_modules', dep), path.join(modules, dep));
  }
  writeFileSync(path.join(project, 'package.json'), '{ "name": "user", "type": "module", "private": true }\n');
  writeFileSync(path.join(project, 'model.ts'), `import { readFileSync } from 'node:fs';
import * as keras from 'kiln';
const model = keras.Sequential([keras.layers.Dense(3, { activation: 'softmax', inputShape: [2] })]);
export const size: number = readFileSync(new URL(import.meta.url)).length; // node's types are there
export default model;
`);
}, 60_000);

/** Runs the installed package's kiln command in the project. */
function kiln(...args: string[]): string {
  return execFileSync(process.execPath, [path.join(project, 'node_modules/kiln/dist/cli/main.js'), ...args], { cwd: project, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('the published package', () => {
  it('holds every runtime source the targets copy into artifacts', () => {
    const sources = execFileSync('git', ['ls-files', 'runtime/c', 'runtime/cuda', 'runtime/wasm'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(sources.length).toBeGreaterThan(5);
    expect(sources.filter((f) => !packed.includes(f))).toEqual([]);
  });

  it('compiles a model file for wasm and llvm when installed in another project; the artifacts run', () => {
    kiln('compile', 'model.ts', '--target', 'wasm', '-o', 'build/wasm');
    const script = `import { load } from './build/wasm/model.mjs';
const m = await load();
console.log(JSON.stringify(Array.from(m.predict([Float32Array.of(1, 2)])[0])));`;
    writeFileSync(path.join(project, 'use.mjs'), script);
    const y = JSON.parse(execFileSync(process.execPath, ['use.mjs'], { cwd: project, encoding: 'utf8' })) as number[];
    expect(y).toHaveLength(3);
    expect(y.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5); // softmax

    const dir = path.join(project, 'build/llvm'); // absolute: a relative one fails with a cold object cache (issue 11, item 7)
    kiln('compile', 'model.ts', '--target', 'llvm', '-o', dir);
    writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [1, 2], Float32Array.of(1, 2)));
    execFileSync(path.join(dir, 'model_main'), ['--out', 'out', 'x.npy'], { cwd: dir });
    const [output] = (JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { outputs: { name: string }[] }).outputs;
    const native = readNpy(new Uint8Array(readFileSync(path.join(dir, 'out', `${output!.name}.npy`)))).data;
    expect(native).toHaveLength(3);
    native.forEach((v, i) => expect(Math.abs(v - y[i]!)).toBeLessThanOrEqual(1e-6));
  }, 120_000);

  it('exposes kiln/io (the .npy and safetensors readers and writers), with its types, to the project', () => {
    const use = `import { readNpy, writeNpy, readSafetensors, writeSafetensors, type NamedTensor } from 'kiln/io';
const x: NamedTensor = { name: 'dense/kernel', dtype: 'float32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6.5) };
const npy = readNpy(writeNpy(x.dtype, x.shape, x.data));
const st = readSafetensors(writeSafetensors([x, { name: 'i', dtype: 'int32', shape: [2], data: Int32Array.of(-7, 9) }]));
console.log(JSON.stringify({ npy: [npy.dtype, npy.shape, Array.from(npy.data)], st: st.tensors.map((t) => [t.name, t.dtype, t.shape, Array.from(t.data)]) }));
`;
    writeFileSync(path.join(project, 'io.mts'), use);
    // its types resolve through the package's exports, as a user's TypeScript project resolves them
    execFileSync(path.join(root, 'node_modules/.bin/tsc'), ['--noEmit', '--strict', '--module', 'nodenext', '--target', 'es2022', '--types', '', 'io.mts'], { cwd: project, encoding: 'utf8' });
    writeFileSync(path.join(project, 'io.mjs'), use.replace(', type NamedTensor', '').replace(': NamedTensor', ''));
    expect(JSON.parse(execFileSync(process.execPath, ['io.mjs'], { cwd: project, encoding: 'utf8' }))).toEqual({
      npy: ['float32', [2, 3], [1, 2, 3, 4, 5, 6.5]], st: [['dense/kernel', 'float32', [2, 3], [1, 2, 3, 4, 5, 6.5]], ['i', 'int32', [2], [-7, 9]]],
    });
  });
});
