// int8 dot products on the GPU as __dp4a (four signed-byte products summed into an int): which reduction loops of an
// int8 matmul or convolution (as lowered: `acc = acc + (x + c)·w`, a tap `select(inside, acc + (x + c)·w, acc)`)
// take it. dp4a needs both operands' values in -128..127: x and w are loads of int8 buffers, and the row's constant
// c (minus the input's zero point: x + c reaches -255..255, past a byte) is folded out as TFLite and CMSIS-NN do,
// Σ(x + c)·w = Σ x·w + c·Σw, with Σw a second dp4a of the same packed weights against 0x01010101. Both sums wrap
// in int32 as the interpreter's additions do, and wrapping addition is associative, so any grouping of the terms
// gives the interpreter's bits.
import type { Expr, Stmt } from '../loop/ir.js';
import { someExpr } from '../loop/visit.js';

type For = Extract<Stmt, { k: 'for' }>;
type Decl = Extract<Stmt, { k: 'decl' }>;

export interface Dp4a {
  /** the accumulator (declared before the loop) */
  readonly acc: string;
  /** the loop's decls, then the int8 row and column values of a term and the row's constant offset: (x + c)·w */
  readonly decls: readonly Decl[];
  readonly x: Expr;
  readonly w: Expr;
  readonly c: number;
  /** a tap's condition: the term counts only where it holds */
  readonly inside?: Expr;
}

/**
 * The dp4a form of a serial reduction loop of at least 4 terms, or undefined: its body decls (none reading the
 * accumulator) then `acc = acc + p` or `acc = select(inside, acc + p, acc)`, p a product of an int8 value and an
 * int8 value plus (or minus) a constant. int8Buffer: whether a buffer holds int8 (its loads lie in -128..127).
 */
export function dp4aOf(loop: For, int8Buffer: (name: string) => boolean): Dp4a | undefined {
  if (loop.kind !== 'serial' || loop.extent < 4) return undefined;
  const decls = loop.body.slice(0, -1), last = loop.body[loop.body.length - 1];
  if (!decls.every((s): s is Decl => s.k === 'decl') || last?.k !== 'assign') return undefined;
  const acc = last.name, byName = new Map(decls.map((d) => [d.name, d.init]));
  if (byName.has(acc) || decls.some((d) => reads(d.init, acc))) return undefined;
  const isAcc = (e: Expr) => e.k === 'var' && e.name === acc;
  let u = last.value, inside: Expr | undefined;
  if (u.k === 'select' && isAcc(u.b)) [inside, u] = [u.c, u.a];
  if (u.k !== 'binary' || u.op !== 'add' || u.t !== 'i32') return undefined;
  const p = isAcc(u.a) ? u.b : isAcc(u.b) ? u.a : undefined;
  if (p?.k !== 'binary' || p.op !== 'mul' || reads(p, acc) || (inside && reads(inside, acc))) return undefined;
  // an int8 value: a load of an int8 buffer, or a decl of the loop holding one
  const int8 = (e: Expr): boolean => (e.k === 'load' && e.t === 'i32' && !e.quad && int8Buffer(e.buf)) || (e.k === 'var' && byName.has(e.name) && int8(byName.get(e.name)!));
  // x + c, c + x, x - c, or x (c = 0), x an int8 value
  const offset = (e: Expr): { x: Expr; c: number } | undefined => {
    if (int8(e)) return { x: e, c: 0 };
    if (e.k !== 'binary' || (e.op !== 'add' && e.op !== 'sub')) return undefined;
    if (e.b.k === 'const' && int8(e.a)) return { x: e.a, c: e.op === 'add' ? e.b.v : -e.b.v };
    if (e.op === 'add' && e.a.k === 'const' && int8(e.b)) return { x: e.b, c: e.a.v };
    return undefined;
  };
  for (const [row, w] of [[p.a, p.b], [p.b, p.a]] as const) {
    const o = offset(row);
    if (o && int8(w)) return { acc, decls, x: o.x, w, c: o.c, inside };
  }
  return undefined;
}

const reads = (e: Expr, name: string): boolean => someExpr(e, (x) => x.k === 'var' && x.name === name);
