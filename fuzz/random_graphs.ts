// Seeded random graphs for differential tests and the fuzzer: elementwise chains with broadcasting, reductions,
// movement, matmul, windows, integer and boolean values, and params updated in place.
import { Builder, type Graph, type NamedNode, type Node, type Update } from '../ir/graph.js';
import { type Attrs, type Op, ShapeError, broadcastShapes } from '../ir/ops.js';
import { type Shape, type TensorType, type TypedArray, sizeOf, toTyped } from '../ir/types.js';

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

/** Random values of a type: floats in [-2, 2), int32 in [-5, 5], int8 over its range. */
export function randomData(t: TensorType, seed: number): TypedArray {
  const r = rng(seed), n = sizeOf(t.shape);
  if (t.dtype === 'int8') return Int8Array.from({ length: n }, () => Math.floor(r() * 256) - 128);
  if (t.dtype === 'int32') return toTyped('int32', Array.from({ length: n }, () => Math.floor(r() * 11) - 5));
  if (t.dtype === 'bool') return toTyped('bool', Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0)));
  return toTyped(t.dtype, Array.from({ length: n }, () => 4 * r() - 2));
}

/** Random bindings for every input and param (randomData). */
export function randomBindings(g: Graph, seed: number): [Map<string, TypedArray>, Map<string, TypedArray>] {
  const bind = (ns: readonly Node[]) => new Map(ns.map((n, i) => [String(n.attrs['name']), randomData(n.type, seed + i * 101)]));
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

/**
 * The extended generator's further kinds (randomGraph with `extended`): gathers with computed and out-of-range
 * indices, reductions and args over size-1 axes, int32 and bool arithmetic (not/and/or, casts both ways), iota,
 * scalars, special constants, grouped and lhs-dilated convs, batched matmuls, empty slices.
 */
export const EXTRA_KINDS = [
  'gatherIdx', 'gatherIdx', 'logic', 'intops', 'intops', 'iota', 'unitAxes', 'unitAxes', 'scalar', 'special', 'conv', 'bmm',
  'stepSlice',
] as const;
export type ExtraKind = (typeof EXTRA_KINDS)[number];

export interface RandomGraphOptions {
  /**
   * Also take the EXTRA_KINDS steps, add up to two float params and an int32 step counter, update them in place
   * (reading params through transpose, gather and slice), and output int32 and bool values. Without it the
   * graphs of every seed are those the fixed-seed tests were written against.
   */
  readonly extended?: boolean;
  /**
   * A batch of this many rows: every input of rank 1 or more has it as its first axis, the weights of matmuls and
   * convs (and biases) are params, and no param is updated: the graphs whose rows a predict entry may run in chunks
   * (passes/rows.ts decides which). Without it the graphs of every seed stay as they were.
   */
  readonly rows?: number;
  /**
   * With `extended`: scatter_add steps (indices repeated, some out of range, constant or computed; float32 or int32
   * values) and param updates by an Embedding's gradient, scatter_add(f(gather(p, idx)), idx). Without it the graphs
   * of every seed stay as they were.
   */
  readonly scatter?: boolean;
  /**
   * With `extended`: matmuls of odd sizes (1, 3, primes up to 787 in M, K and N) and deep chains of reductions
   * (softmax of softmax, layer norms of reductions). Without it the graphs of every seed stay as they were.
   */
  readonly deep?: boolean;
}

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
export function randomGraph(seed: number, options: RandomGraphOptions = {}): RandomGraph {
  const extended = options.extended ?? false;
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
  let inputs = 0, weights = 0;
  const batch = options.rows;
  const input = (shape: Shape): Node => b.input(`x${inputs++}`, f32(batch && shape.length ? [batch, ...shape.slice(1)] : shape));
  /** A matmul or conv kernel or a bias: an input, or with `rows` a param (inputs carry rows). */
  const weight = (shape: Shape): Node => (batch ? b.param(`k${weights++}`, f32(shape)) : input(shape));
  const e = (op: Op, src: Node[], attrs: Attrs = {}) => b.emit(op, src, attrs);
  const bcast = (x: Node, shape: Shape) => (x.type.shape.join() === shape.join() ? x : e('broadcast', [x], { shape }));
  let counter: Node | undefined;

  const pool: Node[] = [input(randShape(int(1, 3)))];
  const param = r() < 0.5 ? b.param('w', f32(randShape(int(1, 2)))) : undefined;
  if (param) pool.push(param);
  if (r() < 0.4) pool.push(input(r() < 0.5 ? pool[0]!.type.shape : randShape(int(0, 3))));
  // extended: a second float param (often of the first one's shape, so updates can read each other) and an
  // int32 step counter param (as optimizers keep one), which then drives random_uniform
  const params = param ? [param] : [];
  let stepParam: Node | undefined;
  if (extended) {
    if (r() < 0.4) params.push(b.param(`w${params.length}`, f32(param && r() < 0.6 ? param.type.shape : randShape(int(0, 3)))));
    if (params.length === 2) pool.push(params[1]!);
    if (r() < 0.2) counter = stepParam = b.param('step', { dtype: 'int32', shape: [] });
  }
  /** int32 and bool values the extended steps made along the way: some become outputs. */
  const sideValues: Node[] = [];
  /** Recent values are likelier, so chains grow deep. */
  const some = (): Node => pool[Math.max(0, pool.length - 1 - Math.floor(Math.abs(r() - r()) * pool.length))]!;
  /** Two values broadcast to one shape (or x with a fresh input of a shape broadcastable to x's). */
  const pair = (): [Node, Node] => {
    const x = some();
    let y = some();
    let s = broadcastShapes(x.type.shape, y.type.shape);
    if (!s) {
      y = input(x.type.shape.map((d) => (r() < 0.4 ? 1 : d)).slice(int(0, x.type.shape.length)));
      s = broadcastShapes(x.type.shape, y.type.shape);
      // with rows the fresh input's first axis is the batch, which x's shape may not take
      if (!s) throw new ShapeError(`no common shape of ${x.type.shape} and ${y.type.shape}`);
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
      const w = r() < 0.5 ? weight([k, n]) : e('transpose', [weight([n, k])], { perm: [1, 0] });
      const y = e('matmul', r() < 0.2 ? [e('transpose', [input([k, sizeOf(s) / k])], { perm: [1, 0] }), w] : [x2, w]);
      // a bias-and-activation epilogue, as a Dense layer has
      return r() < 0.5 ? e('max', [e('add', [y, bcast(weight([n]), y.type.shape)]), b.constant(0, 'float32', y.type.shape)]) : y;
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
      return e('conv', [x, weight([int(1, 3), int(1, 3), c, int(1, 3)])], {
        strides: [int(1, 2), 1], padding: [[int(0, 1), int(0, 1)], [1, 1]], dilation: [1, int(1, 2)], lhsDilation: [1, 1], groups: 1,
      });
    },
    input: () => input(some().type.shape.map((d) => (r() < 0.3 ? 1 : d))),
  };

  const asInt = (x: Node) => e('cast', [e('mul', [x, b.constant(3, 'float32', x.type.shape)])], { dtype: 'int32' });
  const toF32 = (x: Node) => e('cast', [x], { dtype: 'float32' });
  const side = (x: Node) => {
    if (r() < 0.3) sideValues.push(x);
    return x;
  };
  /** Indices for gathering along a dimension of size `dim`: computed, constant (some out of range: clamped), or reversing. */
  const indices = (dim: number): Node => {
    const k = int(0, 3);
    if (k === 0) {
      const v = some();
      const small = sizeOf(v.type.shape) <= 6 ? v : input([int(1, 4)]);
      return r() < 0.5 || !small.type.shape.length ? asInt(small) : e(pick(['argmax', 'argmin'] as Op[]), [small], { axis: int(0, small.type.shape.length - 1) });
    }
    if (k === 1) return b.constant(int(-1, dim + 1), 'int32', []);
    if (k === 2) return e('sub', [b.constant(dim - 1, 'int32', [dim]), b.iota([dim], 0)]);
    const idx = Array.from({ length: int(1, 4) }, () => int(-2, dim + 2));
    return b.constant(idx, 'int32', r() < 0.7 ? [idx.length] : [1, idx.length]);
  };
  const extra: Record<ExtraKind, () => Node> = {
    gatherIdx: () => {
      const x = some(), s = x.type.shape, axis = int(0, s.length - 1);
      return e('gather', [x, indices(s[axis]!)], { axis });
    },
    logic: () => {
      const [x, y] = pair();
      const c1 = e(pick(COMPARE), [x, y]);
      const c2 = r() < 0.5 ? e('cast', [y], { dtype: 'bool' }) : e(pick(COMPARE), [x, b.constant(pick([0, 0.5, -1]), 'float32', x.type.shape)]);
      const c = side(pick([() => e('not', [c1]), () => e('and', [c1, c2]), () => e('or', [c1, c2]), () => e('eq', [c1, c2]), () => c2])());
      return pick([() => e('select', [c, x, y]), () => toF32(c), () => toF32(e('cast', [c], { dtype: 'int32' }))])();
    },
    intops: () => {
      const x = some(), s = x.type.shape;
      const i = asInt(x);
      const j = r() < 0.5 ? asInt(pick(pool.filter((p) => p.type.shape.join() === s.join()))) : b.constant(int(-3, 3), 'int32', s);
      let k = r() < 0.3 ? e(pick(['neg', 'abs', 'sign', 'floor', 'round'] as Op[]), [i]) : e(pick(BINARY), [i, j]);
      // an integer matmul (i @ i^T), or integer pooling
      if (r() < 0.15 && s.length >= 2) k = e('matmul', [k, e('transpose', [k], { perm: [...s.keys()].map((a) => (a < s.length - 2 ? a : 2 * s.length - 3 - a)) })]);
      else if (r() < 0.1 && s.length >= 3) k = e('reduce_window', [k], { kind: pick(['max', 'sum']), window: s.slice(1, -1).map(() => int(1, 2)), strides: s.slice(1, -1).map(() => int(1, 2)), padding: s.slice(1, -1).map(() => [int(0, 1), int(0, 1)]) });
      if (r() < 0.3) k = e('select', [e(pick(COMPARE), [i, j]), k, j]);
      if (r() < 0.4 && s.length) {
        const axes = shuffle([...s.keys()]).slice(0, int(1, s.length));
        k = r() < 0.7 ? e(pick(REDUCE), [k], { axes, keepdims: r() < 0.5 }) : e(pick(['argmax', 'argmin'] as Op[]), [k], { axis: axes[0]! });
      }
      return toF32(side(k));
    },
    iota: () => {
      const x = some(), s = x.type.shape;
      const io = b.iota(s, int(0, s.length - 1));
      return e(pick(['add', 'mul', 'sub'] as Op[]), [x, toF32(io)]);
    },
    unitAxes: () => {
      // reductions and args over size-1 axes (inserted by a reshape when x has none), and over no axes at all
      let x = some();
      if (!x.type.shape.includes(1)) {
        const s = [...x.type.shape];
        s.splice(int(0, s.length), 0, 1);
        x = e('reshape', [x], { shape: s });
      }
      const ones = [...x.type.shape.keys()].filter((a) => x.type.shape[a] === 1);
      if (r() < 0.3) return toF32(e(pick(['argmax', 'argmin'] as Op[]), [x], { axis: pick(ones), keepdims: r() < 0.5 }));
      const axes = r() < 0.15 ? [] : shuffle(ones).slice(0, int(1, ones.length));
      return e(pick(REDUCE), [x], { axes, keepdims: r() < 0.5 });
    },
    scalar: () => {
      // a rank-0 value (a reduction of everything, or a size-1 reshape) broadcast back over a shape
      const x = some();
      const z = sizeOf(x.type.shape) === 1 && r() < 0.5 ? e('reshape', [x], { shape: [] })
        : e(pick(REDUCE), [x], { axes: [...x.type.shape.keys()], keepdims: false });
      const y = some();
      return e(pick(BINARY), [y, e('broadcast', [z], { shape: y.type.shape })]);
    },
    special: () => {
      // NaN, infinities, -0, a denormal and float32 overflow
      const x = some();
      const c = b.constant(pick([NaN, Infinity, -Infinity, -0, 1e-40, 3e38, -3e38]), 'float32', x.type.shape);
      return r() < 0.5 ? e(pick(BINARY), [x, c]) : e(pick(BINARY), [c, x]);
    },
    conv: () => {
      // grouped, lhs-dilated (transposed) and 1-D convs, and pooling with low padding
      const nsp = int(1, 2), groups = int(1, 2), cin = int(1, 2);
      const x = input([int(1, 2), ...Array.from({ length: nsp }, () => int(2, 5)), groups * cin]);
      const pads = () => Array.from({ length: nsp }, () => [int(0, 2), int(0, 2)]);
      const ones = (lo: number, hi: number) => Array.from({ length: nsp }, () => int(lo, hi));
      if (r() < 0.3) return e('reduce_window', [x], { kind: pick(['max', 'sum']), window: ones(1, 3), strides: ones(1, 2), padding: pads() });
      const k = weight([...ones(1, 3), cin, groups * int(1, 2)]);
      return e('conv', [x, k], { strides: ones(1, 2), padding: pads(), dilation: ones(1, 2), lhsDilation: ones(1, 2), groups });
    },
    bmm: () => {
      // rank-4 batched matmul, or x @ x^T
      const x = some(), s = x.type.shape;
      if (s.length >= 2 && r() < 0.5) return e('matmul', [x, e('transpose', [x], { perm: [...s.keys()].map((a) => (a === s.length - 2 ? a + 1 : a === s.length - 1 ? a - 1 : a)) })]);
      const [m, k, n] = [int(1, 4), int(1, 4), int(1, 4)], batch = [int(1, 2), int(1, 3)];
      return e('matmul', [input([...batch, m, k]), input([...batch, k, n])]);
    },
    stepSlice: () => {
      // strided slices, empty ones now and then
      const x = some(), s = x.type.shape;
      const start = s.map((d) => int(0, d - 1)), step = s.map(() => int(1, 4));
      const empty = r() < 0.1 ? int(0, s.length - 1) : -1;
      return e('slice', [x], { start, end: s.map((d, i) => (i === empty ? start[i]! : int(start[i]! + 1, d))), step });
    },
  };

  /** scatter_add along an axis of a value into 1 to 5 slices, the indices mostly repeated, some out of range (clamped). */
  const scatter = (): Node => {
    const x = some(), s = x.type.shape;
    if (!s.length) throw new ShapeError('a scalar has no axis to scatter along');
    const axis = int(0, s.length - 1), dim = s[axis]!, size = int(1, 5);
    const idx = r() < 0.3 ? asInt(input([dim])) : b.constant(Array.from({ length: dim }, () => int(-1, Math.min(size, 3))), 'int32', [dim]);
    const int32 = r() < 0.2, y = e('scatter_add', [int32 ? asInt(x) : x, idx], { axis, size });
    return int32 ? toF32(side(y)) : y;
  };

  /** softmax of x over an axis (max subtracted), or its log-softmax. */
  const softmaxOf = (x: Node, axis: number, log: boolean): Node => {
    const sh = x.type.shape;
    const z = e('sub', [x, e('broadcast', [e('reduce_max', [x], { axes: [axis], keepdims: true })], { shape: sh })]);
    const ex = e('exp', [z]), sum = e('broadcast', [e('reduce_sum', [ex], { axes: [axis], keepdims: true })], { shape: sh });
    return log ? e('sub', [z, e('log', [sum])]) : e('div', [ex, sum]);
  };
  /** (x - mean) * rsqrt(var + eps) over an axis, as LayerNormalization computes it. */
  const layerNorm = (x: Node, axis: number): Node => {
    const sh = x.type.shape, n = b.constant(sh[axis]!, 'float32', sh);
    const mean = (v: Node) => e('div', [e('broadcast', [e('reduce_sum', [v], { axes: [axis], keepdims: true })], { shape: sh }), n]);
    const d = e('sub', [x, mean(x)]);
    return e('mul', [d, e('rsqrt', [e('add', [mean(e('mul', [d, d])), b.constant(1e-3, 'float32', sh)])])]);
  };
  /** Sizes a GPU matmul pads and tiles unevenly: 1, 3 and primes, M * K * N at most 20,000. */
  const oddDims = (): number[] => {
    const dims = [1, 3, 7, 13, 31, 61, 127, 251, 787];
    for (;;) {
      const d = [pick(dims), pick(dims), pick(dims)];
      if (d[0]! * d[1]! * d[2]! <= 20_000) return d;
    }
  };
  const deepKinds = {
    oddMatmul: (): Node => {
      const [m, k, n] = oddDims() as [number, number, number];
      const bat = r() < 0.25 ? [int(1, 3)] : [];
      // the left operand computed from the pool now and then (a reduction broadcast up), so the matmul fuses
      const x = some(), lhs = r() < 0.3 && !bat.length
        ? e('add', [input([m, k]), e('broadcast', [e('reduce_sum', [x], { axes: [...x.type.shape.keys()], keepdims: false })], { shape: [m, k] })])
        : input([...bat, m, k]);
      const w = bat.length ? input([...bat, k, n]) : r() < 0.5 ? weight([k, n]) : e('transpose', [weight([n, k])], { perm: [1, 0] });
      const y = e('matmul', [lhs, w]);
      return r() < 0.4 ? e('max', [e('add', [y, bcast(weight([n]), y.type.shape)]), b.constant(0, 'float32', y.type.shape)]) : y;
    },
    reduceChain: (): Node => {
      // softmax of softmax, a layer norm of a reduction, a reduction of a layer norm: 2 to 4 links
      let x = some();
      if (!x.type.shape.length) x = e('reshape', [x], { shape: [1] });
      for (let i = int(2, 4); i > 0; i--) {
        const sh = x.type.shape, axis = int(0, sh.length - 1), k = int(0, 3);
        if (k === 0) x = softmaxOf(x, axis, r() < 0.3);
        else if (k === 1) x = layerNorm(x, axis);
        else if (sh.length > 1) x = e(pick(['reduce_sum', 'reduce_max', 'reduce_min'] as Op[]), [x], { axes: [axis], keepdims: r() < 0.5 });
        else x = e('broadcast', [e('reduce_sum', [x], { axes: [0], keepdims: true })], { shape: [...sh, int(1, 3)] });
      }
      return x;
    },
  };

  /** An update's reading of param p (or another value of its shape) through a transpose, gather or slice. */
  const readThrough = (p: Node, src: Node): Node => {
    const s = p.type.shape, rank = s.length;
    const x = r() < 0.5 ? e(pick(['exp', 'neg', 'tanh', 'abs'] as Op[]), [src]) : src;
    const axis = int(0, Math.max(0, rank - 1));
    const k = int(0, options.scatter ? 3 : 2);
    if (k === 3 && rank >= 1) {
      // an Embedding's gradient: the rows looked up (repeated ids, the last one sometimes out of range) added back
      const d = s[axis]!, ids = Array.from({ length: int(1, 6) }, (_, i) => (i === 5 ? d : int(0, d - 1)));
      const idx = b.constant(ids, 'int32', [ids.length]);
      const rows = e('gather', [x, idx], { axis });
      return e('scatter_add', [r() < 0.5 ? e('tanh', [rows]) : rows, idx], { axis, size: d });
    }
    if (k === 0 && rank >= 2) {
      // a permutation that keeps the shape (swap two equal dimensions), or a transpose back and forth
      const pairs = [...s.keys()].flatMap((i) => [...s.keys()].filter((j) => j > i && s[j] === s[i]).map((j) => [i, j] as const));
      if (pairs.length) {
        const [i, j] = pick(pairs);
        return e('transpose', [x], { perm: [...s.keys()].map((a) => (a === i ? j : a === j ? i : a)) });
      }
    }
    if (rank === 0) return x;
    if (k === 1 || rank < 2) {
      const d = s[axis]!;
      const idx = r() < 0.5 ? e('sub', [b.constant(d - 1, 'int32', [d]), b.iota([d], 0)])
        : b.constant(Array.from({ length: d }, () => int(0, d - 1)), 'int32', [d]);
      return e('gather', [x, idx], { axis });
    }
    // shifted by one along an axis: slice off the first row, pad a row at the end
    const start = s.map((_, i) => (i === axis && s[i]! > 1 ? 1 : 0));
    const sl = e('slice', [x], { start, end: [...s], step: s.map(() => 1) });
    return e('pad', [sl], { padding: s.map((_, i) => [0, start[i]!]), value: 0 });
  };
  const updateOf = (p: Node, last: Node): Node => {
    const same = pool.filter((x) => x !== p && x.op !== 'param' && x.type.shape.join() === p.type.shape.join());
    const other = params.find((q) => q !== p && q.type.shape.join() === p.type.shape.join());
    const k = int(0, 3);
    let g: Node;
    if (k === 0) g = readThrough(p, p);
    else if (k === 1 && other) g = readThrough(p, other);
    else if (same.length) g = pick(same);
    else g = bcast(e('reduce_sum', [last], { axes: [...last.type.shape.keys()], keepdims: false }), p.type.shape);
    // w - 0.1 g as a gradient step would; now and then the value read through the movement itself
    return r() < 0.2 ? g : e('sub', [p, e('mul', [b.constant(0.1, 'float32', p.type.shape), g])]);
  };

  const taken: string[] = [];
  const n = int(4, 12);
  for (let i = 0; i < n; i++) {
    const kind = extended ? pick([...STEP_KINDS, ...EXTRA_KINDS, ...(options.scatter ? ['scatter', 'scatter'] as const : []), ...(options.deep ? ['oddMatmul', 'reduceChain', 'reduceChain'] as const : [])]) : pick(STEP_KINDS);
    try {
      pool.push(kind === 'scatter' ? scatter() : kind in deepKinds ? deepKinds[kind as keyof typeof deepKinds]() : kind in extra ? extra[kind as ExtraKind]() : steps[kind as StepKind]());
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
  if (extended) {
    // no updates with rows: a graph that updates params runs one batch
    if (!batch) for (const p of params) if (r() < 0.85) updates.push({ param: p, value: updateOf(p, last) });
    if (stepParam && !batch) updates.push({ param: stepParam, value: e('add', [stepParam, b.constant(1, 'int32', [])]) });
    // the new value of a param as an output too (it and the update may share a buffer), and int32 / bool values
    if (updates.length && r() < 0.3) outputs.push({ name: `y${outputs.length}`, node: pick(updates).value });
    for (const x of sideValues) outputs.push({ name: `${x.type.dtype === 'bool' ? 'b' : 'i'}${outputs.length}`, node: x });
  } else if (param && !batch) {
    // w - 0.1 * g for some g of w's shape (a reduction of a pool value when none fits)
    const same = pool.filter((x) => x !== param && x.type.shape.join() === param.type.shape.join());
    const src = same.length ? pick(same) : e('reduce_sum', [last], { axes: [...last.type.shape.keys()], keepdims: false });
    const g = same.length ? src : bcast(src, param.type.shape);
    updates.push({ param, value: e('sub', [param, e('mul', [b.constant(0.1, 'float32', param.type.shape), g])]) });
  }
  return { seed, graph: b.finish(`random_${seed}`, outputs, updates), steps: taken };
}
