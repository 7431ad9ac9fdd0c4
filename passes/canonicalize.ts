// canonicalize: algebraic simplification and constant folding as rewrite rules, run to a fixed point.
import type { Graph, Node } from '../ir/graph.js';
import { evalOp } from '../ir/interpreter.js';
import { GroupOp, REDUCE_OPS, attrsOf } from '../ir/ops.js';
import { isFloat, shapesEqual, sizeOf } from '../ir/types.js';
import { type RewriteRule, rewriteToFixedPoint } from './rewrite.js';

/** The uniform value of a constant (also through broadcasts), or undefined. */
export function splatValue(n: Node): number | undefined {
  if (n.op === 'broadcast') return splatValue(n.src[0]!);
  if (n.op === 'const') {
    const v = attrsOf(n, n.op).value;
    return v.length === 1 ? v[0] : undefined;
  }
  return undefined;
}

const isSplat = (n: Node, v: number) => splatValue(n) === v;

/**
 * Whether n is a splat zero that leaves every x unchanged under x+n (sub: x-n). In IEEE 754 the additive
 * identity is -0, not +0: -0 + +0 = +0, so x+0 -> x would give -0 where the sum is +0 (and x-(-0) is x+0).
 * The sign shows in outputs and through division, recip, rsqrt and pow. Integers have one zero.
 */
const isAdditiveIdentity = (n: Node, sub: boolean): boolean => {
  const v = splatValue(n);
  return v === 0 && (!isFloat(n.type.dtype) || Object.is(v, sub ? 0 : -0));
};

/** Largest constant (in elements) that folding may create. */
const FOLD_LIMIT = 4096;

export const RULES: RewriteRule[] = [
  { op: 'mul', doc: 'x*1 -> x, 1*x -> x', rewrite: (n) => (isSplat(n.src[1]!, 1) ? n.src[0] : isSplat(n.src[0]!, 1) ? n.src[1] : undefined) },
  {
    op: 'add', doc: 'x+(-0) -> x, (-0)+x -> x (x+0 -> x on integers only)',
    rewrite: (n) => (isAdditiveIdentity(n.src[1]!, false) ? n.src[0] : isAdditiveIdentity(n.src[0]!, false) ? n.src[1] : undefined),
  },
  { op: 'sub', doc: 'x-0 -> x (x-(-0) -> x on integers only)', rewrite: (n) => (isAdditiveIdentity(n.src[1]!, true) ? n.src[0] : undefined) },
  { op: 'div', doc: 'x/1 -> x', rewrite: (n) => (isSplat(n.src[1]!, 1) ? n.src[0] : undefined) },
  { op: 'neg', doc: '-(-x) -> x', rewrite: (n) => (n.src[0]!.op === 'neg' ? n.src[0]!.src[0] : undefined) },
  { op: 'not', doc: '!!x -> x', rewrite: (n) => (n.src[0]!.op === 'not' ? n.src[0]!.src[0] : undefined) },
  { op: 'select', doc: 'select(c, x, x) -> x', rewrite: (n) => (n.src[1] === n.src[2] ? n.src[1] : undefined) },
  { op: 'cast', doc: 'cast(x: T) to T -> x', rewrite: (n) => (n.src[0]!.type.dtype === n.type.dtype ? n.src[0] : undefined) },
  { op: 'reshape', doc: 'reshape(x) to its own shape -> x', rewrite: (n) => (shapesEqual(n.src[0]!.type.shape, n.type.shape) ? n.src[0] : undefined) },
  { op: 'reshape', doc: 'reshape(reshape(x)) -> reshape(x)', rewrite: (n, b) => (n.src[0]!.op === 'reshape' ? b.emit('reshape', [n.src[0]!.src[0]!], n.attrs) : undefined) },
  { op: 'transpose', doc: 'transpose(x, identity) -> x', rewrite: (n) => (attrsOf(n, 'transpose').perm.every((p, i) => p === i) ? n.src[0] : undefined) },
  {
    op: 'transpose', doc: 'transpose(transpose(x, p), q) -> transpose(x, p[q])',
    rewrite: (n, b) => {
      if (n.src[0]!.op !== 'transpose') return undefined;
      const p = attrsOf(n.src[0]!, 'transpose').perm, q = attrsOf(n, 'transpose').perm;
      return b.emit('transpose', [n.src[0]!.src[0]!], { perm: q.map((i) => p[i]!) });
    },
  },
  { op: 'broadcast', doc: 'broadcast(x) to its own shape -> x', rewrite: (n) => (shapesEqual(n.src[0]!.type.shape, n.type.shape) ? n.src[0] : undefined) },
  { op: 'broadcast', doc: 'broadcast(broadcast(x)) -> broadcast(x)', rewrite: (n, b) => (n.src[0]!.op === 'broadcast' ? b.emit('broadcast', [n.src[0]!.src[0]!], n.attrs) : undefined) },
  {
    op: 'broadcast', doc: 'broadcast(splat const c) -> splat const c of the larger shape',
    rewrite: (n, b) => {
      const v = splatValue(n.src[0]!);
      return v === undefined ? undefined : b.constant(v, n.type.dtype, n.type.shape);
    },
  },
  {
    op: 'reshape', doc: 'reshape(splat const c) -> splat const c',
    rewrite: (n, b) => {
      const v = splatValue(n.src[0]!);
      return v === undefined ? undefined : b.constant(v, n.type.dtype, n.type.shape);
    },
  },
  {
    // one normal form, so equal reductions merge; lowering then accumulates in the interpreter's row-major order
    op: REDUCE_OPS, doc: 'reduce(x, axes) -> reduce(x, sorted axes)',
    rewrite: (n, b) => {
      const { axes } = attrsOf(n, REDUCE_OPS);
      if (axes.every((a, i) => i === 0 || axes[i - 1]! < a)) return undefined;
      return b.emit(n.op, n.src, { ...n.attrs, axes: [...axes].sort((x, y) => x - y) });
    },
  },
  {
    op: [...GroupOp.Elementwise, ...GroupOp.Reduce, ...GroupOp.Movement],
    doc: 'op(constants) -> constant (folded by the interpreter; splats stay splats)',
    rewrite: (n, b) => {
      if (n.src.length === 0 || !n.src.every((s) => s.op === 'const')) return undefined;
      const allSplat = n.src.every((s) => attrsOf(s, 'const').value.length === 1);
      if (allSplat && GroupOp.Elementwise.has(n.op)) {
        const scalar = evalOp({ op: n.op, type: { dtype: n.type.dtype, shape: [] }, attrs: n.attrs },
          n.src.map((s) => ({ type: { dtype: s.type.dtype, shape: [] }, data: constData(s, 1) })));
        return b.constant(scalar[0]!, n.type.dtype, n.type.shape);
      }
      if (sizeOf(n.type.shape) > FOLD_LIMIT) return undefined;
      const data = evalOp(n, n.src.map((s) => ({ type: s.type, data: constData(s, sizeOf(s.type.shape)) })));
      return b.constant(data, n.type.dtype, n.type.shape);
    },
  },
];

function constData(n: Node, size: number) {
  const v = attrsOf(n, 'const').value;
  return evalOp({ op: 'const', type: { dtype: n.type.dtype, shape: [size] }, attrs: { value: v.length === 1 ? v : v.slice(0, size) } }, []);
}

export function canonicalize(g: Graph): Graph {
  return rewriteToFixedPoint(g, RULES);
}
