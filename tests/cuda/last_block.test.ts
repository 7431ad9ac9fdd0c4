// The last-block combine (schedules/gpu_last_block.ts, loop IR `arrive`): a split-K matmul's combine runs in the
// last block of each output tile to store its partial, so the partials and their combine (with the row's tail, an
// optimizer's update) are one launch. Checked against the graph interpreter bit for bit: the loop interpreter in
// both block orders (reversed, the last block to arrive is another one), and the emulated CUDA build.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CUDA_CAPS, compileCuda, hasNvcc } from '../../codegen/cuda/target.js';
import { H100 } from '../../codegen/loop/gpu.js';
import { E, S } from '../../codegen/loop/ir.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { printProgram } from '../../codegen/loop/printer.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import { Schedule, lastBlock, schedule, splitK } from '../../codegen/loop/schedules/index.js';
import { verifyProgram } from '../../codegen/loop/verifier.js';
import { runPipeline } from '../../driver/pipeline.js';
import * as keras from '../../frontend/index.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { parseGraph } from '../../ir/parser.js';
import { modelInputs } from '../passes/differential.js';
import { buildUpdateMain, expectNvccClean, runWithUpdates, updateDiffs, weightsOf } from '../native.js';
import { cudaLowered, expectMatchesGraph } from '../loop/schedules/gpu_helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-lastblock-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** x^T @ dy, squared: a weight gradient's shape (K = batch rows), its tree declared as given. */
const weightGrad = (M: number, N: number, K: number, tree: number) => parseGraph(`graph @w {
  %0 = input {name="x"} : f32[${K},${M}]
  %1 = input {name="dy"} : f32[${K},${N}]
  %2 = transpose %0 {perm=[1, 0]} : f32[${M},${K}]
  %3 = matmul %2, %1 {tree=${tree}} : f32[${M},${N}]
  %4 = mul %3, %3 : f32[${M},${N}]
  output "y" = %4
}`);

/** The weight gradient split 8 ways and scheduled, then its combine moved into the partials' last blocks. */
function lastBlockProgram(M: number, N: number, K: number) {
  const g = weightGrad(M, N, K, 8);
  const lowered = cudaLowered(g), k = lowered.kernels.findIndex((x) => x.ops.includes('matmul'));
  const s0 = new Schedule(lowered, k);
  s0.apply(splitK, { nest: (s0.body.find((x) => x.k === 'for') as { v: string }).v });
  const scheduled = schedule(s0.program, CUDA_CAPS);
  const s = new Schedule(scheduled, k);
  const partials = scheduled.buffers.find((b) => b.name.startsWith('splitk'))!.name;
  if (!printProgram(scheduled).includes('arrive ')) s.apply(lastBlock, { partials });
  return { g, p: s.program, k };
}

