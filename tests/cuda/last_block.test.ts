// The last-block combine (schedules/gpu_last_block.ts, loop IR `arrive`): a split-K matmul's combine runs in the
// last block of each output tile to store its partial, so the partials and their combine (with the row's tail, an
// optimizer's update) are one launch. Checked against the graph interpreter bit for bit: the loop interpreter in
// both block orders (reversed, the last block to arrive is another one); the seed MLP's step on the emulated CUDA
// build: last_block_mlp.test.ts.
import { describe, expect, it } from 'vitest';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import { E, S, type Stmt } from '../../codegen/loop/ir.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { printProgram } from '../../codegen/loop/printer.js';
import { Schedule, lastBlock, schedule, splitK } from '../../codegen/loop/schedules/index.js';
import { verifyProgram } from '../../codegen/loop/verifier.js';
import { parseGraph } from '../../ir/parser.js';
import { cudaLowered, expectMatchesGraph } from '../loop/schedules/gpu_helpers.js';

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

  it.each([
    ['a row sum of 1024 partials (4 blocks a row)', `graph @r {
  %0 = input {name="x"} : f32[2,4096]
  %1 = reduce_sum %0 {axes=[1], tree=1024} : f32[2]
  %2 = mul %1, %1 : f32[2]
  output "y" = %2
}`, 4],
    ['a conv kernel gradient, tree of 512, taps outside the input skipped', `graph @c {
  %0 = input {name="x"} : f32[2,8,8,16]
  %1 = input {name="dy"} : f32[8,8,16,3]
  %2 = conv %0, %1 {strides=[1, 1], dilation=[1, 1], lhsDilation=[1, 1], padding=[[1, 1], [1, 1]], groups=1, tree=512} : f32[2,3,3,3]
  output "dk" = %2
}`, 2],
  ])('a split tree (G[x*W + p], its levels in place): %s, the last block of each output combines; bit for bit in both block orders', (_, text, B) => {
    const g = parseGraph(text);
    const p0 = schedule(cudaLowered(g), CUDA_CAPS);
    const k = p0.kernels.findIndex((x) => x.body.length === 2);
    const s = new Schedule(p0, k);
    s.apply(lastBlock, { partials: p0.buffers.find((b) => b.name.startsWith('split'))!.name });
    expect(printProgram(s.program)).toMatch(new RegExp(`arrive tiles\\w*\\[[^\\]]+\\] of ${B} -> last`));
    expect(s.program.kernels[k]!.body).toHaveLength(2); // the counters' zeroing, the one launch
    expectMatchesGraph(g, s.program, 4);
  });

  it('a wrong count (one block short) is found: the combine runs before the last partial is in', () => {
    const { g, p, k } = lastBlockProgram(40, 24, 256);
    const kernel = p.kernels[k]!;
    const mutate = (ss: readonly Stmt[]): Stmt[] => ss.map((x) => (x.k === 'arrive' ? { ...x, count: x.count - 1 } : x.k === 'for' || x.k === 'if' ? { ...x, body: mutate(x.body) } : x));
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

});
