// Shared by the schedule primitive tests: small loop-IR programs, and a check that a scheduled program verifies
// and computes bit for bit what the unscheduled one computes (on the loop-IR interpreter, both loop orders).
import { expect } from 'vitest';
import { runProgram } from '../../../codegen/loop/interpreter.js';
import { type Buffer, E, type Kernel, type Program, S, type Stmt } from '../../../codegen/loop/ir.js';
import { printProgram } from '../../../codegen/loop/printer.js';
import { Schedule } from '../../../codegen/loop/schedules/index.js';
import { verifyProgram } from '../../../codegen/loop/verifier.js';
import { rng } from '../../passes/random_graphs.js';

export const { v, load } = E;
export const f32 = (name: string, size: number, kind: Buffer['kind']): Buffer => ({ name, dtype: 'float32', size, kind });

/** A one-kernel program over buffers (inputs, params and outputs bound by their own names). */
export function program(buffers: Buffer[], body: Stmt[]): Program {
  const of = (kind: Buffer['kind']) => buffers.filter((b) => b.kind === kind).map((b) => ({ name: b.name, buffer: b.name }));
  const kernels: Kernel[] = [{ name: 'k0', ops: [], body }];
  return { name: 'test', buffers, kernels, inputs: of('input'), params: of('param'), outputs: of('output'), updates: [] };
}

/** `y[i, j] = epilogue(sum_k a[i, k] * b[k, j])` as lowering writes it: i, j, then acc and the k loop. */
export function matmulProgram(M: number, N: number, K: number, epilogue = (acc: ReturnType<typeof E.v>) => E.unary('tanh', acc)): Program {
  const [i, j, k] = [v('i'), v('j'), v('k')];
  const body = [S.for('i', M, [S.for('j', N, [
    S.decl('acc', 'f32', E.f32(0)),
    S.for('k', K, [
      S.decl('va', 'f32', load('a', E.add(E.mul(i, E.i32(K)), k), 'f32')),
      S.decl('vb', 'f32', load('b', E.add(E.mul(k, E.i32(N)), j), 'f32')),
      S.assign('acc', E.binary('add', v('acc', 'f32'), E.binary('mul', v('va', 'f32'), v('vb', 'f32')))),
    ]),
    S.decl('y', 'f32', epilogue(v('acc', 'f32'))),
    S.store('out', E.add(E.mul(i, E.i32(N)), j), v('y', 'f32')),
  ])])];
  return program([f32('a', M * K, 'input'), f32('b', K * N, 'input'), f32('out', M * N, 'output')], body);
}

/** Random inputs for every input buffer of p. */
export function inputsOf(p: Program, seed = 1): Record<string, Float32Array> {
  const r = rng(seed);
  return Object.fromEntries(p.buffers.filter((b) => b.kind === 'input').map((b) => [b.name, Float32Array.from({ length: b.size }, () => 4 * r() - 2)]));
}

/** The scheduled program verifies and its outputs equal the original's bit for bit (also with loops reversed). */
export function expectSame(before: Program, after: Program): void {
  expect(verifyProgram(after), printProgram(after)).toEqual([]);
  const inputs = inputsOf(before);
  const want = runProgram(before, inputs, {}).outputs;
  for (const reverse of [false, true]) {
    const got = runProgram(after, inputs, {}, { reverse }).outputs;
    for (const [name, w] of want) expect(new Uint32Array(got.get(name)!.buffer), name).toEqual(new Uint32Array(w.buffer));
  }
}

/** A schedule of the program's only kernel. */
export function sched(p: Program): Schedule {
  return new Schedule(p, 0);
}

/** The kernel's statements as text (for structural assertions). */
export function text(s: Schedule): string {
  return printProgram(s.program).split('\n\n').slice(1).join('\n\n');
}