describe('last-block combine', () => {
  it('40 x 24 x 256 split 8 ways: one launch of partial tiles whose last block per tile combines; bit for bit in both block orders', () => {
    const { g, p, k } = lastBlockProgram(40, 24, 256);
    const text = printProgram(p);
    expect(text).toMatch(/arrive tiles\w*\[[^\]]+\] of 8 -> last\w*\n\s*if last\w*\[0\] != 0 \{/);
    // the zeroing nest, then the one launch storing the partials and the outputs
    const tops = p.kernels[k]!.body.filter((x) => x.k === 'for' && x.kind === 'block');
    expect(tops).toHaveLength(2);
    expectMatchesGraph(g, p, 5);
  });

  it('37 x 21 x 256 (tiles padded: the stores and so the combine under their guards): bit for bit in both block orders', () => {
    const { g, p } = lastBlockProgram(37, 21, 256);
    expect(printProgram(p)).toMatch(/arrive tiles\w*\[[^\]]+\] of 8 -> last\w*\n\s*if last\w*\[0\] != 0 \{[\s\S]*if /);
    expectMatchesGraph(g, p, 6);
  });

  it('a wrong count (one block short) is found: the combine runs before the last partial is in', () => {
    const { g, p, k } = lastBlockProgram(40, 24, 256);
    const short = printProgram(p).replace(/ of 8 -> /, ' of 7 -> ');
    expect(short).not.toBe(printProgram(p));
    const kernel = p.kernels[k]!;
    const mutate = (ss: readonly import('../../codegen/loop/ir.js').Stmt[]): import('../../codegen/loop/ir.js').Stmt[] => ss.map((x) => (x.k === 'arrive' ? { ...x, count: x.count - 1 } : x.k === 'for' || x.k === 'if' ? { ...x, body: mutate(x.body) } : x));
    const bad = { ...p, kernels: p.kernels.map((x, i) => (i === k ? { ...kernel, body: mutate(kernel.body) } : x)) };
    expect(() => expectMatchesGraph(g, bad, 5)).toThrow();
  });

  it('the verifier refuses an arrive inside a thread loop, and at a counter that is no i32 buffer', () => {
    const base = { name: 'f', inputs: [], params: [], outputs: [], updates: [] };
    const buffers = [{ name: 'c', dtype: 'int32' as const, size: 4, kind: 'temp' as const }, { name: 'f', dtype: 'float32' as const, size: 4, kind: 'temp' as const }];
    const prog = (body: ReturnType<typeof S.for>[]) => ({ ...base, buffers, kernels: [{ name: 'k', ops: [], body }] });
    const inThread = S.for('b', 4, [S.local('l', 'i32', 1, 'shared'), S.for('t', 2, [S.arrive('c', E.v('b'), 2, 'l')], 'thread')], 'block');
    expect(verifyProgram(prog([inThread])).join('\n')).toMatch(/arrive must be in a GPU block/);
    const onFloat = S.for('b', 4, [S.local('l', 'i32', 1, 'shared'), S.arrive('f', E.v('b'), 2, 'l')], 'block');
    expect(verifyProgram(prog([onFloat])).join('\n')).toMatch(/no i32 buffer/);
    // interpreted: 4 blocks at 2 counters, 2 each: blocks 1 and 3 are the last (0 then 1 at each counter)
    const counted = S.for('b', 4, [S.local('l', 'i32', 1, 'shared'), S.arrive('c', E.binary('mod', E.v('b'), E.i32(2)), 2, 'l'), S.for('t', 1, [S.store('f', E.v('b'), E.cast('f32', E.load('l', E.i32(0), 'i32')))], 'thread')], 'block');
    const p = { ...prog([counted]), buffers: [buffers[0]!, { ...buffers[1]!, kind: 'output' as const }], outputs: [{ name: 'f', buffer: 'f' }] };
    expect(verifyProgram(p)).toEqual([]);
    expect(Array.from(runProgram(p, {}, {}).outputs.get('f')!)).toEqual([0, 0, 1, 1]);
    expect(Array.from(runProgram(p, {}, {}, { reverse: true }).outputs.get('f')!)).toEqual([1, 1, 0, 0]);
  });

  it('the seed MLP step at batch 1024: W1\'s gradient, its 16 partials combined by each tile\'s last block with the Adam update; the emulated build equals the interpreter bit for bit', () => {
    keras.utils.setRandomSeed(7);
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[1024, 784]], [[1024]]);
    const params = Object.fromEntries(step.variables.map((v) => [v.path, v.data]));
    const g = reductionTrees(step.graph, H100);
    const text = printProgram(runPipeline(g, { caps: CUDA_CAPS }).program);
    expect(text).toMatch(/arrive tiles\w*\[[^\]]+\] of 16 -> last/);
    const dir = path.join(tmp, 'mlp');
    compileCuda({ outDir: dir, entries: [{ name: 'trainStep', graph: g, batchSize: 1024 }], weights: weightsOf(g, params), nvcc: false });
    const cu = readFileSync(path.join(dir, 'model.cu'), 'utf8');
    expect(cu).toMatch(/KILN_ARRIVE\(&tiles\w*\[/);
    buildUpdateMain(dir, ['model_emu.o', 'model_desc.o', 'kiln_runtime.o', 'kiln_math.o'], ['-lstdc++']);
    const inputs = modelInputs(g, 3);
    expect(updateDiffs(g, inputs, params, runWithUpdates(dir, 'trainStep', g, inputs), 'cuda (emulated)')).toEqual([]);
    if (hasNvcc()) expectNvccClean(dir); // sm_90, -Xptxas -v: no warnings, no spills (the atomic, the fences)
  }, 240_000);
});
