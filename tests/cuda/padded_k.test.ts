// A matmul whose K no step divides (787), padded to 800 (schedules/pad.ts): the emulated CUDA build equals the
// graph interpreter bit for bit, and model.cu stages the padded steps with the zeroing select.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCuda } from '../../codegen/cuda/target.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-padk-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('a matmul with K = 787 on the GPU', () => {
  it('runs 25 steps of 32 (the last 13 adding zeros): the emulated build equals the interpreter bit for bit', () => {
    const g = parseGraph(`graph @m {
  %0 = input {name="x"} : f32[32,787]
  %1 = param {name="w"} : f32[787,10]
  %2 = matmul %0, %1 : f32[32,10]
  %3 = mul %2, %2 : f32[32,10]
  output "y" = %3
}`);
    const x = Float32Array.from({ length: 32 * 787 }, (_, i) => Math.sin(i * 0.37) * 3);
    const w = Float32Array.from({ length: 787 * 10 }, (_, i) => Math.cos(i * 0.11) / 9);
    const dir = path.join(tmp, 'm'); // (an epilogue of plain arithmetic: C's tanhf may differ from the interpreter's by an ulp)
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 32 }], weights: weightsOf(g, { w }), nvcc: false });
    const cu = readFileSync(path.join(dir, 'model.cu'), 'utf8');
    expect(cu).toMatch(/KILN_LAUNCH\(\w+, 1, \d+,/); // one block of all 32 x 10 outputs
    expect(cu).toMatch(/< 787\) \? in_x\[/);
    const got = runMain(path.join(dir, 'model_main_emu'), dir, g, { x }).get('y')!, want = interpret(g, { x }, { w }).outputs.get('y')!.data;
    expect(Array.from(got)).toEqual(Array.from(want));
  }, 120_000);
});
