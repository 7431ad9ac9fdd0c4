// The GPU primitives (fuse, addUnitLoop, expand, computeAt, bind, privatize): each verified and
// bit-exact on the loop interpreter (which runs block and thread loops in reverse too: a race detector), and each
// refusing, with its reason, where it would change a result.
import { describe, expect, it } from 'vitest';
import { E, S, type Stmt } from '../../../codegen/loop/ir.js';
import {
  addUnitLoop, bind, cacheWrite, computeAt, expand, fuse, privatize, split,
} from '../../../codegen/loop/schedules/index.js';
import { expectSame, f32, load, program, sched, text, v } from './helpers.js';

const i32 = E.i32;
const at2 = (i: string, j: string, n: number) => E.add(E.mul(v(i), i32(n)), v(j));
const add3 = (g: ReturnType<typeof v>, i: ReturnType<typeof v>, r: ReturnType<typeof v>) => E.add(E.add(E.mul(g, i32(12)), E.mul(i, i32(4))), r);

/** y[i, j] = exp(x[i, j]) * s for a 6 x 8 nest, s a scalar computed before it. */
function elementwise(): ReturnType<typeof program> {
  const body: Stmt[] = [S.decl('s', 'f32', load('w', i32(0), 'f32')), S.for('i', 6, [S.for('j', 8, [
    S.decl('x0', 'f32', load('x', at2('i', 'j', 8), 'f32')),
    S.store('y', at2('i', 'j', 8), E.binary('mul', E.unary('exp', v('x0', 'f32')), v('s', 'f32'))),
  ])])];
  return program([f32('x', 48, 'input'), f32('w', 1, 'input'), f32('y', 48, 'output')], body);
}

/**
 * p's kernel in a loop b of one iteration: bind analyses the stores of a loop in a block nest (a top-level loop it
 * trusts to be one of lowering's, which store one element per outer index, as analysis.ts does for gpu_grid).
 */
function inBlock(p: ReturnType<typeof program>): ReturnType<typeof program> {
  return { ...p, kernels: [{ ...p.kernels[0]!, body: [S.for('b', 1, [...p.kernels[0]!.body])] }] };
}

/** A grid of one launch: fuse i, j; split by 12 threads; the scalar computed in the launch; bind. */
function launch(s: ReturnType<typeof sched>): void {
  s.apply(fuse, { loops: ['i', 'j'], name: 'f' });
  s.apply(split, { loop: 'f', factor: 12, outer: 'g', inner: 't' });
  s.apply(computeAt, { decls: ['s'], loops: ['t'] });
  s.apply(bind, { blocks: ['g'], threads: ['t'] });
}

