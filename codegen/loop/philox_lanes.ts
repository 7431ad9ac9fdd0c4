// philox_lanes: the 4-lane vector form of a philox value (wasm SIMD128): lanes that are the four words of one block.
//
// Element i of a random draw is word i % 4 of Philox block i / 4, so four lanes whose indices are 4b, 4b+1, 4b+2,
// 4b+3 are exactly block b's four words: one block per lane group, computed as in scalar code ($philox_block), and
// the rest of the loop (a dropout epilogue: compare, select, scale) runs on f32x4 instead of lane by lane.
// A 4-lane target steps a vector loop's variable by 4 from 0 (and runs its tail as scalar code), so such lanes are
// those of an index with coefficient 1 in the loop variable whose other terms are multiples of 4.
import type { Expr } from './ir.js';

/** e mod 4 where the lane variable v is a multiple of 4 (a lane group's first lane), or undefined if unknown. */
function residue(e: Expr, v: string): number | undefined {
  if (e.k === 'const') return e.t === 'i32' ? ((e.v % 4) + 4) % 4 : undefined;
  if (e.k === 'var') return e.name === v ? 0 : undefined;
  if (e.k !== 'binary' || e.t !== 'i32') return undefined;
  const a = residue(e.a, v), b = residue(e.b, v);
  switch (e.op) {
    case 'add': return a !== undefined && b !== undefined ? (a + b) % 4 : undefined;
    case 'sub': return a !== undefined && b !== undefined ? (a - b + 4) % 4 : undefined;
    // (4p + a)(4q + b) = 4(...) + ab; a multiple of 4 times anything is one
    case 'mul': return a === 0 || b === 0 ? 0 : a !== undefined && b !== undefined ? (a * b) % 4 : undefined;
    default: return undefined;
  }
}

/**
 * Whether philox value e has the 4-lane vector form in the loop over v: its counter the same in every lane and its
 * index 4 * (anything) + v, so each lane group is one block. `varies` says which expressions differ from lane to lane,
 * `coef` is the index's coefficient in v (vectorize.ts laneCoef).
 */
export function philoxLanes(e: Extract<Expr, { k: 'philox' }>, v: string, varies: (x: Expr) => boolean, coef: (x: Expr) => number | undefined): boolean {
  return !varies(e.counter) && coef(e.index) === 1 && residue(e.index, v) === 0;
}
