// schedule: chooses loop kinds (parallel, vector, serial) and splits from a cost model of extents and work.
import type { AxisKind, Expr, Kernel, Program, Stmt } from './ir.js';

/** What a target offers the scheduler. */
export interface TargetCaps {
  /** f32 lanes of one vector register (16 for AVX-512, 4 for wasm SIMD128, 1 to disable). */
  readonly vectorWidth: number;
  /** Worker threads (1: no parallel loops). */
  readonly threads: number;
  /** Minimum scalar operations a parallel loop must carry to be worth a thread hand-off. */
  readonly parallelGrain: number;
}

export const DEFAULT_CAPS: TargetCaps = { vectorWidth: 4, threads: 1, parallelGrain: 1 << 15 };

/** Scalar operations executed by one run of the statements (loop extents times body sizes). */
export function work(stmts: readonly Stmt[]): number {
  let w = 0;
  for (const s of stmts) w += s.k === 'for' ? s.extent * Math.max(1, work(s.body)) : 1;
  return w;
}

function usesVar(e: Expr, v: string): boolean {
  switch (e.k) {
    case 'var': return e.name === v;
    case 'const': return false;
    case 'load': return usesVar(e.idx, v);
    case 'unary': case 'cast': return usesVar(e.a, v);
    case 'binary': return usesVar(e.a, v) || usesVar(e.b, v);
    case 'select': return usesVar(e.c, v) || usesVar(e.a, v) || usesVar(e.b, v);
    case 'philox': return usesVar(e.counter, v) || usesVar(e.index, v);
  }
}

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
  return stmts.map((s) => {
    if (s.k !== 'for') return s;
    const body = annotate(s.body, caps, depth + 1);
    let kind: AxisKind = s.kind;
    if (kind !== 'serial') return { ...s, body }; // lowering already chose (unroll, vector lanes of a micro-kernel)
    if (depth === 0 && caps.threads > 1 && s.extent >= 2 && work([s]) >= caps.parallelGrain) kind = 'parallel';
    else if (caps.vectorWidth > 1 && s.extent >= caps.vectorWidth && vectorizable({ ...s, body })) kind = 'vector';
    return { ...s, kind, body };
  });
}

/** Schedules every kernel of a program for a target. */
export function schedule(p: Program, caps: TargetCaps = DEFAULT_CAPS): Program {
  const kernels: Kernel[] = p.kernels.map((k) => ({ ...k, body: annotate(k.body, caps, 0) }));
  return { ...p, kernels };
}
