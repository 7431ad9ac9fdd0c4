// wasm's exp/log/tanh/erf against float64 references: at most a few float32 ulp apart, specials exact.
import { describe, expect, it } from 'vitest';
import { Builder } from '../../ir/graph.js';
import type { UnaryOp } from '../../ir/ops.js';
import { runPipeline } from '../../driver/pipeline.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';

/** Distance in float32 units in the last place (ordered-integer difference of the bit patterns). */
function ulps(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b) ? 0 : Infinity;
  const ia = new Int32Array(Float32Array.of(a).buffer)[0]!, ib = new Int32Array(Float32Array.of(b).buffer)[0]!;
  const ord = (i: number) => (i < 0 ? -2147483648 - i : i);
  return Math.abs(ord(ia) - ord(ib));
}

function erf64(x: number): number {
  // high-precision reference: series below 3, continued fraction above
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax, sum = ax;
    for (let n = 1; n < 200; n++) { term *= -ax * ax / n; sum += term / (2 * n + 1); }
    return Math.sign(x) * sum * 2 / Math.sqrt(Math.PI);
  }
  let cf = ax;
  for (let i = 200; i > 0; i--) cf = ax + (i / 2) / cf;
  return Math.sign(x) * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / cf);
}

function runUnary(op: UnaryOp, xs: Float32Array): Float32Array {
  const b = new Builder();
  const x = b.input('x', { dtype: 'float32', shape: [xs.length] });
  const g = b.finish('f', [{ name: 'y', node: b.emit(op, [x]) }]);
  const c = runPipeline(g);
  return new WasmRunner(c.program, renderWasm(c.program, c.memory)).run({ x: xs }, {}).outputs.get('y') as Float32Array;
}

function samples(lo: number, hi: number, n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1) + 1e-3 * Math.sin(i * 12.9898));
}

const CASES: [UnaryOp, (x: number) => number, Float32Array, number][] = [
  ['exp', Math.exp, samples(-103, 88, 20001), 1],
  ['log', Math.log, Float32Array.from([...samples(1e-30, 10, 5000), ...samples(10, 3e38, 5000), 1e-40, 1, 2]), 1],
  ['tanh', Math.tanh, Float32Array.from([...samples(-12, 12, 20001), 1e-9, -1e-7]), 2],
  ['erf', erf64, samples(-7, 7, 20001), 2],
];

describe('wasm math against float64 references', () => {
  it.each(CASES)('%s', (op, ref, xs, maxUlps) => {
    const got = runUnary(op, xs);
    let worst = 0, at = 0;
    xs.forEach((x, i) => {
      const u = ulps(got[i]!, Math.fround(ref(x)));
      if (u > worst) { worst = u; at = x; }
    });
    expect(worst, `${op}(${at}) is ${worst} ulp off`).toBeLessThanOrEqual(maxUlps);
  });

  it('special values', () => {
    const specials = Float32Array.of(NaN, Infinity, -Infinity, 0, -0, 100, -200);
    const exp = runUnary('exp', specials), log = runUnary('log', specials), tanh = runUnary('tanh', specials);
    expect(Array.from(exp)).toEqual([NaN, Infinity, 0, 1, 1, Infinity, 0]);
    expect(Array.from(log)).toEqual([NaN, Infinity, NaN, -Infinity, -Infinity, Math.fround(Math.log(100)), NaN]);
    expect(Array.from(tanh)).toEqual([NaN, 1, -1, 0, -0, 1, -1]);
  });
});
