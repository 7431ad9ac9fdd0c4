// analysis.ts's independentIterations (parallel, bind's top-level launches, gpu_grid, the llvm renderer's outlined
// chunks): hand-written races on a top-level loop are refused (two iterations storing one element, one reading what
// another writes), lowering's nests (a matmul, a transposed store, a reshape's decoded digits) still accepted.
import { describe, expect, it } from 'vitest';
import { independentIterations, pureDecls } from '../../codegen/loop/analysis.js';
import { E, S, type Stmt } from '../../codegen/loop/ir.js';
import { bind, parallel } from '../../codegen/loop/schedules/index.js';
import { expectSame, f32, load, matmulProgram, program, sched, v } from './schedules/helpers.js';

const i32 = E.i32;
const top = (body: Stmt[]) => independentIterations(body[body.length - 1] as Extract<Stmt, { k: 'for' }>, pureDecls(body), new Set());

describe('independentIterations', () => {
  it('refuses iterations that store one element or read what another writes', () => {
    const x = (idx: ReturnType<typeof v>) => load('x', idx, 'f32');
    // y[t] for every b: all iterations of b store the same 8 elements
    expect(top([S.for('b', 4, [S.for('t', 8, [S.store('y', v('t'), x(E.add(E.mul(v('b'), i32(8)), v('t'))))])])])).toBe(false);
    // y[0] = y[0] + x[i]
    expect(top([S.for('i', 8, [S.store('y', i32(0), E.binary('add', load('y', i32(0), 'f32'), x(v('i'))))])])).toBe(false);
    // y[i] = y[i + 1]: iteration i reads what iteration i + 1 writes
    expect(top([S.for('i', 8, [S.store('y', v('i'), load('y', E.add(v('i'), i32(1)), 'f32'))])])).toBe(false);
    // y[i*4 + j] for j in 0..8: rows overlap (iteration i's j = 4..7 are iteration i + 1's j = 0..3)
    expect(top([S.for('i', 4, [S.for('j', 8, [S.store('y', E.add(E.mul(v('i'), i32(4)), v('j')), x(v('j')))])])])).toBe(false);
    // through a decl: k = i // 1 * 0 is affine 0
    expect(top([S.for('i', 4, [S.decl('k', 'i32', E.mul(v('i'), i32(0))), S.store('y', v('k'), x(v('i')))])])).toBe(false);
  });

  it('accepts lowering\'s nests: one element per outer index, in place, transposed, or decoded from a flat index', () => {
    const x = (idx: ReturnType<typeof v>) => load('x', idx, 'f32');
    const ij = E.add(E.mul(v('i'), i32(8)), v('j')), ji = E.add(E.mul(v('j'), i32(4)), v('i'));
    expect(top(matmulProgram(4, 8, 3).kernels[0]!.body as Stmt[])).toBe(true);
    expect(top([S.for('i', 4, [S.for('j', 8, [S.store('y', ij, E.binary('add', load('y', ij, 'f32'), x(ij)))])])])).toBe(true);
    expect(top([S.for('i', 4, [S.for('j', 8, [S.store('y', ji, x(ij))])])])).toBe(true);
    // a softmax-like row: stored in one inner loop, read back in another (slab i*8 + 0..7)
    expect(top([S.for('i', 4, [S.for('j', 8, [S.store('y', ij, x(ij))]), S.for('r', 8, [
      S.store('y', E.add(E.mul(v('i'), i32(8)), v('r')), E.unary('exp', load('y', E.add(E.mul(v('i'), i32(8)), v('r')), 'f32')))])])])).toBe(true);
    // a reshape's round trip: digits of the flat index f (not affine: trusted as lowering's)
    expect(top([S.for('f', 32, [S.decl('a', 'i32', E.idiv(v('f'), 8)), S.decl('b', 'i32', E.mod(v('f'), 8)),
      S.store('y', E.add(E.mul(v('b'), i32(4)), v('a')), x(v('f')))])])).toBe(true);
  });
});

describe('a racy top-level nest', () => {
  // for b in 0..4 { for t in 0..8 { y[t] = x[b*8 + t] } }: every block stores y[0..8]
  const racy = () => program([f32('x', 32, 'input'), f32('y', 8, 'output')],
    [S.for('b', 4, [S.for('t', 8, [S.store('y', v('t'), load('x', E.add(E.mul(v('b'), i32(8)), v('t')), 'f32'))])])]);

  it('is refused by bind (its block and thread loop) and by parallel', () => {
    expect(sched(racy()).check(bind, { blocks: ['b'], threads: ['t'] })).toMatch(/loop 'b': cannot prove that its iterations touch different elements of 'y'/);
    expect(sched(racy()).check(parallel, { loops: ['b'] })).toMatch(/loop 'b': its iterations share state/);
  });

  it('while its race-free twin (y[b*8 + t]) binds and runs bit for bit in both loop orders', () => {
    const ok = program([f32('x', 32, 'input'), f32('y', 32, 'output')],
      [S.for('b', 4, [S.for('t', 8, [S.store('y', E.add(E.mul(v('b'), i32(8)), v('t')), load('x', E.add(E.mul(v('b'), i32(8)), v('t')), 'f32'))])])]);
    const s = sched(ok);
    s.apply(bind, { blocks: ['b'], threads: ['t'] });
    expectSame(ok, s.program);
  });
});
