// Every committed fuzz reproducer (tests/fuzz/repro/*.ir) on every target: the loop interpreter under each
// schedule, wasm, llvm and the emulated CUDA build, params updated in place, against the graph interpreter.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRepro } from '../../fuzz/repro.js';
import { SCHEDULES, type Schedule, type Target, makeCase, runCases } from '../../fuzz/targets.js';

const dir = path.join(import.meta.dirname, 'repro');
const files = readdirSync(dir).filter((f) => f.endsWith('.ir')).sort();
const work = mkdtempSync(path.join(os.tmpdir(), 'kiln-repro-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const WHERE: [Target, Schedule?][] = [...(Object.keys(SCHEDULES) as Schedule[]).map((s): [Target, Schedule] => ['loop', s]), ['wasm'], ['llvm'], ['cuda-emu']];

/** Each target's failure on a reproducer, one line each. */
function failures(text: string): string[] {
  const { graph, dataSeed } = parseRepro(text);
  const c = makeCase(dataSeed, graph, dataSeed);
  return WHERE.flatMap(([target, schedule]) => {
    const [o] = runCases(target, [c], { schedule, workDir: work, timeoutMs: 60_000 });
    return o && o.kind !== 'fma-approx' ? [`${target}${schedule ? ` (${schedule} schedule)` : ''}: ${o.kind}: ${o.message}`] : [];
  });
}

describe('fuzz reproducers on every target', () => {
  for (const f of files) it(f, () => expect(failures(readFileSync(path.join(dir, f), 'utf8'))).toEqual([]), 300_000);

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
});
