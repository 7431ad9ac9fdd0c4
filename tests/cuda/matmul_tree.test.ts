// A small matmul the cost model gives a declared tree (32 x 64 @ 64 x 30: 960 sums of 64 on 8 threads each beat
// shared tiles): the emulated CUDA build and the loop interpreter under the CUDA schedule (both loop orders) equal
// the graph interpreter on the graph with its trees (reductionTrees), bit for bit; the serial order differs in the
// last bits, so a reference without the trees is the wrong one (reported as a CUDA mismatch: 0.028306676 vs
// 0.028306657 at y[0]).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCuda } from '../../codegen/cuda/target.js';
import { H100 } from '../../codegen/loop/gpu.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import { runCases } from '../../fuzz/targets.js';
import { topoSort } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-matmul-tree-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const g = parseGraph(`graph @m {
  %0 = input {name="x"} : f32[32,64]
  %1 = param {name="w"} : f32[64,30]
  %2 = matmul %0, %1 : f32[32,30]
  %3 = mul %2, %2 : f32[32,30]
  output "y" = %3
}`);
const x = Float32Array.from({ length: 32 * 64 }, (_, i) => Math.sin(i * 0.37) * 3);
const w = Float32Array.from({ length: 64 * 30 }, (_, i) => Math.cos(i * 0.11) / 9);

describe('a matmul as a declared tree', () => {
  const trees = reductionTrees(g, H100);
  const want = interpret(trees, { x }, { w }).outputs.get('y')!.data;

  it('the cost model gives it a tree of 8, and that order is not the serial one', () => {
    expect(topoSort(trees).find((n) => n.op === 'matmul')!.attrs['tree']).toBe(8);
    expect(Array.from(interpret(g, { x }, { w }).outputs.get('y')!.data)).not.toEqual(Array.from(want));
  });

  it('the loop interpreter under the CUDA schedule, both loop orders, equals the graph interpreter with its trees', () => {
    expect(runCases('loop', [{ seed: 1, graph: g, inputs: { x }, params: { w } }], { schedule: 'cuda', workDir: tmp, timeoutMs: 60_000 })).toEqual([undefined]);
  });

  it('the emulated build equals it bit for bit: 8 threads a block, the last levels on lanes 0-7 (mask 0xff)', () => {
    const dir = path.join(tmp, 'emu');
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 32 }], weights: weightsOf(g, { w }), nvcc: false });
    const got = runMain(path.join(dir, 'model_main_emu'), dir, g, { x }).get('y')!;
    expect(Array.from(got)).toEqual(Array.from(want));
    const cu = readFileSync(path.join(dir, 'model.cu'), 'utf8');
    expect(cu).toMatch(/KILN_KERNEL\(\w+, 8\)/);
    expect(cu).toMatch(/KILN_WARP_TREE\(float, part\w*, 8, 0xffu, kiln_a, kiln_b, \(kiln_a \+ kiln_b\)\);/);
  }, 120_000);
});
