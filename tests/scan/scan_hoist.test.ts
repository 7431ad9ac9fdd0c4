// Statements of a scan step that compute the same at every step (packed weight panels) run once before the time loop.
import { describe, expect, it } from 'vitest';
import { E, S } from '../../codegen/loop/ir.js';
import { invariant } from '../../codegen/loop/scan.js';
import { walkStmts } from '../../codegen/loop/visit.js';
import { randomBindings } from '../ir/helpers.js';
import { runBoth } from '../passes/differential.js';
import { type Case, caseGraph, lstmStep } from './graphs.js';

const f32 = (...shape: number[]) => ({ dtype: 'float32' as const, shape });
const copy = (dst: string, src: string, idx = E.v('i')) => S.for('i', 4, [S.store(dst, idx, E.load(src, E.v('i'), 'f32'))]);

describe('invariant statements of a scan step', () => {
  it('moves a nest reading only buffers the step does not write, and nothing else', () => {
    const pack = copy('pack', 'w'), reads = copy('y', 'pack'), timed = copy('z', 'w', E.add(E.v('i'), E.v('t')));
    const twice = copy('q', 'w'), again = copy('q', 'x'), fromCarry = copy('c2', 'carry'), toCarry = copy('carry', 'y');
    const step = [pack, reads, timed, twice, again, fromCarry, toCarry];
    expect([...invariant(step)]).toEqual([pack]);
  });

  it('an LSTM big enough for packed panels: the packs leave the time loop, results bit for bit', () => {
    const c: Case = {
      name: 'lstm64', step: lstmStep, reverse: false,
      inputs: { h0: f32(16, 64), c0: f32(16, 64), xw: f32(3, 16, 256), u: f32(64, 256) },
      operands: (x) => [[x.h0!, x.c0!], [x.xw!], [x.u!]],
    };
    const g = caseGraph(c, false, true);
    const [inputs] = randomBindings(g, 5);
    const { compiled, diffs } = runBoth(g, Object.fromEntries(inputs), {});
    expect(diffs).toEqual([]);
    const scans = compiled.program.kernels.filter((k) => k.ops[0] === 'scan');
    expect(scans.length).toBe(2);
    let before = 0;
    for (const k of scans) {
      const loop = k.body.find((s) => s.k === 'for' && /_t$/.test(s.v));
      // nothing left in the time loop that could run once, and the weights' packed panels are built before it
      expect(loop && loop.k === 'for' ? invariant(loop.body).size : -1).toBe(0);
      walkStmts(k.body.filter((s) => s !== loop), (s) => { if (s.k === 'store' && /pack/.test(s.buf)) before++; });
    }
    expect(before).toBeGreaterThan(0);
  });
});
