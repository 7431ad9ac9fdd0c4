// Declared reduction trees (ir/ops.ts treeLevels, codegen/loop/reduction_trees.ts) and their GPU recipe (gpu_reduce.ts):
// the graph interpreter's tree order is the one lowering emits, and treeThreads runs the partials and levels on a
// block's threads; every program verifies and equals the graph interpreter bit for bit in both loop orders.
import { describe, expect, it } from 'vitest';
import { CUDA_CAPS } from '../../../codegen/cuda/target.js';
import { H100, gridThreads, idleLanes, reductionTree } from '../../../codegen/loop/gpu.js';
import { printProgram } from '../../../codegen/loop/printer.js';
import { runPipeline } from '../../../driver/pipeline.js';
import { interpret } from '../../../ir/interpreter.js';
import { topoSort } from '../../../ir/graph.js';
import { parseGraph } from '../../../ir/parser.js';
import { reductionTrees } from '../../../codegen/loop/reduction_trees.js';
import { schedule } from '../../../codegen/loop/schedules/index.js';
import { randomGraph } from '../../passes/random_graphs.js';
import { cudaLowered, expectMatchesGraph } from './gpu_helpers.js';

/** y = op over axes of x [R, C]; with `then`, a softmax-like row pass after a max and a sum over the same rows. */
function reduceGraph(R: number, C: number, op: string, axes: number[], tree?: number): string {
  const out = axes.includes(0) ? (axes.includes(1) ? '' : `${C}`) : `${R}`;
  return `graph @r {
  %0 = input {name="x"} : f32[${R},${C}]
  %1 = ${op} %0 {axes=[${axes.join(', ')}]${tree ? `, tree=${tree}` : ''}} : f32[${out}]
  output "y" = %1
}`;
}

const softmax = (R: number, C: number) => `graph @s {
  %0 = input {name="x"} : f32[${R},${C}]
  %1 = reduce_max %0 {axes=[1], keepdims=true} : f32[${R},1]
  %2 = broadcast %1 {shape=[${R}, ${C}]} : f32[${R},${C}]
  %3 = sub %0, %2 : f32[${R},${C}]
  %4 = exp %3 : f32[${R},${C}]
  %5 = reduce_sum %4 {axes=[1], keepdims=true} : f32[${R},1]
  %6 = broadcast %5 {shape=[${R}, ${C}]} : f32[${R},${C}]
  %7 = div %4, %6 : f32[${R},${C}]
  output "y" = %7
}`;

