// Trees wider than a block (schedules/gpu_split_tree.ts): W = B x 256 partials on B blocks a row, their first
// levels in shared memory, the last log2(B) levels in a second launch; bit for bit with the graph interpreter in
// both loop orders and in the emulated CUDA build (nvcc compiles it for sm_90 where installed).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CUDA_CAPS, compileCuda, hasNvcc } from '../../codegen/cuda/target.js';
import { H100, launchShapes } from '../../codegen/loop/gpu.js';
import { printProgram } from '../../codegen/loop/printer.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import { runPipeline } from '../../driver/pipeline.js';
import { topoSort } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { expectMatchesGraph } from '../loop/schedules/gpu_helpers.js';
import { runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-split-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const rowSum = parseGraph(`graph @r {
  %0 = input {name="x"} : f32[2,4096]
  %1 = reduce_sum %0 {axes=[1], tree=1024} : f32[2]
  %2 = mul %1, %1 : f32[2]
  output "y" = %2
}`);

// a kernel gradient's shape: 16 images as the conv's input channels, 2 channels as its batch, padding 1 (skipped taps)
const convGrad = parseGraph(`graph @c {
  %0 = input {name="x"} : f32[2,8,8,16]
  %1 = input {name="dy"} : f32[8,8,16,3]
  %2 = conv %0, %1 {strides=[1, 1], dilation=[1, 1], lhsDilation=[1, 1], padding=[[1, 1], [1, 1]], groups=1, tree=512} : f32[2,3,3,3]
  output "dk" = %2
}`);

describe('trees wider than a block', () => {
  it('a row sum of 1024 partials: 4 blocks of 256 threads a row, then one thread a row for the last 2 levels', () => {
    const p = runPipeline(rowSum, { caps: CUDA_CAPS, verifyEach: true }).program;
    expect(launchShapes(p).map((l) => [l.grid, l.block, l.shared])).toEqual([[8, 256, 1024], [2, 1, 0]]);
    expect(printProgram(p)).toMatch(/buffer split\w*: f32\[8\] temp/);
    expectMatchesGraph(rowSum, p, 3);
  });

  it('a conv kernel gradient with a declared tree of 512 (taps outside the input skipped in every partial)', () => {
    const p = runPipeline(convGrad, { caps: CUDA_CAPS, verifyEach: true }).program;
    expect(launchShapes(p).map((l) => [l.grid, l.block])).toEqual([[54 * 2, 256], [54, 1]]);
    expectMatchesGraph(convGrad, p, 4);
  });

  it('a whole-tensor sum the cost model splits: the emulated CUDA build equals the interpreter bit for bit', () => {
    const g0 = parseGraph(`graph @s {
  %0 = input {name="x"} : f32[256,1024]
  %1 = reduce_sum %0 {axes=[0, 1]} : f32[]
  output "total" = %1
}`);
    const g = reductionTrees(g0, H100);
    const W = Number(topoSort(g).find((n) => n.op === 'reduce_sum')!.attrs['tree']);
    expect(W).toBeGreaterThan(256);
    const x = Float32Array.from({ length: 256 * 1024 }, (_, i) => Math.sin(i * 0.7) * 1e4 + 1 / (1 + (i % 13)));
    const dir = path.join(tmp, 'sum'), nvcc = hasNvcc();
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, {}), nvcc });
    // exact: outputDiffs allows a tolerance, so the bits are compared too
    const got = runMain(path.join(dir, 'model_main_emu'), dir, g, { x }).get('total')!, want = interpret(g, { x }, {}).outputs.get('total')!.data;
    expect(Array.from(got)).toEqual(Array.from(want));
    expect(Array.from(got)).not.toEqual(Array.from(interpret(g0, { x }, {}).outputs.get('total')!.data)); // the serial order differs here
    if (nvcc) expect(existsSync(path.join(dir, 'model_main'))).toBe(true);
    // two launches: W / 256 blocks of 256 threads, then one thread combining their partials
    const launches = [...readFileSync(path.join(dir, 'model.cu'), 'utf8').matchAll(/KILN_LAUNCH\(\w+, (\d+), (\d+),/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(launches).toEqual([[W / 256, 256], [1, 1]]);
  }, 120_000);
});

describe('which trees may split', () => {
  it('a softmax over long rows keeps both its trees on one block (a row with two trees does not split); a lone row sum splits', () => {
    const softmax = parseGraph(`graph @s {
  %0 = input {name="x"} : f32[2,65536]
  %1 = reduce_max %0 {axes=[1], keepdims=true} : f32[2,1]
  %2 = broadcast %1 {shape=[2, 65536]} : f32[2,65536]
  %3 = sub %0, %2 : f32[2,65536]
  %4 = exp %3 : f32[2,65536]
  %5 = reduce_sum %4 {axes=[1], keepdims=true} : f32[2,1]
  %6 = broadcast %5 {shape=[2, 65536]} : f32[2,65536]
  %7 = div %4, %6 : f32[2,65536]
  output "y" = %7
}`);
    const trees = (g: typeof softmax) => topoSort(reductionTrees(g, H100)).flatMap((n) => (n.attrs['tree'] === undefined ? [] : [Number(n.attrs['tree'])]));
    expect(trees(softmax)).toEqual([256, 256]);
    expect(trees(parseGraph(`graph @t {
  %0 = input {name="x"} : f32[2,65536]
  %1 = reduce_sum %0 {axes=[1]} : f32[2]
  output "y" = %1
}`))[0]).toBeGreaterThan(256);
  });
});
