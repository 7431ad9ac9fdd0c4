// vectorize: marks loops whose iterations are vector lanes, only where the target renders them as vectors
// (canVectorize); renderers trust the kind. vectorizeLanes is the one decision recipes take for their lane loops:
// vector where the target has a vector form, else unrolled over register arrays, else serial.
import { usesVar, work } from '../analysis.js';
import type { AxisKind, Expr, Stmt } from '../ir.js';
import { type VectorTarget, whyNotVector } from '../vectorize.js';
import { someExpr } from '../visit.js';
import { type LoopsArgs, kindPrimitive, setKinds, unroll } from './kinds.js';
import { type For, ScheduleError, findLoop } from './loops.js';
import type { Schedule } from './primitive.js';

/**
 * Why loop l cannot be vector lanes in any target, or undefined: its body must be straight-line scalar code with no
 * loop-carried state (no assign to a variable declared outside it), own no local array, and store at indices that
 * use it (unless it has one lane).
 */
export function laneShape(l: For): string | undefined {
  const declared = new Set<string>();
  for (const s of l.body as readonly Stmt[]) {
    if (s.k === 'for' || s.k === 'local') return `its body holds a ${s.k === 'for' ? 'loop' : 'local array'}`;
    if (s.k === 'decl') declared.add(s.name);
    if (s.k === 'assign' && !declared.has(s.name)) return `it assigns '${s.name}', declared outside it`;
    if (s.k === 'store' && l.extent > 1 && !usesVar(s.idx, l.v)) return `every lane would store to one element of '${s.buf}'`;
  }
  return undefined;
}

/** Why loop l cannot be vector lanes on the target, or undefined: laneShape, then canVectorize's reason. */
export function vectorLegal(l: For, caps: VectorTarget): string | undefined {
  return laneShape(l) ?? whyNotVector(l, caps);
}

export interface VectorizeArgs extends LoopsArgs {
  readonly caps: VectorTarget;
}

export const vectorize = kindPrimitive<VectorizeArgs>('vectorize', 'vector', (_, l, a) => vectorLegal(l, a.caps));

/** Whether the statements load from or store into one of the arrays. */
function touches(ss: readonly Stmt[], arrays: ReadonlySet<string>): boolean {
  const inExpr = (e: Expr): boolean => someExpr(e, (x) => x.k === 'load' && arrays.has(x.buf));
  return ss.some((s) => (s.k === 'store' ? arrays.has(s.buf) || inExpr(s.idx) || inExpr(s.value) : s.k === 'decl' ? inExpr(s.init)
    : s.k === 'assign' ? inExpr(s.value) : s.k === 'for' && touches(s.body, arrays)));
}

/** Every local array the statements declare. */
function localsOf(ss: readonly Stmt[], out = new Set<string>()): Set<string> {
  for (const s of ss) {
    if (s.k === 'local') out.add(s.name);
    else if (s.k === 'for') localsOf(s.body, out);
  }
  return out;
}

/**
 * The kind of each lane loop (loops laneShape accepts): vector where the target has a vector form for it; else
 * unroll where it reads or writes a register array the target keeps in registers (VectorCaps.registers, judged with
 * every lane loop a vector loop) within VectorCaps.maxUnroll statements, so each lane's element has a constant
 * index; else serial.
 */
export function laneKinds(body: readonly Stmt[], loops: readonly string[], caps: VectorTarget): Map<string, AxisKind> {
  const v = caps.vector, tentative = setKinds(body, new Map(loops.map((l) => [l, 'vector'])));
  const registers = v?.registers?.(tentative) ?? localsOf(body);
  return new Map(loops.map((name) => {
    const l = findLoop(body, name)!;
    if (vectorLegal(l, caps) === undefined) return [name, 'vector'];
    return [name, work([l]) <= (v?.maxUnroll ?? Infinity) && touches(l.body, registers) ? 'unroll' : 'serial'];
  }));
}

/**
 * Applies laneKinds' decision: vectorize, and unroll, the lane loops it gives those kinds. A ScheduleError (as from
 * s.apply) where one is missing or no target could run it as lanes.
 */
export function vectorizeLanes(s: Schedule, loops: readonly string[], caps: VectorTarget): void {
  for (const name of loops) {
    const l = findLoop(s.body, name), why = !l ? 'no such loop' : l.kind !== 'serial' ? `it is ${l.kind} already` : laneShape(l);
    if (why) throw new ScheduleError(`schedule ${s.recipe}: vectorize on kernel ${s.name}: loop '${name}': ${why}`);
  }
  const kinds = [...laneKinds(s.body, loops, caps)];
  const of = (kind: AxisKind) => kinds.filter(([, k]) => k === kind).map(([l]) => l);
  if (of('vector').length) s.apply(vectorize, { loops: of('vector'), caps });
  if (of('unroll').length) s.apply(unroll, { loops: of('unroll') });
}
