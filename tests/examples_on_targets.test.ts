// Every model the seed examples build, on the wasm and llvm targets: inference and the Adam training step (as the
// example compiles it, every update an output) equal the reference interpreter (rtol 1e-5, atol 1e-6).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { compileLlvm } from '../codegen/llvm/target.js';
import { renderWasm } from '../codegen/wasm/render.js';
import { WasmRunner } from '../codegen/wasm/runtime.js';
import type * as keras from '../frontend/index.js';
import type { traceModel } from '../frontend/models/executor.js';
import type { traceTrainStep } from '../frontend/models/training.js';
import { type Graph, updatesAsOutputs } from '../ir/graph.js';
import type { TypedArray } from '../ir/types.js';
import { runPipeline } from '../driver/pipeline.js';
import { ensureBuilt, root } from './built.js';
import { outputDiffs, runMain, weightsOf } from './native.js';
import { type Data, modelInputs } from './passes/differential.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-examples-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Dist { keras: typeof keras; traceModel: typeof traceModel; traceTrainStep: typeof traceTrainStep }
let dist: Dist;
/** file -> export name -> the model (the examples import 'kiln', so they are imported from dist/) */
const models = new Map<string, keras.Model>();
const FILES = readdirSync(path.join(root, 'examples/seed')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();

beforeAll(async () => {
  ensureBuilt();
  dist = {
    keras: (await import('../dist/frontend/index.js')) as unknown as typeof keras,
    ...((await import('../dist/frontend/models/executor.js')) as unknown as Pick<Dist, 'traceModel'>),
    ...((await import('../dist/frontend/models/training.js')) as unknown as Pick<Dist, 'traceTrainStep'>),
  };
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  process.env['KILN_EPOCHS'] = '0'; // custom_loop trains for this many epochs when imported
  try {
    for (const f of FILES) {
      const mod = (await import(`../dist/examples/seed/${f}.js`)) as Record<string, unknown>;
      for (const [name, v] of Object.entries(mod)) if (v instanceof dist.keras.Model) models.set(`${f}.ts ${name}`, v);
    }
  } finally {
    log.mockRestore();
  }
}, 300_000);

const BATCH = 3;

/** The example's inference graph and (when it compiles the model) its training step, with params. */
function graphsOf(model: keras.Model): { g: Graph; params: Data }[] {
  const byPath = (vars: readonly keras.Variable[]): Data => Object.fromEntries(vars.map((v) => [v.path, v.data]));
  const t = dist.traceModel(model, BATCH);
  const out = [{ g: t.graph, params: byPath(t.variables) }];
  const c = model.compiled;
  if (c) {
    const b = (s: readonly (number | null)[]) => s.map((d, i) => (i === 0 ? BATCH : d ?? 1));
    const targets = model.outputShapes.map((s, i) => (c.losses[i]!.targetDtype === 'int32' ? b(s).slice(0, -1) : b(s)));
    const step = dist.traceTrainStep(model, c, model.inputSpecs.map((s) => b(s.shape)), targets);
    out.push({ g: updatesAsOutputs(step.graph), params: byPath(step.variables) });
  }
  return out;
}

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
    expect(models.size).toBeGreaterThanOrEqual(FILES.length - 1); // tensors.ts builds none
  });
  it.each(FILES)('examples/seed/%s.ts: inference and training step equal the interpreter', (file) => {
    const mine = [...models].filter(([k]) => k.startsWith(`${file}.ts `));
    for (const [name, model] of mine) {
      for (const [i, { g, params }] of graphsOf(model).entries()) {
        const inputs = modelInputs(g, 5 + i);
        expect(outputDiffs(g, inputs, params, run(g, inputs, params), target), `${name} ${i ? 'training step' : 'inference'}`).toEqual([]);
      }
    }
  }, 600_000); // the recurrent example's training step compiles for a minute or more (fusion's fixed point, noted)
});
