// fold: marks serial reductions whose values folded in the target computes as vector lanes, the fold itself lane by
// lane in order (fold.ts), judged on the loop as the target's legalize leaves it; renderers trust the kind.
import { foldForm } from '../fold.js';
import type { Stmt } from '../ir.js';
import { legalizeStmts } from '../legalize.js';
import type { VectorTarget } from '../vectorize.js';
import { type LoopsArgs, kindPrimitive } from './kinds.js';
import type { For } from './loops.js';

/** Why loop l cannot be a fold loop on the target, or undefined. */
export function foldLegal(l: For, caps: VectorTarget): string | undefined {
  if (!caps.vector?.fold) return 'the target renders no fold loops';
  const [legal] = legalizeStmts([l], caps.legal) as [For];
  const form = foldForm(legal, caps.vector);
  return typeof form === 'string' ? form : undefined;
}

export interface FoldArgs extends LoopsArgs {
  readonly caps: VectorTarget;
}

export const fold = kindPrimitive<FoldArgs>('fold', 'fold', (_, l, a) => foldLegal(l, a.caps));

/** The serial loops of the statements (at any depth) that can be fold loops on the target. */
export function foldLoops(body: readonly Stmt[], caps: VectorTarget, out: string[] = []): string[] {
  for (const s of body) {
    if (s.k !== 'for') continue;
    if (s.kind === 'serial' && foldLegal(s, caps) === undefined) out.push(s.v);
    else foldLoops(s.body, caps, out);
  }
  return out;
}
