// Seeded random graphs for differential tests: elementwise chains with broadcasting, reductions, movement, matmul, rows.
import { Builder, type Graph, type NamedNode, type Node, type Update } from '../../ir/graph.js';
import { type Attrs, type Op, ShapeError, broadcastShapes } from '../../ir/ops.js';
import { type Shape, type TensorType, type TypedArray, sizeOf, toTyped } from '../../ir/types.js';

/** Deterministic generator of floats in [0, 1) (mulberry32; tests/ir/helpers.ts re-exports it). */
export function rng(seed = 1): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random bindings for every input and param: floats in [-2, 2), int32 in [-5, 5]. */
export function randomBindings(g: Graph, seed: number): [Map<string, TypedArray>, Map<string, TypedArray>] {
  const data = (t: TensorType, s: number): TypedArray => {
    const r = rng(s), n = sizeOf(t.shape);
    if (t.dtype === 'int32') return toTyped('int32', Array.from({ length: n }, () => Math.floor(r() * 11) - 5));
    if (t.dtype === 'bool') return toTyped('bool', Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0)));
    return toTyped(t.dtype, Array.from({ length: n }, () => 4 * r() - 2));
  };
  const bind = (ns: readonly Node[]) => new Map(ns.map((n, i) => [String(n.attrs['name']), data(n.type, seed + i * 101)]));
  return [bind(g.inputs), bind(g.params)];
}

const f32 = (shape: Shape): TensorType => ({ dtype: 'float32', shape });

const UNARY: readonly Op[] = ['neg', 'abs', 'exp', 'tanh', 'sqrt', 'log', 'sin', 'cos', 'floor', 'ceil', 'round', 'sign', 'recip', 'rsqrt', 'erf'];
const BINARY: readonly Op[] = ['add', 'sub', 'mul', 'div', 'max', 'min', 'pow'];
const COMPARE: readonly Op[] = ['lt', 'le', 'gt', 'ge', 'eq', 'ne'];
const REDUCE: readonly Op[] = ['reduce_sum', 'reduce_max', 'reduce_min', 'reduce_prod'];

/** Every kind of step the generator takes, each about equally likely. */
export const STEP_KINDS = [
  'unary', 'binary', 'binary', 'splat', 'select', 'reduce', 'reduce', 'arg', 'transpose', 'reshape', 'slice', 'pad',
  'concat', 'matmul', 'matmul', 'softmax', 'random', 'gather', 'int', 'window', 'input',
] as const;
export type StepKind = (typeof STEP_KINDS)[number];

/** What a random graph is built from, for messages: the seed and the steps taken (skipped ones marked). */
export interface RandomGraph {
  readonly seed: number;
  readonly graph: Graph;
  readonly steps: string[];
}

/**
 * A random graph of float32 values: 1-2 inputs, an optional param updated in place, 4-12 random steps on a
 * pool of values, and 1-3 outputs. Steps the builder rejects (ShapeError) are skipped and listed as such.
 */
