// Every seed model cross-compiled for ARM Linux (--triple aarch64-linux-gnu, the hosted runtime): model_main built
// from the artifact with aarch64-linux-gnu-gcc and run under qemu-aarch64 equals the reference interpreter.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileLlvm } from '../../codegen/llvm/target.js';
import { hasTool } from '../../codegen/llvm/firmware.js';
import type * as keras from '../../frontend/index.js';
import type { traceModel } from '../../frontend/models/executor.js';
import { root } from '../built.js';
import { SEED_FILES, seedModels } from '../seed_examples.js';
import { outputDiffs, runMain, weightsOf } from '../native.js';
import { modelInputs } from '../passes/differential.js';

const missing = ['aarch64-linux-gnu-gcc', 'qemu-aarch64'].filter((t) => !hasTool(t));
const SYSROOT = '/usr/aarch64-linux-gnu';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-aarch64-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const FILES = SEED_FILES.filter((f) => f !== 'tensors');
const BATCH = 2;

describe.skipIf(missing.length > 0)(`the seed models on aarch64 Linux (qemu-aarch64)${missing.length ? `: skipped, ${missing.join(' and ')} not installed` : ''}`, () => {
  let models = new Map<string, keras.Model>();
  let trace: typeof traceModel;
  const runtime = path.join(tmp, 'runtime');
  beforeAll(async () => {
    const seed = await seedModels();
    ({ models } = seed);
    trace = seed.dist.traceModel;
    // the runtime's objects are the same for every model: built once
    mkdirSync(runtime, { recursive: true });
    for (const f of ['kiln_runtime.h', 'kiln_runtime.c', 'kiln_core.c', 'kiln_rows.c', 'kiln_math.c']) copyFileSync(path.join(root, 'runtime/c', f), path.join(runtime, f));
    for (const f of ['kiln_runtime', 'kiln_rows', 'kiln_math']) execFileSync('aarch64-linux-gnu-gcc', ['-O2', '-std=c99', '-pthread', '-c', `${f}.c`, '-o', `${f}.o`], { cwd: runtime });
  }, 300_000);

  it.each(FILES)('examples/seed/%s.ts: model_main under qemu-aarch64 equals the interpreter', (file) => {
    const mine = [...models].filter(([k]) => k.startsWith(`${file}.ts `));
    expect(mine.length).toBeGreaterThan(0);
    for (const [name, model] of mine) {
      const t = trace(model, BATCH);
      const params = Object.fromEntries(t.variables.map((v) => [v.path, v.data]));
      const dir = path.join(tmp, name.replace(/\W+/g, '_'));
      compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: t.graph, batchSize: BATCH }], weights: weightsOf(t.graph, params), triple: 'aarch64-linux-gnu' });
      execFileSync('aarch64-linux-gnu-gcc', ['-O2', '-std=c99', '-pthread', 'model_main.c', 'model_desc.c', 'model.o',
        path.join(runtime, 'kiln_runtime.o'), path.join(runtime, 'kiln_rows.o'), path.join(runtime, 'kiln_math.o'), '-lm', '-o', 'model_main'], { cwd: dir });
      const inputs = modelInputs(t.graph, 11);
      const got = runMain(path.join(dir, 'model_main'), dir, t.graph, inputs, { KILN_NUM_THREADS: '2' }, 'predict', ['qemu-aarch64', '-L', SYSROOT]);
      expect(outputDiffs(t.graph, inputs, params, got, 'aarch64'), name).toEqual([]);
    }
  }, 300_000);
});
