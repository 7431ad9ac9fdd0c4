// pairDot: an int8 matmul nest (qmatmul as lowered: `acc = bias; for k { acc = acc + x·w }; requantize`) as a sum of
// int16 pair dot products: `for k2 { acc += dot2(xp[i, k2], pack16(w[k2, j], w[K2 + k2, j])) }` (loop/ir.ts), the
// row operand's pairs computed once per row by a nest placed before (its quantize no longer recomputed per column),
// odd K's last term and the bias added after. This reassociates the sum, which is exact here: i32 additions wrap,
// so any order gives the same bits (the interpreter's order included). Each product is of two int16 halves: the
// row operand x - xZero is in -255..255 and w in -128..127, so neither a product nor the pair's sum can saturate or
// wrap (x86's vpmaddubsw, u8 x s8 summed into a saturating int16, could: 2 x 255 x 127 > 32767).
import { E, type Expr, S, type Scalar, type Stmt, type Buffer } from '../ir.js';
import { type For, substExpr, varsOf } from './loops.js';
import { outerChain } from './nests.js';
import { primitive } from './primitive.js';

export interface PairDotArgs {
  /** the nest's outer loop (rows; its only child the columns loop) */
  readonly loop: string;
  /** the buffer the row pairs are packed into */
  readonly buffer: string;
  /** variables of the packing nest's loops (rows, pairs) */
  readonly names: readonly [string, string];
}

type Decl = Extract<Stmt, { k: 'decl' }>;

/** What pairDot reads of the nest, or why it does not apply. */
interface Match {
  readonly top: For;
  readonly i: For;
  readonly j: For;
  readonly k: For;
  /** the statements before the accumulator's decl, and after the reduction loop */
  readonly pre: readonly Stmt[];
  readonly post: readonly Stmt[];
  readonly acc: Decl;
  /** the step decls each operand reads (in order), and the operands */
  readonly rowDecls: readonly Decl[];
  readonly colDecls: readonly Decl[];
  readonly row: Expr;
  readonly col: Expr;
}

/** The step decls e reads (transitively), in statement order, and the variables they and e read from outside. */
function closure(e: Expr, decls: readonly Decl[]): { decls: Decl[]; free: Set<string> } {
  const need = new Set<string>(), free = new Set<string>();
  const byName = new Map(decls.map((d) => [d.name, d]));
  const visit = (x: Expr) => {
    for (const v of varsOf(x)) {
      const d = byName.get(v);
      if (!d) free.add(v);
      else if (!need.has(v)) { need.add(v); visit(d.init); }
    }
  };
  visit(e);
  return { decls: decls.filter((d) => need.has(d.name)), free };
}

function match(body: readonly Stmt[], a: PairDotArgs): Match | string {
  const top = body.find((s): s is For => s.k === 'for' && s.v === a.loop);
  if (!top) return `no top-level loop '${a.loop}'`;
  const chain = outerChain(top);
  if (chain.length !== 2) return `loop '${a.loop}' is not a nest of rows and columns`;
  const [i, j] = chain as [For, For];
  const at = j.body.findIndex((s) => s.k === 'for');
  const k = j.body[at] as For | undefined, acc = j.body[at - 1];
  if (!k || acc?.k !== 'decl' || acc.t !== 'i32') return 'no i32 accumulator before a reduction loop';
  if (k.kind !== 'serial' || k.body.some((s) => s.k === 'for')) return `reduction loop '${k.v}' is not one serial loop`;
  const steps = k.body.slice(0, -1), update = k.body[k.body.length - 1];
  if (!steps.every((s): s is Decl => s.k === 'decl')) return `reduction loop '${k.v}' does more than compute decls and accumulate`;
  if (update?.k !== 'assign' || update.name !== acc.name) return `reduction loop '${k.v}' does not end by accumulating into '${acc.name}'`;
  const u = update.value;
  if (u.k !== 'binary' || u.op !== 'add' || u.a.k !== 'var' || u.a.name !== acc.name || u.b.k !== 'binary' || u.b.op !== 'mul') return `'${acc.name}' is not accumulated as acc + x*w`;
  const outside = new Set(body.slice(0, body.indexOf(top)).flatMap((s) => (s.k === 'decl' ? [s.name] : [])));
  const side = (e: Expr, own: string) => {
    const c = closure(e, steps);
    return [...c.free].every((v) => v === own || v === k.v || outside.has(v)) ? c.decls : undefined;
  };
  for (const [row, col] of [[u.b.a, u.b.b], [u.b.b, u.b.a]] as const) {
    const rowDecls = side(row, i.v), colDecls = side(col, j.v);
    if (!rowDecls || !colDecls) continue;
    const rest = j.body.slice(at + 1);
    if (rest.some((s) => s.k === 'assign' && s.name === acc.name) || rest.some((s) => s.k === 'for')) return 'the accumulator is updated after its loop';
    return { top, i, j, k, pre: j.body.slice(0, at - 1), post: rest, acc, rowDecls, colDecls, row, col };
  }
  return 'the product is not of a row operand (no column index) and a column operand (no row index)';
}

