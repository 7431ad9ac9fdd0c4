// GPU targets only: each reduction gets the tree (`tree: W`, ir/ops.ts treeLevels) the GPU cost model picks, so
// its W partials can run on a block's threads and combine in a fixed order every evaluator follows (CPU targets
// never run this pass: their artifacts keep the serial order).
import { type Graph, rebuild } from '../../ir/graph.js';
import { isReduceOp, attrsOf } from '../../ir/ops.js';
import { sizeOf } from '../../ir/types.js';
import { type GpuCaps, reductionTree } from './gpu.js';

/** The graph with a `tree` attribute on every reduction a tree makes cheaper (one already declared is kept). */
export function reductionTrees(g: Graph, gpu: GpuCaps): Graph {
  return rebuild(g, (b, n, src) => {
    if (!isReduceOp(n.op)) return undefined;
    const { axes, tree } = attrsOf(n, n.op);
    if (tree !== undefined) return undefined;
    const x = src[0]!;
    const len = axes.reduce((a, d) => a * x.type.shape[d]!, 1), rows = sizeOf(n.type.shape);
    const W = rows > 0 && len > 0 ? reductionTree(rows, len, gpu) : 1;
    return W > 1 ? b.emit(n.op, src, { ...n.attrs, tree: W }) : undefined;
  });
}
