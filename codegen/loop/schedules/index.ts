// Schedules: loop-IR → loop-IR transforms (primitives) composed into per-target recipes, and the driver.
//
// Lowering (lower.ts) emits plain loop nests: one loop per dimension of a nest (serial, unit extents included),
// a contraction as `acc = init; for k { acc = f(acc, ...) }`, no tiling and no target decision. Scheduling turns
// them into what a target runs fast, as a sequence of named primitives, in the spirit of Halide and TVM.
//
// A PRIMITIVE (primitive.ts: `Primitive<A>`) is one transform of one kernel:
//   - `name`: the stage name `--dump-after schedule:<name>` shows (split, reorder, tile, fission, cacheWrite,
//     accumulateInto, liftLocal, cacheRead, hoist, pack, unroll, vectorize, fold, parallel, fuse, launch, sinkDecls, bind
//     (GPU blocks and threads), dropUnitLoops, simplify, renumber; for GPU tiles also addUnitLoop, expand, scaleDecl,
//     renumberNests, computeAt, privatize, cacheShared, distribute, pad (a tail guarded), rfactor, the one that reassociates, and
//     treeThreads, which runs a declared reduction tree (gpu_reduce.ts) on a block's threads in its declared order,
//     and warpTree, which puts its last levels on one warp: warp_tree.ts; for convs as implicit GEMM flatten (a
//     nest as one loop, no decls), merge (sibling loops fused) and dropDeadDecls);
//   - `check(kernel, args)`: why it does not apply (one line), or undefined. Legality lives here: a primitive
//     refuses rather than change a result (reorder keeps a reduction's loops in order, fission needs disjoint
//     iterations, vectorize only makes loops the target renders as vectors (vectorLegal), parallel needs independent iterations);
//   - `apply(kernel, args)`: the new body (and buffers, for pack), called only after check passed.
// Loops are named by their variable (unique in a kernel); new loops and arrays get names from `Schedule.fresh`.
// Every primitive but rfactor keeps results bit for bit (it never reassociates arithmetic; no recipe uses rfactor
// yet): tests/loop/schedules/ checks each one's output with the loop-IR verifier and against the loop-IR
// interpreter on the unscheduled program.
//
// A RECIPE (one file per recipe here: `Recipe`) looks at the kernel's nests and applies primitives to those it
// fits, through a `Schedule` (primitive.ts): `s.apply(split, { loop, factor, outer, inner })` checks, applies,
// and reports the step to the trace. To add one: write `myrecipe.ts` exporting a `Recipe` (`name`, `run(s, caps)`
// doing nothing where the recipe does not fit), and add it to the list `recipesFor(caps)` returns below, in the
// order it must run. `schedule(program, caps, trace)` runs the recipes on every kernel; `trace(name, program)`
// is called after every primitive application, which is how `kiln compile --dump-after schedule:<name>` works.
// Recipes: cpu_matmul.ts and cpu_conv.ts (register-blocked micro-kernels, micro_kernel.ts), row_caches.ts (i-k-j row
// caches, R rows at a time), cpu_pool.ts (pooling windows with channels as lanes), cpu_kinds.ts (parallel and vector loops), gpu_grid.ts (launches of blocks x threads),
// gpu_reduce.ts (declared reduction trees on a block's threads, treeThreads).
// gpu_grid.ts also tiles matmul nests in shared memory (gpu_matmul.ts) around its bind, conv nests too once flattened
// into matmul nests (gpu_conv.ts); row caches and cleanup's unit-loop dropping leave those nests to it.
import type { Program } from '../ir.js';
import type { TargetCaps } from '../schedule.js';
import { Schedule, type Trace } from './primitive.js';
import { dropUnitLoops, renumber, simplifyIndices } from './cleanup.js';
import { cpuConv } from './cpu_conv.js';
import { cpuKinds } from './cpu_kinds.js';
import { prepack } from './prepack.js';
import { cpuMatmul } from './cpu_matmul.js';
import { cpuPool } from './cpu_pool.js';
import { gpuGrid } from './gpu_grid.js';
import { gpuReduce } from './gpu_reduce.js';
import { gpuLastBlock } from './gpu_last_block.js';
import { gpuSplitK } from './gpu_split_k.js';
import { matmulTops } from './gpu_matmul.js';
import { rowCaches } from './row_caches.js';
import { scheduleScan } from '../scan.js';
import { scheduleScatter } from '../scatter.js';

