// The llvm target's register tiles sized for the --cpu: on AVX2 (16 ymm) the micro-kernel's accumulators fit the
// registers, so llc spills none of them in the micro-kernel loop; AVX-512 CPUs keep the 4 x 64 tile of LLVM_CAPS.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LLVM_CAPS, compileLlvm, llvmCaps, x86Vectors } from '../../codegen/llvm/target.js';
import { registerTile } from '../../codegen/loop/schedule.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { outputDiffs, runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-llvm-tiles-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * Lines of the innermost loops holding a packed multiply-add (a micro-kernel's k loop) in the functions of an assembly
 * listing whose names match `fn`: a loop runs from a label to the last jump back to it.
 */
function fmaLoops(asm: string, fn: RegExp): string[][] {
  const lines = asm.split('\n'), at = new Map<string, number>(), loops: [number, number][] = [];
  let inFn = false;
  lines.forEach((l, i) => {
    const head = /^([A-Za-z_][\w.]*):/.exec(l);
    if (head) inFn = fn.test(head[1]!);
    const label = /^(\.LBB\w+):/.exec(l);
    if (label) at.set(label[1]!, i);
    const jump = /^\s+j\w+\s+(\.LBB\w+)/.exec(l), to = jump ? at.get(jump[1]!) : undefined;
    if (inFn && to !== undefined) loops.push([to, i]);
  });
  const fma = loops.filter(([a, b]) => lines.slice(a, b).some((l) => /vfmadd\w+ps\s.*%ymm/.test(l)));
  const innermost = fma.filter(([a, b]) => !fma.some(([c, d]) => (c > a || d < b) && c >= a && d <= b));
  return innermost.map(([a, b]) => lines.slice(a, b + 1));
}

describe('llvm register tiles by --cpu', () => {
  it('fit AVX2\'s 16 registers (x86-64-v3, znver2) and keep AVX-512\'s tile (x86-64-v4, skylake-avx512)', () => {
    for (const cpu of ['x86-64-v3', 'znver2']) {
      const caps = llvmCaps(cpu), tile = registerTile(256, 64, caps)!, vecs = tile.nr / caps.vectorWidth;
      expect([caps.vectorWidth, caps.vectorRegisters], cpu).toEqual([8, 16]);
      expect(tile.mr * vecs + vecs + 1, `${cpu}: accumulators, B's vectors and A's broadcast`).toBeLessThanOrEqual(16);
    }
    for (const cpu of ['x86-64-v4', 'skylake-avx512']) {
      expect(llvmCaps(cpu), cpu).toEqual({ ...LLVM_CAPS, packColumns: true }); // AVX-512's tiles; int8 columns packed once per call
      expect(registerTile(256, 64, llvmCaps(cpu))).toEqual({ mr: 4, nr: 64 });
    }
    expect(llvmCaps('x86-64-v2')).toMatchObject({ vectorWidth: 4, fma: false });
    expect(llvmCaps('cortex-a72')).toBe(LLVM_CAPS); // not an x86 CPU: as before
  });

  it('know the x86-64 levels (the host\'s) as gcc -march does, without running it', () => {
    for (const cpu of ['x86-64-v2', 'x86-64-v3', 'x86-64-v4']) {
      const macros = execFileSync('gcc', [`-march=${cpu}`, '-dM', '-E', '-x', 'c', '/dev/null'], { encoding: 'utf8' });
      const has = (m: string) => macros.includes(`#define __${m}__ 1`);
      expect(x86Vectors(cpu), cpu).toEqual({ avx512: has('AVX512F'), avx: has('AVX'), fma: has('FMA'), avx2: has('AVX2'), avx512bw: has('AVX512BW') });
    }
    expect(x86Vectors('constructor')).toBeUndefined(); // a name, not a property of the table
  });

  it('leave no accumulator spilled in the seed MLP\'s micro-kernel loop on x86-64-v3 (b256), and compute the same', () => {
    keras.backend.clearSession();
    keras.utils.setRandomSeed(1234);
    const mlp = keras.Sequential([keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }), keras.layers.Dropout(0.2), keras.layers.Dense(10, { activation: 'softmax' })]);
    const g = traceModel(mlp, 256).graph, dir = path.join(tmp, 'mlp');
    const params = Object.fromEntries(g.params.map((p, k) => [String(p.attrs['name']), Float32Array.from({ length: p.type.shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 0.37 + k) * 0.1)]));
    compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 256 }], weights: weightsOf(g, params), threads: 2, cpu: 'x86-64-v3' });
    execFileSync('llc-14', ['-O3', '-mcpu=x86-64-v3', '-relocation-model=pic', 'model.bc', '-o', 'model.s'], { cwd: dir });
    // the first layer's matmul (784 x 64, the micro-kernel; parallel, so in chunk functions of its own)
    const loops = fmaLoops(readFileSync(path.join(dir, 'model.s'), 'utf8'), /_k0_matmul/);
    expect(loops.length, 'no multiply-add loop found in the micro-kernel').toBeGreaterThan(0);
    const spills = loops.flat().filter((l) => /%ymm\d+/.test(l) && /\(%rsp\)|\(%rbp\)/.test(l));
    expect(spills, 'ymm registers moved to or from the frame in the micro-kernel loop').toEqual([]);
    const inputs = { [String(g.inputs[0]!.attrs['name'])]: Float32Array.from({ length: 256 * 784 }, (_, i) => Math.cos(i * 0.11)) };
    expect(outputDiffs(g, inputs, params, runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: '2' }), 'llvm')).toEqual([]);
  });
});
