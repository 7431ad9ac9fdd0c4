// empty: removes computations on empty tensors (a zero-size dimension), so no kernel has a loop of extent 0.
import { type Builder, type Graph, type Node, rebuild } from '../ir/graph.js';
import { REDUCE_KIND, attrsOf } from '../ir/ops.js';
import { identityOf, sizeOf } from '../ir/types.js';

const isEmpty = (n: Node) => sizeOf(n.type.shape) === 0;

/**
 * What a value that is not empty but reads an empty operand equals, as the interpreter computes it: a reduction
 * over no element is its identity, a matmul or conv with nothing to contract or only padding under its windows
 * is 0 (so is a scatter-add of nothing), a pooling window over padding only is its lowest value (max) or 0 (sum), a padded empty value is the pad
 * value. The value, or undefined for an op whose result cannot be both non-empty and read an empty operand.
 */
function emptyResult(n: Node): number | undefined {
  switch (n.op) {
    case 'matmul': case 'conv': case 'scatter_add': return 0;
    case 'reduce_sum': case 'reduce_prod': case 'reduce_max': case 'reduce_min': return identityOf(REDUCE_KIND[n.op], n.type.dtype);
    case 'reduce_window': return identityOf(attrsOf(n, n.op).kind, n.type.dtype);
    case 'pad': return attrsOf(n, n.op).value;
    default: return undefined;
  }
}

/**
 * A quantized contraction over nothing (no channel to sum, or only padding under its windows) is its bias
 * requantized at every element; the bias, multiplier and shift are values known at run time, so this is the same op
 * over one tap that adds nothing: x at its zero point times a zero kernel.
 */
function overNothing(b: Builder, n: Node, src: readonly Node[]): Node {
  const { xZero, groups } = { groups: 1, ...attrsOf(n, n.op as 'qmatmul' | 'qconv') };
  const at = (shape: number[], zeroPoint: number) => b.emit('quantize', [b.constant(0, 'float32', shape)], { scale: 1, zeroPoint });
  const out = n.type.shape, o = out[out.length - 1]!, ones = out.slice(1, -1).map(() => 1);
  if (n.op === 'qmatmul') return b.emit('qmatmul', [at([out[0]!, 1], xZero), at([1, o], 0), ...src.slice(2)], n.attrs);
  const window = { strides: ones, dilation: ones, lhsDilation: ones, padding: ones.map(() => [0, 0]) };
  return b.emit('qconv', [at([...out.slice(0, -1), groups], xZero), at([...ones, 1, o], 0), ...src.slice(2)], { ...n.attrs, ...window });
}

/**
 * Every empty value other than an input or param becomes an empty constant; a non-empty value computed from an
 * empty operand becomes the constant it equals, and a concat drops its empty operands. Afterwards empty values
 * are read by nothing but outputs and updates.
 */
export function removeEmpty(g: Graph): Graph {
  const h = rebuild(g, (b, n, src) => {
    if (n.src.length === 0) return undefined;
    if (isEmpty(n)) return b.constant([], n.type.dtype, n.type.shape);
    if (!src.some(isEmpty)) return undefined;
    if (n.op === 'concat') {
      const kept = src.filter((s) => !isEmpty(s));
      return kept.length === 1 ? kept[0] : b.emit('concat', kept, n.attrs);
    }
    if (n.op === 'qmatmul' || n.op === 'qconv') return overNothing(b, n, src);
    const v = emptyResult(n);
    if (v === undefined) throw new Error(`empty: %${n.id} ${n.op} is not empty but reads an empty operand`);
    return b.constant(v, n.type.dtype, n.type.shape);
  });
  // an empty param has nothing to update
  return { ...h, updates: h.updates.filter((u) => !isEmpty(u.param)) };
}
