// Every model the seed examples build, on the wasm and llvm targets: inference and the Adam training step (as the
// example compiles it, every update an output) equal the reference interpreter (rtol 1e-5, atol 1e-6).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileLlvm } from '../codegen/llvm/target.js';
import { renderWasm } from '../codegen/wasm/render.js';
import { WasmRunner } from '../codegen/wasm/runtime.js';
import type * as keras from '../frontend/index.js';
import type { Graph } from '../ir/graph.js';
import type { TypedArray } from '../ir/types.js';
import { runPipeline } from '../driver/pipeline.js';
import { outputDiffs, runMain, weightsOf } from './native.js';
import { type Data, modelInputs } from './passes/differential.js';
import { type Dist, SEED_FILES, seedGraphs, seedModels } from './seed_examples.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-examples-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let dist: Dist;
/** 'file.ts export' -> the model */
let models = new Map<string, keras.Model>();

beforeAll(async () => {
  ({ dist, models } = await seedModels());
}, 300_000);

const BATCH = 3;

function wasmOutputs(g: Graph, inputs: Data, params: Data): Map<string, TypedArray> {
  const c = runPipeline(g);
  return new WasmRunner(c.program, renderWasm(c.program, c.memory)).run(inputs, params).outputs;
}

let n = 0;
function llvmOutputs(g: Graph, inputs: Data, params: Data): Map<string, TypedArray> {
  const dir = path.join(tmp, `m${n++}`);
  compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: BATCH }], weights: weightsOf(g, params), threads: 2 });
  return runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: '2' });
}

describe.each([['wasm', wasmOutputs], ['llvm', llvmOutputs]] as const)('the seed examples on %s', (target, run) => {
  it('every example file builds at least one model', () => {
    expect(models.size).toBeGreaterThanOrEqual(SEED_FILES.length - 1); // tensors.ts builds none
  });
  it.each(SEED_FILES)('examples/seed/%s.ts: inference and training step equal the interpreter', (file) => {
    const mine = [...models].filter(([k]) => k.startsWith(`${file}.ts `));
    for (const [name, model] of mine) {
      for (const [i, { g, params }] of seedGraphs(dist, model, BATCH).entries()) {
        const inputs = modelInputs(g, 5 + i);
        expect(outputDiffs(g, inputs, params, run(g, inputs, params), target), `${name} ${i ? 'training step' : 'inference'}`).toEqual([]);
      }
    }
  }, 600_000); // the recurrent example's training step compiles for a minute or more (fusion's fixed point, noted)
});
