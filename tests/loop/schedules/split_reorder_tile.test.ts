// split, reorder and tile: verified and bit-exact on a matmul nest; reorder refuses to reorder a reduction.
import { describe, expect, it } from 'vitest';
import { E, S } from '../../../codegen/loop/ir.js';
import { reorder, split, tile } from '../../../codegen/loop/schedules/index.js';
import { expectSame, f32, load, matmulProgram, program, sched, text, v } from './helpers.js';

describe('split', () => {
  it('splits a loop into outer x inner with the same iterations', () => {
    const p = matmulProgram(6, 8, 5), s = sched(p);
    s.apply(split, { loop: 'i', factor: 3, outer: 'io', inner: 'ii' });
    expect(text(s)).toContain('for io in 0..2 {\n    for ii in 0..3 {');
    expectSame(p, s.program);
  });
  it('refuses a factor that does not divide the extent, naming the loop', () => {
    expect(() => sched(matmulProgram(6, 8, 5)).apply(split, { loop: 'j', factor: 3, outer: 'a', inner: 'b' })).toThrow(/split on kernel k0: factor 3 does not divide loop 'j' of 8 iterations/);
    expect(() => sched(matmulProgram(6, 8, 5)).apply(split, { loop: 'q', factor: 2, outer: 'a', inner: 'b' })).toThrow(/no loop 'q'/);
  });
});

describe('reorder', () => {
  it('interchanges the loops over output rows and columns', () => {
    const p = matmulProgram(4, 6, 3), s = sched(p);
    s.apply(reorder, { loops: ['j', 'i'] });
    expect(text(s)).toMatch(/for j in 0..6 \{\n {4}for i in 0..4/);
    expectSame(p, s.program);
  });
  it('moves the loop an accumulator is indexed by, but keeps the order of the loops it sums over', () => {
    // y[i] += x[i, j] over i, j: j outside i keeps each sum's order; y[0] += x[i, j] sums over both loops
    const sum = (idx: ReturnType<typeof E.i32>) => program([f32('x', 12, 'input'), f32('y', 3, 'output')], [S.for('i', 3, [S.for('j', 4, [
      S.store('y', idx, E.binary('add', load('y', idx, 'f32'), load('x', E.add(E.mul(v('i'), E.i32(4)), v('j')), 'f32')))])])]);
    const rows = sum(v('i')), s = sched(rows);
    s.apply(reorder, { loops: ['j', 'i'] });
    expectSame(rows, s.program);
    expect(sched(sum(E.i32(0))).check(reorder, { loops: ['j', 'i'] })).toMatch(/loops i, j accumulate into 'y' and must keep their order/);
    expect(sched(rows).check(reorder, { loops: ['i', 'k'] })).toMatch(/no loop 'k'/);
  });
  it('refuses a nest that accumulates into a scalar declared outside it', () => {
    const body = [S.decl('s', 'f32', E.f32(0)), S.for('i', 3, [S.for('j', 4, [S.assign('s', E.binary('add', v('s', 'f32'), load('x', E.add(E.mul(v('i'), E.i32(4)), v('j')), 'f32')))])]),
      S.store('y', E.i32(0), v('s', 'f32'))];
    const s = sched(program([f32('x', 12, 'input'), f32('y', 1, 'output')], body));
    expect(s.check(reorder, { loops: ['j', 'i'] })).toMatch(/assigns 's', declared outside it/);
  });
  it('refuses when the writes of two iterations may meet', () => {
    // y[i + j] += x[i, j]: the anti-diagonals are sums whose order a reorder would change
    const idx = E.add(v('i'), v('j'));
    const body = [S.for('i', 3, [S.for('j', 3, [S.store('y', idx, E.binary('add', load('y', idx, 'f32'), load('x', E.add(E.mul(v('i'), E.i32(3)), v('j')), 'f32')))])])];
    const s = sched(program([f32('x', 9, 'input'), f32('y', 5, 'output')], body));
    expect(s.check(reorder, { loops: ['j', 'i'] })).toMatch(/cannot prove/);
  });
});

describe('tile', () => {
  it('tiles rows and columns (column tiles outside, as the CPU matmul orders them)', () => {
    const p = matmulProgram(8, 12, 5), s = sched(p);
    s.apply(tile, { loops: ['i', 'j'], factors: [4, 6], outer: ['it', 'jt'], inner: ['m', 'c'], order: ['jt', 'it', 'm', 'c'] });
    expect(text(s)).toMatch(/for jt in 0..2 \{\n {4}for it in 0..2 \{\n {6}for m in 0..4 \{\n {8}for c in 0..6 \{/);
    expectSame(p, s.program);
  });
  it('says which step fails', () => {
    expect(sched(matmulProgram(8, 12, 5)).check(tile, { loops: ['i', 'j'], factors: [3, 6], outer: ['a', 'b'], inner: ['c', 'd'] })).toMatch(/^split: factor 3 does not divide/);
  });
});
