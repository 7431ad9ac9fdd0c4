// fuse: a perfect nest of loops becomes one loop over all their iterations (Halide/TVM fuse), each original
// variable decoded from the fused one (outermost varies slowest), so the iterations keep their order.
import { E, S, type Stmt } from '../ir.js';
import { chain, replaceLoop } from './loops.js';
import { primitive } from './primitive.js';

export interface FuseArgs {
  /** a perfect nest, outermost first */
  readonly loops: readonly string[];
  readonly name: string;
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
    return undefined;
  },
  apply: (k, a) => {
    const c = chain(k.body, a.loops[0]!, a.loops[a.loops.length - 1]!);
    const points = c.reduce((n, l) => n * l.extent, 1);
    const decode: Stmt[] = [];
    let stride = points;
    for (const l of c) {
      stride /= l.extent;
      decode.push(S.decl(l.v, 'i32', E.mod(E.idiv(E.v(a.name), stride), l.extent)));
    }
    return { body: replaceLoop(k.body, a.loops[0]!, () => [S.for(a.name, points, [...decode, ...c[c.length - 1]!.body])]) };
  },
});
