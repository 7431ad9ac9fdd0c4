// A renderer process, `node render_child.js JOB I R` (the llvm target starts R of them before its passes run): waits
// for the job file, renders the modules p of it with p % (R + 1) = I beside the compile process rendering those with
// 0, and runs each one's opt and llc once it is written. The job null, or too few modules: nothing to do. (On two
// cores the Transformer's two modules rendered one after another on one core, 0.45 s, while the other waited.)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { deserialize } from 'node:v8';
import { llvm, renderJobPart } from './render.js';
import type { RenderJob } from './target.js';
import { startConcurrently } from '../native.js';

const [file, index, count] = process.argv.slice(2);
try {
  if (file === undefined || !/^\d+$/.test(index ?? '') || !/^\d+$/.test(count ?? '')) throw new Error('usage: render_child.js JOB I R (run by the llvm target)');
  // llvm-bindings loaded while the compile process runs its passes (15 ms of dlopen after the job came, before)
  llvm();
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  while (!existsSync(file)) Atomics.wait(sleeper, 0, 0, 1);
  const r = deserialize(readFileSync(file)) as RenderJob | null, waits: (() => void)[] = [];
  try {
    for (let p = Number(index); r && p < r.job.n; p += Number(count) + 1) {
      writeFileSync(r.lls[p]!, renderJobPart(r.job, p));
      waits.push(startConcurrently('llvm', [r.tools[p]!.map(([cmd, args]) => [cmd, [...args]] as const)], '.'));
    }
  } finally {
    // (every one waited for, as the compile process waits for its own; the first failure reported)
    const failures = waits.flatMap((wait) => { try { wait(); return []; } catch (e) { return [e]; } });
    if (failures.length) throw failures[0];
  }
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exitCode = 1;
}
