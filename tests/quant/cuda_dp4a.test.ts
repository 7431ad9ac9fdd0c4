// int8 dot products on the cuda target as kiln_dp4a (codegen/cuda/dp4a.ts: __dp4a on the GPU, the same byte sums in
// the emulation), the input's zero point folded out as c·Σw: int8 matmuls and convolutions of int8 inputs (K not a
// multiple of 4, K = 4, padded taps, zero points 0, -128, 127 and others, bytes -128 and 127) bit for bit as the
// interpreter on the emulated build; where nvcc is installed, model.cu compiles for sm_90 with no warnings or spills.
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCuda, hasNvcc } from '../../codegen/cuda/target.js';
import { Builder, type Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import type { TypedArray } from '../../ir/types.js';
import { expectSame, rng } from '../ir/helpers.js';
import { expectNvccClean, runMain, weightsOf } from '../native.js';
import { QUANT_CASES } from './graphs.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-quant-dp4a-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Case { g: Graph; inputs: Record<string, TypedArray>; params: Record<string, TypedArray>; dp4a: number }

/** Matmuls and convolutions of int8 inputs (their loads are the dp4a row bytes), each dequantized to an output. */
function int8Inputs(seed: number): Case {
  const r = rng(seed), int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  // bytes with both extremes
  const bytes = (n: number) => Int8Array.from({ length: n }, (_, i) => (i % 7 === 0 ? -128 : i % 7 === 1 ? 127 : int(-128, 127)));
  const b = new Builder(), inputs: Record<string, TypedArray> = {}, params: Record<string, TypedArray> = {}, outs: { name: string; node: ReturnType<Builder['input']> }[] = [];
  const requant = (n: number, name: string) => {
    params[`${name}/bias`] = Int32Array.from({ length: n }, () => int(-5000, 5000));
    return [b.param(`${name}/bias`, { dtype: 'int32', shape: [n] }), b.constant(Array.from({ length: n }, () => int(2 ** 29, 2 ** 31 - 1)), 'int32', [n]),
      b.constant(Array.from({ length: n }, () => int(-14, -6)), 'int32', [n])];
  };
  const weights = (name: string, shape: number[]) => {
    params[`${name}/w`] = bytes(shape.reduce((a, d) => a * d, 1));
    return b.param(`${name}/w`, { dtype: 'int8', shape });
  };
  // K = 4, 5, 7 (no whole group of 4 but one), 33; zero points -128 (c = 128), 0 (no c), 127 and one drawn
  const mms = [[4, -128], [5, 0], [7, 127], [33, int(-20, 20)]] as const;
  mms.forEach(([k, xZero], c) => {
    const m = 3, n = 8 * int(1, 2);
    const x = b.input(`x${c}`, { dtype: 'int8', shape: [m, k] });
    inputs[`x${c}`] = bytes(m * k);
    const [bias, mult, shift] = requant(n, `mm${c}`);
    const q = b.emit('qmatmul', [x, weights(`mm${c}`, [k, n]), bias!, mult!, shift!], { xZero, outZero: int(-5, 5), lo: -128, hi: 127 });
    outs.push({ name: `mm${c}`, node: b.emit('dequantize', [q], { scale: 0.1, zeroPoint: 0 }) });
  });
  // convolutions over 4..6 input channels (the innermost reduction loop), padded (taps outside the input) or not
  for (let c = 0; c < 2; c++) {
    const [hw, cin, cout, win, xZero, pad] = [int(5, 8), int(4, 6), 8, 3, c ? 0 : int(-128, 127), c ? 0 : 1];
    const x = b.input(`c${c}`, { dtype: 'int8', shape: [2, hw, hw, cin] });
    inputs[`c${c}`] = bytes(2 * hw * hw * cin);
    const [bias, mult, shift] = requant(cout, `cv${c}`);
    const q = b.emit('qconv', [x, weights(`cv${c}`, [win, win, cin, cout]), bias!, mult!, shift!],
      { strides: [1, 1], dilation: [1, 1], lhsDilation: [1, 1], padding: [[pad, pad], [pad, pad]], groups: 1, xZero, outZero: int(-5, 5), lo: -128, hi: 127 });
    outs.push({ name: `cv${c}`, node: b.emit('dequantize', [q], { scale: 0.1, zeroPoint: 0 }) });
  }
  return { g: b.finish('dp4a', outs), inputs, params, dp4a: mms.length + 2 };
}

/** kiln_dp4a calls summing products into an accumulator (not those summing the weights for the zero point). */
const dp4aLoops = (dir: string) => (readFileSync(path.join(dir, 'model.cu'), 'utf8').match(/= kiln_dp4a\(\(int\)kiln_xq/g) ?? []).length;

describe('int8 dot products on cuda as dp4a (emulated) equal the interpreter', () => {
  const cases: [string, () => Case][] = [
    ['int8 inputs', () => int8Inputs(1)],
    // the CNN's second convolution and its Dense (the first convolution quantizes a float input inside the
    // reduction: plain integer loops)
    ['cnn', () => ({ ...QUANT_CASES['cnn']!(), dp4a: 2 })],
  ];
  it.each(cases)('%s', (name, make, ctx) => {
    const { g, inputs, params, dp4a } = make();
    const dir = path.join(tmp, name.replace(/\W/g, ''));
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, params), nvcc: false });
    expect(dp4aLoops(dir)).toBe(dp4a);
    const got = runMain(path.join(dir, 'model_main_emu'), dir, g, inputs);
    const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs;
    for (const o of g.outputs) if (o.node.op === 'dequantize') expectSame(got.get(o.name)!, want.get(o.name)!.data);
    if (name !== 'int8 inputs') return;
    if (!hasNvcc()) return ctx.skip('nvcc is not installed');
    expectNvccClean(dir);
  }, 180_000);
});
