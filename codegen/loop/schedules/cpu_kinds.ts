// Recipe: CPU loop kinds from a cost model of extents and work. A top-level loop with independent iterations and
// enough work for a thread hand-off runs in parallel (when the target has threads); an innermost loop of at least
// min(V, 4) iterations that can be lanes (laneShape) runs as vector lanes where the target has a vector form for
// it, else unrolled or serial (vectorizeLanes). A serial reduction whose values folded in have a vector form on the
// target becomes a fold loop (fold.ts). Loops a recipe already gave a kind keep it. An innermost loop longer than the
// target's vectors (LLVM: 128 lanes) is split first so its inner part can be lanes (a 256-wide Adam update).
import { work } from '../analysis.js';
import type { Stmt } from '../ir.js';
import type { TargetCaps } from '../schedule.js';
import { renumber } from './cleanup.js';
import type { Recipe } from './index.js';
import { parallel } from './kinds.js';
import type { For } from './loops.js';
import type { Schedule } from './primitive.js';
import { fold, foldLoops } from './fold.js';
import { split } from './split.js';
import { laneShape, vectorizeLanes } from './vectorize.js';

/** Whether two loops of the statements have one variable (lowering's copy kernel names each of its loops i0). */
function reusesLoopNames(body: readonly Stmt[], seen = new Set<string>()): boolean {
  for (const s of body) {
    if (s.k !== 'for') continue;
    if (seen.has(s.v)) return true;
    seen.add(s.v);
    if (reusesLoopNames(s.body, seen)) return true;
  }
  return false;
}

/**
 * The factor to split a would-be lane loop of n iterations by so its inner loop fits the target's vectors: the
 * largest divisor of n up to the longest vector, a multiple of the vector width where one is; undefined where n
 * fits, or has no divisor of at least the width.
 */
export function laneFactor(n: number, caps: TargetCaps): number | undefined {
  const most = caps.vector?.maxExtent ?? Infinity, w = caps.vectorWidth;
  if (n <= most) return undefined;
  let best: number | undefined;
  for (let f = Math.min(most, n - 1); f >= w; f--) {
    if (n % f) continue;
    if (f % w === 0) return f;
    best ??= f;
  }
  return best;
}

/** Splits each serial innermost loop that could be lanes but is longer than the target's vectors (laneFactor). */
function splitLongLanes(s: Schedule, caps: TargetCaps): void {
  const long: [string, number][] = [];
  const visit = (stmts: readonly Stmt[]): void => {
    for (const l of stmts.filter((x): x is For => x.k === 'for')) {
      visit(l.body);
      const f = l.kind === 'serial' && !l.body.some((b) => b.k === 'for') && laneShape(l) === undefined ? laneFactor(l.extent, caps) : undefined;
      if (f !== undefined) long.push([l.v, f]);
    }
  };
  visit(s.body);
  for (const [loop, factor] of long) s.apply(split, { loop, factor, outer: s.fresh(`${loop}o`), inner: s.fresh(`${loop}l`) });
}

/** The serial loops to run in parallel and as vector lanes. */
function kinds(body: readonly Stmt[], caps: TargetCaps, s: Schedule): { par: string[]; vec: string[] } {
  const par: string[] = [], vec: string[] = [];
  const visit = (stmts: readonly Stmt[], depth: number): void => {
    for (const l of stmts.filter((x): x is For => x.k === 'for')) {
      visit(l.body, depth + 1);
      if (l.kind !== 'serial') continue;
      if (depth === 0 && caps.threads > 1 && l.extent >= 2 && work([l]) >= caps.parallelGrain && s.check(parallel, { loops: [l.v] }) === undefined) par.push(l.v);
      else if (caps.vectorWidth > 1 && l.extent >= Math.min(caps.vectorWidth, 4) && laneShape(l) === undefined) vec.push(l.v);
    }
  };
  visit(body, 0);
  return { par, vec };
}

export const cpuKinds: Recipe = {
  name: 'cpu-kinds',
  run: (s: Schedule, caps: TargetCaps) => {
    if (caps.gpu) return;
    // primitives name loops by variable, and each loop gets its own kind
    if (reusesLoopNames(s.body)) s.apply(renumber, {});
    if (caps.vectorWidth > 1) splitLongLanes(s, caps);
    const { par, vec } = kinds(s.body, caps, s);
    if (par.length) s.apply(parallel, { loops: par });
    if (vec.length) vectorizeLanes(s, vec, caps);
    const folds = foldLoops(s.body, caps);
    if (folds.length) s.apply(fold, { loops: folds, caps });
  },
};
