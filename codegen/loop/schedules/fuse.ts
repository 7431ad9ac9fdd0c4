// fuse: a perfect nest of loops becomes one loop over all their iterations (Halide/TVM fuse), each original
// variable decoded from the fused one (outermost varies slowest), so the iterations keep their order.
import { E, type Expr, S, type Stmt } from '../ir.js';
import { type For, chain, replaceLoop, substStmts } from './loops.js';
import { primitive } from './primitive.js';

export interface FuseArgs {
  /** a perfect nest, outermost first */
  readonly loops: readonly string[];
  readonly name: string;
  /** the order of the decls decoding the loops' variables (default: the loops' order) */
  readonly decls?: readonly string[];
  /** whether the outermost variable is decoded as f // S % E (default) or f // S (the same: f < the product) */
  readonly outerMod?: boolean;
  /** whether a variable decoded to a constant or a lone variable is substituted rather than declared (default false) */
  readonly elide?: boolean;
}

/** The decls decoding the variables of a nest (outermost first) from its row-major flat index f. */
export function decode(nest: readonly { v: string; extent: number }[], f: Expr, outerMod = true): Extract<Stmt, { k: 'decl' }>[] {
  let stride = nest.reduce((n, l) => n * l.extent, 1);
  return nest.map((l, i) => {
    stride /= l.extent;
    return S.decl(l.v, 'i32', i === 0 && !outerMod ? E.idiv(f, stride) : E.mod(E.idiv(f, stride), l.extent)) as Extract<Stmt, { k: 'decl' }>;
  });
}

export const fuse = primitive<FuseArgs>({
  name: 'fuse',
  check: (k, a) => {
    if (!a.loops.length) return 'no loops to fuse';
    try {
      const c = chain(k.body, a.loops[0]!, a.loops[a.loops.length - 1]!);
      if (c.length !== a.loops.length || c.some((l, i) => l.v !== a.loops[i])) return `loops ${a.loops.join(', ')} are not one perfect nest in this order`;
      if (c.some((l) => l.kind !== 'serial')) return 'only serial loops fuse';
    } catch (e) {
      return (e as Error).message;
    }
    if (a.decls && (a.decls.length !== a.loops.length || !a.loops.every((l) => a.decls!.includes(l)))) return `decls ${a.decls.join(', ')} do not order loops ${a.loops.join(', ')}`;
    return undefined;
  },
  apply: (k, a) => {
    const c: For[] = chain(k.body, a.loops[0]!, a.loops[a.loops.length - 1]!);
    const points = c.reduce((n, l) => n * l.extent, 1);
    const order = a.decls ?? a.loops;
    const decls = decode(c, E.v(a.name), a.outerMod ?? true).sort((x, y) => order.indexOf(x.name) - order.indexOf(y.name));
    const trivial = (d: { init: Expr }) => a.elide === true && (d.init.k === 'const' || d.init.k === 'var');
    const body = substStmts(c[c.length - 1]!.body, new Map(decls.filter(trivial).map((d) => [d.name, d.init])));
    return { body: replaceLoop(k.body, a.loops[0]!, () => [S.for(a.name, points, [...decls.filter((d) => !trivial(d)), ...body])]) };
  },
});
