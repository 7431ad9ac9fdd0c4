// hoist: loop-invariant code motion. The decls directly in a loop's body that read neither its variable, nor a
// decl that does, nor a scalar or array the loop changes, move to just before the loop (in order). A loop runs at
// least once, so every hoisted load was executed before too; values are unchanged.
import type { Stmt } from '../ir.js';
import { accesses, loopOf, readsOf, replaceLoop, varsOf } from './loops.js';
import { primitive } from './primitive.js';

export interface HoistArgs {
  readonly loop: string;
}

/** The decls of the loop's body that may move out of it. */
export function invariantDecls(body: readonly Stmt[], v: string): Set<Stmt> {
  const { arrays, assigned } = accesses(body);
  const written = new Set(arrays.filter((a) => a.write).map((a) => a.array));
  const variant = new Set<string>([v, ...assigned, ...written]);
  const out = new Set<Stmt>();
  for (const s of body) {
    if (s.k === 'decl' && ![...readsOf([s])].some((x) => variant.has(x)) && !varsOf(s.init).has(s.name)) out.add(s);
    else if (s.k === 'decl' || s.k === 'local') variant.add(s.name);
  }
  return out;
}

export const hoist = primitive<HoistArgs>({
  name: 'hoist',
  check: (k, a) => (invariantDecls(loopOf(k.body, a.loop).body, a.loop).size ? undefined : `loop '${a.loop}' has no invariant decl to hoist`),
  apply: (k, a) => ({
    body: replaceLoop(k.body, a.loop, (l) => {
      const inv = invariantDecls(l.body, l.v);
      return [...l.body.filter((s) => inv.has(s)), { ...l, body: l.body.filter((s) => !inv.has(s)) }];
    }),
  }),
});
