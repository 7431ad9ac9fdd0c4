// wasm's vector exp, tanh and recip (f32x4 loops) against its scalar ones, bit for bit, over millions of inputs.
import { describe, expect, it } from 'vitest';
import { Builder } from '../../ir/graph.js';
import type { UnaryOp } from '../../ir/ops.js';
import { runPipeline } from '../../driver/pipeline.js';
import { DEFAULT_CAPS } from '../../codegen/loop/schedule.js';
import { walkStmts } from '../../codegen/loop/visit.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';

/** op over xs on wasm, with vector loops or without; also whether the program has a vector loop. */
function run(op: UnaryOp, xs: Float32Array, vector: boolean): { y: Float32Array; vectorLoops: number } {
  const b = new Builder();
  const x = b.input('x', { dtype: 'float32', shape: [xs.length] });
  const g = b.finish('f', [{ name: 'y', node: b.emit(op, [x]) }]);
  const caps = vector ? { ...DEFAULT_CAPS, threads: 1 } : { ...DEFAULT_CAPS, threads: 1, vector: undefined };
  const c = runPipeline(g, { caps });
  let vectorLoops = 0;
  for (const k of c.program.kernels) walkStmts(k.body, (s) => { if (s.k === 'for' && s.kind === 'vector') vectorLoops++; });
  const y = new WasmRunner(c.program, renderWasm(c.program, c.memory)).run({ x: xs }, {}).outputs.get('y') as Float32Array;
  return { y, vectorLoops };
}

/**
 * Every 1021st float32 bit pattern (every exponent, subnormals, ±inf, NaNs), then 2^21 points of the range where
 * exp and tanh are neither 0, 1 nor inf, then the thresholds of the scalar code's early returns; an odd count, so the
 * vector loop has a scalar tail.
 */
function samples(): Float32Array {
  const bits = Array.from({ length: Math.floor(2 ** 32 / 1021) }, (_, i) => (i * 1021) | 0);
  const all = new Float32Array(new Int32Array(bits).buffer);
  let s = 12345;
  const dense = Float32Array.from({ length: 2 ** 21 }, () => { s = (s * 1103515245 + 12345) >>> 0; return (s / 2 ** 32) * 220 - 110; });
  const edges = [709.78, -745.2, 354.89, 1e-8, -1e-8, 88.72, -103.97, 0, -0].flatMap((v) => [v, Math.fround(v) * (1 + 2 ** -23), Math.fround(v) * (1 - 2 ** -23)]);
  return Float32Array.from([...all, ...dense, ...edges, 1]);
}

describe('wasm vector math is the scalar math lane by lane', () => {
  const xs = samples();
  it.each(['exp', 'tanh', 'recip'] as UnaryOp[])('%s', (op) => {
    const vec = run(op, xs, true), scalar = run(op, xs, false);
    expect(vec.vectorLoops).toBeGreaterThan(0);
    expect(scalar.vectorLoops).toBe(0);
    const a = new Uint32Array(vec.y.buffer, vec.y.byteOffset, vec.y.length), b = new Uint32Array(scalar.y.buffer, scalar.y.byteOffset, scalar.y.length);
    let diff = 0, first = -1;
    for (let i = 0; i < xs.length; i++) {
      // NaN payloads are the engine's choice (wasm's NaN nondeterminism): any NaN equals any NaN
      if (a[i] !== b[i] && !(Number.isNaN(vec.y[i]!) && Number.isNaN(scalar.y[i]!))) { diff++; if (first < 0) first = i; }
    }
    expect(diff, diff ? `${op}(${xs[first]}): vector ${vec.y[first]}, scalar ${scalar.y[first]}` : '').toBe(0);
  });
});
