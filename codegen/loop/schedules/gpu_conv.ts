// Implicit-GEMM convolution on the GPU: a conv nest (`for n, y, x, co { acc = 0; for ky, kx, ci { p; c; a; b;
// acc = select(c, acc + a*b, acc) }; epilogue; store }`, as lower.ts writes a conv and its data gradient) is viewed
// as a matmul of M = n·y·x rows, N = co columns and K = ky·kx·ci steps by flattening its output positions and its
// window taps (flatten.ts), so gpu_matmul.ts tiles it as it tiles a matmul: per step of bk, the block stages A's
// tile (the input at each row's tap: the im2col index is computed in the staging loop, no im2col buffer), a tile
// of the taps' conditions beside it, and B's tile (the kernel), and each thread sums its register tile. A tap
// outside the input still adds nothing (the condition guards each update), and each output sums its taps in
// ascending ky, kx, ci, the graph interpreter's order (a conv with no declared tree), so results are bit for bit.
// A conv with a declared tree (a weight gradient: reduction_trees.ts) is no such nest; it runs as gpu_reduce.ts and
// gpu_split_tree.ts schedule it.
import { pureDecls } from '../analysis.js';
import type { Stmt } from '../ir.js';
import { flatten } from './flatten.js';
import { matmulNest } from './gpu_matmul.js';
import { type For, fail } from './loops.js';
import { outerChain } from './nests.js';
import type { Schedule } from './primitive.js';

/** A conv-shaped nest's output loops (the last the channels) and tap loops, or undefined. */
function convLoops(top: For): { rows: For[]; taps: For[] } | undefined {
  if (top.kind !== 'serial') return undefined;
  const outs = outerChain(top), j = outs[outs.length - 1]!;
  const [d, loop] = j.body;
  if (outs.length < 2 || d?.k !== 'decl' || d.t !== 'f32' || loop?.k !== 'for' || loop.kind !== 'serial') return undefined;
  const taps = outerChain(loop);
  if (taps[taps.length - 1]!.body.some((s) => s.k === 'for')) return undefined;
  return { rows: outs.slice(0, -1), taps };
}

function localsOf(body: readonly Stmt[], out = new Set<string>()): Set<string> {
  for (const x of body) {
    if (x.k === 'local') out.add(x.name);
    if (x.k === 'for') localsOf(x.body, out);
  }
  return out;
}

/**
 * The kernel's conv nests flattened into matmul nests (a nest that is no matmul nest once flattened is left as it
 * was): gpu_grid.ts then tiles them with the matmuls. Each flat loop keeps its outermost loop's name.
 */
export function convsAsMatmuls(s: Schedule): void {
  for (const top of s.body.filter((x): x is For => x.k === 'for')) {
    const pure = new Set(pureDecls(s.body).keys()), locals = localsOf(s.body);
    const loops = convLoops(top);
    if (!loops || (loops.rows.length < 2 && loops.taps.length < 2)) continue;
    // all the output rows into M; else the outer ones left as a batch (split-K's partials, gpu_split_k.ts: a
    // batched matmul over the partials whose rows are a weight gradient's taps, M = kh·kw·ci once flattened)
    const already = matmulNest(top, pure, locals) !== undefined;
    if (already && loops.rows.length < 3) continue;
    for (let b = 0; b < Math.max(1, loops.rows.length - 1); b++) {
      const ok = s.attempt(() => {
        const rows = loops.rows.slice(b), taps = loops.taps;
        if (rows.length > 1) s.apply(flatten, { loops: rows.map((l) => l.v), name: rows[0]!.v });
        if (taps.length > 1) s.apply(flatten, { loops: taps.map((l) => l.v), name: taps[0]!.v });
        const flat = s.body.find((x): x is For => x.k === 'for' && x.v === top.v);
        if (!flat || !matmulNest(flat, pure, locals)) fail(`the conv nest '${top.v}' is no matmul nest once flattened`);
      });
      if (ok) break;
    }
  }
}
