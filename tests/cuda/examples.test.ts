// Every model the seed examples build, on the cuda target's emulated build (KILN_CUDA_EMULATE): inference and the
// training step (every update an output) equal the reference interpreter bit for bit, reductions in the declared
// trees' order. About two minutes here (a g++ build per model), so behind `npm run test:cuda-examples`.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { compileCuda } from '../../codegen/cuda/target.js';
import { H100 } from '../../codegen/loop/gpu.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import type * as keras from '../../frontend/index.js';
import type { traceModel } from '../../frontend/models/executor.js';
import type { traceTrainStep } from '../../frontend/models/training.js';
import { type Graph, updatesAsOutputs } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { ensureBuilt, root } from '../built.js';
import { runMain, weightsOf } from '../native.js';
import { type Data, modelInputs } from '../passes/differential.js';

const enabled = process.env['KILN_CUDA_EXAMPLES'] === '1';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-cuda-examples-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Dist { keras: typeof keras; traceModel: typeof traceModel; traceTrainStep: typeof traceTrainStep }
let dist: Dist;
const models = new Map<string, keras.Model>();
const FILES = readdirSync(path.join(root, 'examples/seed')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();
const BATCH = 3;

beforeAll(async () => {
  if (!enabled) return;
  ensureBuilt();
  dist = {
    keras: (await import('../../dist/frontend/index.js')) as unknown as typeof keras,
    ...((await import('../../dist/frontend/models/executor.js')) as unknown as Pick<Dist, 'traceModel'>),
    ...((await import('../../dist/frontend/models/training.js')) as unknown as Pick<Dist, 'traceTrainStep'>),
  };
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  process.env['KILN_EPOCHS'] = '0'; // custom_loop trains for this many epochs when imported
  try {
    for (const f of FILES) {
      const mod = (await import(`../../dist/examples/seed/${f}.js`)) as Record<string, unknown>;
      for (const [name, v] of Object.entries(mod)) if (v instanceof dist.keras.Model) models.set(`${f}.ts ${name}`, v);
    }
  } finally {
    log.mockRestore();
  }
}, 300_000);

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
  it.each(FILES)('examples/seed/%s.ts: inference and training step', (file) => {
    for (const [name, model] of [...models].filter(([k]) => k.startsWith(`${file}.ts `))) {
      for (const [i, { g: g0, params }] of graphsOf(model).entries()) {
        const g = reductionTrees(g0, H100);
        const dir = path.join(tmp, `m${n++}`);
        compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: BATCH }], weights: weightsOf(g, params), nvcc: false });
        const inputs = modelInputs(g, 5 + i);
        expect(bitDiffs(g, inputs, params, runMain(path.join(dir, 'model_main_emu'), dir, g, inputs)), `${name} ${i ? 'training step' : 'inference'}`).toEqual([]);
      }
    }
  }, 600_000);
});