export { Schedule, type Primitive, type Trace, type KernelView, primitive } from './primitive.js';
export { ScheduleError } from './loops.js';
export { split } from './split.js';
export { reorder } from './reorder.js';
export { tile } from './tile.js';
export { fission } from './fission.js';
export { cacheWrite, accumulateInto } from './cache_write.js';
export { liftLocal } from './lift_local.js';
export { cacheRead } from './cache_read.js';
export { hoist } from './hoist.js';
export { pack } from './pack.js';
export { unroll, parallel } from './kinds.js';
export { fuse } from './fuse.js';
export { launch, sinkDecls } from './launch.js';
export { laneKinds, laneShape, vectorize, vectorLegal, vectorizeLanes } from './vectorize.js';
export { fold, foldLegal, foldLoops } from './fold.js';
export { dropUnitLoops, renumber, simplifyIndices } from './cleanup.js';
export { bind, privatize } from './bind.js';
export { addUnitLoop, expand, renumberNests, scaleDecl } from './gpu_loops.js';
export { computeAt } from './compute_at.js';
export { cacheShared, distribute } from './cache_shared.js';
export { rfactor } from './rfactor.js';
export { pad } from './pad.js';
export { flatten } from './flatten.js';
export { merge } from './merge.js';
export { dropDeadDecls } from './dead_decls.js';
export { convsAsMatmuls } from './gpu_conv.js';
export { pairDot } from './pair_dot.js';
export { poolTile } from './pool_tile.js';
export { gpuGrid } from './gpu_grid.js';
export { gpuLastBlock, lastBlock } from './gpu_last_block.js';
export { gpuSplitK, splitK } from './gpu_split_k.js';
export { gpuParity, parity, shareDecls } from './gpu_parity.js';
export { gpuReduce, treeParts, treeThreads } from './gpu_reduce.js';
export { warpTree } from './warp_tree.js';
export { finishMatmul, matmulNest, matmulTops, paddedTiles, renameMatmuls, scheduleMatmul, tileMatmul } from './gpu_matmul.js';

/** The names of the schedule steps (every primitive), as `--dump-after schedule:<name>` takes them. */
export const SCHEDULE_STEPS: readonly string[] = [
  'split', 'reorder', 'tile', 'fission', 'cacheWrite', 'accumulateInto', 'liftLocal', 'cacheRead', 'hoist', 'pack',
  'unroll', 'vectorize', 'fold', 'parallel', 'fuse', 'launch', 'sinkDecls', 'bind', 'dropUnitLoops', 'simplify', 'renumber',
  'addUnitLoop', 'expand', 'scaleDecl', 'renumberNests', 'computeAt', 'privatize', 'cacheShared', 'distribute', 'rfactor', 'treeThreads', 'pad',
  'warpTree', 'pairDot', 'poolTile', 'flatten', 'merge', 'dropDeadDecls', 'splitK', 'lastBlock',
];

/** A schedule recipe: applies primitives to the nests of a kernel it fits (and leaves the others alone). */
export interface Recipe {
  readonly name: string;
  readonly run: (s: Schedule, caps: TargetCaps) => void;
}

/** Unit loops dropped, then indices simplified and names renumbered where a recipe ran (the copy kernel has none). */
const cleanup: Recipe = {
  name: 'cleanup',
  run: (s, caps) => {
    if (s.program.kernels[s.kernel]!.ops.join() === 'copy') return;
    // names in print order where a recipe made new ones (lowering's names are kept elsewhere)
    const scheduled = s.applied.length > 0;
    // (lowering's unit loops leave no index to fold: their variables are unused); a matmul nest gpu_grid tiles
    // keeps its unit loops (its dimensions) until then
    const tiles = caps.gpu ? matmulTops(s.body) : [];
    if (!tiles.length) s.try(dropUnitLoops, {});
    else for (const x of s.body) if (x.k === 'for' && !tiles.includes(x.v)) s.try(dropUnitLoops, { loop: x.v });
    if (!scheduled) return;
    s.apply(simplifyIndices, {});
    s.apply(renumber, {});
  },
};

/** The recipes for a target, in the order they run on each kernel. */
export function recipesFor(caps: TargetCaps): readonly Recipe[] {
  return caps.gpu ? [gpuSplitK, rowCaches, cleanup, gpuGrid, gpuReduce, gpuLastBlock] : [cpuMatmul, cpuConv, rowCaches, cpuPool, cleanup, prepack, cpuKinds];
}

/** Schedules every kernel of a program for a target; trace sees the program after every primitive application. */
export function schedule(p: Program, caps: TargetCaps, trace?: Trace): Program {
  let program = p;
  for (let k = 0; k < program.kernels.length; k++) {
    // a scan loop's kernel (codegen/loop/scan.ts) keeps its serial time loop as lowered
    if (program.kernels[k]!.ops[0] === 'scan') {
      program = scheduleScan(program, k, caps);
      continue;
    }
    if (program.kernels[k]!.ops[0] === 'scatter_add') {
      program = scheduleScatter(program, k, caps, trace);
      continue;
    }
    const s = new Schedule(program, k, trace);
    for (const r of recipesFor(caps)) {
      s.recipe = r.name;
      r.run(s, caps);
    }
    program = s.program;
  }
  return program;
}
