// Golden files of the seed MLP's compiled forms: the graph after the graph passes, the fusion plan, the scheduled
// loop IR (as wasm and as CUDA schedule it), for inference and the Adam training step as compile emits it (with its
// "rows" input: the seed MLP keeps rows apart in training). Regenerate with `npm run golden` and review the diff.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { printProgram } from '../../codegen/loop/printer.js';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import type { Graph } from '../../ir/graph.js';
import { printGraph } from '../../ir/printer.js';
import { describePlan, runPipeline } from '../../driver/pipeline.js';

const dir = import.meta.dirname;
const update = process.env['UPDATE_GOLDEN'] === '1';
const BATCH = 2;

/** The seed's MLP (Dense 64 relu, Dropout 0.2, Dense 10 softmax), with fresh names and seeded weights and dropout. */
function seedMlp(): keras.Sequential {
  keras.backend.clearSession();
  keras.utils.setRandomSeed(1234);
  return keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
}

const ENTRIES: Record<string, () => Graph> = {
  seed_mlp_predict: () => traceModel(seedMlp(), BATCH).graph,
  seed_mlp_train_step: () => {
    const model = seedMlp();
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    return traceTrainStep(model, c, [[BATCH, 784]], [[BATCH]], { partial: true }).graph;
  },
};

/** The texts of one entry point, by file suffix: graph, plan and loop IR as wasm schedules it, and as CUDA does. */
function texts(entry: () => Graph): Record<string, string> {
  const c = runPipeline(entry(), { verifyEach: true });
  const gpu = runPipeline(entry(), { caps: CUDA_CAPS }).program;
  return { 'graph.txt': printGraph(c.graph), 'plan.txt': describePlan(c.plan), 'loop.txt': printProgram(c.program), 'cuda.loop.txt': printProgram(gpu) };
}

describe('golden files (npm run golden rewrites them)', () => {
  for (const [name, entry] of Object.entries(ENTRIES)) {
    describe(name, () => {
      const got = texts(entry);
      it('prints the same text when compiled twice in one process', () => {
        expect(texts(entry)).toEqual(got);
      });
      for (const [suffix, text] of Object.entries(got)) {
        const file = path.join(dir, `${name}.${suffix}`);
        it(`${name}.${suffix}`, () => {
          if (update) {
            writeFileSync(file, text);
            return;
          }
          expect(existsSync(file), `${path.relative(process.cwd(), file)} is missing: run npm run golden`).toBe(true);
          expect(text, `${path.basename(file)} changed: review the diff and run npm run golden`).toBe(readFileSync(file, 'utf8'));
        });
      }
    });
  }
});
