// fission: distributes a loop over consecutive parts of its body (loop distribution): `for v { A; B }` ->
// `for v { A }; for v' { B }`. Legal when B uses no scalar or local array A declares, no scalar is assigned in
// one part and used in another, and every array one part writes and another touches is accessed in an index
// range that separates the iterations (so no iteration of B depends on a later iteration of A).
import { E, type Stmt } from '../ir.js';
import { type For, accesses, disjointIterations, key, loopOf, readsOf, replaceLoop, substStmts } from './loops.js';
import { primitive } from './primitive.js';

export interface FissionArgs {
  readonly loop: string;
  /** where each later part starts: indices into the loop's body, increasing, each in 1..body.length-1 */
  readonly at: readonly number[];
  /** the loop variables of the later parts' loops (one per index in `at`) */
  readonly names: readonly string[];
  /** a new variable for the first part's loop (default: it keeps its own) */
  readonly first?: string;
}

function parts(l: For, at: readonly number[]): Stmt[][] {
  const cuts = [0, ...at, l.body.length];
  return cuts.slice(1).map((end, i) => l.body.slice(cuts[i], end));
}

/** Why distributing loop l at the cuts may change results, or undefined. */
export function fissionProblem(l: For, at: readonly number[]): string | undefined {
  if (at.some((c, i) => !Number.isInteger(c) || c < 1 || c >= l.body.length || (i > 0 && c <= at[i - 1]!))) return `cut points ${at.join(', ')} are not increasing positions inside the body of ${l.body.length} statements`;
  const ps = parts(l, at).map((p) => ({ stmts: p, acc: accesses(p), reads: readsOf(p) }));
  for (const [i, p] of ps.entries()) {
    for (const q of ps.slice(i + 1)) {
      const used = [...p.acc.declared].find((d) => q.reads.has(d));
      if (used) return `'${used}' is declared in one part and used in a later one`;
    }
    for (const [j, q] of ps.entries()) {
      if (i === j) continue;
      const shared = [...p.acc.assigned].find((v) => !p.acc.declared.has(v) && q.reads.has(v));
      if (shared) return `'${shared}' is assigned in one part and used in another`;
    }
  }
  const all = accesses(l.body);
  const written = new Set(all.arrays.filter((a) => a.write).map((a) => a.array));
  for (const name of written) {
    const touching = ps.filter((p) => p.acc.arrays.some((a) => a.array === name));
    if (touching.length < 2) continue;
    const acc = all.arrays.filter((a) => a.array === name);
    if (!disjointIterations(acc, l.v, l.extent, all.declared)) return `cannot prove that the iterations touch different elements of '${name}' (indices ${[...new Set(acc.map((a) => key(a.idx)))].join(', ')})`;
  }
  return undefined;
}

export const fission = primitive<FissionArgs>({
  name: 'fission',
  check: (k, a) => {
    const l = loopOf(k.body, a.loop);
    if (a.names.length !== a.at.length) return `${a.at.length} cut points but ${a.names.length} loop names`;
    return fissionProblem(l, a.at);
  },
  apply: (k, a) => ({
    body: replaceLoop(k.body, a.loop, (l) => parts(l, a.at).map((p, i) => {
      const v = i === 0 ? a.first ?? l.v : a.names[i - 1]!;
      return { ...l, v, body: v === l.v ? p : substStmts(p, new Map([[l.v, E.v(v)]])) };
    })),
  }),
});
