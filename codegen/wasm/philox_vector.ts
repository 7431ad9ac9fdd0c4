// The f32x4 form of a philox value in a SIMD128 vector loop (loop/philox_lanes.ts): the lane group's block computed
// by $philox_block (word 0 returned, words 1..3 in globals), its four uniform words as the four lanes.
import { Type } from './encoder.js';
import type { Ref, WasmModule } from './module.js';

/** Lanes index..index+3 (index, lane 0's element, a multiple of 4): the four words of block index / 4. */
export function philoxVector(w: WasmModule, seed: number, counter: Ref, index: Ref): Ref {
  const m = w.ops;
  const block = m.i32.shr_u(index as number, m.i32.const(2));
  // operands are evaluated in order: the call (which sets the globals) before each global.get
  let v = m.f32x4.splat(w.call('philox_block', [w.i32(seed), counter, block as Ref], 'f32') as number);
  for (const i of [1, 2, 3]) v = m.f32x4.replace_lane(v, i, m.global.get(`philox_word${i}`, Type.f32));
  return v as Ref;
}
