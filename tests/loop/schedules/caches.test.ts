// fission, cacheWrite, accumulateInto, cacheRead, hoist and pack: each verified and bit-exact, step by step
// through the CPU matmul micro-kernel, and each refusing where it would change a result.
import { describe, expect, it } from 'vitest';
import { E, S } from '../../../codegen/loop/ir.js';
import {
  Schedule, accumulateInto, cacheRead, cacheWrite, dropUnitLoops, fission, hoist, liftLocal, pack, reorder, simplifyIndices, split, tile, unroll, vectorize,
} from '../../../codegen/loop/schedules/index.js';
import { LLVM_CAPS } from '../../../codegen/llvm/target.js';
import { expectSame, f32, load, matmulProgram, program, sched, text, v } from './helpers.js';

/** Applies a step and checks the program after it against the unscheduled one. */
function step(s: Schedule, before: ReturnType<typeof matmulProgram>, f: (s: Schedule) => void): void {
  f(s);
  expectSame(before, s.program);
}

describe('the CPU matmul micro-kernel, one primitive at a time', () => {
  it('every step verifies and keeps every output bit for bit', () => {
    const p = matmulProgram(8, 12, 5), s = sched(p);
    step(s, p, (s) => s.apply(tile, { loops: ['i', 'j'], factors: [4, 6], outer: ['it', 'jt'], inner: ['m', 'c'], order: ['jt', 'it', 'm', 'c'] }));
    step(s, p, (s) => s.apply(cacheWrite, { acc: 'acc', loops: ['m', 'c'], local: 'A', read: { decl: 'r' }, place: 'before' }));
    expect(text(s)).toMatch(/local A: f32\[24\] register\n {6}for m in 0..4/);
    // the tile's body is init; the k loop; the epilogue: distribute both tile loops over the three
    step(s, p, (s) => s.apply(fission, { loop: 'c', at: [1, 2], names: ['c1', 'c2'] }));
    step(s, p, (s) => s.apply(fission, { loop: 'm', at: [1, 2], names: ['m1', 'm2'] }));
    step(s, p, (s) => s.apply(reorder, { loops: ['k', 'm1', 'c1'] }));
    step(s, p, (s) => s.apply(cacheRead, { outer: 'm1', inner: 'c1', value: 'vb', local: 'B', fill: 'f', at: 'it' }));
    step(s, p, (s) => s.apply(hoist, { loop: 'c1' }));
    expect(text(s)).toMatch(/for m1 in 0..4 \{\n {10}decl va: f32 = a\[/);
    step(s, p, (s) => s.apply(pack, { fill: 'f', over: ['jt', 'k'], buffer: 'panel', names: ['p', 'q', 'r'] }));
    expect(s.program.buffers.find((b) => b.name === 'panel')?.size).toBe(5 * 12);
    step(s, p, (s) => s.apply(unroll, { loops: ['m', 'm1', 'm2'] }));
    step(s, p, (s) => s.apply(vectorize, { loops: ['c', 'c1', 'c2', 'f', 'r'], caps: LLVM_CAPS }));
    step(s, p, (s) => s.apply(simplifyIndices, {}));
    expect(s.check(dropUnitLoops, {})).toMatch(/no serial loop of one iteration/);
  });
});

describe('fission', () => {
  it('refuses to separate a decl from its use', () => {
    expect(sched(matmulProgram(2, 3, 4)).check(fission, { loop: 'j', at: [2], names: ['j2'] })).toMatch(/'acc' is declared in one part and used in a later one/);
  });
  it('refuses when a later part reads what an earlier part writes for another iteration', () => {
    // t[i] = x[i]; y[i] = t[i + 1] (reads the next iteration's write): distributing would read new values
    const body = [S.for('i', 3, [S.store('t', v('i'), load('x', v('i'), 'f32')), S.store('y', v('i'), load('t', E.add(v('i'), E.i32(1)), 'f32'))])];
    const s = sched(program([f32('x', 3, 'input'), f32('t', 4, 'output'), f32('y', 3, 'output')], body));
    expect(s.check(fission, { loop: 'i', at: [1], names: ['i2'] })).toMatch(/cannot prove that the iterations touch different elements of 't'/);
  });
});

describe('cacheWrite and accumulateInto', () => {
  it('cacheWrite reads the cached value inline or as one decl', () => {
    for (const read of ['inline', { decl: 'r' }] as const) {
      const p = matmulProgram(3, 4, 5), s = sched(p);
      s.apply(cacheWrite, { acc: 'acc', loops: ['j'], local: 'row', read, place: 'start' });
      expect(text(s)).toContain(read === 'inline' ? 'decl y: f32 = tanh(row[j])' : 'decl r: f32 = row[j]');
      expectSame(p, s.program);
    }
  });
  it('accumulateInto accumulates a row cache in place (then the k loop can move outward)', () => {
    const body = [S.local('row', 'f32', 4), S.for('j', 4, [S.decl('acc', 'f32', E.f32(0)), S.for('k', 5, [
      S.assign('acc', E.binary('add', v('acc', 'f32'), load('x', E.add(E.mul(v('k'), E.i32(4)), v('j')), 'f32')))]), S.store('row', v('j'), v('acc', 'f32'))]),
    S.for('j2', 4, [S.store('y', v('j2'), load('row', v('j2'), 'f32'))])];
    const r = program([f32('x', 20, 'input'), f32('y', 4, 'output')], body), t = sched(r);
    t.apply(accumulateInto, { acc: 'acc' });
    expect(text(t)).toContain('row[j] = row[j] + x[k * 4 + j]');
    expectSame(r, t.program);
    expect(t.check(reorder, { loops: ['k', 'j'] })).toMatch(/not one perfect nest/);
    t.apply(fission, { loop: 'j', at: [1], names: ['j1'] });
    t.apply(reorder, { loops: ['k', 'j1'] });
    expect(text(t)).toMatch(/for k in 0..5 \{\n {4}for j1 in 0..4 \{\n {6}row\[j1\] = row\[j1\] \+ x\[k \* 4 \+ j1\]/);
    expectSame(r, t.program);
  });
  it('accumulateInto refuses an accumulator stored into a buffer', () => {
    expect(sched(matmulProgram(2, 2, 2)).check(accumulateInto, { acc: 'acc' })).toMatch(/does not store it/);
  });
});

describe('cacheRead, hoist and pack', () => {
  it('cacheRead refuses a value that depends on the outer loop', () => {
    const p = matmulProgram(4, 6, 3), s = sched(p);
    s.apply(reorder, { loops: ['j', 'i'] });
    expect(s.check(cacheRead, { outer: 'j', inner: 'i', value: 'acc', local: 'L', fill: 'f', at: 'j' })).toMatch(/'acc' is assigned in the loop/);
    s.apply(split, { loop: 'i', factor: 2, outer: 'i0', inner: 'i1' });
    expect(s.check(cacheRead, { outer: 'i1', inner: 'k', value: 'va', local: 'L', fill: 'f', at: 'j' })).toMatch(/'va' depends on 'i1', which changes in loop 'i1'/);
  });
  it('hoist moves only what does not change in the loop', () => {
    const p = matmulProgram(4, 6, 3), s = sched(p);
    expect(s.check(hoist, { loop: 'k' })).toMatch(/no invariant decl/);
  });
  it('pack refuses values that the nest writes', () => {
    const body = [S.for('i', 4, [S.local('L', 'f32', 2), S.for('f', 2, [S.decl('w', 'f32', load('y', v('f'), 'f32')), S.store('L', v('f'), v('w', 'f32'))]),
      S.store('y', v('i'), load('L', E.i32(1), 'f32'))])];
    const s = sched(program([f32('y', 4, 'output')], body));
    expect(s.check(pack, { fill: 'f', over: ['i'], buffer: 'P', names: ['a', 'b'] })).toMatch(/reads? 'y', which the nest writes/);
  });
});

describe('liftLocal, shared decls in cacheRead, and atomic attempts', () => {
  it('liftLocal gives each iteration its own slice of one array outside the loop', () => {
    const body = [S.for('q', 3, [S.local('R', 'f32', 2), S.for('r', 2, [S.store('R', v('r'), load('x', E.add(E.mul(v('q'), E.i32(2)), v('r')), 'f32'))]),
      S.for('r2', 2, [S.store('y', E.add(E.mul(v('q'), E.i32(2)), v('r2')), E.binary('mul', load('R', v('r2'), 'f32'), E.f32(2)))])])];
    const p = program([f32('x', 6, 'input'), f32('y', 6, 'output')], body), s = sched(p);
    s.apply(liftLocal, { local: 'R', loop: 'q', place: 'before', name: 'RR' });
    expect(text(s)).toMatch(/\n {2}local RR: f32\[6\] register\n {2}for q in 0..3 \{\n {4}for r in 0..2 \{\n {6}RR\[q \* 2 \+ r\] = /);
    expectSame(p, s.program);
    expect(s.check(liftLocal, { local: 'R', loop: 'q', place: 'before' })).toMatch(/not declared directly/);
  });
  it('cacheRead computes again a decl the rest of the loop shares with the cached value', () => {
    // va and vb both read t = k*2 (as a gather index would be shared)
    const [i, j, k] = [v('i'), v('j'), v('k')];
    const body = [S.for('i', 4, [S.for('j', 4, [S.decl('acc', 'f32', E.f32(0)), S.for('k', 3, [
      S.decl('t', 'i32', E.mul(k, E.i32(2))),
      S.decl('va', 'f32', load('a', E.add(E.mul(i, E.i32(6)), v('t')), 'f32')),
      S.decl('vb', 'f32', load('b', E.add(E.mul(v('t'), E.i32(4)), j), 'f32')),
      S.assign('acc', E.binary('add', v('acc', 'f32'), E.binary('mul', v('va', 'f32'), v('vb', 'f32'))))]),
    S.store('out', E.add(E.mul(i, E.i32(4)), j), v('acc', 'f32'))])])];
    const p = program([f32('a', 24, 'input'), f32('b', 24, 'input'), f32('out', 16, 'output')], body), s = sched(p);
    s.apply(cacheWrite, { acc: 'acc', loops: ['i', 'j'], local: 'A', read: 'inline', place: 'before' });
    s.apply(fission, { loop: 'j', at: [1, 2], names: ['j1', 'j2'] });
    s.apply(fission, { loop: 'i', at: [1, 2], names: ['i1', 'i2'] });
    s.apply(reorder, { loops: ['k', 'i1', 'j1'] });
    s.apply(cacheRead, { outer: 'i1', inner: 'j1', value: 'vb', local: 'B', fill: 'f', at: 'k' });
    expect(text(s)).toMatch(/for f in 0..4 \{\n\s+decl t\d+: i32 = k \* 2\n\s+decl vb: f32 = b\[t\d+ \* 4 \+ f\]/);
    expect(text(s)).toContain('decl t: i32 = k * 2');
    expectSame(p, s.program);
  });
  it('an attempt that fails part way leaves the kernel as it was and reports no step', () => {
    const p = matmulProgram(4, 6, 3), seen: string[] = [];
    const s = new Schedule(p, 0, (name) => seen.push(name));
    expect(s.attempt(() => {
      s.apply(split, { loop: 'i', factor: 2, outer: 'io', inner: 'ii' });
      s.apply(split, { loop: 'j', factor: 4, outer: 'jo', inner: 'ji' });
    })).toBe(false);
    expect(s.program).toBe(p);
    expect(seen).toEqual([]);
    expect(s.attempt(() => s.apply(split, { loop: 'i', factor: 2, outer: 'io', inner: 'ii' }))).toBe(true);
    expect(seen).toEqual(['split']);
  });
});
