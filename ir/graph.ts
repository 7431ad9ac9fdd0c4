// Graph IR: hash-consed SSA nodes, functions with named inputs/params/outputs, and the builder.
import { type Attrs, type AttrValue, type Op, ShapeError, inferType } from './ops.js';
import { type DType, type Shape, type TensorType, formatType, sizeOf } from './types.js';

/** The most dimensions a value may have: NumPy's limit before 2.0, and the C runtime's (KILN_MAX_RANK). */
export const MAX_RANK = 32;

/** One SSA value: an op applied to source values. Structurally equal nodes of one builder are the same object. */
export interface Node {
  readonly id: number;
  readonly op: Op;
  readonly type: TensorType;
  readonly src: readonly Node[];
  readonly attrs: Attrs;
}

export interface NamedNode {
  readonly name: string;
  readonly node: Node;
}

/** A parameter updated in place by the function (training step): `param` takes `value` after the call. */
export interface Update {
  readonly param: Node;
  readonly value: Node;
}

/** A graph function: named inputs, named parameters (weights, optimizer state), named outputs, in-place updates. */
export interface Graph {
  readonly name: string;
  readonly inputs: readonly Node[];
  readonly params: readonly Node[];
  readonly outputs: readonly NamedNode[];
  readonly updates: readonly Update[];
}

export function nodeName(n: Node): string {
  return String(n.attrs['name']);
}

function attrKey(v: AttrValue): string {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  return Array.isArray(v) ? `[${v.map(attrKey).join(',')}]` : JSON.stringify(v);
}

/**
 * Builds one graph. Every op infers its type (throwing ShapeError on bad operands), and nodes are
 * interned, so building the same expression twice yields the same node (CSE for free).
 */
export class Builder {
  private nextId = 0;
  private readonly interned = new Map<string, Node>();
  readonly inputs: Node[] = [];
  readonly params: Node[] = [];

  private make(op: Op, type: TensorType, src: readonly Node[], attrs: Attrs): Node {
    if (type.shape.length > MAX_RANK) throw new ShapeError(`${op}: rank ${type.shape.length} is more than the ${MAX_RANK} dimensions kiln supports`);
    const keys = Object.keys(attrs).sort();
    const key = `${op}|${formatType(type)}|${src.map((s) => s.id).join(',')}|${keys.map((k) => `${k}=${attrKey(attrs[k]!)}`).join(';')}`;
    const hit = this.interned.get(key);
    if (hit) return hit;
    const sorted: Record<string, AttrValue> = {};
    for (const k of keys) sorted[k] = attrs[k]!;
    const node: Node = { id: this.nextId++, op, type: { dtype: type.dtype, shape: [...type.shape] }, src, attrs: sorted };
    this.interned.set(key, node);
    return node;
  }

  input(name: string, type: TensorType): Node {
    if (this.inputs.some((n) => nodeName(n) === name)) throw new ShapeError(`input: duplicate name '${name}'`);
    const n = this.make('input', type, [], { name });
    this.inputs.push(n);
    return n;
  }

  param(name: string, type: TensorType): Node {
    if (this.params.some((n) => nodeName(n) === name)) throw new ShapeError(`param: duplicate name '${name}'`);
    const n = this.make('param', type, [], { name });
    this.params.push(n);
    return n;
  }

  /** A constant; `value` holds all elements row-major, or one element splatted over the shape. */
  constant(value: number | ArrayLike<number>, dtype: DType = 'float32', shape: Shape = []): Node {
    const vals: ArrayLike<number> = typeof value === 'number' ? [value] : value;
    if (vals.length !== 1 && vals.length !== sizeOf(shape)) {
      throw new ShapeError(`const: ${vals.length} values do not fill shape [${shape.join(',')}]`);
    }
    const canon = dtype === 'float32' ? Math.fround : dtype === 'bool' ? (v: number) => (v ? 1 : 0) : Math.trunc;
    // uniform values checked in place, copied only when they are not: a traced relu's zero, broadcast eagerly to a
    // batch of conv outputs (the CNN's 5.4 million), took 150 ms to copy and canonicalize
    const first = vals.length > 0 ? canon(vals[0]!) : 0;
    let uniform = vals.length > 0;
    for (let i = 1; uniform && i < vals.length; i++) uniform = Object.is(canon(vals[i]!), first);
    return this.make('const', { dtype, shape }, [], { value: uniform ? [first] : Array.from(vals, (v) => canon(v)) });
  }

  /** int32 index along `axis` at every position of `shape`. */
  iota(shape: Shape, axis: number): Node {
    if (axis < 0 || axis >= shape.length) throw new ShapeError(`iota: axis ${axis} is out of range for rank ${shape.length}`);
    return this.make('iota', { dtype: 'int32', shape }, [], { axis });
  }

  /** Applies a non-leaf op, inferring its type. */
  emit(op: Op, src: readonly Node[], attrs: Attrs = {}): Node {
    const type = inferType(op, src.map((s) => s.type), attrs);
    return this.make(op, type, src, attrs);
  }

  /** Re-creates a leaf of another graph in this one (used by passes that rebuild graphs). */
  leaf(n: Node): Node {
    if (n.op === 'input') return this.input(nodeName(n), n.type);
    if (n.op === 'param') return this.param(nodeName(n), n.type);
    return this.make(n.op, n.type, [], n.attrs);
  }

  finish(name: string, outputs: readonly NamedNode[], updates: readonly Update[] = []): Graph {
    return { name, inputs: [...this.inputs], params: [...this.params], outputs: [...outputs], updates: [...updates] };
  }
}

/** g with every update made an output `new/<param>` instead (for executables that write outputs only). */
export function updatesAsOutputs(g: Graph): Graph {
  return { ...g, outputs: [...g.outputs, ...g.updates.map((u) => ({ name: `new/${nodeName(u.param)}`, node: u.value }))], updates: [] };
}

/** All nodes reachable from the graph's outputs, updates, inputs and params, sources before users. */
export function topoSort(g: Graph): Node[] {
  const seen = new Set<Node>();
  const order: Node[] = [];
  const roots = [...g.inputs, ...g.params, ...g.outputs.map((o) => o.node), ...g.updates.map((u) => u.value)];
  for (const root of roots) {
    if (seen.has(root)) continue;
    // iterative post-order DFS: deep graphs must not overflow the stack
    const stack: [Node, number][] = [[root, 0]];
    seen.add(root);
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const [n, i] = top;
      if (i < n.src.length) {
        top[1]++;
        const s = n.src[i]!;
        if (!seen.has(s)) {
          seen.add(s);
          stack.push([s, 0]);
        }
      } else {
        stack.pop();
        order.push(n);
      }
    }
  }
  return order;
}

/** Rebuilds a graph node by node with `rewrite` deciding each node's replacement (given its already-rebuilt sources). */
export function rebuild(
  g: Graph,
  rewrite: (b: Builder, n: Node, src: Node[]) => Node | undefined,
  name = g.name,
): Graph {
  const b = new Builder();
  const map = new Map<Node, Node>();
  for (const n of [...g.inputs, ...g.params]) map.set(n, b.leaf(n));
  for (const n of topoSort(g)) {
    if (map.has(n)) continue;
    const src = n.src.map((s) => map.get(s)!);
    const r = rewrite(b, n, src) ?? (n.src.length === 0 ? b.leaf(n) : b.emit(n.op, src, n.attrs));
    map.set(n, r);
  }
  return b.finish(
    name,
    g.outputs.map((o) => ({ name: o.name, node: map.get(o.node)! })),
    g.updates.map((u) => ({ param: map.get(u.param)!, value: map.get(u.value)! })),
  );
}
