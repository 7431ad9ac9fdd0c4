// rows: whether a predict graph is row-separable (every output row depends only on the same input row, computed the
// same way at any position), so that a runtime may run any number of rows in chunks of the compiled batch.
import { type Graph, type Node, nodeName, topoSort } from '../ir/graph.js';
import { GroupOp, attrsOf } from '../ir/ops.js';
import { scanInfo } from '../ir/scan.js';
import { formatType } from '../ir/types.js';

export type Separability = { readonly separable: true } | { readonly separable: false; readonly reason: string };

/**
 * Where a value's rows are: the axis carrying the batch, or null for a value that no input reaches. The axis may have
 * the batch merged with the axes after it (TimeDistributed's [batch·time, ...]): its extent is then batch·k, row r at
 * indices [r·k, (r+1)·k), k read off the value's shape.
 */
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
  // a scan body's values are analysed with rows of their own and the body's inputs on the axes its operands give
  let rows = new Map<Node, Rows>();
  let inputRows = (_n: Node): Rows => 0;
  // by node, then axis (a scan body's nodes are numbered apart from the graph's)
  let uniform = new Map<Node, Map<number, boolean>>();
  // in a scan body: an input is as uniform as the operand it stands for (a sequence's step one axis further)
  let inputUniform = (_n: Node, _axis: number): boolean => false;
  /** Whether a value no input reaches is the same at every index of `axis` (so each row sees the same values). */
  const uniformAlong = (n: Node, axis: number): boolean => {
    let byAxis = uniform.get(n);
    if (!byAxis) uniform.set(n, (byAxis = new Map()));
    let u = byAxis.get(axis);
    if (u === undefined) byAxis.set(axis, (u = computeUniform(n, axis)));
    return u;
  };
  const computeUniform = (n: Node, axis: number): boolean => {
    if (n.type.shape[axis] === 1) return true;
    switch (n.op) {
      case 'input': return inputUniform(n, axis);
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
    if (n.op === 'input') return inputRows(n);
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
        // row-major: each row is `before` runs of (the row's extent) * (the elements after it); they stay whole where
        // some output axis has the same elements before it and an extent of batch·k' (merging the batch with the axes
        // after it, or splitting them back off), as its runs are then as long
        const inShape = n.src[0]!.type.shape, outShape = n.type.shape, before = prod(inShape.slice(0, a));
        const b = outShape.findIndex((d, i) => d % batch === 0 && prod(outShape.slice(0, i)) === before);
        return b >= 0 ? b : fail(n, 'splits the batch axis or merges it with the axes before it');
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
      case 'scan': return scanRows(n, src);
      default:
        return fail(n, 'is not known to keep rows apart');
    }
  };
  /**
   * A scan keeps rows apart when its body does, with each step's slices on their sequence's rows less the time axis
   * (the rows must not be that axis) and the carries on the rows of their new values (an initial carry no input reaches,
   * zeros, takes them when it is the same along them).
   */
  const scanRows = (n: Node, src: readonly Rows[]): Rows => {
    const { body, nc, ns, ny, output: k } = scanInfo(n.attrs, n.src.map((s) => s.type));
    const ax = src.map((r, i) => {
      if (i < nc || i >= nc + ns || r === null) return r;
      return r === 0 ? fail(n, 'runs its steps along the batch axis') : r - 1;
    });
    const pos = new Map(body.inputs.map((x, i) => [x, i]));
    const isSeq = (i: number) => i >= nc && i < nc + ns;
    // a carry no input reaches first takes the rows of a sequence's steps it is uniform along (an RNN's zero state)
    for (let i = 0; i < nc; i++) {
      if (ax[i] === null) ax[i] = ax.find((r, j) => isSeq(j) && r !== null && r < n.src[i]!.type.shape.length && uniformAlong(n.src[i]!, r)) ?? null;
    }
    let outs: Rows[] = [];
    for (let round = 0, changed = true; changed; round++) {
      if (round > nc) fail(n, 'has carries whose rows do not settle');
      const outer = [rows, inputRows, uniform, inputUniform] as const;
      rows = new Map();
      uniform = new Map();
      inputRows = (x) => ax[pos.get(x)!]!;
      // a body input is as uniform as its operand, asked of the graph around the loop
      inputUniform = (x, a) => {
        const i = pos.get(x)!, here = [uniform, inputUniform] as const;
        [uniform, inputUniform] = [outer[2], outer[3]];
        try {
          return uniformAlong(n.src[i]!, isSeq(i) ? a + 1 : a);
        } finally {
          [uniform, inputUniform] = here;
        }
      };
      try {
        for (const m of topoSort(body)) rows.set(m, rule(m));
        outs = body.outputs.map((o) => rows.get(o.node)!);
      } finally {
        [rows, inputRows, uniform, inputUniform] = outer;
      }
      changed = false;
      for (let i = 0; i < nc; i++) {
        const r = outs[i]!;
        if (r === ax[i]) continue;
        if (ax[i] !== null || r === null || !uniformAlong(n.src[i]!, r)) fail(n, `has carry ${i} with rows on axis ${ax[i]} but its new value's on ${r}`);
        ax[i] = r;
        changed = true;
      }
    }
    const stacked = (r: Rows): Rows => (r === null ? null : r + 1);
    return k < nc ? ax[k]! : k < nc + ny ? stacked(outs[k]!) : stacked(ax[k - nc - ny]!);
  };
  try {
    for (const n of topoSort(g)) rows.set(n, rule(n));
    for (const o of g.outputs) {
      const r = rows.get(o.node)!;
      if (r === 0 && o.node.type.shape[0] === batch) continue;
      if (r === 0) throw new NotSeparable(`output '${o.name}' ${formatType(o.node.type)} has its rows merged with the axes after them`);
      if (r === null && o.node.type.shape[0] === batch && uniformAlong(o.node, 0)) continue;
      throw new NotSeparable(`output '${o.name}' ${formatType(o.node.type)} ${r === null ? 'does not depend on the input rows' : `has its rows on axis ${r}, not 0`}`);
    }
  } catch (err) {
    if (err instanceof NotSeparable) return { separable: false, reason: err.message };
    throw err;
  }
  return { separable: true };
}
