// What a target offers the scheduler (TargetCaps), the default caps, and the CPU register-tile cost model.
// The schedules themselves are recipes of loop-IR transforms in schedules/.
import { lexLess } from './analysis.js';
import type { GpuCaps } from './gpu.js';
import type { LegalizeOptions } from './legalize.js';
import { SIMD128, type VectorCaps } from './vectorize.js';

/** What a target offers the scheduler. */
export interface TargetCaps {
  /** f32 lanes of one vector register (16 for AVX-512, 4 for wasm SIMD128, 1 to disable). */
  readonly vectorWidth: number;
  /** Vector registers a micro-kernel may use (22 of AVX-512's 32 with LLVM 14; 14 where V8 runs wasm on x86-64). */
  readonly vectorRegisters: number;
  /** Whether multiply-add is one instruction (wasm SIMD128 has none: a multiply and an add). */
  readonly fma: boolean;
  /** Vector accumulators a block of matmul row caches may hold (row_caches.ts; default 16). */
  readonly rowAccumulators?: number;
  /** Most vector operations a micro-kernel's epilogue may unroll to (tile vectors x fused ops). */
  readonly tileCode?: number;
  /** Worker threads (1: no parallel loops). */
  readonly threads: number;
  /** Minimum scalar operations a parallel loop must carry to be worth a thread hand-off. */
  readonly parallelGrain: number;
  /** A GPU: nests become grids of thread blocks (vectorWidth and threads are then unused). */
  readonly gpu?: GpuCaps;
  /** Whether the target computes dot4 (loop/ir.ts: four u8 x s8 products) in one instruction (x86 VNNI's vpdpbusd). */
  readonly dot4?: boolean;
  /**
   * Whether an int8 matmul's column groups may be packed once per call into a buffer of them all (hosted x86: RAM
   * to spare; otherwise per tile of rows: the seed MLP's would be 100 KB, more than a Cortex-M4 may hold).
   */
  readonly packColumns?: boolean;
  /**
   * Whether nests computing a temp from params alone (packed int8 columns) may run once, on the first call after
   * init, into a cache buffer (schedules/prepack.ts): the params change only at init (no training entry).
   */
  readonly prepack?: boolean;
  /** What the target renders as vector loops (vectorize.ts); none without. */
  readonly vector?: VectorCaps;
  /** What the target computes in one instruction, which the pipeline's legalize stage then leaves alone. */
  readonly legal: LegalizeOptions;
}

// 14 of the 16 xmm registers: V8 keeps one as scratch on x86-64 (measured: 4 x 8 tiles run faster than 4 x 16 or 8 x 8)
export const DEFAULT_CAPS: TargetCaps = { vectorWidth: 4, vectorRegisters: 14, fma: false, threads: 1, parallelGrain: 1 << 15, vector: SIMD128, legal: { ieeeMinMax: true } };

/**
 * The register tile of a matmul or conv micro-kernel: mr rows (each an A value broadcast per step) by nr columns
 * (nr/V vectors of B per step), mr*nr/V accumulators. The cost model counts per step of the reduction: the
 * multiply-adds (two issue ports), the loads (two ports), and the latency of one accumulator's add chain
 * (4 cycles), which needs enough independent accumulators to hide; among tiles of equal speed, the one with the
 * fewest loads per multiply-add, then more rows. Tiles must divide the extents and fit the registers (with B's
 * vectors and a broadcast), and the epilogue's unrolled code within the target's budget. Measured (1024³ with
 * AVX-512, B packed): 4 x 64 at 80% of peak, 4 x 32 75%, 4 x 16 50%.
 */
export function registerTile(rows: number, cols: number, caps: TargetCaps, epilogueOps = 1): { mr: number; nr: number } | undefined {
  const V = caps.vectorWidth;
  let best: { mr: number; nr: number } | undefined, bestKey = [Infinity];
  for (const mr of [8, 6, 4, 3, 2, 1]) {
    if (rows % mr) continue;
    for (const nr of [...new Set([4 * V, 3 * V, 2 * V, V, 8, 4])]) {
      if (cols % nr || nr % Math.min(V, 4)) continue;
      const vecs = Math.ceil(nr / V), acc = mr * vecs;
      if (acc + vecs + 2 > caps.vectorRegisters || mr * vecs * epilogueOps > (caps.tileCode ?? Infinity)) continue;
      const fmas = acc, loads = mr + vecs;
      const cycles = Math.max((fmas * (caps.fma ? 1 : 2)) / 2, loads / 2, 4);
      const key = [cycles / fmas, loads / fmas, -mr];
      if (lexLess(key, bestKey)) { best = { mr, nr }; bestKey = key; }
    }
  }
  return best;
}
