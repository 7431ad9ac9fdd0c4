// vectorize: marks loops whose iterations are vector lanes. Renderers trust the kind, so the legality check is
// here, behind one function (vectorLegal).
import { usesVar } from '../analysis.js';
import type { Stmt } from '../ir.js';
import type { TargetCaps } from '../schedule.js';
import { kindPrimitive } from './kinds.js';
import type { For } from './loops.js';

/**
 * Why loop l cannot be vector lanes, or undefined: its body must be straight-line scalar code with no loop-carried
 * state (no assign to a variable declared outside it), own no local array, and store at indices that use it
 * (unless it has one lane).
 */
export function vectorLegal(l: For, caps?: TargetCaps): string | undefined {
  void caps;
  const declared = new Set<string>();
  for (const s of l.body as readonly Stmt[]) {
    if (s.k === 'for' || s.k === 'local') return `its body holds a ${s.k === 'for' ? 'loop' : 'local array'}`;
    if (s.k === 'decl') declared.add(s.name);
    if (s.k === 'assign' && !declared.has(s.name)) return `it assigns '${s.name}', declared outside it`;
    if (s.k === 'store' && l.extent > 1 && !usesVar(s.idx, l.v)) return `every lane would store to one element of '${s.buf}'`;
  }
  return undefined;
}

export const vectorize = kindPrimitive('vectorize', 'vector', (_, l) => vectorLegal(l));
