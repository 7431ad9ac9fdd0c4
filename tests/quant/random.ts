// Random int8 graphs for the dot-product kernels' tests: int8 matmuls (odd and even K, K = 1) and convolutions
// (padding, strides, several input channels) with random weights, biases, multipliers and shifts.
import { Builder, type Graph } from '../../ir/graph.js';
import type { TypedArray } from '../../ir/types.js';
import { rng } from '../ir/helpers.js';

/**
 * A graph of random int8 matmuls and convolutions (odd and even K, padding, strides), each dequantized to an output;
 * `o.xZero`: every input's zero point (-128: u8 rows, dot4's), `o.ks`: the matmuls' K (about).
 */
export function randomQuantGraph(seed: number, o: { xZero?: number; ks?: readonly number[] } = {}): { g: Graph; inputs: Record<string, TypedArray>; params: Record<string, TypedArray> } {
  const r = rng(seed), int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const b = new Builder(), inputs: Record<string, TypedArray> = {}, params: Record<string, TypedArray> = {};
  const outs: { name: string; node: ReturnType<Builder['input']> }[] = [];
  const requant = (n: number, name: string) => {
    params[`${name}/bias`] = Int32Array.from({ length: n }, () => int(-5000, 5000));
    return [b.param(`${name}/bias`, { dtype: 'int32', shape: [n] }), b.constant(Array.from({ length: n }, () => int(2 ** 29, 2 ** 31 - 1)), 'int32', [n]),
      b.constant(Array.from({ length: n }, () => int(-12, -4)), 'int32', [n])];
  };
  const weights = (name: string, shape: number[]) => {
    params[`${name}/w`] = Int8Array.from({ length: shape.reduce((a, d) => a * d, 1) }, () => int(-127, 127));
    return b.param(`${name}/w`, { dtype: 'int8', shape });
  };
  for (let c = 0; c < 3; c++) {
    const [m, k, n] = [4 * int(1, 5), (o.ks ?? [1, 7, 33, 64])[c % 4]! + int(0, 1), 8 * int(1, 4)], xZero = o.xZero ?? int(-20, 20);
    const x = b.input(`x${c}`, { dtype: 'float32', shape: [m, k] });
    inputs[`x${c}`] = Float32Array.from({ length: m * k }, () => 12 * r() - 6);
    const xq = b.emit('quantize', [x], { scale: 0.05, zeroPoint: xZero });
    const q = b.emit('qmatmul', [xq, weights(`mm${c}`, [k, n]), ...requant(n, `mm${c}`)], { xZero, outZero: int(-5, 5), lo: -128, hi: 127 });
    outs.push({ name: `mm${c}`, node: b.emit('dequantize', [q], { scale: 0.1, zeroPoint: 0 }) });
  }
  for (let c = 0; c < 2; c++) {
    const [hw, cin, cout, win, stride] = [int(6, 10), int(1, 5), 8 * int(1, 2), int(1, 3), int(1, 2)], xZero = o.xZero ?? int(-20, 20), pad = c ? 1 : 0;
    const x = b.input(`c${c}`, { dtype: 'float32', shape: [2, hw, hw, cin] });
    inputs[`c${c}`] = Float32Array.from({ length: 2 * hw * hw * cin }, () => 12 * r() - 6);
    const xq = b.emit('quantize', [x], { scale: 0.05, zeroPoint: xZero });
    const q = b.emit('qconv', [xq, weights(`cv${c}`, [win, win, cin, cout]), ...requant(cout, `cv${c}`)],
      { strides: [stride, stride], dilation: [1, 1], lhsDilation: [1, 1], padding: [[pad, pad], [pad, pad]], groups: 1, xZero, outZero: int(-5, 5), lo: -128, hi: 127 });
    outs.push({ name: `cv${c}`, node: b.emit('dequantize', [q], { scale: 0.1, zeroPoint: 0 }) });
  }
  return { g: b.finish('rq', outs), inputs, params };
}
