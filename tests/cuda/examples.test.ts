// Every model the seed examples build, on the cuda target's emulated build (KILN_CUDA_EMULATE): inference and the
// training step (every update an output) equal the reference interpreter bit for bit, reductions in the declared
// trees' order. About two minutes here (a g++ build per model), so behind `npm run test:cuda-examples`.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileCuda } from '../../codegen/cuda/target.js';
import { H100 } from '../../codegen/loop/gpu.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import type * as keras from '../../frontend/index.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { runMain, weightsOf } from '../native.js';
import { type Data, modelInputs } from '../passes/differential.js';
import { type Dist, SEED_FILES, seedGraphs, seedModels } from '../seed_examples.js';

const enabled = process.env['KILN_CUDA_EXAMPLES'] === '1';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-cuda-examples-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let dist: Dist;
/** 'file.ts export' -> the model */
let models = new Map<string, keras.Model>();
const BATCH = 3;

beforeAll(async () => {
  if (enabled) ({ dist, models } = await seedModels());
}, 300_000);

/** Outputs whose bits differ from the interpreter's (the first index of each), at most 4. */
function bitDiffs(g: Graph, inputs: Data, params: Data, got: ReadonlyMap<string, ArrayLike<number>>): string[] {
  const bad: string[] = [];
  for (const [k, v] of interpret(g, inputs, params).outputs) {
    const h = got.get(k)!, w = v.data;
    const i = Array.from(w).findIndex((x, j) => !Object.is(x, h[j]) && !(Number.isNaN(x) && Number.isNaN(h[j])));
    if (i >= 0 && bad.length < 4) bad.push(`${k}[${i}]: emulated ${h[i]}, interpreter ${w[i]}`);
  }
  return bad;
}

let n = 0;
describe.skipIf(!enabled)(`the seed examples on the cuda emulated build, bit for bit${enabled ? '' : ': skipped, run by npm run test:cuda-examples'}`, () => {
  it.each(SEED_FILES)('examples/seed/%s.ts: inference and training step', (file) => {
    for (const [name, model] of [...models].filter(([k]) => k.startsWith(`${file}.ts `))) {
      for (const [i, { g: g0, params }] of seedGraphs(dist, model, BATCH).entries()) {
        const g = reductionTrees(g0, H100);
        const dir = path.join(tmp, `m${n++}`);
        compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: BATCH }], weights: weightsOf(g, params), nvcc: false });
        const inputs = modelInputs(g, 5 + i);
        expect(bitDiffs(g, inputs, params, runMain(path.join(dir, 'model_main_emu'), dir, g, inputs)), `${name} ${i ? 'training step' : 'inference'}`).toEqual([]);
      }
    }
  }, 600_000);
});
