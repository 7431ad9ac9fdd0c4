// A reduction declared with `tree: W` (ir/ops.ts treeLevels) as loop IR: W partials in a local array, element k of
// the flattened reduced axes into partial k % W, then one loop per tree level. The GPU reduction recipe
// (schedules/gpu_reduce.ts) runs the partial and level loops on a block's threads; every evaluator follows the
// same order, so targets stay bit-exact.
import { treeLevels } from '../../ir/ops.js';
import { E, type Expr, S, type Scalar, type Stmt } from './ir.js';

export interface TreeSink {
  readonly fresh: (prefix: string) => string;
  readonly emit: (s: Stmt) => void;
  /** runs body in a nested scope (values computed there stay there) and returns its statements */
  readonly nested: (body: () => void) => Stmt[];
}

/**
 * Emits `local P[W]; for i < W { P[i] = id }; for ko < n/W { for ki < W { P[ki] = P[ki] op x(ko*W + ki) } };
 * for each level s: for i < s { P[i] = P[i] op P[i + s] }; acc = P[0]` and returns acc.
 */
export function treeReduce(out: TreeSink, t: Scalar, op: 'add' | 'mul' | 'max' | 'min', id: number, extents: readonly number[],
  W: number, acc: string, x: (ks: readonly Expr[]) => Expr,
  /** a partial's next value from its current one (a conv's `select(in bounds, p + x*w, p)`); `p op x(ks)` by default */
  step: (p: Expr, ks: readonly Expr[]) => Expr = (p, ks) => E.binary(op, p, x(ks))): Expr {
  const n = extents.reduce((a, b) => a * b, 1);
  const P = out.fresh('part'), init = out.fresh('ti'), ko = out.fresh('tk'), ki = out.fresh('tt');
  const cell = (i: Expr) => E.load(P, i, t);
  out.emit(S.local(P, t, W));
  out.emit(S.for(init, W, [S.store(P, E.v(init), E.c(t, id))]));
  const body = out.nested(() => {
    // the flat index k = ko*W + ki decoded into the reduced axes (row-major)
    const k = E.add(E.mul(E.v(ko), E.i32(W)), E.v(ki));
    let stride = n;
    const ks = extents.map((e) => { stride /= e; return E.mod(E.idiv(k, stride), e); });
    out.emit(S.store(P, E.v(ki), step(cell(E.v(ki)), ks)));
  });
  out.emit(S.for(ko, n / W, [S.for(ki, W, body)]));
  for (const s of treeLevels(W)) {
    const i = out.fresh('tl');
    out.emit(S.for(i, s, [S.store(P, E.v(i), E.binary(op, cell(E.v(i)), cell(E.add(E.v(i), E.i32(s)))))]));
  }
  out.emit(S.decl(acc, t, cell(E.i32(0))));
  return E.v(acc, t);
}
