// split: one loop becomes two, outer x inner (Halide/TVM split): `for v in n` -> `for o in n/f { for i in f }`
// with v = o*f + i. The iterations run in the same order, so results are unchanged.
import { E, S } from '../ir.js';
import { loopOf, replaceLoop, substStmts } from './loops.js';
import { primitive } from './primitive.js';

export interface SplitArgs {
  readonly loop: string;
  /** iterations of the inner loop; must divide the extent (loop IR has no tail guards) */
  readonly factor: number;
  readonly outer: string;
  readonly inner: string;
}

export const split = primitive<SplitArgs>({
  name: 'split',
  check: (k, a) => {
    const l = loopOf(k.body, a.loop);
    if (!Number.isInteger(a.factor) || a.factor < 1) return `factor ${a.factor} is not a positive integer`;
    if (l.extent % a.factor) return `factor ${a.factor} does not divide loop '${a.loop}' of ${l.extent} iterations`;
    return undefined;
  },
  apply: (k, a) => ({
    body: replaceLoop(k.body, a.loop, (l) => {
      const v = E.add(E.mul(E.v(a.outer), E.i32(a.factor)), E.v(a.inner));
      return [S.for(a.outer, l.extent / a.factor, [S.for(a.inner, a.factor, substStmts(l.body, new Map([[l.v, v]])))], l.kind)];
    }),
  }),
});
