// flatten: a perfect nest of serial loops becomes one loop over all their iterations, as fuse does (outermost
// varies slowest, so the iterations keep their order), but with no decls: where the nest's variables appear in an
// index as a row-major index (`o0*2304 + o1*192 + o2*16`, coefficients in the ratio of the nest's strides) that
// part becomes the flat variable times its scale (`f*16`), and every other use of a variable becomes its digit of
// f (`f // 12 % 12`). A conv's output positions and window taps so read as a matmul's rows and steps (gpu_conv.ts)
// with the row-major stores a matmul nest has.
import { E, type Expr, S, type Stmt } from '../ir.js';
import { affineOf, chain, declaredNames, replaceLoop } from './loops.js';
import { primitive } from './primitive.js';
import { mapChildren, mapStmtExprs, mapStmts } from '../visit.js';

export interface FlattenArgs {
  /** a perfect nest of serial loops, outermost first */
  readonly loops: readonly string[];
  readonly name: string;
}

/** The expression rewriter for a nest (variables with extents, outermost first) flattened into variable f. */
function flattener(nest: readonly { v: string; extent: number }[], f: string): (e: Expr) => Expr {
  const strides = new Map<string, number>();
  let n = 1;
  for (let i = nest.length - 1; i >= 0; i--) { strides.set(nest[i]!.v, n); n *= nest[i]!.extent; }
  // f < the product of the extents: the outermost digit needs no remainder
  const digit = new Map(nest.map((l, i) => {
    const q = E.idiv(E.v(f), strides.get(l.v)!);
    return [l.v, i === 0 ? q : E.mod(q, l.extent)] as const;
  }));
  const memo = new Map<Expr, Expr>();
  const rw = (e: Expr): Expr => {
    let out = memo.get(e);
    if (out !== undefined) return out;
    out = e;
    const a = e.t === 'i32' ? affineOf(e) : undefined;
    const last = a?.terms.get(nest[nest.length - 1]!.v);
    if (a && last !== undefined && nest.every((l) => a.terms.get(l.v) === last * strides.get(l.v)!)) {
      // Σ c·S_i·v_i is c·f; the other terms as they were
      out = [...a.terms].filter(([v]) => !strides.has(v)).reduce((x: Expr, [v, c]) => E.add(x, E.mul(E.v(v), E.i32(c))), E.add(E.mul(E.v(f), E.i32(last)), E.i32(a.c)));
    } else if (e.k === 'var' && digit.has(e.name)) out = digit.get(e.name)!;
    else out = mapChildren(e, rw);
    memo.set(e, out);
    return out;
  };
  return rw;
}

export const flatten = primitive<FlattenArgs>({
  name: 'flatten',
  check: (k, a) => {
    if (a.loops.length < 2) return 'fewer than two loops to flatten';
    try {
      const c = chain(k.body, a.loops[0]!, a.loops[a.loops.length - 1]!);
      if (c.length !== a.loops.length || c.some((l, i) => l.v !== a.loops[i])) return `loops ${a.loops.join(', ')} are not one perfect nest in this order`;
      if (c.some((l) => l.kind !== 'serial')) return 'only serial loops flatten';
      // the flat loop may take a flattened loop's name (that loop is gone), no other
      if (!a.loops.includes(a.name) && declaredNames(k.body).has(a.name)) return `'${a.name}' is declared in the kernel already`;
    } catch (e) {
      return (e as Error).message;
    }
    return undefined;
  },
  apply: (k, a) => {
    const c = chain(k.body, a.loops[0]!, a.loops[a.loops.length - 1]!);
    const rw = flattener(c, a.name);
    const body = mapStmts(c[c.length - 1]!.body, (s) => mapStmtExprs(s, rw));
    return { body: replaceLoop(k.body, a.loops[0]!, () => [S.for(a.name, c.reduce((n, l) => n * l.extent, 1), [...body])]) };
  },
});
