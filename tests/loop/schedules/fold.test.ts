// fold loops: the schedule marks a serial reduction whose values folded in have a vector form on the target (llvm only);
// the mark prints, verifies (shape), keeps results, shows in --dump-after schedule:fold, and the llvm renderer refuses
// a fold loop it cannot render instead of deciding again.
import { describe, expect, it } from 'vitest';
import { E, type Program, S, type Stmt } from '../../../codegen/loop/ir.js';
import { DEFAULT_CAPS } from '../../../codegen/loop/schedule.js';
import { LLVM_CAPS } from '../../../codegen/llvm/target.js';
import { renderLlvm } from '../../../codegen/llvm/render.js';
import { layoutModule } from '../../../codegen/loop/layout.js';
import { planMemory } from '../../../codegen/loop/memplan.js';
import { verifyProgram } from '../../../codegen/loop/verifier.js';
import { fold } from '../../../codegen/loop/schedules/index.js';
import { setKinds } from '../../../codegen/loop/schedules/kinds.js';
import { parseGraph } from '../../../ir/parser.js';
import { irAfter, runPipeline } from '../../../driver/pipeline.js';
import { expectSame, f32, load, program, sched, text, v } from './helpers.js';

/** `s = 0; for i { [decls]; s = s + value }; y[0] = s` over x[n]. */
function sum(n: number, value = load('x', v('i'), 'f32'), decls: Stmt[] = []): Program {
  return program([f32('x', n, 'input'), f32('y', 1, 'output')], [S.decl('s', 'f32', E.f32(0)),
    S.for('i', n, [...decls, S.assign('s', E.binary('add', v('s', 'f32'), value))]), S.store('y', E.i32(0), v('s', 'f32'))]);
}

const SOFTMAX = parseGraph(`graph @softmax {
  %0 = input {name="x"} : f32[4,8]
  %1 = reduce_max %0 {axes=[1], keepdims=true} : f32[4,1]
  %2 = broadcast %1 {shape=[4, 8]} : f32[4,8]
  %3 = sub %0, %2 : f32[4,8]
  %4 = exp %3 : f32[4,8]
  %5 = reduce_sum %4 {axes=[1], keepdims=true} : f32[4,1]
  %6 = broadcast %5 {shape=[4, 8]} : f32[4,8]
  %7 = div %4, %6 : f32[4,8]
  output "y" = %7
}`);

describe('the fold primitive', () => {
  it('marks a sum whose values are contiguous loads, and keeps its result', () => {
    const p = sum(8, E.unary('exp', load('x', v('i'), 'f32'))), s = sched(p);
    s.apply(fold, { loops: ['i'], caps: LLVM_CAPS });
    expect(text(s)).toContain('for i in 0..8 fold {');
    expectSame(p, s.program);
  });

  it('refuses where the target or the loop has no fold form, saying why', () => {
    const check = (p: Program, caps = LLVM_CAPS) => sched(p).check(fold, { loops: ['i'], caps });
    expect(check(sum(8), DEFAULT_CAPS)).toMatch(/loop 'i': the target renders no fold loops/);
    expect(check(sum(200))).toMatch(/no vector form: its extent 200 is outside the target's 2\.\.128/);
    expect(check(sum(8, E.f32(1)))).toMatch(/no value it folds in differs from lane to lane/);
    // s = s * c + x[i]: the fold reads a decl of the loop (the same in every lane)
    const scaled = program([f32('x', 8, 'input'), f32('y', 1, 'output')], [S.decl('s', 'f32', E.f32(0)), S.for('i', 8, [S.decl('c', 'f32', E.f32(0.5)),
      S.assign('s', E.binary('add', E.binary('mul', v('s', 'f32'), v('c', 'f32')), load('x', v('i'), 'f32')))]), S.store('y', E.i32(0), v('s', 'f32'))]);
    expect(check(scaled)).toMatch(/the fold reads 'c', declared in the loop/);
    expect(check(program([f32('x', 8, 'input'), f32('y', 8, 'output')], [S.for('i', 8, [S.store('y', v('i'), load('x', v('i'), 'f32'))])])))
      .toMatch(/does not end in an assignment acc = f\(acc, \.\.\.\)/);
  });

  it('is a loop the verifier checks the shape of', () => {
    const p = sum(8), bad = { ...p, kernels: [{ ...p.kernels[0]!, body: setKinds(p.kernels[0]!.body, new Map([['i', 'fold']])) }] };
    expect(verifyProgram(bad)).toEqual([]);
    const store = program([f32('x', 8, 'input'), f32('y', 8, 'output')], [S.for('i', 8, [S.store('y', v('i'), load('x', v('i'), 'f32'))], 'fold')]);
    expect(verifyProgram(store).join('\n')).toMatch(/for i in 0..8 fold \{: not a fold loop: its body does not end in an assignment/);
  });
});

describe('the CPU kinds recipe', () => {
  it('makes the row reductions of a softmax fold loops for llvm, not for wasm, shown by --dump-after schedule:fold', () => {
    const llvm = runPipeline(SOFTMAX, { caps: LLVM_CAPS, verifyEach: true }).program;
    const folds = (p: Program) => p.kernels.flatMap((k) => JSON.stringify(k.body).match(/"kind":"fold"/g) ?? []).length;
    expect(folds(llvm)).toBe(2); // the max and the sum of each row
    expect(verifyProgram(llvm)).toEqual([]);
    expect(folds(runPipeline(SOFTMAX, {}).program)).toBe(0);
    expect(irAfter(SOFTMAX, 'schedule:fold', { caps: LLVM_CAPS })).toMatch(/# fold \(cpu-kinds\)\n[^]*for \w+ in 0..8 fold \{/);
  });

  it('leaves the llvm renderer nothing to decide: a fold loop with no vector form is an internal error', () => {
    const g = parseGraph(`graph @wide {
  %0 = input {name="x"} : f32[2,200]
  %1 = reduce_sum %0 {axes=[1], keepdims=true} : f32[2,1]
  output "y" = %1
}`);
    const p = runPipeline(g, { caps: { ...LLVM_CAPS, threads: 1 } }).program;
    expect(JSON.stringify(p)).not.toContain('"kind":"fold"'); // 200 lanes are more than a vector loop takes
    const inner = (ss: readonly Stmt[]): string[] => ss.flatMap((s) => (s.k !== 'for' ? [] : s.body.some((x) => x.k === 'for') ? inner(s.body) : [s.v]));
    const marked = { ...p, kernels: p.kernels.map((k) => ({ ...k, body: setKinds(k.body, new Map(inner(k.body).map((l) => [l, 'fold']))) })) };
    expect(verifyProgram(marked)).toEqual([]);
    const entries = [{ name: 'predict', program: marked, memory: planMemory(marked) }];
    expect(() => renderLlvm(entries, layoutModule(entries), 'm')).toThrow(/llvm: internal error: fold loop '\w+' cannot be rendered as one: .*extent 200/);
  });
});
