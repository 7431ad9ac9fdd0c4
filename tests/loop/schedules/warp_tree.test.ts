// The warp tree statement (a declared tree's last levels on one warp: __shfl_down_sync on CUDA, the level loops
// everywhere else) and the warpTree primitive that the GPU reduction recipe applies: the same bits as the graph
// interpreter's declared order, refused where the array's other elements are read after.
import { describe, expect, it } from 'vitest';
import { CUDA_CAPS } from '../../../codegen/cuda/target.js';
import { runProgram } from '../../../codegen/loop/interpreter.js';
import { E, S, type Stmt } from '../../../codegen/loop/ir.js';
import { printProgram } from '../../../codegen/loop/printer.js';
import { warpTree } from '../../../codegen/loop/schedules/index.js';
import { verifyProgram } from '../../../codegen/loop/verifier.js';
import { runPipeline } from '../../../driver/pipeline.js';
import { parseGraph } from '../../../ir/parser.js';
import { expectMatchesGraph } from './gpu_helpers.js';
import { H100 } from '../../../codegen/loop/gpu.js';
import { reductionTrees } from '../../../codegen/loop/reduction_trees.js';
import { interpret } from '../../../ir/interpreter.js';
import { f32, program, sched, v } from './helpers.js';

const f = Math.fround;

/** One block: x staged into shared P[8] by 8 threads, then `tail` (the tree), then thread 0 stores P[0] into y. */
function block(tail: Stmt[], read = E.i32(0)) {
  return program([f32('x', 8, 'input'), f32('y', 1, 'output')], [S.for('b', 1, [
    S.local('P', 'f32', 8, 'shared'),
    S.for('t', 8, [S.store('P', v('t'), E.load('x', v('t'), 'f32'))], 'thread'),
    ...tail,
    S.for('z', 1, [S.store('y', E.i32(0), E.load('P', read, 'f32'))], 'thread'),
  ], 'block')]);
}

const level = (s: number, name: string): Stmt => S.for(name, s, [S.store('P', v(name), E.binary('add', E.load('P', v(name), 'f32'), E.load('P', E.add(v(name), E.i32(s)), 'f32')))], 'thread');

describe('the warp tree statement', () => {
  // magnitudes far apart, so every order of the sum rounds differently
  const x = Float32Array.from([1e8, 1, -1e8, 3.5, 7e-3, -2, 1e7, 0.25]);
  const tree = f(f(f(x[0]! + x[4]!) + f(x[2]! + x[6]!)) + f(f(x[1]! + x[5]!) + f(x[3]! + x[7]!)));
  const serial = Array.from(x).reduce((a, b) => f(a + b), 0);

  it('is interpreted as its levels 4, 2, 1 in that order (in both loop orders), printed and verified', () => {
    const p = block([S.warpTree('P', 'f32', 'add', 8)]);
    expect(verifyProgram(p)).toEqual([]);
    expect(printProgram(p)).toContain('warp_tree add P[0..8]');
    expect(tree).not.toBe(serial);
    for (const reverse of [false, true]) expect(runProgram(p, { x }, {}, { reverse }).outputs.get('y')![0]).toBe(tree);
  });

  it('is refused by the verifier inside a thread loop, over a register array, or wider than a warp', () => {
    const inThread = block([S.for('w', 8, [S.warpTree('P', 'f32', 'add', 8)], 'thread')]);
    expect(verifyProgram(inThread).join('\n')).toMatch(/a warp tree must be in a GPU block, outside its thread loops/);
    const reg = program([f32('y', 1, 'output')], [S.for('b', 1, [S.local('R', 'f32', 8), S.warpTree('R', 'f32', 'add', 8)], 'block')]);
    expect(verifyProgram(reg).join('\n')).toMatch(/warp tree over 'R', which is no shared local array in scope/);
    const wide = program([f32('y', 1, 'output')], [S.for('b', 1, [S.local('P', 'f32', 64, 'shared'), S.warpTree('P', 'f32', 'add', 64)], 'block')]);
    expect(verifyProgram(wide).join('\n')).toMatch(/warp tree of 64 elements: not a power of two from 2 to 32/);
  });

  it('the primitive replaces the levels 4, 2, 1 (a unit last loop) and keeps the bits; refuses when P[1] is read after', () => {
    const levels = [level(4, 'l4'), level(2, 'l2'), S.for('l1', 1, [S.store('P', E.i32(0), E.binary('add', E.load('P', E.i32(0), 'f32'), E.load('P', E.binary('add', E.i32(0), E.i32(1)), 'f32')))], 'thread')];
    const s = sched(block(levels));
    s.apply(warpTree, { launch: 'b' });
    const out = printProgram(s.program);
    expect(out).toContain('warp_tree add P[0..8]');
    expect(out).not.toMatch(/for l\d in/);
    expect(runProgram(s.program, { x }, {}).outputs.get('y')![0]).toBe(tree);
    expect(sched(block(levels, E.i32(1))).check(warpTree, { launch: 'b' })).toMatch(/launch 'b' has no tree levels 16 to 1/);
  });
});

