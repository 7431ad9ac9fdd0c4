// How scan loops are scheduled on CPUs: statements of a step that compute the same at every step (packed weight
// panels) run once before the time loop; the backward step's gate activations are computed in vector loops.
import { describe, expect, it } from 'vitest';
import { E, S } from '../../codegen/loop/ir.js';
import { invariant } from '../../codegen/loop/scan.js';
import { forEachExpr, stmtExprs, walkStmts } from '../../codegen/loop/visit.js';
import { LLVM_CAPS } from '../../codegen/llvm/target.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { runPipeline } from '../../driver/pipeline.js';
import { randomBindings } from '../ir/helpers.js';
import { runBoth } from '../passes/differential.js';
import { type Case, caseGraph, lstmStep } from './graphs.js';

const f32 = (...shape: number[]) => ({ dtype: 'float32' as const, shape });
/** An LSTM loop of 3 steps, batch rows and units. */
const lstm = (batch: number, units: number): Case => ({
  name: 'lstm', step: lstmStep, reverse: false,
  inputs: { h0: f32(batch, units), c0: f32(batch, units), xw: f32(3, batch, 4 * units), u: f32(units, 4 * units) },
  operands: (x) => [[x.h0!, x.c0!], [x.xw!], [x.u!]],
});
const copy = (dst: string, src: string, idx = E.v('i')) => S.for('i', 4, [S.store(dst, idx, E.load(src, E.v('i'), 'f32'))]);

describe('invariant statements of a scan step', () => {
  it('moves a nest reading only buffers the step does not write, and nothing else', () => {
    const pack = copy('pack', 'w'), reads = copy('y', 'pack'), timed = copy('z', 'w', E.add(E.v('i'), E.v('t')));
    const twice = copy('q', 'w'), again = copy('q', 'x'), fromCarry = copy('c2', 'carry'), toCarry = copy('carry', 'y');
    const step = [pack, reads, timed, twice, again, fromCarry, toCarry];
    expect([...invariant(step)]).toEqual([pack]);
  });

  it('an LSTM big enough for packed panels: the packs leave the time loop, results bit for bit', () => {
    const g = caseGraph(lstm(16, 64), false, true);
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
  it('the LSTM layer\'s size (batch 32, 128 units): every tanh and exp of the steps is in a vector loop', () => {
    // fused into the sum of the pads that makes the gates' gradient, the backward step's gates were scalar and
    // computed four times
    const g = caseGraph(lstm(32, 128), false, true);
    const scans = runPipeline(g, { caps: LLVM_CAPS }).program.kernels.filter((k) => k.ops[0] === 'scan');
    expect(scans.length).toBe(2);
    const scalar: string[] = [];
    for (const k of scans) {
      walkStmts(k.body, (s, loops) => {
        for (const e of stmtExprs(s)) forEachExpr(e, (x) => { if (x.k === 'unary' && (x.op === 'tanh' || x.op === 'exp') && !loops.some((l) => l.kind === 'vector')) scalar.push(`${k.name}: ${x.op}`); });
      });
    }
    expect(scalar).toEqual([]);
  });

  it('on wasm, every tanh and exp of the steps and every copy between steps (carries, saved values) is a vector loop', () => {
    const g = caseGraph(lstm(32, 128), false, true);
    const scans = runPipeline(g, { caps: WASM_CAPS }).program.kernels.filter((k) => k.ops[0] === 'scan');
    expect(scans.length).toBe(2);
    const scalar: string[] = [];
    let copies = 0;
    for (const k of scans) {
      walkStmts(k.body, (s, loops) => {
        const vector = loops.some((l) => l.kind === 'vector');
        for (const e of stmtExprs(s)) forEachExpr(e, (x) => { if (x.k === 'unary' && (x.op === 'tanh' || x.op === 'exp') && !vector) scalar.push(`${k.name}: ${x.op}`); });
        if (s.k === 'store' && /_cp\d+$/.test(loops.at(-1)?.v ?? '')) {
          copies++;
          if (!vector) scalar.push(`${k.name}: copy into ${s.buf}`);
        }
      });
    }
    expect(copies).toBeGreaterThan(8);
    expect(scalar).toEqual([]);
  });
});
