// The wasm thread pool gives each thread the same part of every parallel loop (model.mjs: each thread runs its own
// run of pieces first, as kiln_runtime.c's run_chunk cuts a loop), so what a thread wrote in one loop or call is
// in its own cache when it reads it next; pieces a thread has not claimed are run by the others.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import binaryen from 'binaryen';
import { afterAll, describe, expect, it } from 'vitest';
import { writePoolArtifact } from './pool.js';

const run = promisify(execFile);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-affinity-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('wasm thread pool', () => {
  it("each thread runs its own part of a loop's iterations, call after call", async () => {
    // chunk0 over 8 iterations, one piece each, in lock step: the k-th piece a thread runs waits until the other
    // thread has started k pieces, then writes the thread (t + 1) at its iterations. Every thread runs its own 4
    // pieces (thread 0 iterations 0-3, thread 1 4-7), whatever the OS runs when; one counter for all threads
    // alternates them instead (0, 2, 4, 6 and 1, 3, 5, 7).
    const dir = path.join(tmp, 'affinity');
    writePoolArtifact(dir, (m) => {
      m.addMemoryExport('0', 'memory');
      const i32 = binaryen.i32, get = (i: number) => m.local.get(i, i32);
      const started = (t: binaryen.ExpressionRef) => m.i32.add(m.i32.const(128), m.i32.shl(t, m.i32.const(2)));
      // locals: 0 begin, 1 end, 2 t, 3 k (this piece's count on its thread), 4 i
      m.addFunction('chunk0', binaryen.createType([i32, i32, i32]), binaryen.none, [i32, i32], m.block(null, [
        m.local.set(3, m.i32.add(m.i32.atomic.rmw.add(0, started(get(2)), m.i32.const(1)), m.i32.const(1))),
        m.loop('wait', m.br('wait', m.i32.lt_s(m.i32.atomic.load(0, started(m.i32.sub(m.i32.const(1), get(2)))), get(3)))),
        m.local.set(4, get(0)),
        m.loop('mark', m.if(m.i32.lt_s(get(4), get(1)), m.block(null, [
          m.i32.store(0, 4, m.i32.shl(get(4), m.i32.const(2)), m.i32.add(get(2), m.i32.const(1))),
          m.local.set(4, m.i32.add(get(4), m.i32.const(1))),
          m.br('mark'),
        ]))),
      ]));
      m.addFunction('trainStep', binaryen.none, binaryen.none, [], m.block(null, [
        m.i32.atomic.store(0, m.i32.const(128), m.i32.const(0)),
        m.i32.atomic.store(0, m.i32.const(132), m.i32.const(0)),
        m.drop(m.call('kiln.parallel', [m.i32.const(0), m.i32.const(8)], i32)),
      ]));
    }, [{ name: 'marks', dtype: 'int32', offset: 0, size: 8 }]);
    const script = path.join(tmp, 'affinity.mjs');
    writeFileSync(script, `import { load } from ${JSON.stringify(`file://${dir}/model.mjs`)};
const m = await load({ threads: 2, relaxedSimd: false });
const got = [];
for (let i = 0; i < 3; i++) got.push(Array.from(m.trainStep([])[0]));
m.close();
console.log(JSON.stringify(got));`);
    const out = JSON.parse((await run(process.execPath, [script], { cwd: tmp, timeout: 60_000 })).stdout) as number[][];
    expect(out).toEqual(Array(3).fill([1, 1, 1, 1, 2, 2, 2, 2]));
  }, 120_000);
});
