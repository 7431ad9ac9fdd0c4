// tile: two perfectly nested loops become a grid of tiles (Halide/TVM tile): split each, then order the four
// loops (by default the tile loops outside, the loops within a tile inside). Composed of split and reorder.
import { type Primitive, type KernelView, primitive } from './primitive.js';
import { reorder } from './reorder.js';
import { split } from './split.js';

export interface TileArgs {
  /** two loops, the second directly in the first */
  readonly loops: readonly [string, string];
  readonly factors: readonly [number, number];
  /** variables of the tile loops and of the loops within a tile */
  readonly outer: readonly [string, string];
  readonly inner: readonly [string, string];
  /** the four new loops in their order, outermost first (default: outer, then inner) */
  readonly order?: readonly string[];
}

function steps(a: TileArgs): [Primitive<never>, unknown][] {
  return [
    [split as Primitive<never>, { loop: a.loops[0], factor: a.factors[0], outer: a.outer[0], inner: a.inner[0] }],
    [split as Primitive<never>, { loop: a.loops[1], factor: a.factors[1], outer: a.outer[1], inner: a.inner[1] }],
    [reorder as Primitive<never>, { loops: a.order ?? [a.outer[0], a.outer[1], a.inner[0], a.inner[1]] }],
  ];
}

/** Runs primitives in turn on a view (checking each when `check`); the first one's reason when one does not apply. */
export function composed(k: KernelView, list: [Primitive<never>, unknown][], check = true): { body: KernelView['body']; why?: string } {
  let view = k;
  for (const [p, args] of list) {
    const why = check ? p.check(view, args as never) : undefined;
    if (why) return { body: view.body, why: `${p.name}: ${why}` };
    view = { ...view, body: p.apply(view, args as never).body };
  }
  return { body: view.body };
}

/** The last check's kernel body, arguments and result (the schedule applies a primitive right after checking it). */
let checked: { readonly from: KernelView['body']; readonly args: TileArgs; readonly body: KernelView['body'] } | undefined;

export const tile = primitive<TileArgs>({
  name: 'tile',
  check: (k, a) => {
    const r = composed(k, steps(a));
    checked = r.why === undefined ? { from: k.body, args: a, body: r.body } : undefined;
    return r.why;
  },
  apply: (k, a) => {
    const body = checked?.from === k.body && checked.args === a ? checked.body : composed(k, steps(a), false).body;
    checked = undefined;
    return { body: [...body] };
  },
});
