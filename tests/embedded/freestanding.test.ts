// The freestanding runtime on the host: every seed model compiled with runtime 'freestanding' (params and constants
// read in place from the const kiln_flash array, memory = arena + inputs), run by kiln_core.c alone (built
// -DKILN_FREESTANDING) through tests/embedded/fs_main.c, equals the interpreter; and the --runtime option's errors.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileLlvm } from '../../codegen/llvm/target.js';
import type * as keras from '../../frontend/index.js';
import type { traceModel } from '../../frontend/models/executor.js';
import type { TypedArray } from '../../ir/types.js';
import { ensureBuilt, root } from '../built.js';
import { SEED_FILES, seedModels } from '../seed_examples.js';
import { outputDiffs, weightsOf } from '../native.js';
import { modelInputs } from '../passes/differential.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-freestanding-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const FILES = SEED_FILES.filter((f) => f !== 'tensors');
const BATCH = 2;

describe('the freestanding runtime on the host', () => {
  let models = new Map<string, keras.Model>();
  let trace: typeof traceModel;
  beforeAll(async () => {
    const seed = await seedModels();
    ({ models } = seed);
    trace = seed.dist.traceModel;
  }, 300_000);

  it.each(FILES)('examples/seed/%s.ts: kiln_core.c alone runs it, the weights read in place, and equals the interpreter', (file) => {
    const mine = [...models].filter(([k]) => k.startsWith(`${file}.ts `));
    expect(mine.length).toBeGreaterThan(0);
    for (const [name, model] of mine) {
      const t = trace(model, BATCH);
      const g = t.graph, params = Object.fromEntries(t.variables.map((v) => [v.path, v.data]));
      const dir = path.join(tmp, name.replace(/\W+/g, '_'));
      const weights = weightsOf(g, params);
      compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: BATCH }], weights, runtime: 'freestanding', embedWeights: true });
      copyFileSync(path.join(root, 'tests/embedded/fs_main.c'), path.join(dir, 'fs_main.c'));
      execFileSync('gcc', ['-O2', '-std=c99', '-DKILN_FREESTANDING', 'fs_main.c', 'kiln_core.c', 'kiln_math.c', 'model_desc.c', 'model.o', '-lm', '-o', 'fs_main'], { cwd: dir });
      const inputs = modelInputs(g, 13);
      g.inputs.forEach((n, i) => {
        const a = inputs[String(n.attrs['name'])]!;
        writeFileSync(path.join(dir, `in${i}.bin`), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      });
      execFileSync(path.join(dir, 'fs_main'), { cwd: dir });
      const outputs = new Map<string, TypedArray>(g.outputs.map((o, i) => {
        const bytes = readFileSync(path.join(dir, `out${i}.bin`));
        const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        const dt = o.node.type.dtype;
        return [o.name, dt === 'float32' ? new Float32Array(buf) : dt === 'int32' ? new Int32Array(buf) : new Uint8Array(buf)];
      }));
      expect(outputDiffs(g, inputs, params, outputs, 'freestanding'), name).toEqual([]);
      // nothing of the weights is in the memory block or copied into it at init
      const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
      const desc = readFileSync(path.join(dir, 'model_desc.c'), 'utf8');
      expect(desc).not.toMatch(/segment\d+\[\]/);
      expect(manifest.sizes.flashBytes).toBeGreaterThanOrEqual(manifest.sizes.weightBytes);
      const inputBytes = g.inputs.reduce((n, x) => n + inputs[String(x.attrs['name'])]!.byteLength, 0);
      expect(manifest.memoryBytes).toBeLessThanOrEqual(64 + manifest.arenaBytes + 64 * (g.inputs.length + 2) + inputBytes + 65536);
    }
  }, 300_000);
});

/** -D flags that rename kiln_math.c's freestanding libm, so that a harness can compare it with the C library's. */
const RENAMED = ['rintf', 'floorf', 'ceilf', 'fmaxf', 'fminf'].map((f) => `-D${f}=kiln_t_${f}`);

it('kiln_math.c\'s freestanding rintf, floorf, ceilf, fmaxf, fminf equal the C library\'s on edge values (host)', () => {
  const dir = path.join(tmp, 'libm');
  execFileSync('mkdir', ['-p', dir]);
  execFileSync('gcc', ['-std=c99', '-O2', '-DKILN_FREESTANDING', ...RENAMED, '-c', path.join(root, 'runtime/c/kiln_math.c'), '-o', 'kiln_math.o'], { cwd: dir });
  execFileSync('gcc', ['-std=c99', '-O2', '-fno-builtin', path.join(root, 'tests/embedded/libm_test.c'), 'kiln_math.o', '-lm', '-o', 'libm_test'], { cwd: dir });
  const r = spawnSync(path.join(dir, 'libm_test'), { encoding: 'utf8' });
  expect(r.stdout).toBe('ok\n');
});

describe('kiln compile --runtime', () => {
  const kiln = (args: string[]) => spawnSync(process.execPath, [path.join(root, 'dist/cli/main.js'), 'compile', 'examples/seed/sequential.ts', ...args, '-o', path.join(tmp, 'cli')], { cwd: root, encoding: 'utf8' });
  beforeAll(() => ensureBuilt(), 300_000);

  it.each([
    [['--target', 'llvm', '--runtime', 'tiny'], `kiln: unknown runtime 'tiny'; runtimes are hosted, freestanding`],
    [['--target', 'wasm', '--runtime', 'freestanding', '--embed-weights'], 'kiln: --runtime is for the llvm target, not wasm'],
    [['--target', 'llvm', '--runtime', 'hosted', '--triple', 'thumbv7em-none-eabihf'], `kiln: triple 'thumbv7em-none-eabihf' has no operating system: it takes --runtime freestanding, not hosted`],
    [['--target', 'llvm', '--runtime', 'freestanding', '--embed-weights', '--train'], 'kiln: the freestanding runtime runs inference only: it cannot compile --train'],
    [['--target', 'llvm', '--triple', 'thumbv7em-none-eabihf'], 'kiln: the freestanding runtime (implied by --triple thumbv7em-none-eabihf) reads no files: it needs --embed-weights'],
  ])('%j: one line, exit 1', (args, message) => {
    const r = kiln(args);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`${message}\n`);
  });
});