describe('the GPU reduction recipe puts the last levels on a warp', () => {
  it.each([
    ['column sums (bias gradient)', 'f32[512,10]', 'reduce_sum', '[0]', 'f32[10]'],
    ['a whole-tensor sum (the loss)', 'f32[64,32]', 'reduce_sum', '[0, 1]', 'f32[]'],
    ['row products', 'f32[2,256]', 'reduce_prod', '[1]', 'f32[2]'],
  ])('%s: one warp tree a tree, bit for bit with the graph interpreter', (_, xt, op, axes, yt) => {
    const g = parseGraph(`graph @r {\n  %0 = input {name="x"} : ${xt}\n  %1 = ${op} %0 {axes=${axes}} : ${yt}\n  output "y" = %1\n}`);
    const p = runPipeline(g, { caps: CUDA_CAPS, verifyEach: true }).program, text = printProgram(p);
    expect(text).toMatch(new RegExp(`warp_tree ${op === 'reduce_sum' ? 'add' : 'mul'} part\\w*\\[0\\.\\.32\\]`));
    expect(text).not.toMatch(/in 0\.\.16 thread/); // the level of 16 is in the warp tree
    expectMatchesGraph(g, p, 5);
  });

  it('is a named step: --dump-after schedule:warpTree shows the program after it', () => {
    const g = parseGraph('graph @r {\n  %0 = input {name="x"} : f32[64,32]\n  %1 = reduce_sum %0 {axes=[0, 1]} : f32[]\n  output "y" = %1\n}');
    const dumps: string[] = [];
    runPipeline(g, { caps: CUDA_CAPS, dumpAfter: 'schedule:warpTree', dump: (t) => { dumps.push(t); } });
    expect(dumps.length).toBe(1);
    expect(dumps[0]).toMatch(/warp_tree add part\w*\[0\.\.32\]/);
  });

  it('a max tree: legalize gives its combine the selects of the interpreter\'s max (NaN and -0 < +0), bit for bit', () => {
    const g = parseGraph('graph @r {\n  %0 = input {name="x"} : f32[3,2048]\n  %1 = reduce_max %0 {axes=[1]} : f32[3]\n  output "y" = %1\n}');
    const p = runPipeline(g, { caps: CUDA_CAPS, verifyEach: true }).program, text = printProgram(p);
    expect(text).toMatch(/warp_tree max part\w*\[0\.\.32\] by select\(kiln_a > kiln_b, kiln_a, /);
    expect(text).not.toMatch(/in 0\.\.16 thread/);
    expectMatchesGraph(g, p, 5);
    // a NaN in one row, zeros of both signs in another: the combine keeps NaN and prefers +0, as the interpreter
    const x = Float32Array.from({ length: 3 * 2048 }, (_, i) => (i === 77 ? NaN : i >= 2048 && i < 4096 ? (i % 2 ? -0 : 0) : Math.sin(i)));
    const want = interpret(reductionTrees(g, H100), { x }, {}).outputs.get('y')!.data, got = runProgram(p, { x }, {}).outputs.get('y')!;
    expect(Array.from(got)).toEqual(Array.from(want));
    expect(Number.isNaN(got[0]!) && Object.is(got[1], 0)).toBe(true);
  });
});