describe('fuse, split and bind: a grid of thread blocks', () => {
  it('decodes the old loop variables from the fused index, and runs bit for bit in both orders', () => {
    const p = elementwise(), s = sched(p);
    s.apply(fuse, { loops: ['i', 'j'], name: 'f' });
    expect(text(s)).toContain('for f in 0..48 {\n    decl i: i32 = f // 8 % 6\n    decl j: i32 = f % 8');
    expectSame(p, s.program);
    s.apply(split, { loop: 'f', factor: 12, outer: 'g', inner: 't' });
    s.apply(computeAt, { decls: ['s'], loops: ['t'] });
    expect(text(s)).toMatch(/^ {2}for g in 0..4 \{\n {4}for t in 0..12 \{\n {6}decl s: f32 = w\[0\]\n {6}decl i: i32 = \(g \* 12 \+ t\) \/\/ 8 % 6/m);
    expectSame(p, s.program);
    s.apply(bind, { blocks: ['g'], threads: ['t'] });
    expect(text(s)).toMatch(/for g in 0..4 block \{\n {4}for t in 0..12 thread \{/);
    expectSame(p, s.program);
  });
  it('fuse refuses loops that are not one perfect nest of serial loops', () => {
    const s = sched(elementwise());
    expect(s.check(fuse, { loops: ['j', 'i'] })).toMatch(/loops 'j' to 'i' are not perfectly nested/);
    expect(s.check(fuse, { loops: [] })).toMatch(/no loops to fuse/);
    launch(s);
    expect(s.check(fuse, { loops: ['g', 't'] })).toMatch(/only serial loops fuse/);
  });
  it('bind refuses blocks whose iterations write one element, accumulate, or share a scalar', () => {
    // y[i // 2] = x[i]: two iterations store one element (which value stays depends on the order)
    const pairs = program([f32('x', 8, 'input'), f32('y', 4, 'output')], [S.for('i', 8, [S.store('y', E.idiv(v('i'), 2), load('x', v('i'), 'f32'))])]);
    expect(sched(inBlock(pairs)).check(bind, { blocks: ['b', 'i'], threads: [] })).toMatch(/loop 'i': cannot prove that its iterations touch different elements of 'y' \(index i \/\/ 2\)/);
    // y[0] += x[i]
    const sum = program([f32('x', 8, 'input'), f32('y', 1, 'output')], [S.for('i', 8, [S.store('y', i32(0), E.binary('add', load('y', i32(0), 'f32'), load('x', v('i'), 'f32')))])]);
    expect(sched(inBlock(sum)).check(bind, { blocks: ['b', 'i'], threads: [] })).toMatch(/cannot prove that its iterations touch different elements of 'y'/);
    const acc = program([f32('x', 8, 'input'), f32('y', 1, 'output')], [S.decl('a', 'f32', E.f32(0)),
      S.for('i', 8, [S.assign('a', E.binary('add', v('a', 'f32'), load('x', v('i'), 'f32')))]), S.store('y', i32(0), v('a', 'f32'))]);
    expect(sched(inBlock(acc)).check(bind, { blocks: ['b', 'i'], threads: [] })).toMatch(/it assigns 'a', declared outside it/);
    // y[i] = y[i + 1]: each iteration reads what another writes
    const shift = program([f32('y', 9, 'output')], [S.for('i', 8, [S.store('y', v('i'), load('y', E.add(v('i'), i32(1)), 'f32'))])]);
    expect(sched(inBlock(shift)).check(bind, { blocks: ['b', 'i'], threads: [] })).toMatch(/cannot prove .* 'y' \(index i \+ 1, i\)/);
    expect(sched(elementwise()).check(bind, { blocks: ['j'], threads: [] })).toMatch(/loop 'j' is inside loop 'i', not at the top of the kernel or in block loops/);
  });
  it('a decoded index is injective only when its digits cover it', () => {
    // f // 8 % 3 drops the top of f in 0..48: the iterations f and f + 24 store one element
    const body = [S.for('f', 48, [S.decl('i', 'i32', E.mod(E.idiv(v('f'), 8), 3)), S.decl('j', 'i32', E.mod(v('f'), 8)),
      S.store('y', at2('i', 'j', 8), load('x', v('f'), 'f32'))])];
    const p = program([f32('x', 48, 'input'), f32('y', 24, 'output')], body);
    expect(sched(inBlock(p)).check(bind, { blocks: ['b', 'f'], threads: [] })).toMatch(/cannot prove that its iterations touch different elements of 'y'/);
  });
  it('bind takes a thread loop with a register array of its own (a row cached per iteration)', () => {
    // y[i, :] = x[i, :] - max(x[i, :]) through a row cache declared in the loop (as a softmax nest lowers)
    const body: Stmt[] = [S.for('g', 2, [S.for('i', 3, [S.local('row', 'f32', 4), S.for('r', 4, [S.store('row', v('r'), load('x', add3(v('g'), v('i'), v('r')), 'f32'))]),
      S.decl('m', 'f32', E.f32(-Infinity)), S.for('r2', 4, [S.assign('m', E.binary('max', v('m', 'f32'), load('row', v('r2'), 'f32')))]),
      S.for('r3', 4, [S.store('y', add3(v('g'), v('i'), v('r3')), E.binary('sub', load('row', v('r3'), 'f32'), v('m', 'f32')))])])])];
    const p = program([f32('x', 24, 'input'), f32('y', 24, 'output')], body), s = sched(p);
    s.apply(bind, { blocks: ['g'], threads: ['i'] });
    expectSame(p, s.program);
  });
  it('bind refuses a thread loop outside a block, nested threads, and too many threads', () => {
    const s = sched(elementwise());
    expect(s.check(bind, { blocks: [], threads: ['i'] })).toMatch(/loop 'i' is not inside a block loop/);
    expect(s.check(bind, { blocks: ['i'], threads: ['j'] })).toBeUndefined();
    const t = sched(elementwise());
    t.apply(split, { loop: 'j', factor: 4, outer: 'j0', inner: 'j1' });
    expect(t.check(bind, { blocks: ['i'], threads: ['j0', 'j1'] })).toMatch(/loops 'j0' and 'j1' nest \(threads are one axis\)/);
    const big = sched(program([f32('x', 4096, 'input'), f32('y', 4096, 'output')], [S.for('g', 2, [S.for('t', 2048, [
      S.store('y', at2('g', 't', 2048), load('x', at2('g', 't', 2048), 'f32'))])])]));
    expect(big.check(bind, { blocks: ['g'], threads: ['t'] })).toMatch(/2048 iterations, more than 1024 threads/);
  });
});

describe('addUnitLoop and computeAt: launches of one thread', () => {
  /** a whole-array sum, then an elementwise nest reading the scalar s too */
  function reduction(): ReturnType<typeof program> {
    const body: Stmt[] = [S.decl('s', 'f32', load('w', i32(0), 'f32')), S.decl('a', 'f32', E.f32(0)),
      S.for('k', 8, [S.assign('a', E.binary('add', v('a', 'f32'), load('x', v('k'), 'f32')))]),
      S.store('z', i32(0), E.binary('mul', v('a', 'f32'), v('s', 'f32'))),
      S.for('i', 8, [S.store('y', v('i'), E.binary('add', load('x', v('i'), 'f32'), v('s', 'f32')))])];
    return program([f32('x', 8, 'input'), f32('w', 1, 'input'), f32('y', 8, 'output'), f32('z', 1, 'output')], body);
  }
  it('wraps the reduction in one block of one thread; the scalar is computed in both launches', () => {
    const p = reduction(), s = sched(p);
    expect(s.check(addUnitLoop, { start: 1, count: 2, v: 't0' })).toMatch(/'a' is declared in the statements and used after them/);
    s.apply(addUnitLoop, { start: 1, count: 3, v: 't0' });
    s.apply(addUnitLoop, { start: 1, count: 1, v: 'g0' });
    s.apply(split, { loop: 'i', factor: 4, outer: 'g1', inner: 't1' });
    s.apply(computeAt, { decls: ['s'], loops: ['t0', 't1'] });
    expect(text(s)).not.toMatch(/^ {2}decl s/m);
    expect(text(s).match(/decl s: f32 = w\[0\]/g)).toHaveLength(2);
    s.apply(bind, { blocks: ['g0', 'g1'], threads: ['t0', 't1'] });
    expectSame(p, s.program);
  });
  it('computeAt keeps a decl still read outside the loops, and renames the copies', () => {
    const p = reduction(), s = sched(p);
    s.apply(computeAt, { decls: ['s'], loops: ['i'] });
    expect(text(s)).toMatch(/^ {2}decl s: f32 = w\[0\]/m);
    expect(text(s)).toMatch(/for i in 0..8 \{\n {4}decl s0: f32 = w\[0\]\n {4}y\[i\] = x\[i\] \+ s0/);
    expectSame(p, s.program);
  });
  it('computeAt refuses a copy that would load an element written in between, or read a scalar not yet computed', () => {
    // s = y[0] before a nest writing y: a copy in the nest would read the new value
    const body: Stmt[] = [S.decl('s', 'f32', load('y', i32(0), 'f32')), S.for('i', 4, [S.store('y', v('i'), v('s', 'f32'))])];
    const s = sched(program([f32('y', 4, 'param')], body));
    expect(s.check(computeAt, { decls: ['s'], loops: ['i'] })).toMatch(/'s' loads an array written between it and loop 'i'/);
    const once = sched(program([f32('y', 4, 'param')], [S.decl('s', 'f32', load('y', i32(0), 'f32')), S.for('i', 1, [S.store('y', v('i'), v('s', 'f32'))])]));
    expect(once.check(computeAt, { decls: ['s'], loops: ['i'] })).toBeUndefined();
    const late = sched(program([f32('x', 4, 'input'), f32('y', 4, 'output')], [S.for('i', 4, [S.decl('a', 'f32', load('x', v('i'), 'f32')),
      S.decl('b', 'f32', E.unary('exp', v('a', 'f32'))), S.store('y', v('i'), v('b', 'f32'))])]));
    expect(late.check(computeAt, { decls: ['b'], loops: ['i'] })).toMatch(/'b' reads 'a', which is not visible at the start of loop 'i'/);
    expect(late.check(computeAt, { decls: ['a', 'b'], loops: ['i'] })).toBeUndefined();
  });
});

describe('expand', () => {
  it('replaces a loop by copies of its body with fresh names, bit for bit', () => {
    const body: Stmt[] = [S.for('i', 4, [S.for('n', 3, [S.decl('x0', 'f32', load('x', at2('i', 'n', 3), 'f32')), S.store('y', at2('i', 'n', 3), E.unary('tanh', v('x0', 'f32')))])])];
    const p = program([f32('x', 12, 'input'), f32('y', 12, 'output')], body), s = sched(p);
    s.apply(expand, { loop: 'n' });
    expect(text(s)).not.toContain('for n');
    expect(text(s).match(/decl x\d+: f32 = x\[i \* 3( \+ \d)?\]/g)).toHaveLength(3);
    expectSame(p, s.program);
    expect(sched(program([f32('y', 100, 'output')], [S.for('i', 100, [S.store('y', v('i'), E.f32(1))])])).check(expand, { loop: 'i' })).toMatch(/100 iterations, more than 64 copies/);
  });
});

describe('privatize: a register tile per thread', () => {
  /** acc[t, m] over 4 threads x 2 rows: zeroed, summed over k, stored; each thread keeps its own slice */
  function tiles(): ReturnType<typeof program> {
    const row = (m: string) => E.add(E.mul(v('ti'), i32(2)), v(m));
    const body: Stmt[] = [S.for('g', 2, [
      S.for('ti', 4, [S.for('m', 2, [S.decl('acc', 'f32', E.f32(0)), S.for('k', 3, [
        S.assign('acc', E.binary('add', v('acc', 'f32'), load('x', E.add(E.mul(E.add(E.mul(v('g'), i32(8)), row('m')), i32(3)), v('k')), 'f32')))]),
      S.store('y', E.add(E.mul(v('g'), i32(8)), row('m')), v('acc', 'f32'))])])])];
    return program([f32('x', 48, 'input'), f32('y', 16, 'output')], body);
  }
  it('the accumulator becomes a slice of a register array in the block, then one slice per thread', () => {
    const p = tiles(), s = sched(p);
    s.apply(cacheWrite, { acc: 'acc', loops: ['ti', 'm'], local: 'C', read: 'inline', place: 'before' });
    s.apply(fuse, { loops: ['ti'], name: 't' });
    s.apply(bind, { blocks: ['g'], threads: ['t'] });
    expect(text(s)).toContain('local C: f32[8] register');
    expectSame(p, s.program);
    s.apply(privatize, { local: 'C' });
    expect(text(s)).toContain('local C: f32[2] register');
    expect(text(s)).toContain('C[m] = C[m] + x[');
    expectSame(p, s.program);
  });
  it('bind and privatize refuse an index that is not the thread\'s own slice', () => {
    // C[m*4 + t]: thread t's elements interleave with the others'; each thread's private copy would not see them
    const body: Stmt[] = [S.for('g', 1, [S.local('C', 'f32', 8), S.for('t', 4, [S.for('m', 2, [S.store('C', E.add(E.mul(v('m'), i32(4)), v('t')), E.f32(1))])]),
      S.for('u', 4, [S.for('n', 2, [S.store('y', E.add(E.mul(v('u'), i32(2)), v('n')), load('C', E.add(E.mul(v('u'), i32(2)), v('n')), 'f32'))])])])];
    const s = sched(program([f32('y', 8, 'output')], body));
    expect(s.check(bind, { blocks: ['g'], threads: ['t'] })).toMatch(/its index m \* 4 \+ t into register array 'C' is not the thread's own slice/);
    s.apply(bind, { blocks: ['g'], threads: ['u'] });
    expect(s.check(privatize, { local: 'C' })).toMatch(/'C' is used outside the thread loops of its block/);
  });
});
