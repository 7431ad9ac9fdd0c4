// rfactor: a reduction split into partial accumulators combined in a fixed order. It reassociates, so it is checked
// bit for bit where the arithmetic is exact (integers, max and min, floats whose partial sums are exact) and within
// a rounding tolerance on random floats; it refuses what is not such a reduction.
import { describe, expect, it } from 'vitest';
import { runProgram } from '../../../codegen/loop/interpreter.js';
import { type Buffer, E, type Program, S, type Scalar, type Stmt } from '../../../codegen/loop/ir.js';
import { verifyProgram } from '../../../codegen/loop/verifier.js';
import { bind, reorder, rfactor, split } from '../../../codegen/loop/schedules/index.js';
import type { TypedArray } from '../../../ir/types.js';
import { rng } from '../../passes/random_graphs.js';
import { load, program, sched, text, v } from './helpers.js';

const buf = (name: string, t: Scalar, size: number, kind: Buffer['kind']): Buffer => ({ name, dtype: t === 'f32' ? 'float32' : 'int32', size, kind });

/** y[i] = op over k of x[i, k] (rows of 24), the reduction's k loop split into ko x ki (ki of 4). */
function rows(t: Scalar, op: 'add' | 'mul' | 'max' | 'min', init: number): Program {
  const body: Stmt[] = [S.for('i', 3, [S.decl('acc', t, E.c(t, init)), S.for('k', 24, [
    S.decl('x0', t, load('x', E.add(E.mul(v('i'), E.i32(24)), v('k')), t)), S.assign('acc', E.binary(op, v('acc', t), v('x0', t)))]),
  S.store('y', v('i'), v('acc', t))])];
  const p = program([buf('x', t, 72, 'input'), buf('y', t, 3, 'output')], body), s = sched(p);
  s.apply(split, { loop: 'k', factor: 4, outer: 'ko', inner: 'ki' });
  return s.program;
}

function run(p: Program, x: TypedArray, reverse = false): TypedArray {
  expect(verifyProgram(p)).toEqual([]);
  return runProgram(p, { x }, {}, { reverse }).outputs.get('y')!;
}

/** The program rfactored over ki, the partials' loop moved outward (they are independent now). */
function factored(p: Program): Program {
  const s = sched(p);
  s.apply(rfactor, { acc: 'acc', loop: 'ki', local: 'P', init: 'p', combine: 'c' });
  s.apply(reorder, { loops: ['ki', 'ko'] });
  return s.program;
}

describe('rfactor', () => {
  it('splits a sum into partials combined in a fixed order', () => {
    const s = sched(rows('f32', 'add', 0));
    s.apply(rfactor, { acc: 'acc', loop: 'ki', local: 'P', init: 'p', combine: 'c' });
    expect(text(s)).toContain('local P: f32[4] register\n    for p in 0..4 {\n      P[p] = 0.0\n    }\n    decl acc: f32 = 0.0');
    expect(text(s)).toContain('P[ki] = P[ki] + x0');
    expect(text(s)).toContain('for c in 0..4 {\n      acc = acc + P[c]\n    }\n    y[i] = acc');
  });
  it('is exact on integers (wrapping add and mul), on max and min, and on floats whose sums are exact', () => {
    const r = rng(5);
    const ints = Int32Array.from({ length: 72 }, () => Math.floor(r() * 2 ** 32) - 2 ** 31);
    const small = Float32Array.from({ length: 72 }, () => Math.floor(r() * 200) - 100);
    const floats = Float32Array.from({ length: 72 }, () => (r() - 0.5) * 1e3);
    floats[5] = NaN;
    floats[30] = -0;
    for (const [t, op, init, x] of [['i32', 'add', 0, ints], ['i32', 'mul', 1, ints], ['i32', 'max', -2147483648, ints], ['i32', 'min', 2147483647, ints],
      ['f32', 'add', 0, small], ['f32', 'max', -Infinity, floats], ['f32', 'min', Infinity, floats]] as const) {
      const p = rows(t, op, init), q = factored(p);
      expect(run(q, x), `${t} ${op}`).toEqual(run(p, x));
    }
  });
  it('rounds a float sum differently, within a few ulps of the serial sum', () => {
    const r = rng(9);
    const x = Float32Array.from({ length: 72 }, () => 4 * r() - 2);
    const p = rows('f32', 'add', 0), want = run(p, x), got = run(factored(p), x);
    for (let i = 0; i < 3; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-5 * 24 * 2);
  });
  it('makes the iterations of the partials\' loop independent (what a parallel or GPU reduction needs)', () => {
    const body: Stmt[] = [S.decl('acc', 'i32', E.i32(0)), S.for('k', 24, [S.assign('acc', E.binary('add', v('acc', 'i32'), load('x', v('k'), 'i32')))]),
      S.store('y', E.i32(0), v('acc', 'i32'))];
    const p = program([buf('x', 'i32', 24, 'input'), buf('y', 'i32', 1, 'output')], body), s = sched(p);
    s.apply(split, { loop: 'k', factor: 4, outer: 'ko', inner: 'ki' });
    expect(s.check(reorder, { loops: ['ki', 'ko'] })).toMatch(/the nest assigns 'acc'/);
    s.apply(rfactor, { acc: 'acc', loop: 'ki', local: 'P', init: 'p', combine: 'c' });
    s.apply(reorder, { loops: ['ki', 'ko'] });
    expect(s.check(bind, { blocks: ['ki'], threads: [] })).toBeUndefined();
    const x = Int32Array.from({ length: 24 }, (_, i) => i * 7919 - 50000);
    expect(runProgram(s.program, { x }, {}).outputs.get('y')).toEqual(runProgram(p, { x }, {}).outputs.get('y'));
  });
  it('refuses what is not a reduction it can reassociate', () => {
    const check = (p: Program, loop = 'ki') => sched(p).check(rfactor, { acc: 'acc', loop, local: 'P', init: 'p', combine: 'c' });
    expect(check(rows('f32', 'add', 1))).toMatch(/'acc' starts at 1, not the identity of add/);
    expect(check(rows('f32', 'sub', 0))).toMatch(/not 'acc op x' for an associative op/);
    expect(check(rows('f32', 'add', 0), 'i')).toMatch(/loop 'i' is not in the loops after 'acc'/);
    expect(check(rows('f32', 'add', 0), 'ko')).toBeUndefined();
    // acc read inside the loops (a running value): partials would change what is read
    const body: Stmt[] = [S.decl('acc', 'f32', E.f32(0)), S.for('k', 8, [S.assign('acc', E.binary('add', v('acc', 'f32'), load('x', v('k'), 'f32'))),
      S.store('y', v('k'), v('acc', 'f32'))])];
    expect(sched(program([buf('x', 'f32', 8, 'input'), buf('y', 'f32', 8, 'output')], body)).check(rfactor, { acc: 'acc', loop: 'k', local: 'P', init: 'p', combine: 'c' }))
      .toMatch(/'acc' is read in the loops other than by its updates/);
  });
});
