// Local rewrite rules as data, applied bottom-up to a fixed point (the engine behind canonicalize).
import { Builder, type Graph, type Node, rebuild } from '../ir/graph.js';
import type { Op } from '../ir/ops.js';

/** One local rewrite: for nodes of `op`, returns the replacement (built with b) or undefined to keep the node. */
export interface RewriteRule {
  readonly op: Op | readonly Op[];
  /** The algebra, e.g. "x*1 -> x". */
  readonly doc: string;
  readonly rewrite: (n: Node, b: Builder) => Node | undefined;
}

/** Rebuilds the graph applying rules to every node (sources first), repeating until nothing changes. */
export function rewriteToFixedPoint(g: Graph, rules: readonly RewriteRule[], maxRounds = 16): Graph {
  const byOp = new Map<Op, RewriteRule[]>();
  for (const r of rules) for (const op of Array.isArray(r.op) ? r.op : [r.op as Op]) byOp.set(op, [...(byOp.get(op) ?? []), r]);
  let cur = g;
  for (let round = 0; round < maxRounds; round++) {
    let changed = false;
    cur = rebuild(cur, (b, n, src) => {
      let node = n.src.length === 0 ? undefined : b.emit(n.op, src, n.attrs);
      // apply rules to the rebuilt node until none fires (each replacement may enable another)
      for (let guard = 0; node && guard < 32; guard++) {
        const fired = (byOp.get(node.op) ?? []).map((r) => r.rewrite(node!, b)).find((x) => x !== undefined);
        if (!fired || fired === node) break;
        node = fired;
        changed = true;
      }
      return node;
    });
    if (!changed) break;
  }
  return cur;
}
