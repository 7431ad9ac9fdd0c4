// What the schedule steps reuse between calls (so that scheduling stays fast) must not change a result: simplify's
// shared forms depend on the ranges of the variables, renumber's one-map renaming must equal the scoped one, a loop
// index must find what a search finds, and substitution must replace exactly the variables asked for.
import { describe, expect, it } from 'vitest';
import { E, type Expr, type Program, S, type Stmt } from '../../../codegen/loop/ir.js';
import { printExpr, printKernel } from '../../../codegen/loop/printer.js';
import { Schedule, dropUnitLoops, renumber } from '../../../codegen/loop/schedules/index.js';
import { findLoop, substStmts } from '../../../codegen/loop/schedules/loops.js';
import { simplify } from '../../../codegen/loop/simplify.js';
import { f32, program, v } from './helpers.js';

const { i32, add, mul, idiv } = E;

/** The value stored by the innermost statement of a one-nest kernel. */
function stored(p: Program): Expr {
  let s: Stmt = p.kernels[0]!.body[0]!;
  while (s.k === 'for') s = s.body[0]!;
  return (s as Extract<Stmt, { k: 'store' }>).value;
}

/** `for a in A { for b in B { y[a*B + b] = e } }` */
const nest = (A: number, B: number, e: Expr) =>
  program([f32('y', A * B, 'output')], [S.for('a', A, [S.for('b', B, [S.store('y', add(mul(v('a'), i32(B)), v('b')), e)])])]);

describe('simplify shares forms across calls only under the same ranges', () => {
  it('splits (a*8 + b) // 8 where b < 8, and keeps it where b may reach 8, in either order', () => {
    // one interned expression, simplified in nests where b ranges over 8 and over 16 values
    const e = E.cast('f32', idiv(add(mul(v('a'), i32(8)), v('b')), 8));
    for (const B of [8, 16, 8, 16]) {
      const out = printExpr(stored(simplify(nest(4, B, e))));
      expect(out).toBe(B === 8 ? 'f32(a)' : 'f32(a + b // 8)');
    }
  });
  it('depends on the range of a decl, not only on its name', () => {
    // decl d = b (range 0..B-1), then (a*8 + d) // 8
    const e = E.cast('f32', idiv(add(mul(v('a'), i32(8)), v('d')), 8));
    const withDecl = (B: number) => program([f32('y', 4 * B, 'output')], [S.for('a', 4, [S.for('b', B, [
      S.decl('d', 'i32', v('b')), S.store('y', add(mul(v('a'), i32(B)), v('b')), e)])])]);
    const value = (p: Program) => {
      const st = (p.kernels[0]!.body[0] as Extract<Stmt, { k: 'for' }>).body[0] as Extract<Stmt, { k: 'for' }>;
      return printExpr((st.body[1] as Extract<Stmt, { k: 'store' }>).value);
    };
    expect(value(simplify(withDecl(8)))).toBe('f32(a)');
    expect(value(simplify(withDecl(12)))).toBe('f32(a + d // 8)');
  });
});

/** The kernel's text after renumber. */
function renumbered(body: Stmt[]): string {
  const s = new Schedule(program([f32('x', 4, 'input'), f32('y', 16, 'output')], body), 0);
  s.apply(renumber, {});
  return printKernel(s.program.kernels[0]!);
}

describe('renumber', () => {
  it('renames every name in print order, its uses with it', () => {
    const body = [S.for('o7', 2, [S.local('row3', 'f32', 2), S.for('m1', 2, [
      S.decl('v9', 'f32', E.load('x', add(mul(v('o7'), i32(2)), v('m1')), 'f32')),
      S.store('row3', v('m1'), v('v9', 'f32')),
      S.store('y', add(mul(v('o7'), i32(2)), v('m1')), E.load('row3', v('m1'), 'f32')),
    ])])];
    const want = [S.for('o0', 2, [S.local('row1', 'f32', 2), S.for('m2', 2, [
      S.decl('v3', 'f32', E.load('x', add(mul(v('o0'), i32(2)), v('m2')), 'f32')),
      S.store('row1', v('m2'), v('v3', 'f32')),
      S.store('y', add(mul(v('o0'), i32(2)), v('m2')), E.load('row1', v('m2'), 'f32')),
    ])])];
    expect(renumbered(body)).toBe(printKernel({ name: 'k0', ops: [], body: want }));
  });
  it('resolves a name bound twice in each of its scopes', () => {
    // two loops named i, and a decl named like the buffer x: each use takes the innermost binding in scope
    const body = [
      S.for('i', 2, [S.store('y', v('i'), E.load('x', v('i'), 'f32'))]),
      S.for('i', 2, [S.decl('x', 'i32', v('i')), S.store('y', add(v('x'), i32(4)), E.cast('f32', v('i')))]),
    ];
    const want = [
      S.for('i0', 2, [S.store('y', v('i0'), E.load('x', v('i0'), 'f32'))]),
      S.for('i1', 2, [S.decl('x2', 'i32', v('i1')), S.store('y', add(v('x2'), i32(4)), E.cast('f32', v('i1')))]),
    ];
    expect(renumbered(body)).toBe(printKernel({ name: 'k0', ops: [], body: want }));
  });
});

describe('findLoop', () => {
  it('finds the first loop of a name in pre-order, on the first search of a list and on later ones', () => {
    const inner = S.for('y', 2, []), outer = S.for('y', 3, []);
    const body = [S.for('x', 2, [inner]), outer, S.for('z', 2, [S.for('w', 2, [])])];
    for (let n = 0; n < 3; n++) {
      expect(findLoop(body, 'y')).toBe(inner);
      expect(findLoop(body, 'w')?.extent).toBe(2);
      expect(findLoop(body, 'q')).toBeUndefined();
    }
  });
});

describe('substitution', () => {
  it('replaces only the variables asked for, and keeps the statements that read none', () => {
    const keep = S.store('y', v('c'), E.f32(1));
    const body = [keep, S.for('b', 2, [S.store('y', add(v('a'), v('b')), E.cast('f32', v('a')))])];
    const out = substStmts(body, new Map([['a', mul(v('o'), i32(4))]]));
    expect(out[0]).toBe(keep);
    const st = (out[1] as Extract<Stmt, { k: 'for' }>).body[0] as Extract<Stmt, { k: 'store' }>;
    expect(printExpr(st.idx)).toBe('o * 4 + b');
    expect(printExpr(st.value)).toBe('f32(o * 4)');
  });
  it('drops nested unit loops, each variable 0 inside its own loop', () => {
    const body = [S.for('a', 1, [S.for('b', 1, [S.for('c', 3, [S.store('y', E.binary('add', E.binary('add', v('a'), v('b')), v('c')), E.f32(0))])])]), S.for('a', 2, [S.store('y', v('a'), E.f32(1))])];
    const s = new Schedule(program([f32('y', 4, 'output')], body), 0);
    s.apply(dropUnitLoops, {});
    const [first, second] = s.program.kernels[0]!.body as Extract<Stmt, { k: 'for' }>[];
    expect(first!.v).toBe('c');
    expect(printExpr((first!.body[0] as Extract<Stmt, { k: 'store' }>).idx)).toBe('0 + 0 + c');
    expect(second).toBe(body[1]); // the loop of two iterations is kept as it was
  });
});
