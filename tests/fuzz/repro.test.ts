// Every committed fuzz reproducer (tests/fuzz/repro/*.ir) on every target: the loop interpreter under each
// schedule, wasm, llvm and the emulated CUDA build, params updated in place, against the graph interpreter.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRepro } from '../../fuzz/repro.js';
import { type Case, SCHEDULES, type Schedule, type Target, makeCase, runCases } from '../../fuzz/targets.js';
import { hostCpu } from '../../codegen/llvm/target.js';
import { parseGraph } from '../../ir/parser.js';

const dir = path.join(import.meta.dirname, 'repro');
const files = readdirSync(dir).filter((f) => f.endsWith('.ir')).sort();
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-repro-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const WHERE: [Target, Schedule?][] = [...(Object.keys(SCHEDULES) as Schedule[]).map((s): [Target, Schedule] => ['loop', s]), ['wasm'], ['llvm'], ['cuda-emu']];

/** Each target's failure on a reproducer, one line each; a `freestanding-*.ir` also on llvm with the freestanding runtime. */
function failures(text: string, file = ''): string[] {
  const { graph, dataSeed } = parseRepro(text);
  const c = makeCase(dataSeed, graph, dataSeed);
  const where: [Target, Schedule?, boolean?][] = [...WHERE, ...(file.startsWith('freestanding-') ? [['llvm', undefined, true] as [Target, undefined, boolean]] : [])];
  return where.flatMap(([target, schedule, freestanding]) => {
    const [o] = runCases(target, [c], { schedule, workDir: work, timeoutMs: 60_000, freestanding });
    return o && o.kind !== 'approx' ? [`${target}${schedule ? ` (${schedule} schedule)` : ''}${freestanding ? ' (freestanding)' : ''}: ${o.kind}: ${o.message}`] : [];
  });
}

describe('fuzz reproducers on every target', () => {
  for (const f of files) it(f, () => expect(failures(readFileSync(path.join(dir, f), 'utf8'), f)).toEqual([]), 300_000);

  it('the runner: a graph with an in-place update, int32 and bool outputs runs right everywhere', () => {
    const text = `// data seed 5
graph @runner_check {
  %0 = input {name="x"} : f32[2,3]
  %1 = param {name="w"} : f32[2,3]
  %2 = param {name="frozen"} : f32[3]
  %3 = broadcast %2 {shape=[2, 3]} : f32[2,3]
  %4 = mul %0, %3 : f32[2,3]
  %5 = add %4, %1 : f32[2,3]
  %6 = gt %0, %1 : bool[2,3]
  %7 = argmax %5 {axis=1, keepdims=false} : i32[2]
  output "y" = %5
  output "b" = %6
  output "i" = %7
  update %1 = %5
}
`;
    expect(parseRepro(text).dataSeed).toBe(5);
    expect(failures(text)).toEqual([]);
  }, 300_000);

  it('the runner: an llvm mismatch that is right without contraction is approx; one that is not stays a mismatch', () => {
    // y = (x @ a) * 2^30: x1*a1j = (1 + 2^-12)^2 rounds to 1 + 2^-11, so with x0*a0j = -(1 + 2^-11) the sum is
    // 0 when each product and sum is rounded (the interpreter) and 2^-24 (times 2^30: 64) with a fused multiply-add
    const fma = parseGraph(`graph @fma {
  %0 = input {name="x"} : f32[1,2]
  %1 = input {name="a"} : f32[2,19]
  %2 = matmul %0, %1 : f32[1,19]
  %3 = const {value=1073741824} : f32[]
  %4 = broadcast %3 {shape=[1, 19]} : f32[1,19]
  %5 = mul %2, %4 : f32[1,19]
  output "y" = %5
}`);
    // a denormal input times 2^126: 0.085 in the interpreter, 0 where denormals are flushed (KILN_FUZZ_FTZ=1, as
    // model_main does; no FMA in it): a mismatch that compiling without contraction does not remove
    const flush = parseGraph(`graph @flush {
  %0 = input {name="x"} : f32[4]
  %1 = const {value=8.507059173023462e37} : f32[]
  %2 = broadcast %1 {shape=[4]} : f32[4]
  %3 = mul %0, %2 : f32[4]
  output "y" = %3
}`);
    const cases: Case[] = [
      { seed: 1, graph: fma, params: {}, inputs: { x: Float32Array.of(-(1 + 2 ** -11), 1 + 2 ** -12), a: Float32Array.from({ length: 38 }, (_, i) => (i < 19 ? 1 : 1 + 2 ** -12)) } },
      { seed: 2, graph: flush, params: {}, inputs: { x: Float32Array.of(1e-39, 1, 2, 3) } },
    ];
    process.env['KILN_FUZZ_FTZ'] = '1';
    let kinds;
    try {
      kinds = runCases('llvm', cases, { workDir: work, timeoutMs: 60_000 }).map((o) => o?.kind);
    } finally {
      delete process.env['KILN_FUZZ_FTZ'];
    }
    // x86-64-v2 has no FMA: fmuladd is fmul and fadd there
    expect(kinds).toEqual([hostCpu() === 'x86-64-v2' ? undefined : 'approx', 'mismatch']);
  }, 300_000);

  it('the runner: an llvm mismatch that is right with exact math (the vector expf/logf within a few ulp, then a cancellation) is approx', () => {
    // x - mean(x) of four values mathematically equal: 0 from llvm's vector math, -1.18e-6 from the interpreter's
    // rounding noise; compiled with exactMath (and without contraction) it matches. The flush case above stays a mismatch.
    const { graph, dataSeed } = parseRepro(readFileSync(path.join(dir, 'llvm-softmax-cancellation-vector-math.ir'), 'utf8'));
    const [o] = runCases('llvm', [makeCase(dataSeed, graph, dataSeed)], { workDir: work, timeoutMs: 60_000 });
    expect(o?.kind).toBe('approx');
    expect(o?.message).toMatch(/^output y1\[\d\]: llvm -?0, interpreter .* \(right without contraction, with exact math\)$/);
  }, 300_000);
});
