// pack: the values a cache-fill loop computes (a B row of a matmul micro-kernel, per panel and step k) are
// computed once for the whole nest into a temp buffer laid out in the order they are read (BLIS packed panels),
// by a nest placed before the kernel's loop nest (and the scalars hoisted before it); the fill loop then copies from the buffer. Values are unchanged;
// reads become contiguous.
import { E, type Expr, S, type Stmt, type Buffer } from '../ir.js';
import { type For, findLoop, readsOf, substStmts } from './loops.js';
import { primitive } from './primitive.js';

export interface PackArgs {
  /** a loop `for f { decls; L[f] = x }` filling a local array L */
  readonly fill: string;
  /** loops around the fill loop whose variables the values depend on: the panel's layout, outermost first */
  readonly over: readonly string[];
  readonly buffer: string;
  /** variables of the packing nest's loops: one per loop in `over`, then the fill's */
  readonly names: readonly string[];
  /**
   * the packing nest's loops outermost first, a permutation of `over` (default: `over`); the layout stays `over`'s.
   * A matmul parallel over row tiles packs B over its rows (the reduction) outermost, so each thread of the packing
   * nest reads the rows of B that the same thread wrote where B was computed row-parallel too (a weight update).
   */
  readonly order?: readonly string[];
}

/** The top-level statement holding loop v. */
function topOf(body: readonly Stmt[], v: string): For | undefined {
  return body.find((s): s is For => s.k === 'for' && (s.v === v || !!findLoop(s.body, v)));
}

function problem(body: readonly Stmt[], a: PackArgs): string | undefined {
  const fill = findLoop(body, a.fill);
  if (!fill) return `no loop '${a.fill}' in the kernel`;
  const last = fill.body[fill.body.length - 1];
  if (last?.k !== 'store' || last.idx.k !== 'var' || last.idx.name !== fill.v) return `loop '${a.fill}' does not end by filling a local array at its index`;
  if (!fill.body.slice(0, -1).every((s) => s.k === 'decl')) return `loop '${a.fill}' does more than compute decls and fill`;
  if (a.names.length !== a.over.length + 1) return `${a.names.length} loop names for ${a.over.length + 1} loops`;
  if (a.order && (a.order.length !== a.over.length || !a.over.every((v) => a.order!.includes(v)))) return `order ${a.order.join(', ')} is not a permutation of ${a.over.join(', ')}`;
  const top = topOf(body, a.fill)!;
  for (const v of a.over) if (v !== top.v && !findLoop(top.body, v)) return `loop '${v}' is not around the fill loop`;
  const computed = fill.body.slice(0, -1).concat([S.store('_', E.i32(0), last.value)]);
  const topDecls = new Set(body.slice(0, body.indexOf(top)).flatMap((s) => (s.k === 'decl' ? [s.name] : [])));
  const allowed = new Set([...a.over, fill.v, ...topDecls]);
  const reads = readsOf(computed);
  const inner = new Set(fill.body.flatMap((s) => (s.k === 'decl' ? [s.name] : [])));
  const stores = (ss: readonly Stmt[]): string[] => ss.flatMap((s) => (s.k === 'store' ? [s.buf] : s.k === 'for' ? stores(s.body) : []));
  const written = new Set(stores([top]));
  for (const r of reads) {
    if (r === '_' || inner.has(r) || allowed.has(r)) continue;
    if (written.has(r)) return `the values read '${r}', which the nest writes`;
    if (!findLoop([top], r) && !findDecl([top], r)) continue; // a buffer
    return `the values depend on '${r}', not one of the panel loops ${a.over.join(', ')}`;
  }
  return undefined;
}

function findDecl(ss: readonly Stmt[], name: string): boolean {
  return ss.some((s) => ((s.k === 'decl' || s.k === 'local') && s.name === name) || (s.k === 'for' && findDecl(s.body, name)));
}

export const pack = primitive<PackArgs>({
  name: 'pack',
  check: (k, a) => problem(k.body, a),
  apply: (k, a) => {
    const fill = findLoop(k.body, a.fill)!;
    const top = topOf(k.body, a.fill)!;
    const last = fill.body[fill.body.length - 1] as Extract<Stmt, { k: 'store' }>;
    const loops = [...a.over.map((v) => findLoop([top], v)!), fill];
    // the panel's linear index over the loops, outermost first
    const linear = (vars: readonly Expr[]) => vars.reduce((acc: Expr, v, i) => E.add(E.mul(acc, E.i32(loops[i]!.extent)), v), E.i32(0));
    const size = loops.reduce((n, l) => n * l.extent, 1);
    const names = new Map(loops.map((l, i) => [l.v, E.v(a.names[i]!)]));
    const t = last.value.t;
    let nest: Stmt[] = [...substStmts(fill.body.slice(0, -1), names), S.store(a.buffer, linear(a.names.map((n) => E.v(n))), substStmts([S.store('_', E.i32(0), last.value)], names).map((s) => (s as { value: Expr }).value)[0]!)];
    const order = [...(a.order ?? a.over).map((v) => a.over.indexOf(v)), loops.length - 1];
    for (let j = order.length - 1; j >= 0; j--) nest = [S.for(a.names[order[j]!]!, loops[order[j]!]!.extent, nest)];
    const copy = { ...fill, body: [S.store(last.buf, last.idx, E.load(a.buffer, linear(loops.map((l) => E.v(l.v))), t))] };
    const swap = (ss: readonly Stmt[]): Stmt[] => ss.map((s) => (s === fill ? copy : s.k === 'for' ? { ...s, body: swap(s.body) } : s));
    // before the nest's loop-invariant scalars too (the decls right before its loop), unless it reads them
    const reads = readsOf(nest);
    let i = k.body.indexOf(top);
    while (i > 0 && k.body[i - 1]!.k === 'decl' && !reads.has((k.body[i - 1] as { name: string }).name)) i--;
    const dtype = t === 'f32' ? 'float32' : t === 'i32' ? 'int32' : 'bool';
    const buffer: Buffer = { name: a.buffer, dtype, size, kind: 'temp' };
    return { body: [...k.body.slice(0, i), ...nest, ...swap(k.body.slice(i))], buffers: [...k.buffers, buffer] };
  },
});
