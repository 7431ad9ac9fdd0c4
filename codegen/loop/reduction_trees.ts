// GPU targets only: each reduction gets the tree (`tree: W`, ir/ops.ts treeLevels) the GPU cost model picks, so
// its W partials can run on a block's threads and combine in a fixed order every evaluator follows (CPU targets
// never run this pass: their artifacts keep the serial order). Contractions too: a conv's or matmul's long sum
// with few outputs (weight gradients: the sum runs over the batch) gets a tree where the cost model finds it
// cheaper than shared-memory tiles (matmul, and a conv as implicit GEMM) or a thread per output (a grouped conv); a
// matmul's tree may run as split-K (gpu.ts matmulPlan, schedules/gpu_split_k.ts).
import { type Graph, type Node, rebuild, topoSort } from '../../ir/graph.js';
import { GroupOp, isReduceOp, attrsOf } from '../../ir/ops.js';
import { sizeOf } from '../../ir/types.js';
import { type GpuCaps, LAUNCH_CYCLES, TREE_THREADS, convPlan, matmulCycles, matmulPlan, matmulTiles, reductionCycles, reductionTree } from './gpu.js';

/**
 * The nodes whose value flows (through elementwise and movement ops) into a reduction: a contraction among them
 * is fused under that reduction's row (a softmax over a matmul's row is computed one row per thread), where its
 * tree would run on one thread, so it keeps its serial sum; a reduction among them shares its row.
 */
function feedingReductions(g: Graph): Set<Node> {
  const order = topoSort(g), feeds = new Set<Node>();
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!;
    if (!GroupOp.Reduce.has(n.op) && !feeds.has(n)) continue;
    for (const s of n.src) if (GroupOp.Elementwise.has(s.op) || GroupOp.Movement.has(s.op) || GroupOp.Reduce.has(s.op) || s.op === 'matmul' || s.op === 'conv') feeds.add(s);
  }
  return feeds;
}

/** The tree a conv or float matmul node gets, or 1 (keep its serial sum). */
function contractionTree(n: Node, gpu: GpuCaps): number {
  if (n.type.dtype !== 'float32') return 1;
  const rows = sizeOf(n.type.shape);
  if (n.op === 'conv') {
    const { tree, groups, lhsDilation, padding } = attrsOf(n, 'conv');
    if (tree !== undefined) return 1;
    const ks = n.src[1]!.type.shape, len = sizeOf(ks.slice(0, ks.length - 1)), co = n.type.shape[n.type.shape.length - 1]!;
    const W = rows > 0 && len > 0 ? reductionTree(rows, len, gpu) : 1;
    // an ungrouped conv is otherwise a tiled matmul of M = rows / co, N = co, K = len (implicit GEMM, gpu_conv.ts)
    const gemm = groups === 1 && lhsDilation.every((d) => d === 1);
    const M = rows / co;
    if (W === 1 || (gemm && reductionCycles(rows, len, W, gpu) >= LAUNCH_CYCLES + matmulCycles(M, co, len, 1, matmulTiles(M, co, len, 1, gpu), gpu))) return 1;
    // a sum a tree beats tiles for (a weight gradient: few outputs, K = n·h·w): tiled, a tree or split-K over tiles
    // (gpu_split_k.ts) as convPlan prices them at a conv tap's step
    const padded = padding.some(([lo, hi]) => lo !== 0 || hi !== 0);
    return gemm ? convPlan(M, co, len, padded, gpu).W : W;
  }
  if (n.op !== 'matmul' || attrsOf(n, 'matmul').tree !== undefined) return 1;
  const as = n.src[0]!.type.shape, r = as.length, K = as[r - 1]!, M = as[r - 2]!, N = n.type.shape[r - 1]!;
  const batch = sizeOf(as.slice(0, r - 2));
  if (rows === 0 || K === 0) return 1;
  // tiled (1), a tree a row on a block's threads, or split-K over tiles (gpu.ts matmulPlan): both declare the tree
  return matmulPlan(M, N, K, batch, gpu).W;
}

/** Whether n's operands reach a reduction through elementwise and movement ops only (fused into the same row). */
function afterReduction(n: Node, memo = new Map<Node, boolean>()): boolean {
  let r = memo.get(n);
  if (r === undefined) {
    memo.set(n, false);
    r = n.src.some((s) => GroupOp.Reduce.has(s.op) || ((GroupOp.Elementwise.has(s.op) || GroupOp.Movement.has(s.op)) && afterReduction(s, memo)));
    memo.set(n, r);
  }
  return r;
}

/** The graph with a `tree` attribute on every reduction and contraction a tree makes cheaper (one already declared is kept). */
export function reductionTrees(g: Graph, gpu: GpuCaps): Graph {
  const underRows = feedingReductions(g), memo = new Map<Node, boolean>();
  return rebuild(g, (b, n, src) => {
    if (n.op === 'conv' || n.op === 'matmul') {
      const W = underRows.has(n) ? 1 : contractionTree(n, gpu);
      return W > 1 ? b.emit(n.op, src, { ...n.attrs, tree: W }) : undefined;
    }
    if (!isReduceOp(n.op)) return undefined;
    const { axes, tree } = attrsOf(n, n.op);
    if (tree !== undefined) return undefined;
    const x = src[0]!;
    const len = axes.reduce((a, d) => a * x.type.shape[d]!, 1), rows = sizeOf(n.type.shape);
    // a reduction sharing its row with another (a softmax's max and sum) stays on one block: only a row's single
    // tree splits over blocks (schedules/gpu_split_tree.ts)
    const shared = underRows.has(n) || afterReduction(n, memo);
    const W = rows > 0 && len > 0 ? reductionTree(rows, len, gpu, shared ? TREE_THREADS : undefined) : 1;
    return W > 1 ? b.emit(n.op, src, { ...n.attrs, tree: W }) : undefined;
  });
}
