// prepack.ts: a nest computing a temp from params alone runs once per init (a cache buffer under a flag) where the
// target's params change only at init; results stay those of the unscheduled program.
import { describe, expect, it } from 'vitest';
import { runProgram } from '../../../codegen/loop/interpreter.js';
import { E, S } from '../../../codegen/loop/ir.js';
import { LLVM_CAPS } from '../../../codegen/llvm/target.js';
import { schedule } from '../../../codegen/loop/schedules/index.js';
import { verifyProgram } from '../../../codegen/loop/verifier.js';
import { f32, inputsOf, load, program, v } from './helpers.js';

// w2[j] = w[j] * 2 (from the param alone, or with `input` from the input too), then y[i, j] = x[i, j] + w2[j]
const packThenUse = (input = false) => program([f32('x', 32, 'input'), f32('w', 8, 'param'), { name: 'w2', dtype: 'float32', size: 8, kind: 'temp' }, f32('y', 32, 'output')], [
  S.for('j', 8, [S.store('w2', v('j'), E.binary('mul', load('w', v('j'), 'f32'), input ? load('x', v('j'), 'f32') : E.f32(2)))]),
  S.for('i', 4, [S.for('j2', 8, [S.store('y', E.add(E.mul(v('i'), E.i32(8)), v('j2')), E.binary('add', load('x', E.add(E.mul(v('i'), E.i32(8)), v('j2')), 'f32'), load('w2', v('j2'), 'f32')))])]),
]);
const caps = { ...LLVM_CAPS, prepack: true };

describe('prepack', () => {
  it('a nest of params alone runs under its flag into a cache buffer, with the same results', () => {
    const p = packThenUse(), q = schedule(p, caps);
    expect(q.buffers.filter((b) => b.kind === 'cache').map((b) => b.name)).toEqual(['w2', 'packed_w2']);
    expect(q.kernels[0]!.body[0]).toMatchObject({ k: 'if', body: [{ k: 'for' }, { k: 'store', buf: 'packed_w2' }] });
    expect(verifyProgram(q)).toEqual([]);
    const inputs = inputsOf(p), params = { w: Float32Array.from({ length: 8 }, (_, i) => i - 3.5) };
    const want = runProgram(p, inputs, params).outputs.get('y')!;
    for (const reverse of [false, true]) expect(runProgram(q, inputs, params, { reverse }).outputs.get('y')).toEqual(want);
  });
  it('leaves a nest that reads an input, and targets whose params change (no prepack cap)', () => {
    expect(schedule(packThenUse(true), caps).buffers.some((b) => b.kind === 'cache')).toBe(false);
    expect(schedule(packThenUse(), LLVM_CAPS).buffers.some((b) => b.kind === 'cache')).toBe(false);
  });
});
