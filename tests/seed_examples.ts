// The models the seed examples (examples/seed/*.ts) build, for tests: the examples import 'kiln' by package name, so
// they, and whatever traces them, come from dist/ (built first when a source is newer: built.ts).
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { vi } from 'vitest';
import type * as keras from '../frontend/index.js';
import type { traceModel } from '../frontend/models/executor.js';
import type { traceTrainStep } from '../frontend/models/training.js';
import { type Graph, updatesAsOutputs } from '../ir/graph.js';
import { ensureBuilt, root } from './built.js';
import type { Data } from './passes/differential.js';

/** The example files, without `.ts`, sorted (tensors.ts builds no model). */
export const SEED_FILES: readonly string[] = readdirSync(path.join(root, 'examples/seed')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();

/** The build's frontend: what the examples' models are made of, and tracing for them. */
export interface Dist { keras: typeof keras; traceModel: typeof traceModel; traceTrainStep: typeof traceTrainStep }

/** The build's frontend and every model the examples export, by `file.ts export` (a model exported twice is listed twice). */
export async function seedModels(): Promise<{ dist: Dist; models: Map<string, keras.Model> }> {
  ensureBuilt();
  const dist: Dist = {
    keras: (await import('../dist/frontend/index.js')) as unknown as typeof keras,
    ...((await import('../dist/frontend/models/executor.js')) as unknown as Pick<Dist, 'traceModel'>),
    ...((await import('../dist/frontend/models/training.js')) as unknown as Pick<Dist, 'traceTrainStep'>),
  };
  const models = new Map<string, keras.Model>();
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  process.env['KILN_EPOCHS'] = '0'; // custom_loop trains for this many epochs when imported
  try {
    for (const f of SEED_FILES) {
      const mod = (await import(`../dist/examples/seed/${f}.js`)) as Record<string, unknown>;
      for (const [name, v] of Object.entries(mod)) if (v instanceof dist.keras.Model) models.set(`${f}.ts ${name}`, v);
    }
  } finally {
    log.mockRestore();
  }
  return { dist, models };
}

/** The model's whole-batch training step (targets shaped like the outputs, without the class axis of sparse labels). */
export function seedTrainStep(dist: Dist, model: keras.Model, batch: number): ReturnType<typeof traceTrainStep> {
  const c = model.compiled!;
  const b = (s: readonly (number | null)[]) => s.map((d, i) => (i === 0 ? batch : d ?? 1));
  const targets = model.outputShapes.map((s, i) => (c.losses[i]!.targetDtype === 'int32' ? b(s).slice(0, -1) : b(s)));
  return dist.traceTrainStep(model, c, model.inputSpecs.map((s) => b(s.shape)), targets);
}

/** The model's inference graph and, when the example compiles it, its training step (every update an output), with params. */
export function seedGraphs(dist: Dist, model: keras.Model, batch: number): { g: Graph; params: Data }[] {
  const byPath = (vars: readonly keras.Variable[]): Data => Object.fromEntries(vars.map((v) => [v.path, v.data]));
  const t = dist.traceModel(model, batch);
  const out = [{ g: t.graph, params: byPath(t.variables) }];
  if (model.compiled) {
    const step = seedTrainStep(dist, model, batch);
    out.push({ g: updatesAsOutputs(step.graph), params: byPath(step.variables) });
  }
  return out;
}
