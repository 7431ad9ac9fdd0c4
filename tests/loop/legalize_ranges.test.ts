// legalize with ranges: a floor division or remainder by a positive constant of a dividend ranges prove
// non-negative is the plain truncating division; any other dividend (negative somewhere, assigned, unknown) keeps the
// sign correction. Results against the loop interpreter before legalize, over every iteration.
import { describe, expect, it } from 'vitest';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { E, type Expr, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { legalize } from '../../codegen/loop/legalize.js';
import { printProgram } from '../../codegen/loop/printer.js';

const N = 9;
const i = E.v('i'), j = E.v('j');

/** y[i*3 + j] = f(i, j) over i < 9, j < 3, with a decl `d` = min(i*3 + j, 20) and an assigned `m` = i - 5. */
function program(f: (body: Stmt[]) => Expr): Program {
  const body: Stmt[] = [S.decl('d', 'i32', E.binary('min', E.add(E.mul(i, E.i32(3)), j), E.i32(20))), S.decl('m', 'i32', i), S.assign('m', E.add(E.v('m'), E.i32(-5)))];
  body.push(S.store('y', E.add(E.mul(i, E.i32(3)), j), f(body)));
  return {
    name: 'ranges', buffers: [{ name: 'y', dtype: 'int32', size: N * 3, kind: 'output' }],
    kernels: [{ name: 'k0', ops: [], body: [S.for('i', N, [S.for('j', 3, body)])] }],
    inputs: [], params: [], outputs: [{ name: 'y', buffer: 'y' }], updates: [],
  };
}

/** The program legalized, its results equal to the input's, and whether a sign correction (`< 0`) is left. */
function legalized(e: Expr): { text: string; corrected: boolean } {
  const p = program(() => e), q = legalize(p, { ieeeMinMax: false }), text = printProgram(q);
  expect([...runProgram(q, {}, {}).outputs.get('y')!], text).toEqual([...runProgram(p, {}, {}).outputs.get('y')!]);
  return { text, corrected: / < 0\b/.test(text) };
}

describe('legalize: floor division and remainder by ranges', () => {
  it.each<[string, Expr]>([
    ['a loop variable // 2', E.idiv(i, 2)],
    ['a loop variable % 4', E.mod(i, 4)],
    ['a sum of non-negative products // 4', E.idiv(E.add(E.mul(i, E.i32(3)), j), 4)],
    ['a never-assigned decl of a min // 8', E.idiv(E.v('d'), 8)],
    ['a never-assigned decl of a min % 5', E.mod(E.v('d'), 5)],
  ])('%s: plain truncating division', (_, e) => {
    const { text, corrected } = legalized(e);
    expect(corrected, text).toBe(false);
    expect(text).toMatch(/ \/ /);
  });

  it.each<[string, Expr]>([
    ['i - 3 // 2 (negative for i < 3)', E.idiv(E.add(i, E.i32(-3)), 2)],
    ['i - 3 % 2', E.mod(E.add(i, E.i32(-3)), 2)],
    ['an assigned decl // 2 (its init i is non-negative, its value i - 5 is not)', E.idiv(E.v('m'), 2)],
    ['an assigned decl % 3', E.mod(E.v('m'), 3)],
    ['j - i // 4', E.idiv(E.binary('sub', j, i), 4)],
  ])('%s: keeps the sign correction', (_, e) => {
    const { text, corrected } = legalized(e);
    expect(corrected, text).toBe(true);
  });
});
