// Delta debugging of a failing graph: drop outputs and updates, replace nodes by an operand or a fresh input,
// drop unused leaves, shrink input shapes; keep each change that still fails the same way.
import { Builder, type Graph, type Node, nodeName, topoSort } from '../ir/graph.js';
import { GroupOp, ShapeError } from '../ir/ops.js';
import { type Shape, type TensorType, sizeOf, typesEqual } from '../ir/types.js';
import { verifyProblems } from '../ir/verifier.js';

/** What to change while rebuilding a graph (every field optional). */
interface Edit {
  readonly dropOutput?: number;
  readonly dropUpdate?: number;
  /** a node and what replaces it */
  readonly replace?: readonly [Node, (b: Builder, map: ReadonlyMap<Node, Node>) => Node];
  /** leaves no longer declared (unused ones) */
  readonly drop?: ReadonlySet<Node>;
  /** an input or param given a smaller shape; the nodes after it follow (attributes adjusted) */
  readonly retype?: readonly [Node, Shape];
}

const sameShape = (a: Shape, b: Shape) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * A node re-emitted on operands whose shapes may have changed: attributes that spell out shapes follow them
 * (broadcast targets, reshape targets, slice ends), and splat constants, iota, random_uniform and broadcasts
 * feeding an elementwise op take the shape of its other operands.
 */
function reemit(b: Builder, n: Node, src: Node[]): Node {
  const old = n.src.map((s) => s.type.shape);
  if (src.every((s, i) => sameShape(s.type.shape, old[i]!))) return b.emit(n.op, src, n.attrs);
  const x = src[0]!.type.shape;
  switch (n.op) {
    case 'broadcast': {
      const target = n.attrs['shape'] as number[], off = target.length - x.length;
      return b.emit('broadcast', src, { ...n.attrs, shape: target.map((d, i) => (i < off || old[0]![i - off] === 1 ? d : x[i - off]!)) });
    }
    case 'reshape': {
      const target = [...(n.attrs['shape'] as number[])], ratio = sizeOf(old[0]!) / sizeOf(x);
      const i = target.findIndex((d) => d % ratio === 0);
      if (Number.isInteger(ratio) && i >= 0) target[i]! /= ratio;
      return b.emit('reshape', src, { shape: target });
    }
    case 'slice': {
      const start = n.attrs['start'] as number[], end = (n.attrs['end'] as number[]).map((e, i) => Math.min(e, x[i]!));
      return b.emit('slice', src, { ...n.attrs, start: start.map((s, i) => Math.min(s, Math.max(0, end[i]! - 1))), end });
    }
  }
  if (!GroupOp.Elementwise.has(n.op)) return b.emit(n.op, src, n.attrs);
  const flexible = (s: Node) => (s.op === 'const' && (s.attrs['value'] as number[]).length === 1) || ['iota', 'random_uniform', 'broadcast'].includes(s.op);
  const shape = src.find((s) => !flexible(s))?.type.shape;
  if (!shape) return b.emit(n.op, src, n.attrs);
  return b.emit(n.op, src.map((s) => {
    if (!flexible(s) || sameShape(s.type.shape, shape)) return s;
    if (s.op === 'const') return b.constant((s.attrs['value'] as number[])[0]!, s.type.dtype, shape);
    if (s.op === 'iota') return b.iota(shape, s.attrs['axis'] as number);
    return b.emit(s.op, s.src, { ...s.attrs, shape });
  }), n.attrs);
}

