// memplan's updateInPlace on small loop programs: which new values are written into their param, and that the
// rewritten program equals the original on the loop interpreter in both loop orders.
import { describe, expect, it } from 'vitest';
import { E, type Expr, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { updateInPlace } from '../../codegen/loop/memplan.js';

const i = E.v('i'), j = E.v('j');
const p = (idx: Expr = i) => E.load('p', idx, 'f32');
const add = (a: Expr, b: Expr) => E.binary('add', a, b);
/** The new value t = p + 1 (p read at idx) stored at t[at], over a parallel loop of n (run reversed too). */
const writer = (idx: Expr = i, n = 4, at: Expr = i): Stmt => S.for('i', n, [S.store('t', at, add(p(idx), E.f32(1)))], 'parallel');
/** A reader of the param's old value (reversed) into output o. */
const reader = (extra?: Expr): Stmt => S.for('j', 4, [S.store('o', j, add(p(E.binary('sub', E.i32(3), j)), extra ?? E.f32(0)))], 'parallel');

function program(kernels: Stmt[][]): Program {
  return {
    name: 'step',
    buffers: [{ name: 'p', dtype: 'float32', size: 4, kind: 'param' }, { name: 't', dtype: 'float32', size: 4, kind: 'temp' }, { name: 'o', dtype: 'float32', size: 4, kind: 'output' }],
    kernels: kernels.map((body, k) => ({ name: `k${k}`, ops: ['add'], body })),
    inputs: [],
    params: [{ name: 'w', buffer: 'p' }],
    outputs: [{ name: 'o', buffer: 'o' }],
    updates: [{ name: 'w', buffer: 't' }],
  };
}

const CASES: [string, Stmt[][], boolean][] = [
  ['each element read and written by one iteration, nothing later reads the param', [[reader(), writer()]], true],
  ['a later reader in the same kernel: the writer moves after it', [[writer(), reader()]], true],
  ['a later reader in another kernel', [[writer()], [reader()]], false],
  ['a later reader of the new value too (the writer cannot move)', [[writer(), reader(E.load('t', j, 'f32'))]], false],
  ['the writer reads a neighbour of the element it writes', [[writer(E.mod(E.binary('add', i, E.i32(1)), 4))]], false],
  ['more iterations than elements (one element written twice)', [[writer(E.mod(i, 4), 8, E.mod(i, 4))]], false],
];

describe('updateInPlace', () => {
  it.each(CASES)('%s', (_, kernels, inPlace) => {
    const before = program(kernels), after = updateInPlace(before);
    expect(after.updates[0]!.buffer).toBe(inPlace ? 'p' : 't');
    expect(after.buffers.some((b) => b.name === 't')).toBe(!inPlace);
    const w = Float32Array.from([1, 2, 3, 4]);
    const want = runProgram(before, {}, { w });
    for (const reverse of [false, true]) {
      const got = runProgram(after, {}, { w }, { reverse });
      expect(got.outputs.get('o')).toEqual(want.outputs.get('o'));
      expect(got.updates.get('w')).toEqual(want.updates.get('w'));
    }
  });
});
