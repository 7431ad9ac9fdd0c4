// Launches and device-to-device copies of the seed training steps in model.cu (issue 14, fewer launches): every
// param and optimizer-state update is written in place (memplan's updateInPlace), so no copy follows the launches,
// and the in-place step still equals the interpreter bit for bit on the emulated build.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CUDA_CAPS, compileCuda } from '../../codegen/cuda/target.js';
import { renderCuda } from '../../codegen/cuda/render.js';
import { H100 } from '../../codegen/loop/gpu.js';
import { layoutModule } from '../../codegen/loop/layout.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import { runPipeline } from '../../driver/pipeline.js';
import * as keras from '../../frontend/index.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import type { Graph } from '../../ir/graph.js';
import { modelInputs } from '../passes/differential.js';
import { buildUpdateMain, runWithUpdates, updateDiffs, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-launches-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// the seed models as in examples/seed/losses.ts and examples/seed/cnn.ts, each compiled with Adam
const mlp = () => keras.Sequential([
  keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
  keras.layers.Dropout(0.2),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);
const cnn = () => keras.Sequential([
  keras.layers.Conv2D(8, 3, { activation: 'relu', padding: 'same', inputShape: [28, 28, 1] }),
  keras.layers.MaxPooling2D(2),
  keras.layers.Conv2D(16, 3, { activation: 'relu' }),
  keras.layers.GlobalAveragePooling2D(),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);

function trainStep(model: keras.Model, batch: number): { graph: Graph; params: Record<string, ArrayLike<number>> } {
  keras.utils.setRandomSeed(7);
  const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  const step = traceTrainStep(model, c, [[batch, ...model.inputSpecs[0]!.shape.slice(1) as number[]]], [[batch]]);
  return { graph: step.graph, params: Object.fromEntries(step.variables.map((v) => [v.path, v.data])) };
}

/** Launches and update copies in kiln_run_trainStep of the model.cu the cuda target writes for this step. */
function counts(g: Graph): { launches: number; copies: number } {
  const c = runPipeline(g, { caps: CUDA_CAPS });
  const entries = [{ name: 'trainStep', program: c.program, memory: c.memory }];
  const cu = renderCuda(entries, layoutModule(entries), 'model');
  const run = /static void kiln_run_trainStep\([^)]*\) \{\n([\s\S]*?)\n\}/.exec(cu)?.[1] ?? '';
  const copyAll = [...run.matchAll(/kiln_copy_list copies = \{(\d+),/g)].reduce((n, m) => n + Number(m[1]), 0);
  return { launches: (run.match(/KILN_LAUNCH\(/g) ?? []).length, copies: (run.match(/KILN_COPY\(/g) ?? []).length + copyAll };
}

describe('launches and copies of the seed training steps (cuda)', () => {
  // before updateInPlace: MLP 9 launches + 7 copies (biases, their Adam moments, the iteration counter), CNN 21 + 10;
  // before horizontal fusion (schedules/horizontal.ts): MLP 9, CNN 21 (b32) and 24 (b1024) launches
  it.each([
    { name: 'seed MLP', build: mlp, batch: 32, launches: 4 },
    // 4 (5 before the last-block combine): the 784 x 64 kernel gradient (K = 1024) runs split-K (gpu_split_k.ts),
    // its partial tiles and their combine with W1's Adam update in one launch, the last block of each tile combining
    // (gpu_last_block.ts); its counters are zeroed in the launch before (horizontal.ts)
    { name: 'seed MLP', build: mlp, batch: 1024, launches: 4 },
    // 13 (12 while conv trees were priced at a plain reduction's step): at a conv tap's step (gpu.ts convStep) conv1's
    // kernel gradient takes a tree of 512 over 2 blocks a row and a second launch (173,701 estimated cycles, not 196,991)
    // 14 since split-K combines more than 64 partials as a tree on a block's threads (gpu_split_k.ts): conv1's and
    // conv2's kernel gradients are split-K GEMMs of 512 and 256 partials, horizontal.ts keeps their partials' launches
    // apart (124,052 estimated cycles for the step, 132,529 before)
    { name: 'seed CNN', build: cnn, batch: 32, launches: 14 },
    // 15 (14 while unpadded convs carried their always-true tap conditions, before lower.ts left them out; 14 again
    // before conv weight gradients ran split-K): conv2's kernel gradient is a split-K GEMM (gpu_split_k.ts) combined in
    // its last blocks, their counters zeroed by a launch of their own (horizontal.ts finds none to share)
    // 14 since split-K combines more than 64 partials as a tree on a block's threads: conv1's and conv2's kernel
    // gradients are split-K GEMMs of 512 partials side by side in one launch, their combines in the next, no counters
    { name: 'seed CNN', build: cnn, batch: 1024, launches: 14 },
  ])('$name train step at batch $batch: $launches launches, no update copy', ({ build, batch, launches }) => {
    expect(counts(trainStep(build(), batch).graph)).toEqual({ launches, copies: 0 });
  });

  it('the CNN step with every update in place equals the interpreter bit for bit (emulated build, params read back)', () => {
    const { graph, params } = trainStep(cnn(), 2);
    const g = reductionTrees(graph, H100);
    const dir = path.join(tmp, 'cnn');
    compileCuda({ outDir: dir, entries: [{ name: 'trainStep', graph: g, batchSize: 2 }], weights: weightsOf(g, params), nvcc: false });
    expect(readFileSync(path.join(dir, 'model.cu'), 'utf8')).not.toMatch(/KILN_COPY/);
    buildUpdateMain(dir, ['model_emu.o', 'model_desc.o', 'kiln_runtime.o', 'kiln_math.o'], ['-lstdc++']);
    const inputs = modelInputs(g, 3);
    expect(updateDiffs(g, inputs, params, runWithUpdates(dir, 'trainStep', g, inputs), 'cuda (emulated)')).toEqual([]);
  });
});
