// The llvm target's kernel frames: every function that spills vector registers to its stack aligns its frame first,
// so where the caller's stack happens to be (random per process on the main thread, fixed per build on a pool worker)
// cannot put 32-byte spill slots across cache lines (a 1.67x slower matmul, one process in two).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm } from '../../codegen/llvm/target.js';
import { Builder } from '../../ir/graph.js';
import { outputDiffs, runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-llvm-frames-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const objdump = spawnSync('objdump', ['--version']).status === 0;

/** model.o's functions as name -> instruction lines (AT&T syntax, no raw bytes). */
function functions(obj: string): Map<string, string[]> {
  const fns = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of execFileSync('objdump', ['-d', '--no-show-raw-insn', obj], { encoding: 'utf8', maxBuffer: 1 << 28 }).split('\n')) {
    const head = /^[0-9a-f]+ <(.+)>:$/.exec(line);
    if (head) fns.set(head[1]!, (cur = []));
    else if (cur && line.includes('\t')) cur.push(line.split('\t').slice(1).join(' '));
  }
  return fns;
}

describe.skipIf(!objdump)('llvm kernel frames', () => {
  it('are realigned to their vector spill slots in every function that spills vectors (matmul 64x256x64, 2 threads)', () => {
    // tanh(x @ w) on AVX2 (x86-64-v3 on every host): the micro-kernel's chunk spills ymm values (tanh's vector
    // constants, live across the tile's loops; the accumulators fit since the tile is sized for the --cpu)
    const b = new Builder();
    const x = b.input('x', { dtype: 'float32', shape: [64, 256] }), w = b.param('w', { dtype: 'float32', shape: [256, 64] });
    const g = b.finish('mm', [{ name: 'y', node: b.emit('tanh', [b.emit('matmul', [x, w])]) }]);
    const params = { w: Float32Array.from({ length: 256 * 64 }, (_, i) => Math.sin(i * 0.37)) };
    const inputs = { x: Float32Array.from({ length: 64 * 256 }, (_, i) => Math.cos(i * 0.11)) };
    const dir = path.join(tmp, 'mm');
    compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, params), threads: 2, cpu: 'x86-64-v3' });
    const fns = functions(path.join(dir, 'model.o'));
    // a 32- or 64-byte register stored to or loaded from the frame
    const spills = [...fns].filter(([, body]) => body.some((l) => /%[yz]mm\d+/.test(l) && /\(%rsp\)|\(%rbp\)/.test(l)));
    expect(spills.length, 'no kernel spills vector registers: pick a kernel that does').toBeGreaterThan(0);
    for (const [name, body] of spills) {
      // and $-32 (or -64), %rsp before the frame is used (after the prologue's pushes)
      const prologue = body.slice(0, body.findIndex((l) => /\(%rsp\)|\(%rbp\)/.test(l)));
      expect(prologue.some((l) => /^and\s+\$0xffffffffffffff[ec]0,%rsp/.test(l)), `${name} does not align its frame:\n${prologue.join('\n')}`).toBe(true);
    }
    expect(outputDiffs(g, inputs, params, runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: '2' }), 'llvm')).toEqual([]);
  });
});
