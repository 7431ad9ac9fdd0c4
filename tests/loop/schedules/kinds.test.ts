// unroll, vectorize, parallel and the cleanup steps: legal kinds verify and keep results (parallel loops also run
// in reverse); illegal ones are refused with the reason.
import { describe, expect, it } from 'vitest';
import { E, S } from '../../../codegen/loop/ir.js';
import { DEFAULT_CAPS } from '../../../codegen/loop/schedule.js';
import { LLVM_CAPS } from '../../../codegen/llvm/target.js';
import { bind, dropUnitLoops, fuse, launch, merge, parallel, schedule, simplifyIndices, sinkDecls, split, unroll, vectorize } from '../../../codegen/loop/schedules/index.js';
import { parallelWork } from '../../../codegen/loop/schedules/cpu_kinds.js';
import { parseGraph } from '../../../ir/parser.js';
import { runPipeline } from '../../../driver/pipeline.js';
import { expectSame, f32, load, matmulProgram, program, sched, text, v } from './helpers.js';

describe('loop kinds', () => {
  it('parallel rows, unrolled k, vector columns of an elementwise nest', () => {
    const body = [S.for('i', 4, [S.for('k', 2, [S.for('j', 8, [S.store('y', E.add(E.mul(v('i'), E.i32(16)), E.add(E.mul(v('k'), E.i32(8)), v('j'))),
      E.unary('exp', load('x', E.add(E.mul(v('i'), E.i32(16)), E.add(E.mul(v('k'), E.i32(8)), v('j'))), 'f32')))])])])];
    const p = program([f32('x', 64, 'input'), f32('y', 64, 'output')], body), s = sched(p);
    s.apply(parallel, { loops: ['i'] });
    s.apply(unroll, { loops: ['k'] });
    s.apply(vectorize, { loops: ['j'], caps: LLVM_CAPS });
    expect(text(s)).toMatch(/for i in 0..4 parallel \{\n {4}for k in 0..2 unroll \{\n {6}for j in 0..8 vector/);
    expectSame(p, s.program);
  });
  it('refuses a vector loop that holds a loop or carries an accumulator, and a parallel loop that shares one', () => {
    const s = sched(matmulProgram(4, 8, 3));
    expect(s.check(vectorize, { loops: ['j'], caps: LLVM_CAPS })).toMatch(/loop 'j': its body holds a loop/);
    expect(s.check(vectorize, { loops: ['k'], caps: LLVM_CAPS })).toMatch(/loop 'k': it assigns 'acc', declared outside it/);
    expect(s.check(parallel, { loops: ['j'] })).toMatch(/not a top-level loop/);
    const sum = sched(program([f32('x', 8, 'input'), f32('y', 1, 'output')], [S.decl('s', 'f32', E.f32(0)),
      S.for('i', 8, [S.assign('s', E.binary('add', v('s', 'f32'), load('x', v('i'), 'f32')))]), S.store('y', E.i32(0), v('s', 'f32'))]));
    expect(sum.check(parallel, { loops: ['i'] })).toMatch(/its iterations share state/);
    expect(sum.check(vectorize, { loops: ['i'], caps: LLVM_CAPS })).toMatch(/assigns 's'/);
    s.apply(unroll, { loops: ['k'] });
    expect(s.check(unroll, { loops: ['k'] })).toMatch(/loop 'k' is unroll already/);
  });
});

describe('cleanup', () => {
  it('drops serial loops of one iteration and simplifies the indices they leave', () => {
    const p = matmulProgram(4, 6, 3), s = sched(p);
    s.apply(split, { loop: 'i', factor: 4, outer: 'io', inner: 'ii' });
    s.apply(dropUnitLoops, {});
    expect(text(s)).not.toContain('for io');
    s.apply(simplifyIndices, {});
    expect(text(s)).toContain('a[ii * 3 + k]');
    expectSame(p, s.program);
  });
});

describe('the CPU kinds recipe', () => {
  it('makes a row-wise nest parallel and its rows vector lanes, but not a whole-tensor reduction', () => {
    const caps = { ...DEFAULT_CAPS, threads: 2, parallelGrain: 1 };
    const steps: string[] = [];
    const rows = parseGraph(`graph @rows {
  %0 = input {name="x"} : f32[64,32]
  %1 = sqrt %0 : f32[64,32]
  output "y" = %1
}`);
    const p = schedule(runPipeline(rows, {}).program, caps, (name) => steps.push(name));
    expect(steps).toEqual(['parallel']); // cleanup's simplify runs only on kernels a recipe changed
    expect(p.kernels[0]!.body[0]).toMatchObject({ k: 'for', kind: 'parallel', body: [{ k: 'for', kind: 'vector' }] });
    const all = parseGraph(`graph @sum {
  %0 = input {name="x"} : f32[64,32]
  %1 = reduce_sum %0 {axes=[0, 1], keepdims=false} : f32[]
  output "y" = %1
}`);
    const q = runPipeline(all, { caps }).program;
    expect(JSON.stringify(q.kernels)).not.toContain('"parallel"');
  });
});

describe('GPU launches: fuse, launch, sinkDecls, bind', () => {
  it('a nest fused, split into blocks x threads, the invariant decl computed by each thread; a scalar store as one thread', () => {
    const body = [S.decl('s', 'f32', load('x', E.i32(0), 'f32')),
      S.for('i', 4, [S.for('j', 6, [S.store('y', E.add(E.mul(v('i'), E.i32(6)), v('j')), E.binary('mul', load('x', E.add(E.mul(v('i'), E.i32(6)), v('j')), 'f32'), v('s', 'f32')))])]),
      S.store('z', E.i32(0), v('s', 'f32'))];
    const p = program([f32('x', 24, 'input'), f32('y', 24, 'output'), f32('z', 1, 'output')], body), s = sched(p);
    s.apply(launch, { stmts: [2], block: 'g1', thread: 't1' });
    s.apply(fuse, { loops: ['i', 'j'], name: 'f' });
    expect(text(s)).toMatch(/for f in 0..24 \{\n {4}decl i: i32 = f \/\/ 6 % 4\n {4}decl j: i32 = f % 6\n/);
    s.apply(split, { loop: 'f', factor: 8, outer: 'g0', inner: 't0' });
    expect(s.check(bind, { blocks: ['g0', 'g1'], threads: ['t0', 't1'] })).toBeUndefined();
    s.apply(sinkDecls, { loops: ['t0', 't1'] });
    s.apply(bind, { blocks: ['g0', 'g1'], threads: ['t0', 't1'] });
    expect(text(s)).toMatch(/^kernel k0\n {2}for g0 in 0..3 block \{\n {4}for t0 in 0..8 thread \{\n {6}decl s: f32 = x\[0\]\n/);
    expectSame(p, s.program);
  });
  it('bind refuses a thread loop outside a block and a grid whose iterations share an accumulator', () => {
    const s = sched(program([f32('x', 8, 'input'), f32('y', 1, 'output')], [S.decl('a', 'f32', E.f32(0)),
      S.for('i', 8, [S.for('t', 1, [S.assign('a', E.binary('add', v('a', 'f32'), load('x', v('i'), 'f32')))])]), S.store('y', E.i32(0), v('a', 'f32'))]));
    expect(s.check(bind, { blocks: [], threads: ['t'] })).toMatch(/loop 't' is not inside a block loop/);
    expect(s.check(bind, { blocks: ['i'], threads: ['t'] })).toMatch(/loop 'i': it assigns 'a', declared outside it/);
    expect(s.check(fuse, { loops: ['t', 'i'] })).toMatch(/not perfectly nested|not one perfect nest/);
    expect(s.check(launch, { stmts: [0, 2], block: 'g', thread: 'u' })).toMatch(/statement 1 between them is not a pure decl/);
  });
});

describe('producer nests merged into the parallel loop after them', () => {
  // t[r, c] = exp(x[r, c]) over R rows of C, then y[b, c] = the sum of B rows of t from row b*stride: block b's own
  // rows (stride B), or rows overlapping the next block's (stride B/2)
  const R = 32, C = 16, B = 4;
  const rowsThenBlocks = (stride: number, op: 'exp' | 'neg' = 'exp') => {
    const tIdx = (r: ReturnType<typeof E.v> | ReturnType<typeof E.add>) => E.add(E.mul(r, E.i32(C)), v('c'));
    const producer = S.for('r', R, [S.for('c', C, [S.store('t', tIdx(v('r')), E.unary(op, load('x', tIdx(v('r')), 'f32')))])]);
    const row = E.add(E.mul(v('b'), E.i32(stride)), v('m'));
    const consumer = S.for('b', R / B, [S.for('c2', C, [
      S.decl('acc', 'f32', E.f32(0)),
      S.for('m', B, [S.assign('acc', E.binary('add', v('acc', 'f32'), load('t', E.add(E.mul(row, E.i32(C)), v('c2')), 'f32')))]),
      S.store('y', E.add(E.mul(v('b'), E.i32(C)), v('c2')), v('acc', 'f32')),
    ])]);
    return program([f32('x', R * C, 'input'), { name: 't', dtype: 'float32', size: R * C, kind: 'temp' }, f32('y', R / B * C, 'output')], [producer, consumer]);
  };
  const caps = { ...LLVM_CAPS, threads: 2, parallelGrain: 1 };

  it('merge: a consumer reading only its own slab of the producer\'s array merges; one reading a neighbour slab does not', () => {
    const p = rowsThenBlocks(B), s = sched(p);
    s.apply(split, { loop: 'r', factor: B, outer: 'ro', inner: 'ri' });
    s.apply(merge, { loops: ['ro', 'b'] });
    s.apply(parallel, { loops: ['ro'] });
    expect(text(s)).toMatch(/\n {2}for ro in 0..8 parallel \{\n {4}for ri in 0..4 \{/);
    expectSame(p, s.program);
    const q = sched(rowsThenBlocks(B / 2));
    q.apply(split, { loop: 'r', factor: B, outer: 'ro', inner: 'ri' });
    expect(q.check(merge, { loops: ['ro', 'b'] })).toMatch(/both loops access 't', which one writes, beyond a slab per iteration/);
  });
  it('the CPU kinds recipe merges the row nest into the block loop, and leaves a neighbour-reading consumer alone', () => {
    const p = rowsThenBlocks(B), q = schedule(p, caps);
    expect(q.kernels[0]!.body.filter((x) => x.k === 'for').map((x) => [x.k === 'for' && x.extent, x.k === 'for' && x.kind])).toEqual([[R / B, 'parallel']]);
    expectSame(p, q);
    const n = rowsThenBlocks(B / 2), nq = schedule(n, caps);
    expect(nq.kernels[0]!.body.filter((x) => x.k === 'for').map((x) => x.k === 'for' && x.extent)).toEqual([R, R / B]);
    // a producer that does not merge runs in parallel itself where it has a quarter of the grain's work: 32 x 16
    // negations (512) under a grain of the consumer's work (768), not alone; under a grain past 4 x 512 it stays serial
    const neg = rowsThenBlocks(B / 2, 'neg'), grain = { ...caps, parallelGrain: parallelWork([neg.kernels[0]!.body[1]!]) };
    expect(parallelWork([neg.kernels[0]!.body[0]!]) * 4).toBeGreaterThan(grain.parallelGrain);
    expect(schedule(neg, grain).kernels[0]!.body.map((x) => x.k === 'for' && x.kind)).toEqual(['parallel', 'parallel']);
    expect(schedule(neg, { ...grain, parallelGrain: 4 * parallelWork([neg.kernels[0]!.body[0]!]) + 1 }).kernels[0]!.body.map((x) => x.k === 'for' && x.kind)).toEqual(['serial', 'serial']);
    expectSame(neg, schedule(neg, grain));
    expectSame(n, nq);
    // one thread: nothing to merge for; 16 threads: the 8 blocks would leave half of them idle in the row nest
    expect(schedule(p, { ...caps, threads: 1 }).kernels[0]!.body.filter((x) => x.k === 'for')).toHaveLength(2);
    expect(schedule(p, { ...caps, threads: 16 }).kernels[0]!.body.filter((x) => x.k === 'for')).toHaveLength(2);
  });
  it('libm calls weigh in the parallel grain: 256 rows of 10 exp run in parallel, 256 rows of 10 negations do not', () => {
    const rows = (op: 'exp' | 'neg') => program([f32('x', 2560, 'input'), f32('y', 2560, 'output')], [S.for('i', 256, [S.for('j', 10, [
      S.store('y', E.add(E.mul(v('i'), E.i32(10)), v('j')), E.unary(op, load('x', E.add(E.mul(v('i'), E.i32(10)), v('j')), 'f32')))])])]);
    const grain = { ...LLVM_CAPS, threads: 2, parallelGrain: 1 << 15 };
    expect(parallelWork(rows('exp').kernels[0]!.body)).toBe(256 * 10 * 17);
    expect(parallelWork(rows('neg').kernels[0]!.body)).toBe(2560);
    expect(schedule(rows('exp'), grain).kernels[0]!.body[0]).toMatchObject({ k: 'for', kind: 'parallel' });
    expect(schedule(rows('neg'), grain).kernels[0]!.body[0]).toMatchObject({ k: 'for', kind: 'serial' });
    expectSame(rows('exp'), schedule(rows('exp'), grain));
  });
});

describe('merge and quads', () => {
  // t[r] = r - 16 as int8 over 32 rows, then y[b] = the quad (loop/ir.ts: four int8 elements as one word) of t
  // from element b*4 + at: block b's own four elements (at 0), or two of the next block's (at 2)
  const quadReader = (at: number) => program([{ name: 't', dtype: 'int8', size: 36, kind: 'temp' }, { name: 'y', dtype: 'int32', size: 8, kind: 'output' }], [
    S.for('r', 32, [S.store('t', v('r'), E.add(v('r'), E.i32(-16)))]),
    S.for('b', 8, [S.store('y', v('b'), E.quad('t', E.add(E.mul(v('b'), E.i32(4)), E.i32(at))))]),
  ]);
  it('a quad read within the iteration\'s slab merges; one reaching into the next slab does not', () => {
    const p = quadReader(0), s = sched(p);
    s.apply(split, { loop: 'r', factor: 4, outer: 'ro', inner: 'ri' });
    s.apply(merge, { loops: ['ro', 'b'] });
    expectSame(p, s.program);
    const q = sched(quadReader(2));
    q.apply(split, { loop: 'r', factor: 4, outer: 'ro', inner: 'ri' });
    expect(q.check(merge, { loops: ['ro', 'b'] })).toMatch(/both loops access 't', which one writes, beyond a slab per iteration/);
  });
});
