// Conv weight gradients as split-K GEMMs (schedules/gpu_split_k.ts, gpu_conv.ts): dW[kh,kw,ci,co] = Σ over n, h, w
// of x·dy, written as a conv of the transposed input and gradient (as autodiff writes it) with a declared tree of W
// partials, becomes a tiled batched GEMM of W partials (M = kh·kw·ci, N = co, K/W steps each; a padded conv's
// guard staged beside A) and a combine running the declared levels: bit for bit with the graph interpreter in both
// loop orders and in the emulated CUDA build.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CUDA_CAPS, compileCuda } from '../../codegen/cuda/target.js';
import { H100, MAX_SPLIT, convPlan, launchShapes } from '../../codegen/loop/gpu.js';
import { printProgram } from '../../codegen/loop/printer.js';
import { Schedule, schedule, splitK } from '../../codegen/loop/schedules/index.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { printGraph } from '../../ir/printer.js';
import { topoSort } from '../../ir/graph.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import { runPipeline } from '../../driver/pipeline.js';
import { cudaLowered, expectMatchesGraph } from '../loop/schedules/gpu_helpers.js';
import { expectNvccClean, runMain, weightsOf } from '../native.js';
import { hasNvcc } from '../../codegen/cuda/target.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-convsplit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** dW of a k x k conv (stride 1, padding pad) of x: f32[n,h,h,ci] with dy: f32[n,oh,oh,co], its tree declared. */
function weightGrad(n: number, h: number, ci: number, co: number, k: number, pad: number, tree: number): Graph {
  const oh = h + 2 * pad - k + 1;
  return parseGraph(`graph @dw {
  %0 = input {name="x"} : f32[${n},${h},${h},${ci}]
  %1 = input {name="dy"} : f32[${n},${oh},${oh},${co}]
  %2 = transpose %0 {perm=[3, 1, 2, 0]} : f32[${ci},${h},${h},${n}]
  %3 = transpose %1 {perm=[1, 2, 0, 3]} : f32[${oh},${oh},${n},${co}]
  %4 = conv %2, %3 {dilation=[1, 1], groups=1, lhsDilation=[1, 1], padding=[[${pad}, ${pad}], [${pad}, ${pad}]], strides=[1, 1], tree=${tree}} : f32[${ci},${k},${k},${co}]
  %5 = transpose %4 {perm=[1, 2, 0, 3]} : f32[${k},${k},${ci},${co}]
  output "dw" = %5
}`);
}

/** The weight gradient's graph with no tree declared (reduction_trees.ts declares it). */
const undeclared = (g: Graph): Graph => parseGraph(printGraph(g).replace(/, tree=\d+/, ''));

/** The conv kernel with splitK applied by hand to its nest, then the CUDA schedule. */
function splitProgram(g: Graph) {
  const lowered = cudaLowered(g), k = lowered.kernels.findIndex((x) => x.ops.includes('conv'));
  const s = new Schedule(lowered, k);
  const nest = s.body.find((x) => x.k === 'for') as { v: string };
  s.apply(splitK, { nest: nest.v });
  return schedule(s.program, CUDA_CAPS);
}

describe('conv weight gradients as split-K GEMMs', () => {
  it.each([
    ['conv1-like: padded, one input channel (a guarded term)', 4, 8, 1, 8, 3, 1, 16],
    ['conv2-like: valid, 4 input channels (M = 36)', 4, 8, 4, 6, 3, 0, 16],
  ])('%s: the partials tiled over M = kh·kw·ci, bit for bit in both loop orders', (_, n, h, ci, co, k, pad, W) => {
    const g = weightGrad(n, h, ci, co, k, pad, W), p = splitProgram(g), text = printProgram(p);
    expect(text).toMatch(new RegExp(`buffer splitk\\w*: f32\\[${W * k * k * ci * co}\\] temp`));
    expect(text).toMatch(/local As\w*: f32\[\d+\] shared/); // the partials' GEMM is tiled in shared memory
    if (pad) expect(text).toMatch(/local \w+: bool\[\d+\] shared/); // the taps' conditions staged beside A
    expect(text).toMatch(new RegExp(`local part\\w*: f32\\[${W}\\] register`)); // the combine's partials
    // the taps flattened into M: the partials' launch has fewer blocks than W x kh (one a partial and tap row)
    expect(launchShapes(p)[0]!.grid).toBeLessThan(W * k);
    expectMatchesGraph(g, p);
  });

  it.each([
    ['conv1-like, 128 partials', 8, 8, 1, 8, 3, 1, 128],
    ['conv2-like, 256 partials', 16, 10, 4, 6, 3, 0, 256],
  ])('%s (past MAX_SPLIT): the combine is a tree of W/2 on a block\'s threads, bit for bit in both loop orders', (_, n, h, ci, co, k, pad, W) => {
    expect(W).toBeGreaterThan(MAX_SPLIT);
    const g = weightGrad(n, h, ci, co, k, pad, W), p = splitProgram(g), text = printProgram(p);
    expect(text).toMatch(new RegExp(`buffer splitk\\w*: f32\\[${W * k * k * ci * co}\\] temp`));
    // each thread adds the two partials W/2 apart (the tree's first level), the other levels in shared memory
    expect(text).toMatch(new RegExp(`local part\\w*: f32\\[${W / 2}\\] shared`));
    expect(text).not.toMatch(/local part\w*: f32\[\d+\] register/);
    expect(text).toMatch(/warp_tree add part\w*\[0\.\.32\]/);
    const ls = launchShapes(p);
    expect(ls[1]).toMatchObject({ grid: k * k * ci * co, block: W / 2 }); // the combine: a block an output
    expectMatchesGraph(g, p);
  });

  it('the pipeline: the tree convPlan declares (a padded 3x3x8x16 kernel gradient, K = 16·16·16) runs split; emulated CUDA bit for bit, nvcc clean', () => {
    const g = undeclared(weightGrad(16, 16, 8, 16, 3, 1, 2));
    const plan = convPlan(72, 16, 4096, true, H100);
    expect(plan.split).toBe(true);
    const gt = reductionTrees(g, H100); // the graph interpreter evaluates the declared tree's order
    expect(topoSort(gt).find((n) => n.op === 'conv')!.attrs['tree']).toBe(plan.W);
    const p = runPipeline(g, { caps: CUDA_CAPS, verifyEach: true }).program, text = printProgram(p);
    expect(text).toMatch(new RegExp(`buffer splitk\\w*: f32\\[${plan.W * 72 * 16}\\] temp`));
    expect(launchShapes(p).length).toBeLessThanOrEqual(3); // the partials, the combine (or in the last block), the transpose
    const x = Float32Array.from({ length: 16 * 16 * 16 * 8 }, (_, i) => Math.sin(i * 0.37) * 2);
    const dy = Float32Array.from({ length: 16 * 16 * 16 * 16 }, (_, i) => Math.cos(i * 0.11) / 3);
    const want = interpret(gt, { x, dy }, {}).outputs.get('dw')!.data;
    const dir = path.join(tmp, 'emu');
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 16 }], weights: weightsOf(g, {}), nvcc: false });
    expect(Array.from(runMain(path.join(dir, 'model_main_emu'), dir, g, { x, dy }).get('dw')!)).toEqual(Array.from(want));
    if (hasNvcc()) expectNvccClean(dir); // sm_90, -Xptxas -v: no warnings, no spills
  }, 120_000);
});
