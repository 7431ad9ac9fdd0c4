// Orders a kernel's independent statements so the outputs of a flat block (gradStep's gradients under MPI) complete from its end.
import type { Program, Stmt } from './ir.js';
import { accesses } from './memplan.js';
import { forEachStmtExpr, walkStmts } from './visit.js';

/** Names a top-level statement writes (buffers, local arrays, scalars) and reads. */
function effects(s: Stmt): { writes: Set<string>; reads: Set<string> } {
  const { loads, stores } = accesses([s]);
  const writes = new Set(stores), reads = new Set(loads);
  walkStmts([s], (x) => { if (x.k === 'decl' || x.k === 'assign' || x.k === 'local') writes.add(x.name); });
  forEachStmtExpr([s], (e) => { if (e.k === 'var') reads.add(e.name); });
  return { writes, reads };
}

/**
 * Each kernel's top-level statements in an order the data allows (a statement after every one it reads from,
 * writes after or is read by before it) that stores the later outputs of `flat` first: the runtime reduces a
 * completed suffix of the block while the rest is computed (memplan's FlatPlan.ready), so the suffix should grow
 * early. The backward pass's fusion puts the small last-layer gradients and the loss beside the first layer's big
 * one in one kernel; in graph order the big one came first. Values are unchanged: only independent statements move.
 */
export function completeFlatLast(p: Program, flat: readonly string[]): Program {
  const index = new Map<string, number>();
  flat.forEach((name, i) => {
    const b = p.outputs.find((o) => o.name === name)?.buffer;
    if (b !== undefined) index.set(b, i);
  });
  const kernels = p.kernels.map((k) => {
    const fx = k.body.map(effects);
    const n = k.body.length;
    // deps[j]: the earlier statements j must follow
    const deps = fx.map((b, j) => fx.slice(0, j).flatMap((a, i) =>
      [...a.writes].some((x) => b.reads.has(x) || b.writes.has(x)) || [...a.reads].some((x) => b.writes.has(x)) ? [i] : []));
    // a statement's rank: the latest flat output it or a statement after it that depends on it stores
    const rank = fx.map((f) => Math.max(-1, ...[...f.writes].map((x) => index.get(x) ?? -1)));
    for (let j = n - 1; j >= 0; j--) for (const i of deps[j]!) rank[i] = Math.max(rank[i]!, rank[j]!);
    const done = new Set<number>(), order: number[] = [];
    while (order.length < n) {
      let pick = -1;
      for (let j = 0; j < n; j++) {
        if (done.has(j) || !deps[j]!.every((i) => done.has(i))) continue;
        if (pick < 0 || rank[j]! > rank[pick]!) pick = j;
      }
      done.add(pick);
      order.push(pick);
    }
    return order.every((j, i) => j === i) ? k : { ...k, body: order.map((j) => k.body[j]!) };
  });
  return kernels.every((k, i) => k === p.kernels[i]) ? p : { ...p, kernels };
}