export function randomGraph(seed: number): RandomGraph {
  const r = rng(seed * 7919 + 1);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const shuffle = <T>(xs: readonly T[]): T[] => {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  };
  const randShape = (rank: number): number[] => Array.from({ length: rank }, () => pick([1, 2, 3, 4, 5]));
  const b = new Builder();
  let inputs = 0;
  const input = (shape: Shape): Node => b.input(`x${inputs++}`, f32(shape));
  const e = (op: Op, src: Node[], attrs: Attrs = {}) => b.emit(op, src, attrs);
  const bcast = (x: Node, shape: Shape) => (x.type.shape.join() === shape.join() ? x : e('broadcast', [x], { shape }));
  let counter: Node | undefined;

  const pool: Node[] = [input(randShape(int(1, 3)))];
  const param = r() < 0.5 ? b.param('w', f32(randShape(int(1, 2)))) : undefined;
  if (param) pool.push(param);
  if (r() < 0.4) pool.push(input(r() < 0.5 ? pool[0]!.type.shape : randShape(int(0, 3))));
  /** Recent values are likelier, so chains grow deep. */
  const some = (): Node => pool[Math.max(0, pool.length - 1 - Math.floor(Math.abs(r() - r()) * pool.length))]!;
  /** Two values broadcast to one shape (or x with a fresh input of a shape broadcastable to x's). */
  const pair = (): [Node, Node] => {
    const x = some();
    let y = some();
    let s = broadcastShapes(x.type.shape, y.type.shape);
    if (!s) {
      y = input(x.type.shape.map((d) => (r() < 0.4 ? 1 : d)).slice(int(0, x.type.shape.length)));
      s = broadcastShapes(x.type.shape, y.type.shape)!;
    }
    return [bcast(x, s), bcast(y, s)];
  };
  const factorShape = (n: number): number[] => {
    const primes: number[] = [];
    for (let p = 2, m = n; m > 1;) {
      if (m % p === 0) { primes.push(p); m /= p; } else p++;
    }
    const dims = Array.from({ length: int(1, 3) }, () => 1);
    for (const p of primes) dims[int(0, dims.length - 1)]! *= p;
    if (r() < 0.3) dims.splice(int(0, dims.length), 0, 1);
    return dims;
  };

  const steps: Record<StepKind, () => Node> = {
    unary: () => e(pick(UNARY), [some()]),
    binary: () => e(pick(BINARY), pair()),
    splat: () => {
      // x*1, x+0, x-0, x/1 and friends: canonicalization has something to do
      const x = some();
      const c = b.constant(pick([0, 1, 1, 2, 0.5, -1]), 'float32', x.type.shape);
      return r() < 0.5 ? e(pick(['add', 'sub', 'mul', 'div', 'max'] as Op[]), [x, c]) : e(pick(['add', 'mul'] as Op[]), [c, x]);
    },
    select: () => {
      const [x, y] = pair();
      return e('select', [e(pick(COMPARE), [x, y]), x, r() < 0.2 ? x : y]);
    },
    reduce: () => {
      const x = some(), rank = x.type.shape.length;
      const axes = shuffle([...Array(rank).keys()]).slice(0, int(rank ? 1 : 0, rank));
      return e(pick(REDUCE), [x], { axes, keepdims: r() < 0.5 });
    },
    arg: () => {
      const x = some();
      const a = e(pick(['argmax', 'argmin'] as Op[]), [x], { axis: int(0, x.type.shape.length - 1), keepdims: r() < 0.5 });
      return e('cast', [a], { dtype: 'float32' });
    },
    transpose: () => {
      const x = some();
      return e('transpose', [x], { perm: shuffle([...Array(x.type.shape.length).keys()]) });
    },
    reshape: () => {
      const x = some();
      return e('reshape', [x], { shape: factorShape(sizeOf(x.type.shape)) });
    },
    slice: () => {
      const x = some(), s = x.type.shape;
      const start = s.map((d) => int(0, d - 1)), step = s.map(() => pick([1, 1, 2, 3]));
      return e('slice', [x], { start, end: s.map((d, i) => int(start[i]! + 1, d)), step });
    },
    pad: () => {
      const x = some();
      return e('pad', [x], { padding: x.type.shape.map(() => [int(0, 2), int(0, 2)]), value: pick([0, -1, 2.5]) });
    },
    concat: () => {
      const x = some(), s = x.type.shape, axis = int(0, s.length - 1);
      const other = r() < 0.5 ? input(s.map((d, i) => (i === axis ? int(1, 3) : d))) : e('neg', [x]);
      return e('concat', r() < 0.5 ? [x, other] : [other, x, other], { axis });
    },
    matmul: () => {
      const x = some(), s = x.type.shape;
      const k = s[s.length - 1] ?? 1, n = int(1, 6);
      if (s.length === 3 && r() < 0.5) return e('matmul', [x, input([s[0]!, k, n])]);
      const x2 = e('reshape', [x], { shape: [sizeOf(s) / k, k] });
      const w = r() < 0.5 ? input([k, n]) : e('transpose', [input([n, k])], { perm: [1, 0] });
      const y = e('matmul', r() < 0.2 ? [e('transpose', [input([k, sizeOf(s) / k])], { perm: [1, 0] }), w] : [x2, w]);
      // a bias-and-activation epilogue, as a Dense layer has
      return r() < 0.5 ? e('max', [e('add', [y, bcast(input([n]), y.type.shape)]), b.constant(0, 'float32', y.type.shape)]) : y;
    },
    softmax: () => {
      const x = some(), s = x.type.shape, axis = s.length - 1;
      const m = e('reduce_max', [x], { axes: [axis], keepdims: true });
      const z = e('sub', [x, bcast(m, s)]);
      const ex = e('exp', [z]);
      const sum = e('reduce_sum', [ex], { axes: [axis], keepdims: r() < 0.5 });
      const sumB = sum.type.shape.length === s.length ? bcast(sum, s) : e('broadcast', [e('reshape', [sum], { shape: [...sum.type.shape, 1] })], { shape: s });
      // softmax, or log-softmax
      return r() < 0.7 ? e('div', [ex, sumB]) : e('sub', [z, e('log', [sumB])]);
    },
    random: () => {
      const x = some();
      counter ??= b.input('rng_counter', { dtype: 'int32', shape: [] });
      const u = e('random_uniform', [counter], { seed: int(0, 1000), shape: x.type.shape });
      return r() < 0.5 ? e('mul', [x, u]) : e('select', [e('lt', [u, b.constant(0.3, 'float32', x.type.shape)]), b.constant(0, 'float32', x.type.shape), x]);
    },
    gather: () => {
      const x = some(), s = x.type.shape, axis = int(0, s.length - 1);
      const idx = Array.from({ length: int(1, 4) }, () => int(0, s[axis]! - 1));
      return e('gather', [x, b.constant(idx, 'int32', r() < 0.5 ? [idx.length] : [1, idx.length])], { axis });
    },
    int: () => {
      // through int32 and back: casts, integer arithmetic, an integer reduction
      const x = some();
      const i = e('cast', [e('mul', [x, b.constant(3, 'float32', x.type.shape)])], { dtype: 'int32' });
      const j = e(pick(['add', 'mul', 'max', 'sub'] as Op[]), [i, b.constant(int(-2, 2), 'int32', x.type.shape)]);
      const k = r() < 0.5 && x.type.shape.length ? e('reduce_sum', [j], { axes: [0], keepdims: true }) : j;
      return e('cast', [k], { dtype: 'float32' });
    },
    window: () => {
      // conv or pooling on a fresh NHWC input (there is no conv layer yet)
      const x = input([int(1, 2), int(3, 6), int(3, 6), int(1, 3)]);
      if (r() < 0.5) {
        return e('reduce_window', [x], { kind: pick(['max', 'sum']), window: [2, 2], strides: [int(1, 2), int(1, 2)], padding: [[0, int(0, 1)], [0, int(0, 1)]] });
      }
      const c = x.type.shape[3]!;
      return e('conv', [x, input([int(1, 3), int(1, 3), c, int(1, 3)])], {
        strides: [int(1, 2), 1], padding: [[int(0, 1), int(0, 1)], [1, 1]], dilation: [1, int(1, 2)], lhsDilation: [1, 1], groups: 1,
      });
    },
    input: () => input(some().type.shape.map((d) => (r() < 0.3 ? 1 : d))),
  };

  const taken: string[] = [];
  const n = int(4, 12);
  for (let i = 0; i < n; i++) {
    const kind = pick(STEP_KINDS);
    try {
      pool.push(steps[kind]());
      taken.push(kind);
    } catch (err) {
      if (!(err instanceof ShapeError)) throw err;
      taken.push(`${kind} (rejected: ${err.message})`);
    }
  }
  // outputs are computed values (a graph whose output is an input is tested on its own)
  const computed = pool.filter((x) => x.op !== 'input' && x.op !== 'param');
  const last = computed.length ? computed[computed.length - 1]! : e('neg', [pool[0]!]);
  const outs = [last, ...Array.from({ length: int(0, 2) }, () => pick(computed.length ? computed : [last]))];
  const outputs: NamedNode[] = outs.map((node, i) => ({ name: `y${i}`, node }));
  const updates: Update[] = [];
  if (param) {
    // w - 0.1 * g for some g of w's shape (a reduction of a pool value when none fits)
    const same = pool.filter((x) => x !== param && x.type.shape.join() === param.type.shape.join());
    const src = same.length ? pick(same) : e('reduce_sum', [last], { axes: [...last.type.shape.keys()], keepdims: false });
    const g = same.length ? src : bcast(src, param.type.shape);
    updates.push({ param, value: e('sub', [param, e('mul', [b.constant(0.1, 'float32', param.type.shape), g])]) });
  }
  return { seed, graph: b.finish(`random_${seed}`, outputs, updates), steps: taken };
}