/** The decls at step k = at, renamed (fresh names), and e there. */
function instance(decls: readonly Decl[], e: Expr, m: Map<string, Expr>, fresh: (p: string) => string): { stmts: Decl[]; value: Expr } {
  const subst = new Map(m);
  const stmts = decls.map((d) => {
    const name = fresh(d.name.replace(/\d+$/, ''));
    const init = substExpr(d.init, subst);
    subst.set(d.name, E.v(name, d.t));
    return S.decl(name, d.t, init) as Decl;
  });
  return { stmts, value: substExpr(e, subst) };
}

export const pairDot = primitive<PairDotArgs>({
  name: 'pairDot',
  check: (k, a) => {
    const m = match(k.body, a);
    if (typeof m === 'string') return m;
    if (m.k.extent < 2) return 'a reduction of one term has no pairs';
    if (m.row.t !== 'i32' || m.col.t !== 'i32') return 'the operands are not i32';
    return undefined;
  },
  apply: (k, a) => {
    const m = match(k.body, a) as Match, K = m.k.extent, K2 = K >> 1, M = m.i.extent;
    const t: Scalar = 'i32';
    // pair k2 is terms k2 and K2 + k2 (any pairing sums the same): the row pairs are then contiguous in k2, so the
    // packing nest (the quantize of a float input in it) runs as vectors
    const term = (h: number, kv: Expr) => E.add(kv, E.i32(h * K2));
    const at = (h: number, v: Expr, kv: Expr) => new Map([[m.k.v, term(h, kv)], [m.i.v, v]]);
    // the rows' pairs: xp[i, k2] = pack16(row at k2, row at K2 + k2)
    const [pi, pk] = a.names;
    const r0 = instance(m.rowDecls, m.row, at(0, E.v(pi), E.v(pk)), k.fresh), r1 = instance(m.rowDecls, m.row, at(1, E.v(pi), E.v(pk)), k.fresh);
    const packRows = S.for(pi, M, [S.for(pk, K2, [...r0.stmts, ...r1.stmts,
      S.store(a.buffer, E.add(E.mul(E.v(pi), E.i32(K2)), E.v(pk)), E.binary('pack16', r0.value, r1.value))])]);
    // the reduction over pairs: the column pair computed in the step (where the micro-kernel packs its panels)
    const k2 = k.fresh('k'), sum = k.fresh('acc'), xv = k.fresh('x'), wv = k.fresh('w');
    const colAt = (h: number) => new Map([[m.k.v, term(h, E.v(k2))]]);
    const c0 = instance(m.colDecls, m.col, colAt(0), k.fresh), c1 = instance(m.colDecls, m.col, colAt(1), k.fresh);
    const step: Stmt[] = [S.decl(xv, t, E.load(a.buffer, E.add(E.mul(E.v(m.i.v), E.i32(K2)), E.v(k2)), t)), ...c0.stmts, ...c1.stmts,
      S.decl(wv, t, E.binary('pack16', c0.value, c1.value)), S.assign(sum, E.binary('add', E.v(sum, t), E.binary('dot2', E.v(xv, t), E.v(wv, t))))];
    // the accumulator's own init (the bias) and odd K's last term, added after the pairs
    let total = E.binary('add', m.acc.init, E.v(sum, t));
    const tail: Stmt[] = [];
    if (K % 2) {
      const last = new Map([[m.k.v, E.i32(K - 1)]]);
      const x = instance(m.rowDecls, m.row, last, k.fresh), w = instance(m.colDecls, m.col, last, k.fresh);
      tail.push(...x.stmts, ...w.stmts);
      total = E.binary('add', total, E.binary('mul', x.value, w.value));
    }
    const jBody = [S.decl(sum, t, E.i32(0)), S.for(k2, K2, step), ...m.pre, ...tail, S.decl(m.acc.name, t, total), ...m.post];
    const nest: For = { ...m.i, body: [{ ...m.j, body: jBody }] };
    const buffer: Buffer = { name: a.buffer, dtype: 'int32', size: M * K2, kind: 'temp' };
    const idx = k.body.indexOf(m.top);
    return { body: [...k.body.slice(0, idx), packRows, nest, ...k.body.slice(idx + 1)], buffers: [...k.buffers, buffer] };
  },
});