/** g rebuilt with one edit, or undefined when the edit gives no valid graph. */
function edit(g: Graph, e: Edit): Graph | undefined {
  const b = new Builder(), map = new Map<Node, Node>();
  const leafType = (n: Node): TensorType => (e.retype?.[0] === n ? { dtype: n.type.dtype, shape: e.retype[1] } : n.type);
  try {
    for (const n of g.inputs) if (!e.drop?.has(n)) map.set(n, b.input(nodeName(n), leafType(n)));
    for (const n of g.params) if (!e.drop?.has(n)) map.set(n, b.param(nodeName(n), leafType(n)));
    for (const n of topoSort(g)) {
      if (map.has(n) || e.drop?.has(n)) continue;
      if (e.replace?.[0] === n) map.set(n, e.replace[1](b, map));
      else map.set(n, n.src.length ? reemit(b, n, n.src.map((s) => map.get(s)!)) : b.leaf(n));
    }
  } catch (err) {
    if (err instanceof ShapeError) return undefined;
    throw err;
  }
  const outputs = g.outputs.filter((_, i) => i !== e.dropOutput).map((o) => ({ name: o.name, node: map.get(o.node)! }));
  const updates = g.updates.filter((_, i) => i !== e.dropUpdate).map((u) => ({ param: map.get(u.param)!, value: map.get(u.value)! }));
  if (updates.some((u) => !typesEqual(u.param.type, u.value.type)) || outputs.length + updates.length === 0) return undefined;
  const h = b.finish(g.name, outputs, updates);
  return verifyProblems(h).length ? undefined : h;
}

/** The edits to try on a graph, biggest cuts first. */
function* edits(g: Graph): Generator<Edit> {
  const used = new Set([...topoSort({ ...g, inputs: [], params: [] }), ...g.updates.map((u) => u.param)]);
  const unused = [...g.inputs, ...g.params].filter((n) => !used.has(n));
  if (unused.length) yield { drop: new Set(unused) };
  for (let i = 0; i < g.outputs.length; i++) yield { dropOutput: i };
  for (let i = 0; i < g.updates.length; i++) yield { dropUpdate: i };
  const nodes = topoSort(g).filter((n) => n.src.length > 0);
  const names = new Set(g.inputs.map(nodeName));
  let k = 0;
  while (names.has(`x${k}`)) k++;
  for (const n of nodes) yield { replace: [n, (b) => b.input(`x${k}`, n.type)] };
  for (const n of nodes) {
    for (const s of new Set(n.src)) if (typesEqual(s.type, n.type)) yield { replace: [n, (_, map) => map.get(s)!] };
  }
  for (const leaf of [...g.inputs, ...g.params]) {
    const s = leaf.type.shape;
    for (let a = 0; a < s.length; a++) {
      for (const d of new Set([1, Math.ceil(s[a]! / 2), s[a]! - 1])) if (d >= 1 && d < s[a]!) yield { retype: [leaf, s.map((x, i) => (i === a ? d : x))] };
    }
  }
}

/** Non-leaf nodes, then leaves, outputs and updates, then leaf elements: every kept edit makes this smaller. */
export function graphSize(g: Graph): number {
  const nodes = topoSort(g), leaves = nodes.filter((n) => n.src.length === 0);
  return (nodes.length - leaves.length) * 1e9 + leaves.length * 1e7 + (g.outputs.length + g.updates.length) * 1e5
    + leaves.reduce((a, n) => a + sizeOf(n.type.shape), 0);
}

/**
 * Shrinks g while `fails` holds for the smaller graph, until no edit helps or the deadline (ms since the epoch)
 * passes. Each smaller graph is handed to `onSmaller` as it is found (a reproducer on disk stays current).
 */
export function shrink(g: Graph, fails: (g: Graph) => boolean, deadline: number, onSmaller: (g: Graph) => void = () => {}): Graph {
  let current = g, start = 0;
  outer: for (;;) {
    let i = 0;
    for (const e of edits(current)) {
      if (Date.now() > deadline) break outer;
      if (i++ < start) continue;
      const h = edit(current, e);
      if (h && graphSize(h) < graphSize(current) && fails(h)) {
        current = h;
        onSmaller(h);
        start = i - 1; // the list shifted: carry on about where this edit was
        continue outer;
      }
    }
    if (start === 0) break; // a whole pass found nothing
    start = 0;
  }
  return current;
}
