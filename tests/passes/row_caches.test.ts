// Recompute or cache (passes/fuse.ts withRowCaches): a costly value that several loops of a row nest read is
// computed once per row into a row cache; results stay bit for bit on the CPU and GPU schedules.
import { describe, expect, it } from 'vitest';
import { printProgram } from '../../codegen/loop/printer.js';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import type { TargetCaps } from '../../codegen/loop/schedule.js';
import { parseGraph } from '../../ir/parser.js';
import { type Graph, updatesAsOutputs } from '../../ir/graph.js';
import * as keras from '../../frontend/index.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { MAX_CACHED_ROW } from '../../passes/fuse.js';
import { type Data, modelInputs, runBoth } from './differential.js';
import { rng } from './random_graphs.js';

/** Occurrences of `op(` in the compiled program's text: how often each row computes it. */
function count(g: Graph, op: string, caps?: TargetCaps): number {
  return printProgram(runBoth(g, inputsOf(g), {}, caps).compiled.program).split(`${op}(`).length - 1;
}

function inputsOf(g: Graph): Data {
  const r = rng(5), out: Data = {};
  for (const n of g.inputs) out[String(n.attrs['name'])] = Float32Array.from({ length: n.type.shape.reduce((a, b) => a * b, 1) }, () => 4 * r() - 2);
  return out;
}

/** softmax over the last axis of x (rows of `n`) as graph IR text, its output `out` (`tail` adds more nodes). */
function softmax(rows: number, n: number, out: string, tail = ''): Graph {
  return parseGraph(`graph @sm {
  %0 = input {name="x"} : f32[${rows},${n}]
  %1 = reduce_max %0 {axes=[1], keepdims=true} : f32[${rows},1]
  %2 = broadcast %1 {shape=[${rows}, ${n}]} : f32[${rows},${n}]
  %3 = sub %0, %2 : f32[${rows},${n}]
  %4 = exp %3 : f32[${rows},${n}]
  %5 = reduce_sum %4 {axes=[1], keepdims=true} : f32[${rows},1]
  %6 = broadcast %5 {shape=[${rows}, ${n}]} : f32[${rows},${n}]
  %7 = div %4, %6 : f32[${rows},${n}]
${tail}  output "y" = ${out}
}`);
}

describe('row caches of costly values', () => {
  it('softmax: exp once per element (it was computed in the sum loop and again in the store loop)', () => {
    const g = softmax(6, 10, '%7');
    expect(count(g, 'exp')).toBe(1);
    expect(runBoth(g, inputsOf(g), {}).diffs).toEqual([]);
  });

  it('a value read by one loop only stays inlined (logsumexp)', () => {
    const g = softmax(6, 10, '%9', '  %8 = log %5 : f32[6,1]\n  %9 = add %8, %1 : f32[6,1]\n');
    expect(printProgram(runBoth(g, inputsOf(g), {}).compiled.program)).not.toMatch(/local row/);
  });

  it(`rows longer than ${MAX_CACHED_ROW} are recomputed, not cached`, () => {
    const g = softmax(2, MAX_CACHED_ROW + 4, '%7');
    expect(count(g, 'exp')).toBe(2);
  });

  it('softmax + cross-entropy training step: exp and log once per logit, bit for bit on CPU and GPU schedules', () => {
    keras.backend.clearSession();
    keras.utils.setRandomSeed(2);
    const m = keras.Sequential([keras.layers.Dense(10, { activation: 'softmax', inputShape: [12] })]);
    const c = compileModel(m, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(m, c, [[8, 12]], [[8]]);
    const g = updatesAsOutputs(step.graph);
    const params: Data = {};
    for (const v of step.variables) params[v.path] = v.data as Data[string];
    for (const caps of [WASM_CAPS, CUDA_CAPS]) {
      const r = runBoth(g, modelInputs(g, 3), params, caps);
      expect(r.diffs).toEqual([]);
      const text = printProgram(r.compiled.program);
      // 7 loops over each row computed exp(x - max) before (the forward sums, the loss, every gradient loop)
      expect(text.split('exp(').length - 1).toBe(1);
      expect(text.split('log(').length - 1).toBe(1);
    }
  });
});
