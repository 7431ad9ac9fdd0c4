// Split-K for tiled matmuls (schedules/gpu_split_k.ts): a matmul whose K sum is a declared tree the cost model
// (gpu.ts matmulPlan) runs split over tiles (weight gradients: K = batch) becomes a tiled batched matmul of W
// partial tiles and a combine running the declared levels: bit for bit with the graph interpreter in both loop
// orders (the emulated CUDA build and nvcc: tests/cuda/float4.test.ts, its y4).
import { describe, expect, it } from 'vitest';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import { H100, launchShapes, matmulPlan } from '../../codegen/loop/gpu.js';
import { printProgram } from '../../codegen/loop/printer.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import { runPipeline } from '../../driver/pipeline.js';
import { topoSort } from '../../ir/graph.js';
import { parseGraph } from '../../ir/parser.js';
import { cudaLowered, expectMatchesGraph } from '../loop/schedules/gpu_helpers.js';
import { Schedule, schedule, splitK } from '../../codegen/loop/schedules/index.js';

/** x^T @ dy + bias-like epilogue: a weight gradient's shape (K = batch rows), its tree declared as given. */
const weightGrad = (M: number, N: number, K: number, tree?: number) => parseGraph(`graph @w {
  %0 = input {name="x"} : f32[${K},${M}]
  %1 = input {name="dy"} : f32[${K},${N}]
  %2 = transpose %0 {perm=[1, 0]} : f32[${M},${K}]
  %3 = matmul %2, %1${tree ? ` {tree=${tree}}` : ''} : f32[${M},${N}]
  %4 = mul %3, %3 : f32[${M},${N}]
  output "y" = %4
}`);

describe('split-K', () => {
  it('the cost model splits the seed MLP\'s 784 x 64 kernel gradient at batch 1024 over tiles, and a small one not', () => {
    expect(matmulPlan(784, 64, 1024, 1, H100)).toMatchObject({ split: true });
    expect(matmulPlan(784, 64, 1024, 1, H100).W).toBeGreaterThan(1);
    expect(matmulPlan(32, 30, 64, 1, H100).split).toBe(false);
  });

  it('splitK on a declared tree of 8 (40 x 24 x 256): a tiled matmul of 8 partial tiles, then the levels; bit for bit in both loop orders', () => {
    const g = weightGrad(40, 24, 256, 8);
    const lowered = cudaLowered(g), k = lowered.kernels.findIndex((x) => x.ops.includes('matmul'));
    const s = new Schedule(lowered, k);
    const nest = s.body.find((x) => x.k === 'for')!;
    s.apply(splitK, { nest: (nest as { v: string }).v });
    const p = schedule(s.program, CUDA_CAPS);
    const text = printProgram(p);
    expect(text).toMatch(/buffer splitk\w*: f32\[7680\] temp/); // 8 partial tiles of 40 x 24
    expect(text).toMatch(/local As\w*: f32\[\d+\] shared/); // the partials' matmul is tiled in shared memory
    expect(text).toMatch(/local part\w*: f32\[8\] register/); // each output's partials back in registers
    expectMatchesGraph(g, p, 5);
  });

  it('refuses what is not a sum of products from +0 (a conv tree, a row sum)', () => {
    const rowSum = parseGraph(`graph @r {
  %0 = input {name="x"} : f32[8,64]
  %1 = reduce_sum %0 {axes=[1], tree=8} : f32[8]
  output "y" = %1
}`);
    const lowered = cudaLowered(rowSum), s = new Schedule(lowered, 0);
    const nest = s.body.find((x) => x.k === 'for') as { v: string };
    expect(s.check(splitK, { nest: nest.v })).toMatch(/no product/);
  });

  it('the MLP-sized weight gradient (784 x 64, K = 1024): split and tiled by the recipe, two launches', () => {
    const g = weightGrad(784, 64, 1024);
    const W = Number(topoSort(reductionTrees(g, H100)).find((n) => n.op === 'matmul')!.attrs['tree']);
    expect(W).toBe(matmulPlan(784, 64, 1024, 1, H100).W);
    const p = runPipeline(g, { caps: CUDA_CAPS, verifyEach: true }).program;
    expect(printProgram(p)).toMatch(new RegExp(`buffer splitk\\w*: f32\\[${W * 784 * 64}\\] temp`));
    const ls = launchShapes(p);
    expect(ls).toHaveLength(2);
    // the estimate is the cost model's split plan (what the recipe chose by), up to the epilogue's square
    expect(Math.abs(ls[0]!.cycles + ls[1]!.cycles - matmulPlan(784, 64, 1024, 1, H100).cycles) / ls[0]!.cycles).toBeLessThan(0.1);
  });
});
