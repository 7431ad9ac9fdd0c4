// Recipe: CPU loop kinds from a cost model of extents and work. A top-level loop with independent iterations and
// enough work for a thread hand-off (libm calls weighing as CALL_WORK operations) runs in parallel (when the target
// has threads), a producer nest before it merged into it where each of its iterations makes what the same
// iteration reads (mergeProducers: one parallel region, not two or a serial nest and one), else in parallel itself
// with a quarter of the grain's work; an innermost loop of at least
// min(V, 4) iterations that can be lanes (laneShape) runs as vector lanes where the target has a vector form for
// it, else unrolled or serial (vectorizeLanes). A serial reduction whose values folded in have a vector form on the
// target becomes a fold loop (fold.ts). Loops a recipe already gave a kind keep it. An innermost loop longer than the
// target's vectors (LLVM: 128 lanes) is split first so its inner part can be lanes (a 256-wide Adam update).
import type { Stmt } from '../ir.js';
import type { TargetCaps } from '../schedule.js';
import { renumber } from './cleanup.js';
import type { Recipe } from './index.js';
import { parallel } from './kinds.js';
import { type For, ScheduleError } from './loops.js';
import { merge } from './merge.js';
import type { Schedule } from './primitive.js';
import { fold, foldLoops } from './fold.js';
import { split } from './split.js';
import { laneShape, vectorizeLanes } from './vectorize.js';
import { stmtExprs, someExpr } from '../visit.js';

/**
 * The operations a libm call (exp, log, tanh, pow ...: a few ns each, lane by lane where the target has no vector
 * form) counts as in a loop's work: a softmax's rows (256 x 10 exp, 5.7 us on one Xeon core) reach the parallel
 * grain that their count of statements alone (26,000) does not.
 */
const CALL_WORK = 16;
const CALLS: ReadonlySet<string> = new Set(['exp', 'log', 'log1p', 'tanh', 'erf', 'sin', 'cos', 'pow']);

/** Operations one run of the statements executes (analysis.ts work), a statement calling libm counting CALL_WORK per call. */
export function parallelWork(stmts: readonly Stmt[]): number {
  let w = 0;
  for (const s of stmts) {
    if (s.k === 'for') { w += s.extent * Math.max(1, parallelWork(s.body)); continue; }
    let calls = 0;
    for (const e of stmtExprs(s)) someExpr(e, (x) => { if ((x.k === 'unary' || x.k === 'binary') && CALLS.has(x.op)) calls++; return false; });
    w += 1 + calls * CALL_WORK + (s.k === 'if' ? parallelWork(s.body) : 0);
  }
  return w;
}

/** Whether a top-level serial loop is worth a thread hand-off and may run in parallel. */
function parallelWorth(s: Schedule, l: For, caps: TargetCaps): boolean {
  return caps.threads > 1 && l.kind === 'serial' && l.extent >= 2 && parallelWork([l]) >= caps.parallelGrain && s.check(parallel, { loops: [l.v] }) === undefined;
}

/**
 * Merges each top-level nest into the loop after it that will run in parallel, where the producer's iterations,
 * split into as many blocks as the loop has iterations, touch the arrays they share in the same slab per iteration
 * (merge.ts): a row quantize-and-pack nest of 256 rows before a matmul nest of 64 blocks of 4 rows becomes part of
 * those blocks. The merged loop must stay parallel, and keep an iteration for every thread where the producer had
 * them (a producer of many iterations is not squeezed into fewer than the threads).
 */
function mergeProducers(s: Schedule, caps: TargetCaps): void {
  for (let i = 0; i + 1 < s.body.length; i++) {
    const x = s.body[i]!, y = s.body[i + 1]!;
    if (x.k !== 'for' || y.k !== 'for' || x.kind !== 'serial' || x.extent % y.extent || y.extent < Math.min(x.extent, caps.threads)) continue;
    if (!parallelWorth(s, y, caps)) continue;
    const merged = s.attempt(() => {
      let v = x.v;
      if (x.extent > y.extent) {
        v = s.fresh(`${x.v}o`);
        s.apply(split, { loop: x.v, factor: x.extent / y.extent, outer: v, inner: s.fresh(`${x.v}i`) });
      }
      s.apply(merge, { loops: [v, y.v] });
      const why = s.check(parallel, { loops: [v] });
      if (why) throw new ScheduleError(why);
    });
    if (merged) i = Math.max(-1, i - 2); // the merged loop may take the nest before it too
    // one that does not merge runs in parallel too where it has a fraction of the grain's work: between two
    // parallel regions a serial nest costs its whole time, a third region one hand-off (a convolution's packing nest
    // read back at indices merge.ts cannot bound: the seed CNN's second conv's 64 x 392 quads, before its steps were
    // expanded, were 10% of a 1-thread call on one thread)
    else if (x.extent >= caps.threads && parallelWork([x]) * 4 >= caps.parallelGrain) s.try(parallel, { loops: [x.v] });
  }
}

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
      if (depth === 0 && parallelWorth(s, l, caps)) par.push(l.v);
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
    if (caps.threads > 1) mergeProducers(s, caps);
    const { par, vec } = kinds(s.body, caps, s);
    if (par.length) s.apply(parallel, { loops: par });
    if (vec.length) vectorizeLanes(s, vec, caps);
    const folds = foldLoops(s.body, caps);
    if (folds.length) s.apply(fold, { loops: folds, caps });
  },
};
