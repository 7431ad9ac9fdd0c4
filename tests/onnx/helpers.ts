// What the ONNX tests share: onnxruntime-node sessions, and comparing outputs within the tolerance the issue sets.
import * as ort from 'onnxruntime-node';
import type { TypedArray } from '../../ir/types.js';

/** The tolerance: onnxruntime agrees with kiln's reference interpreter within 1e-5 (absolute, plus relative). */
export const TOL = 1e-5;

/** Runs an ONNX model in onnxruntime-node on float32/int32 inputs by name; outputs by name as plain typed arrays. */
export async function runOrt(bytes: Uint8Array | string, inputs: Record<string, { data: TypedArray; shape: readonly number[] }>): Promise<Record<string, TypedArray>> {
  const session = await ort.InferenceSession.create(bytes);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, v] of Object.entries(inputs)) feeds[name] = new ort.Tensor(v.data instanceof Int32Array ? 'int32' : 'float32', v.data, [...v.shape]);
  const res = await session.run(feeds);
  return Object.fromEntries(Object.entries(res).map(([k, t]) => [k, t.data as TypedArray]));
}

/** The places where two arrays differ by more than TOL·(1 + |expected|), as short lines (empty when they agree). */
export function diffs(name: string, actual: ArrayLike<number> | undefined, expected: ArrayLike<number>): string[] {
  if (!actual) return [`${name}: missing`];
  if (actual.length !== expected.length) return [`${name}: ${actual.length} values, expected ${expected.length}`];
  const out: string[] = [];
  for (let i = 0; i < expected.length && out.length < 5; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (!(Math.abs(a - e) <= TOL * (1 + Math.abs(e))) && !(Number.isNaN(a) && Number.isNaN(e))) out.push(`${name}[${i}]: ${a} vs ${e}`);
  }
  return out;
}
