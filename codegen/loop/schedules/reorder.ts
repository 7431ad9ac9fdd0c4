// reorder: permutes perfectly nested loops (Halide/TVM reorder). Legal when every element written in the nest is
// touched by iterations that differ only in loops keeping their relative order (a reduction's loops stay in order;
// the loops its index separates may move freely), so every element sees the same operations in the same order.
import { usesVar } from '../analysis.js';
import type { Expr, Stmt } from '../ir.js';
import { type For, accesses, commonGuards, findLoop, key, mapExpr, replaceLoop, separates } from './loops.js';
import { primitive } from './primitive.js';

export interface ReorderArgs {
  /** the loops of one perfect nest in their new order, outermost first */
  readonly loops: readonly string[];
}

/** The perfect nest the loops form, outermost first, or why they form none. */
export function perfectNest(body: readonly Stmt[], loops: readonly string[]): For[] | string {
  const names = new Set(loops);
  const found = loops.map((v) => findLoop(body, v));
  const missing = loops.find((_, i) => !found[i]);
  if (missing !== undefined) return `no loop '${missing}' in the kernel`;
  // the first loop no other of them holds (the names of them inside each, one walk per loop)
  const inside = new Map(found.map((o) => {
    const vs = new Set<string>();
    const collect = (ss: readonly Stmt[]): void => {
      for (const x of ss) if (x.k === 'for') { if (names.has(x.v)) vs.add(x.v); collect(x.body); }
    };
    collect(o!.body);
    return [o, vs];
  }));
  const top = found.find((l) => !found.some((o) => o !== l && inside.get(o)!.has(l!.v)))!;
  const out: For[] = [top];
  while (out.length < names.size) {
    const cur = out[out.length - 1]!, next = cur.body[0];
    if (cur.body.length !== 1 || next?.k !== 'for' || !names.has(next.v)) return `loops ${loops.join(', ')} are not one perfect nest`;
    out.push(next);
  }
  return out;
}

/** Why running the nest's loops in `order` may change results, or undefined. */
export function reorderProblem(nest: readonly For[], order: readonly string[]): string | undefined {
  const body = nest[nest.length - 1]!.body;
  const { arrays, assigned, declared } = accesses(body);
  const extents = new Map(nest.map((l) => [l.v, l.extent]));
  const moving = (vs: readonly string[]) => vs.filter((v) => extents.get(v)! > 1);
  const oldOrder = moving(nest.map((l) => l.v));
  const keepsOrder = (keep: ReadonlySet<string>) => {
    const a = oldOrder.filter((v) => keep.has(v)), b = moving(order).filter((v) => keep.has(v));
    return a.every((v, i) => v === b[i]);
  };
  const outer = [...assigned].filter((v) => !declared.has(v));
  if (outer.length && !keepsOrder(new Set(oldOrder))) return `the nest assigns '${outer[0]}', declared outside it (a reduction over all its loops)`;
  // iterations where a guard `e < n` every store holds fails store nothing (pad's added ones), so what they read is
  // dead; the others read pad's clamped `min(e, n - 1)` at e (an in-place update p = p + a @ b on padded tiles)
  const live = commonGuards(arrays.filter((a) => a.write));
  const bound = new Map(live.flatMap((g) => (g.k === 'binary' && g.op === 'lt' && g.b.k === 'const' ? [[key(g.a), g.b.v] as const] : [])));
  const unclamped = (e: Expr) => (bound.size ? mapExpr(e, (x) => (x.k === 'binary' && x.op === 'min' && x.b.k === 'const' && bound.get(key(x.a)) === x.b.v + 1 ? x.a : x)) : e);
  for (const name of new Set(arrays.filter((a) => a.write).map((a) => a.array))) {
    const acc = arrays.filter((a) => a.array === name);
    const idx = unclamped(acc[0]!.idx), text = key(idx);
    if (acc.some((a) => key(unclamped(a.idx)) !== text)) return `'${name}' is written and read at different indices in the nest`;
    const named = new Map([...extents].filter(([v]) => usesVar(idx, v)));
    const free = new Map<string, number>();
    for (const a of acc) for (const [v, n] of a.inner) free.set(v, n);
    if (!separates(idx, named, free, declared, [...new Set([...commonGuards(acc), ...live])])) return `cannot prove the nest's iterations write different elements of '${name}' (index ${text})`;
    const rest = new Set(oldOrder.filter((v) => !named.has(v)));
    if (!keepsOrder(rest)) return `loops ${[...rest].join(', ')} accumulate into '${name}' and must keep their order`;
  }
  return undefined;
}

export const reorder = primitive<ReorderArgs>({
  name: 'reorder',
  check: (k, a) => {
    if (new Set(a.loops).size !== a.loops.length) return `loops ${a.loops.join(', ')} name one loop twice`;
    const nest = perfectNest(k.body, a.loops);
    return typeof nest === 'string' ? nest : reorderProblem(nest, a.loops);
  },
  apply: (k, a) => {
    const nest = perfectNest(k.body, a.loops) as For[];
    const byName = new Map(nest.map((l) => [l.v, l]));
    let body: Stmt[] = [...nest[nest.length - 1]!.body];
    for (let i = a.loops.length - 1; i >= 0; i--) body = [{ ...byName.get(a.loops[i]!)!, body }];
    return { body: replaceLoop(k.body, nest[0]!.v, () => body) };
  },
});
