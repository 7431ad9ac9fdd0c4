// Recipe: a CPU convolution nest as a register-blocked micro-kernel (micro_kernel.ts): a tile of mr outputs
// along the last spatial axis by nr output channels; per window tap and input channel, nr kernel values are loaded
// once and reused by the mr positions. Sums run over the window in the plain nest's order (taps outside the input
// skipped), so results are unchanged. The channels of a tile stay in one group, so the tap is the same for all.
import type { Expr, Stmt } from '../ir.js';
import { type TargetCaps, registerTile } from '../schedule.js';
import type { Recipe } from './index.js';
import { type For, findLoop, varsOf } from './loops.js';
import { contractionNest, microKernel } from './micro_kernel.js';
import { convOperands, localArrays } from './nests.js';
import type { Schedule } from './primitive.js';

/**
 * The output channels per group: how the row operand (the input tap) reads the channel loop v: only as `v // g`
 * (its group; g is the group size), as v itself (groups of one), or not at all (one group of all `channels`).
 */
function groupSize(step: readonly Stmt[], b: string, v: string, channels: number): number | undefined {
  const decls = new Map(step.flatMap((s) => (s.k === 'decl' ? [[s.name, s.init] as const] : [])));
  const colSide = new Set<string>();
  const mark = (n: string): void => {
    if (colSide.has(n) || !decls.has(n)) return;
    colSide.add(n);
    for (const x of varsOf(decls.get(n)!)) mark(x);
  };
  mark(b);
  const sizes = new Set<number>();
  let other = false;
  const visit = (e: Expr): void => {
    if (e.k === 'binary' && e.op === 'idiv' && e.a.k === 'var' && e.a.name === v && e.b.k === 'const') { sizes.add(e.b.v); return; }
    if (e.k === 'var') { if (e.name === v) other = true; return; }
    for (const x of e.k === 'load' ? [e.idx] : e.k === 'unary' || e.k === 'cast' ? [e.a] : e.k === 'binary' ? [e.a, e.b] : e.k === 'select' ? [e.c, e.a, e.b] : e.k === 'philox' ? [e.counter, e.index] : []) visit(x);
  };
  for (const [name, init] of decls) if (!colSide.has(name)) visit(init);
  // read bare: one channel per group (v // 1 is v)
  if (other) return sizes.size ? undefined : 1;
  return sizes.size > 1 ? undefined : sizes.size ? [...sizes][0]! : channels;
}

export const cpuConv: Recipe = {
  name: 'cpu-conv',
  run: (s: Schedule, caps: TargetCaps) => {
    if (caps.gpu) return;
    const locals = localArrays(s.body);
    for (const top of s.body.filter((x): x is For => x.k === 'for')) {
      const n = findLoop(s.body, top.v) && contractionNest(top, locals, convOperands);
      if (!n || n.chain.length < 3) continue;
      const w = n.chain[n.chain.length - 2]!, co = n.chain[n.chain.length - 1]!;
      const g = groupSize(n.r.step, n.b, co.v, co.extent);
      const reg = g && registerTile(w.extent, g, caps, n.epilogue);
      if (reg) s.attempt(() => microKernel(s, n, { ...reg, columnsOuter: false, pack: false }, caps));
    }
  },
};
