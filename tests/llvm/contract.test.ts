// The llvm target's `contract` option: a*b + c as one llvm.fmuladd (one rounding on an FMA host) by default, as
// fmul and fadd rounded each, bit for bit the interpreter's, with `contract: false`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm, hostCpu } from '../../codegen/llvm/target.js';
import { Builder } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-llvm-contract-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// y = x @ a, x: [1, 2], a: [2, 19]: y[j] = x0*a0j + x1*a1j with x0*a0j = -(1 + 2^-11), x1 = a1j = 1 + 2^-12;
// x1*a1j is 1 + 2^-11 + 2^-24, which float32 rounds to 1 + 2^-11, so fmul then fadd give 0 (as the interpreter,
// which rounds each product and sum) and a fused multiply-add 2^-24
const n = 19, b = new Builder();
const x = b.input('x', { dtype: 'float32', shape: [1, 2] }), a = b.input('a', { dtype: 'float32', shape: [2, n] });
const g = b.finish('muladd', [{ name: 'y', node: b.emit('matmul', [x, a]) }]);
const inputs = { x: Float32Array.of(-(1 + 2 ** -11), 1 + 2 ** -12), a: Float32Array.from({ length: 2 * n }, (_, i) => (i < n ? 1 : 1 + 2 ** -12)) };

function run(contract: boolean | undefined): { y: number[]; ll: string } {
  const dir = path.join(tmp, String(contract));
  compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, {}), threads: 1, contract });
  // the kernel's own code (the module's vector exp/log helpers use fmuladd either way)
  const ll = /^define internal void @predict_k0\w*\(.*?^\}/ms.exec(readFileSync(path.join(dir, 'model.ll'), 'utf8'))![0];
  return { y: [...runMain(path.join(dir, 'model_main'), dir, g, inputs).get('y')!], ll };
}

describe('llvm contract option', () => {
  const want = [...interpret(g, inputs, {}).outputs.get('y')!.data];

  it('contract: false renders fmul and fadd, bit for bit the interpreter', () => {
    expect(want).toEqual(new Array(n).fill(0));
    const { y, ll } = run(false);
    expect(ll).not.toMatch(/fmuladd/);
    expect(y.map((v, i) => Object.is(v, want[i]))).toEqual(new Array(n).fill(true));
  });

  it('by default a*b + c is one llvm.fmuladd: one rounding where the host has FMA', () => {
    const { y, ll } = run(undefined);
    expect(ll).toMatch(/llvm\.fmuladd\.v\d+f32/);
    // x86-64-v2 has no FMA: fmuladd is fmul and fadd there
    expect(y).toEqual(new Array(n).fill(hostCpu() === 'x86-64-v2' ? 0 : 2 ** -24));
  });
});
