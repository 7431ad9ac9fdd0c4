// Cleanup steps after the recipes: serial loops of one iteration go (their variable is 0), and index arithmetic
// is simplified again (splits leave `(o*4 + m)*K + k`).
import { E, type Stmt } from '../ir.js';
import { simplify } from '../simplify.js';
import { substStmts } from './loops.js';
import { primitive } from './primitive.js';

function drop(body: readonly Stmt[]): Stmt[] {
  return body.flatMap((s): Stmt[] => {
    if (s.k !== 'for') return [s];
    const inner = drop(s.body);
    return s.extent === 1 && s.kind === 'serial' ? substStmts(inner, new Map([[s.v, E.i32(0)]])) : [{ ...s, body: inner }];
  });
}

const hasUnit = (body: readonly Stmt[]): boolean => body.some((s) => s.k === 'for' && ((s.extent === 1 && s.kind === 'serial') || hasUnit(s.body)));

/** Removes serial loops of one iteration. */
export const dropUnitLoops = primitive<Record<string, never>>({
  name: 'dropUnitLoops',
  check: (k) => (hasUnit(k.body) ? undefined : 'no serial loop of one iteration'),
  apply: (k) => ({ body: drop(k.body) }),
});

/** Simplifies the kernel's index arithmetic (simplify.ts). */
export const simplifyIndices = primitive<Record<string, never>>({
  name: 'simplify',
  check: () => undefined,
  apply: (k) => {
    const p = simplify({ name: 'k', buffers: k.buffers, kernels: [{ name: 'k', ops: [], body: k.body }], inputs: [], params: [], outputs: [], updates: [] });
    return { body: [...p.kernels[0]!.body] };
  },
});
