// The llvm target's `exactMath` option: exp, log, log1p, tanh, erf, sin, cos and pow through libm's double
// functions, rounded once to float, bit for bit the interpreter's (as the cuda target's kiln_exp..kiln_pow:
// tests/cuda/math_bits.test.ts), in vector loops (lane by lane) and scalar code; by default the vector expf/logf/tanhf
// and libm's float functions, within a few ulp.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm } from '../../codegen/llvm/target.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-llvm-exact-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const n = 32768;
const OPS = ['exp', 'log', 'log1p', 'tanh', 'erf', 'sin', 'cos', 'pow'];
// each op on x (log, log1p and pow on |x|), and on the sum of x: a scalar, outside any vector loop
const g = parseGraph(`graph @math {
  %0 = input {name="x"} : f32[${n}]
  %1 = abs %0 : f32[${n}]
  %2 = exp %0 : f32[${n}]
  %3 = log %1 : f32[${n}]
  %4 = log1p %1 : f32[${n}]
  %5 = tanh %0 : f32[${n}]
  %6 = erf %0 : f32[${n}]
  %7 = sin %0 : f32[${n}]
  %8 = cos %0 : f32[${n}]
  %9 = pow %1, %0 : f32[${n}]
  %10 = reduce_sum %1 {axes=[0], keepdims=false} : f32[]
  %11 = log %10 : f32[]
  %12 = sin %10 : f32[]
  %13 = pow %10, %11 : f32[]
  output "exp" = %2
  output "log" = %3
  output "log1p" = %4
  output "tanh" = %5
  output "erf" = %6
  output "sin" = %7
  output "cos" = %8
  output "pow" = %9
  output "slog" = %11
  output "ssin" = %12
  output "spow" = %13
}`);
// exp's range of interest for softmax, and enough points that libm's float functions' last-bit differences show
const inputs = { x: Float32Array.from({ length: n }, (_, i) => -20 + (40 * i) / n + 1e-3) };

/** Per output, how many elements differ in their bits from the interpreter's; and the module's text. */
function bitDiffs(exactMath: boolean | undefined): { diffs: Record<string, number>; ll: string } {
  const dir = path.join(tmp, String(exactMath));
  compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, {}), threads: 1, exactMath });
  const got = runMain(path.join(dir, 'model_main'), dir, g, inputs);
  const diffs: Record<string, number> = {};
  for (const [k, v] of interpret(g, inputs, {}).outputs) {
    const h = new Uint32Array(Float32Array.from(got.get(k)!).buffer), w = new Uint32Array(Float32Array.from(v.data as Float32Array).buffer);
    diffs[k] = w.filter((u, i) => u !== h[i]).length;
  }
  return { diffs, ll: readFileSync(path.join(dir, 'model.ll'), 'utf8') };
}

describe('llvm exactMath option', () => {
  it('exactMath: each transcendental op via double, rounded once: bit for bit the interpreter, vector lanes and scalars', () => {
    const { diffs, ll } = bitDiffs(true);
    expect(diffs).toEqual(Object.fromEntries([...OPS, 'slog', 'ssin', 'spow'].map((k) => [k, 0])));
    // the vector loops call the double functions lane by lane; no float libm function or vector approximation is left
    // (the module holds every vector helper: what the kernels call is what counts)
    expect(OPS.filter((op) => !new RegExp(`call <\\d+ x double> @kiln_v\\d+_${op}\\(`).test(ll))).toEqual([]);
    // the scalars' log, sin and pow (the lane-by-lane helpers name their operands %x0_i)
    expect(['log', 'sin', 'pow'].filter((op) => !new RegExp(`call double @${op}\\(double %\\d+`).test(ll))).toEqual([]);
    expect(ll.match(/call [^@\n]*@(expf|logf|log1pf|tanhf|erff|sinf|cosf|powf|kiln_v\d+_(expf|logf|tanhf))\(/g)).toBeNull();
  }, 120_000);

  it('by default the vector expf and libm\'s float functions: within a few ulp, not bit for bit', () => {
    const { diffs, ll } = bitDiffs(undefined);
    expect(/call <\d+ x float> @kiln_v\d+_expf\(/.test(ll)).toBe(true);
    // here: exp 8,876 of 32,768 elements, log 1,618, log1p 1,599, sin 459, cos 410, tanh 355, erf 113, pow 29
    expect(diffs['exp']).toBeGreaterThan(0);
  }, 120_000);
});
