// schedule: chooses loop kinds (parallel, vector, serial) from a cost model of extents and work; on a GPU, grids (gpu.ts).
import { independentIterations, pureDecls, usesVar, work } from './analysis.js';
import { type GpuCaps, H100, gridKernel } from './gpu.js';
import type { AxisKind, Kernel, Program, Stmt } from './ir.js';

/** What a target offers the scheduler. */
export interface TargetCaps {
  /** f32 lanes of one vector register (16 for AVX-512, 4 for wasm SIMD128, 1 to disable). */
  readonly vectorWidth: number;
  /** Worker threads (1: no parallel loops). */
  readonly threads: number;
  /** Minimum scalar operations a parallel loop must carry to be worth a thread hand-off. */
  readonly parallelGrain: number;
  /** A GPU: nests become grids of thread blocks (vectorWidth and threads are then unused). */
  readonly gpu?: GpuCaps;
}

export const DEFAULT_CAPS: TargetCaps = { vectorWidth: 4, threads: 1, parallelGrain: 1 << 15 };

/** The CUDA target's GPU (H100/H200 class). */
export const CUDA_CAPS: TargetCaps = { vectorWidth: 1, threads: 1, parallelGrain: 1 << 15, gpu: H100 };

/**
 * An innermost loop is vectorizable when its body is straight-line scalar code whose only loop-carried
 * state is none (no assign to a variable declared outside it) and it owns no local arrays.
 */
function vectorizable(loop: Extract<Stmt, { k: 'for' }>): boolean {
  const declared = new Set<string>();
  for (const s of loop.body) {
    if (s.k === 'for' || s.k === 'local') return false;
    if (s.k === 'decl') declared.add(s.name);
    if (s.k === 'assign' && !declared.has(s.name)) return false;
    if (s.k === 'store' && !usesVar(s.idx, loop.v)) return false; // every lane would store to one element
  }
  return true;
}

function annotate(stmts: readonly Stmt[], caps: TargetCaps, depth: number): Stmt[] {
  const pure = depth === 0 ? pureDecls(stmts) : new Map();
  const topLocals = new Set(stmts.flatMap((s) => (s.k === 'local' ? [s.name] : [])));
  return stmts.map((s) => {
    if (s.k !== 'for') return s;
    const body = annotate(s.body, caps, depth + 1);
    let kind: AxisKind = s.kind;
    if (kind !== 'serial') return { ...s, body }; // lowering already chose (unroll, vector lanes of a micro-kernel)
    if (depth === 0 && caps.threads > 1 && s.extent >= 2 && work([s]) >= caps.parallelGrain && independentIterations(s, pure, topLocals)) kind = 'parallel';
    else if (caps.vectorWidth > 1 && s.extent >= caps.vectorWidth && vectorizable({ ...s, body })) kind = 'vector';
    return { ...s, kind, body };
  });
}

/** Schedules every kernel of a program for a target. */
export function schedule(p: Program, caps: TargetCaps = DEFAULT_CAPS): Program {
  const gpu = caps.gpu;
  const kernels: Kernel[] = p.kernels.map((k) => (gpu ? gridKernel(k, gpu) : { ...k, body: annotate(k.body, caps, 0) }));
  return { ...p, kernels };
}