describe('declared reduction trees', () => {
  it('the graph interpreter sums in the declared order: W = 1 is the serial order, W > 1 pairs partials k % W', () => {
    const x = Float32Array.from({ length: 16 }, (_, i) => (i % 3 === 0 ? 1e8 : 1) * (i % 2 ? -1 : 1) + i * 0.37);
    const run = (tree?: number) => interpret(parseGraph(reduceGraph(1, 16, 'reduce_sum', [1], tree)), { x }, {}).outputs.get('y')!.data[0]!;
    // the same order computed by hand in float32 (Math.fround after every step)
    const f = Math.fround, serial = Array.from(x).reduce((a, b) => f(a + b), 0);
    const p = [0, 1, 2, 3].map((i) => [0, 1, 2, 3].reduce((a, k) => f(a + x[4 * k + i]!), 0));
    const tree4 = f(f(p[0]! + p[2]!) + f(p[1]! + p[3]!));
    expect(run()).toBe(serial);
    expect(run(1)).toBe(serial);
    expect(run(4)).toBe(tree4);
    expect(run(4)).not.toBe(serial); // the orders differ on this data, so the test tells them apart
  });

  it('a tree must be a power of two dividing the reduced elements', () => {
    expect(() => parseGraph(reduceGraph(2, 12, 'reduce_sum', [1], 8))).toThrow(/tree 8 must be a power of two dividing the 12 reduced elements/);
    expect(() => parseGraph(reduceGraph(2, 12, 'reduce_sum', [1], 3))).toThrow(/tree 3/);
  });

  it('the CUDA pipeline declares trees on long reductions only; CPU pipelines none', () => {
    expect(reductionTree(64, 1024)).toBeGreaterThan(1);
    expect(reductionTree(1, 802816)).toBe(16384); // 64 blocks of 256 threads, then a launch combining their partials
    expect(reductionTree(4096, 10)).toBe(1); // many short rows: a thread per row is cheaper
    const g = parseGraph(reduceGraph(1024, 64, 'reduce_sum', [0]));
    expect(topoSort(runPipeline(g, { caps: CUDA_CAPS }).graph).some((n) => n.attrs['tree'] !== undefined)).toBe(true);
    expect(topoSort(runPipeline(g).graph).some((n) => n.attrs['tree'] !== undefined)).toBe(false);
  });

  it.each([
    ['column sums (bias gradient)', reduceGraph(512, 10, 'reduce_sum', [0])],
    ['a whole-tensor sum (the loss)', reduceGraph(64, 32, 'reduce_sum', [0, 1])],
    ['row maxima', reduceGraph(3, 2048, 'reduce_max', [1])],
    ['row products', reduceGraph(2, 256, 'reduce_prod', [1])],
    ['a softmax over long rows (two trees, then the row)', softmax(4, 1024)],
  ])('%s: trees on a block of threads, bit for bit', (_, text) => {
    const g = parseGraph(text);
    const p = runPipeline(g, { caps: CUDA_CAPS, verifyEach: true }).program;
    const printed = printProgram(p);
    expect(printed).toMatch(/local \w+: f32\[\d+\] shared/);
    expect(printed).toMatch(/for \w+ in 0\.\.\d+ thread/);
    expectMatchesGraph(g, p, 3);
  });

  it('every schedule step on a tree kernel verifies and equals the graph interpreter (both loop orders)', () => {
    for (const text of [reduceGraph(512, 10, 'reduce_sum', [0]), softmax(2, 512)]) {
      const g = parseGraph(text), steps: string[] = [];
      schedule(cudaLowered(g), CUDA_CAPS, (name, p) => {
        steps.push(name);
        expect(() => expectMatchesGraph(g, p, 5), `after ${name}`).not.toThrow();
      });
      expect(steps).toContain('treeThreads');
    }
  });

  it('the tree pass keeps a declared tree and is what the reference needs (serial and tree sums differ here)', () => {
    const g = parseGraph(reduceGraph(1, 4096, 'reduce_sum', [1]));
    const t = reductionTrees(g, H100);
    expect(topoSort(reductionTrees(t, H100)).map((n) => n.attrs['tree'])).toEqual(topoSort(t).map((n) => n.attrs['tree']));
    const x = Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i) * 1000 + 1 / (i + 1));
    expect(interpret(t, { x }, {}).outputs.get('y')!.data[0]).not.toBe(interpret(g, { x }, {}).outputs.get('y')!.data[0]);
  });
});

describe('random graphs whose CUDA schedule runs trees on threads', () => {
  // seeds found by scanning from 5000 for a threaded tree (a 150 s scan of 21,502 graphs from 5000 found 1,753, all exact)
  it.each([5003, 5004, 5025, 5031, 5065, 5071])('random graph %i', (seed) => {
    const rg = randomGraph(seed);
    const p = runPipeline(rg.graph, { caps: CUDA_CAPS, verifyEach: true }).program;
    expect(printProgram(p)).toMatch(/local part\w*: \w+\[\d+\] shared/);
    expectMatchesGraph(rg.graph, p, seed);
  });
});

describe('--dump-after schedule for a GPU target', () => {
  it('ends with every launch: grid, block, shared bytes and the estimate; a long sum is no longer one thread', () => {
    let out = '';
    runPipeline(parseGraph(reduceGraph(64, 32, 'reduce_sum', [0, 1])), { caps: CUDA_CAPS, dumpAfter: 'schedule', dump: (t) => { out = t; } });
    const m = /# launch k0_reduce_sum: grid (\d+) x block (\d+), (\d+) B shared, estimate (\d+) cycles\n# 1 launches, estimate (\d+) cycles\n$/.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![1])).toBe(1);
    expect(Number(m![2])).toBeGreaterThan(1);
    expect(Number(m![3])).toBe(4 * Number(m![2]));
    expect(m![4]).toBe(m![5]);
    let cpu = '';
    runPipeline(parseGraph(reduceGraph(64, 32, 'reduce_sum', [0, 1])), { dumpAfter: 'schedule', dump: (t) => { cpu = t; } });
    expect(cpu).not.toContain('# launch');
  });
});

describe('the GPU cost model counts lanes', () => {
  it('a few independent points go to one block of full warps, not blocks of one thread', () => {
    expect(idleLanes(64, 1, H100)).toBe(64 * 31);
    expect(gridThreads(64, 100)).toBe(32); // two full warps on two SMs
    expect(gridThreads(10, 100)).toBe(10);
  });
});
