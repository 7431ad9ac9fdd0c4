// The last-block combine (schedules/gpu_last_block.ts) in the seed MLP's Adam step: W1's gradient split over the
// batch (gpu_split_k.ts), each output tile's last block running its partials' levels and W1's Adam update (from batch
// 128 up; at 256 here, to keep the file short: batch 1024 is bench:cuda's case, bit for bit there too). The
// emulated CUDA build equals the graph interpreter bit for bit (every output and updated param), and nvcc builds the
// GPU code (KILN_ARRIVE's fence and atomic) for sm_90 with no warnings and no spills.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CUDA_CAPS, compileCuda, hasNvcc } from '../../codegen/cuda/target.js';
import { H100 } from '../../codegen/loop/gpu.js';
import { printProgram } from '../../codegen/loop/printer.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import { runPipeline } from '../../driver/pipeline.js';
import * as keras from '../../frontend/index.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { modelInputs } from '../passes/differential.js';
import { buildUpdateMain, expectNvccClean, runWithUpdates, updateDiffs, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-lastblock-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('last-block combine in the seed MLP step', () => {
  it('the seed MLP step at batch 256: W1\'s gradient, its partials combined by each tile\'s last block with the Adam update; the emulated build equals the interpreter bit for bit', () => {
    keras.utils.setRandomSeed(7);
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[256, 784]], [[256]]);
    const params = Object.fromEntries(step.variables.map((v) => [v.path, v.data]));
    const g = reductionTrees(step.graph, H100);
    const text = printProgram(runPipeline(g, { caps: CUDA_CAPS }).program);
    expect(text).toMatch(/arrive tiles\w*\[[^\]]+\] of \d+ -> last/);
    const dir = path.join(tmp, 'mlp');
    compileCuda({ outDir: dir, entries: [{ name: 'trainStep', graph: g, batchSize: 256 }], weights: weightsOf(g, params), nvcc: false });
    const cu = readFileSync(path.join(dir, 'model.cu'), 'utf8');
    expect(cu).toMatch(/KILN_ARRIVE\(&tiles\w*\[/);
    buildUpdateMain(dir, ['model_emu.o', 'model_desc.o', 'kiln_runtime.o', 'kiln_math.o'], ['-lstdc++']);
    const inputs = modelInputs(g, 3);
    expect(updateDiffs(g, inputs, params, runWithUpdates(dir, 'trainStep', g, inputs), 'cuda (emulated)')).toEqual([]);
    if (hasNvcc()) expectNvccClean(dir); // sm_90, -Xptxas -v: no warnings, no spills (the atomic, the fences)
  }, 240_000);
});
