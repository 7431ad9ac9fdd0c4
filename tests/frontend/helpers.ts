// Shared helpers of the frontend tests: TF.js as the reference, tensor conversion, closeness checks, seeded data.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import * as keras from '../../frontend/index.js';

tf.env().set('PROD', true); // quiet: no "install the node backend" banner
await tf.setBackend('cpu');

export { tf };

/** Anything shaped like a kiln tensor (also one from the built dist/ package). */
export interface TensorData {
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly data: Float32Array | Int32Array | Uint8Array;
}

export function toTf(t: TensorData): tf.Tensor {
  return tf.tensor(t.data, [...t.shape], t.dtype as 'float32' | 'int32' | 'bool');
}

/** Deterministic uniform floats in [lo, hi) (mulberry32), independent of kiln's own generator. */
export function uniform(shape: readonly number[], seed: number, lo = -1, hi = 1): keras.Tensor {
  let s = seed >>> 0;
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return keras.ops.reshape(keras.ops.array(out), [...shape]);
}

/**
 * Checks a kiln result against a TF.js reference: same shape, values within atol + rtol * |expected|
 * (both 1e-5 by default); NaN matches NaN and infinities must match exactly.
 */
export function expectClose(actual: TensorData, expected: tf.Tensor, tol = 1e-5): void {
  expect([...actual.shape]).toEqual(expected.shape);
  const want = expected.dataSync();
  const bad: string[] = [];
  actual.data.forEach((a, i) => {
    const e = Number(want[i]);
    const ok = Number.isNaN(e) ? Number.isNaN(a) : Number.isFinite(e) ? Math.abs(a - e) <= tol * (1 + Math.abs(e)) : a === e;
    if (!ok && bad.length < 5) bad.push(`[${i}] kiln ${a} vs tf ${e}`);
  });
  expect(bad).toEqual([]);
}

/** Copies a kiln model's weights into a TF.js model (Keras order and shapes) and checks they line up. */
export function copyWeights(from: { getWeights(): TensorData[] }, to: tf.LayersModel): void {
  const ws = from.getWeights();
  expect(ws.map((w) => [...w.shape])).toEqual(to.getWeights().map((w) => w.shape));
  to.setWeights(ws.map(toTf));
}
