// rows: whether a predict graph is row-separable (every output row depends only on the same input row, computed the
// same way at any position), so that a runtime may run any number of rows in chunks of the compiled batch.
import { type Graph, type Node, nodeName, topoSort } from '../ir/graph.js';
import { GroupOp, attrsOf } from '../ir/ops.js';
import { formatType } from '../ir/types.js';

export type Separability = { readonly separable: true } | { readonly separable: false; readonly reason: string };

/** Where a value's rows are: the axis carrying the batch, or null for a value that no input reaches. */
type Rows = number | null;

class NotSeparable extends Error {}

const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

/**
 * Decides row separability of g, traced at a batch of 2 or more (at batch 1 a broadcast of the batch axis cannot be
 * told from a broadcast of a size-1 axis). Each value gets the axis its rows are on; an op that mixes rows, moves them
 * where the runtime cannot find them, or that this analysis does not know, makes the graph not separable, with the
 * reason naming it. Sound, not complete: every rule below is exact, and anything else is refused.
 */
export function rowSeparability(g: Graph): Separability {
  if (g.inputs.length === 0) return { separable: false, reason: 'the model has no inputs' };
  const batch = g.inputs[0]!.type.shape[0];
  if (batch === undefined || batch < 2) throw new Error(`rows: analyse a graph traced at batch 2 or more, got ${g.inputs[0]!.type.shape[0] ?? 'a scalar input'}`);
  for (const x of g.inputs) {
    if (x.type.shape[0] !== batch) return { separable: false, reason: `input '${nodeName(x)}' ${formatType(x.type)} has no batch axis of ${batch} rows` };
  }
  if (g.updates.length) return { separable: false, reason: 'the graph updates params' };
  const rows = new Map<Node, Rows>();
  const uniform = new Map<string, boolean>();
  /** Whether a value no input reaches is the same at every index of `axis` (so each row sees the same values). */
  const uniformAlong = (n: Node, axis: number): boolean => {
    const key = `${n.id}/${axis}`;
    let u = uniform.get(key);
    if (u === undefined) uniform.set(key, (u = computeUniform(n, axis)));
    return u;
  };
  const computeUniform = (n: Node, axis: number): boolean => {
    if (n.type.shape[axis] === 1) return true;
    switch (n.op) {
      case 'const': {
        const v = attrsOf(n, 'const').value;
        if (v.length === 1) return true;
        const inner = prod(n.type.shape.slice(axis + 1)), d = n.type.shape[axis]!;
        return v.every((x, i) => Object.is(x, v[i - (Math.floor(i / inner) % d) * inner]));
      }
      case 'iota': return attrsOf(n, 'iota').axis !== axis;
      case 'broadcast': {
        const off = n.type.shape.length - n.src[0]!.type.shape.length;
        return axis < off || uniformAlong(n.src[0]!, axis - off);
      }
      case 'transpose': return uniformAlong(n.src[0]!, attrsOf(n, 'transpose').perm[axis]!);
      case 'slice': return uniformAlong(n.src[0]!, axis);
      case 'pad': return attrsOf(n, 'pad').padding[axis]!.every((p) => p === 0) && uniformAlong(n.src[0]!, axis);
      case 'concat': return attrsOf(n, 'concat').axis !== axis && n.src.every((s) => uniformAlong(s, axis));
      case 'reduce_sum': case 'reduce_max': case 'reduce_min': case 'reduce_prod': {
        const { axes, keepdims } = attrsOf(n, n.op);
        const kept = n.src[0]!.type.shape.map((_, i) => i).filter((i) => keepdims || !axes.includes(i));
        return uniformAlong(n.src[0]!, kept[axis]!);
      }
      case 'reshape': {
        const inShape = n.src[0]!.type.shape, before = prod(n.type.shape.slice(0, axis));
        const b = inShape.findIndex((d, i) => d === n.type.shape[axis] && prod(inShape.slice(0, i)) === before);
        return b >= 0 && uniformAlong(n.src[0]!, b);
      }
      case 'matmul': {
        // (an initial recurrent state: zeros times a kernel) rows of x, columns of y, or a batch axis of both
        const r = n.type.shape.length;
        return axis === r - 1 ? uniformAlong(n.src[1]!, axis) : uniformAlong(n.src[0]!, axis) && (axis === r - 2 || uniformAlong(n.src[1]!, axis));
      }
      default:
        return GroupOp.Elementwise.has(n.op) && n.src.every((s) => uniformAlong(s, axis));
    }
  };
  const what = (n: Node) => `${n.op} ${formatType(n.type)}`;
  const fail = (n: Node, why: string): never => { throw new NotSeparable(`${what(n)} ${why}`); };
  /** The rows of operands that must carry them on one axis `a` (values no input reaches must be uniform along it). */
  const together = (n: Node, srcs: readonly Node[]): Rows => {
    const axes = [...new Set(srcs.map((s) => rows.get(s)!).filter((r) => r !== null))];
    if (axes.length === 0) return null;
    if (axes.length > 1) fail(n, `combines operands with rows on different axes (${axes.join(', ')})`);
    const a = axes[0]!;
    for (const s of srcs) if (rows.get(s) === null && !uniformAlong(s, a)) fail(n, `combines rows with a value that differs along the batch axis (${what(s)})`);
    return a;
  };
  const rule = (n: Node): Rows => {
    const src = n.src.map((s) => rows.get(s)!);
    if (n.op === 'input') return 0;
    if (src.every((r) => r === null)) return null;
    const a = src.find((r) => r !== null)!;
    if (GroupOp.Elementwise.has(n.op)) return together(n, n.src);
    switch (n.op) {
      case 'reduce_sum': case 'reduce_max': case 'reduce_min': case 'reduce_prod': {
        const { axes, keepdims } = attrsOf(n, n.op);
        if (axes.includes(a)) fail(n, `reduces over the batch axis ${a}`);
        return keepdims ? a : a - axes.filter((x) => x < a).length;
      }
      case 'argmax': case 'argmin': {
        const { axis, keepdims } = attrsOf(n, n.op);
        if (axis === a) fail(n, `reduces over the batch axis ${a}`);
        return keepdims || axis > a ? a : a - 1;
      }
      case 'reshape': {
        // row-major: the rows stay whole where some output axis has the rows' extent and the same elements before it
        const inShape = n.src[0]!.type.shape, outShape = n.type.shape, before = prod(inShape.slice(0, a));
        const b = outShape.findIndex((d, i) => d === inShape[a] && prod(outShape.slice(0, i)) === before);
        return b >= 0 ? b : fail(n, 'merges or splits the batch axis');
      }
      case 'transpose': return attrsOf(n, 'transpose').perm.indexOf(a);
      case 'broadcast': return a + n.type.shape.length - n.src[0]!.type.shape.length;
      case 'slice': {
        const { start, end, step } = attrsOf(n, 'slice');
        if (start[a] !== 0 || end[a] !== n.src[0]!.type.shape[a] || step[a] !== 1) fail(n, `slices the batch axis ${a}`);
        return a;
      }
      case 'pad': {
        const p = attrsOf(n, 'pad').padding[a]!;
        if (p[0] !== 0 || p[1] !== 0) fail(n, `pads the batch axis ${a}`);
        return a;
      }
      case 'concat': {
        if (attrsOf(n, 'concat').axis === together(n, n.src)) fail(n, 'concatenates along the batch axis');
        return a;
      }
      case 'gather': {
        const { axis } = attrsOf(n, 'gather');
        const [data, idx] = src as [Rows, Rows];
        // a lookup of row-wise indices in a table (an embedding): the rows are where the indices put them
        if (data === null) return axis + idx!;
        if (idx !== null) fail(n, 'gathers rows with row-dependent indices');
        if (axis === data) fail(n, 'gathers along the batch axis');
        return data < axis ? data : data - 1 + n.src[1]!.type.shape.length;
      }
      case 'matmul': {
        const r = n.type.shape.length, [x, y] = src as [Rows, Rows];
        if ((x ?? y)! < r - 2) return together(n, n.src); // a batch axis of the product, shared by both
        if (x === r - 2 && y === null) return x; // rows of the left operand
        if (x === null && y === r - 1) return y; // columns of the right operand
        return fail(n, 'contracts over the batch axis');
      }
      case 'conv': case 'reduce_window': {
        // [N, ...spatial, C]: the rows on N (conv: the kernel must not depend on them)
        if (a !== 0 || (n.op === 'conv' && src[1] !== null)) fail(n, `has its rows on axis ${a}, not on N`);
        return 0;
      }
      default:
        return fail(n, 'is not known to keep rows apart');
    }
  };
  try {
    for (const n of topoSort(g)) rows.set(n, rule(n));
    for (const o of g.outputs) {
      const r = rows.get(o.node)!;
      if (r === 0) continue;
      if (r === null && o.node.type.shape[0] === batch && uniformAlong(o.node, 0)) continue;
      throw new NotSeparable(`output '${o.name}' ${formatType(o.node.type)} ${r === null ? 'does not depend on the input rows' : `has its rows on axis ${r}, not 0`}`);
    }
  } catch (err) {
    if (err instanceof NotSeparable) return { separable: false, reason: err.message };
    throw err;
  }
  return { separable: true };
}
