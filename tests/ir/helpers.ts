// Helpers shared by the graph-IR tests: one-op graphs, seeded data, index math and element-wise comparison.
import { expect } from 'vitest';
import { Builder, type Graph, type Node } from '../../ir/graph.js';
import { type Bindings, type Value, interpret } from '../../ir/interpreter.js';
import type { Attrs, Op } from '../../ir/ops.js';
import { buildScan } from '../../ir/scan.js';
import { type DType, type Shape, type TensorType, type TypedArray, sizeOf, toTyped } from '../../ir/types.js';

export const f32 = (...shape: number[]): TensorType => ({ dtype: 'float32', shape });
export const i32 = (...shape: number[]): TensorType => ({ dtype: 'int32', shape });
export const bool = (...shape: number[]): TensorType => ({ dtype: 'bool', shape });
export const i8 = (...shape: number[]): TensorType => ({ dtype: 'int8', shape });

export const INT_MIN = -2147483648, INT_MAX = 2147483647;

import { rng } from '../passes/random_graphs.js';

export { rng };

/** n float32-representable values uniform in [lo, hi). */
export function uniform(n: number, seed = 1, lo = -1, hi = 1): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.fround(lo + (hi - lo) * r()));
}

/** Random storage for a type: floats in [-2, 2), ints in [-5, 5], bools. */
export function randomData(t: TensorType, seed: number): TypedArray {
  const r = rng(seed), n = sizeOf(t.shape);
  if (t.dtype === 'int32') return toTyped('int32', Array.from({ length: n }, () => Math.floor(r() * 11) - 5));
  if (t.dtype === 'int8') return toTyped('int8', Array.from({ length: n }, () => Math.floor(r() * 256) - 128));
  if (t.dtype === 'bool') return toTyped('bool', Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0)));
  return toTyped(t.dtype, Array.from({ length: n }, () => 4 * r() - 2));
}

/** Random bindings for every input and param of a graph. */
export function randomBindings(g: Graph, seed = 7): [Map<string, TypedArray>, Map<string, TypedArray>] {
  const bind = (ns: readonly Node[]) => new Map(ns.map((n, i) => [String(n.attrs['name']), randomData(n.type, seed + i * 101)]));
  return [bind(g.inputs), bind(g.params)];
}

export interface Arg {
  readonly shape: Shape;
  readonly data: ArrayLike<number>;
  readonly dtype?: DType;
}

export const arg = (shape: Shape, data: ArrayLike<number>, dtype: DType = 'float32'): Arg => ({ shape, data, dtype });

/** Builds a graph applying `op` to inputs x0..xn-1 and runs it in the interpreter. */
export function run(op: Op, args: readonly Arg[], attrs: Attrs = {}): Value {
  const b = new Builder();
  const xs = args.map((a, i) => b.input(`x${i}`, { dtype: a.dtype ?? 'float32', shape: a.shape }));
  const g = b.finish('t', [{ name: 'y', node: b.emit(op, xs, attrs) }]);
  const binds: Bindings = new Map(args.map((a, i) => [`x${i}`, toTyped(a.dtype ?? 'float32', a.data)]));
  return interpret(g, binds).outputs.get('y')!;
}

/** Row-major multi-index of a flat position. */
export function unravel(flat: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = flat % shape[d]!;
    flat = Math.floor(flat / shape[d]!);
  }
  return idx;
}

/** Row-major flat position of a multi-index. */
export function ravel(idx: readonly number[], shape: Shape): number {
  let flat = 0;
  for (let d = 0; d < shape.length; d++) flat = flat * shape[d]! + idx[d]!;
  return flat;
}

/** Every multi-index of a shape, row-major. */
export function indices(shape: Shape): number[][] {
  return Array.from({ length: sizeOf(shape) }, (_, i) => unravel(i, shape));
}

/** Asserts same length and element-wise |got - want| <= atol + rtol*|want|; NaN matches NaN, infinities match exactly. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, atol = 0, rtol = 0): void {
  expect(got.length).toBe(want.length);
  const bad: string[] = [];
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    const ok = Number.isNaN(w) ? Number.isNaN(g) : g === w || Math.abs(g - w) <= atol + rtol * Math.abs(w);
    if (!ok) bad.push(`[${i}] got ${g}, want ${w}`);
  }
  expect(bad.slice(0, 8)).toEqual([]);
}

/** Asserts bit-identical values (NaN matches NaN, -0 differs from 0). */
export function expectSame(got: ArrayLike<number>, want: ArrayLike<number>): void {
  expect(got.length).toBe(want.length);
  const bad: string[] = [];
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) bad.push(`[${i}] got ${got[i]}, want ${want[i]}`);
  expect(bad.slice(0, 8)).toEqual([]);
}

const fin = (b: Builder, ...outs: Node[]): Graph => b.finish('op', outs.map((node, i) => ({ name: `y${i}`, node })));
const unary = (op: Op) => (b: Builder) => fin(b, b.emit(op, [b.input('x', f32(2, 3))]));
const binary = (op: Op, t = f32(2, 3)) => (b: Builder) => fin(b, b.emit(op, [b.input('a', t), b.input('b', t)]));
const reduce = (op: Op) => (b: Builder) => {
  const x = b.input('x', f32(2, 3, 4));
  return fin(b, b.emit(op, [x], { axes: [0, 2], keepdims: true }), b.emit(op, [x], { axes: [1] }), b.emit(op, [x], { axes: [] }));
};
const argOp = (op: Op) => (b: Builder) => {
  const x = b.input('x', f32(2, 3, 4));
  return fin(b, b.emit(op, [x], { axis: 1 }), b.emit(op, [x], { axis: 2, keepdims: true }));
};

/** One small graph per op of ALL_OPS, with awkward attributes (NaN/inf, negatives, quoted names). */
export const OP_GRAPHS: Record<Op, (b: Builder) => Graph> = {
  input: (b) => fin(b, b.input('x "quoted" \\ name', f32(2)), b.input('ß\n', i32()), b.input('empty', f32(0, 3))),
  param: (b) => {
    const w = b.param('w"0', f32(3)), x = b.input('x', f32(3));
    b.param('unused', bool(2));
    return b.finish('op.param/x-1', [{ name: 'y "out"', node: b.emit('mul', [w, x]) }], [{ param: w, value: b.emit('sub', [w, x]) }]);
  },
  const: (b) => fin(b,
    b.constant([NaN, Infinity, -Infinity, -0, -1.5, 1e-30, 3.4e38, 0.1], 'float32', [2, 4]),
    b.constant(-7, 'int32', [3]), b.constant([1, 0, 1], 'bool', [3]), b.constant(NaN, 'float32', [2]),
    b.constant(-Infinity), b.constant([], 'float32', [0, 3]), b.constant([2147483647, -2147483648], 'int32', [2])),
  iota: (b) => fin(b, b.iota([2, 3, 4], 1), b.iota([5], 0)),
  neg: unary('neg'), abs: unary('abs'), sign: unary('sign'), exp: unary('exp'), log: unary('log'), log1p: unary('log1p'),
  sqrt: unary('sqrt'), rsqrt: unary('rsqrt'), tanh: unary('tanh'), erf: unary('erf'), sin: unary('sin'),
  cos: unary('cos'), floor: unary('floor'), ceil: unary('ceil'), round: unary('round'), recip: unary('recip'),
  not: (b) => fin(b, b.emit('not', [b.input('p', bool(4))])),
  add: binary('add'), sub: binary('sub'), mul: binary('mul', i32(5)), div: binary('div'), pow: binary('pow'),
  max: binary('max'), min: binary('min', i32(2, 2)),
  eq: binary('eq', bool(3)), ne: binary('ne'), lt: binary('lt', i32(4)), le: binary('le'), gt: binary('gt'), ge: binary('ge'),
  and: binary('and', bool(2, 3)), or: binary('or', bool(2, 3)),
  reduce_sum: reduce('reduce_sum'), reduce_max: reduce('reduce_max'), reduce_min: reduce('reduce_min'), reduce_prod: reduce('reduce_prod'),
  argmax: argOp('argmax'), argmin: argOp('argmin'),
  reshape: (b) => fin(b, b.emit('reshape', [b.input('x', f32(2, 3))], { shape: [3, 1, 2] })),
  transpose: (b) => fin(b, b.emit('transpose', [b.input('x', f32(2, 3, 4))], { perm: [2, 0, 1] })),
  broadcast: (b) => fin(b, b.emit('broadcast', [b.input('x', f32(3, 1))], { shape: [2, 3, 4] })),
  slice: (b) => fin(b, b.emit('slice', [b.input('x', f32(4, 5))], { start: [0, 1], end: [4, 5], step: [3, 2] })),
  pad: (b) => {
    const x = b.input('x', f32(2, 3));
    return fin(b, b.emit('pad', [x], { padding: [[1, 0], [0, 2]], value: -Infinity }),
      b.emit('pad', [x], { padding: [[0, 0], [1, 1]], value: NaN }), b.emit('pad', [x], { padding: [[2, 1], [0, 0]], value: -2.5e-7 }));
  },
  concat: (b) => fin(b, b.emit('concat', [b.input('a', f32(2, 1)), b.input('b', f32(2, 0)), b.input('c', f32(2, 3))], { axis: 1 })),
  gather: (b) => fin(b, b.emit('gather', [b.input('x', f32(3, 4, 2)), b.input('i', i32(2, 2))], { axis: 1 })),
  scatter_add: (b) => fin(b, b.emit('scatter_add', [b.input('x', f32(3, 2, 2, 2)), b.input('i', i32(2, 2))], { axis: 1, size: 4 })),
  cast: (b) => {
    const x = b.input('x', f32(2, 3));
    return fin(b, b.emit('cast', [x], { dtype: 'int32' }), b.emit('cast', [x], { dtype: 'bool' }));
  },
  select: (b) => fin(b, b.emit('select', [b.input('c', bool(2, 3)), b.input('a', f32(2, 3)), b.input('b', f32(2, 3))])),
  matmul: (b) => fin(b, b.emit('matmul', [b.input('a', f32(2, 2, 3)), b.input('b', f32(2, 3, 4))])),
  conv: (b) => fin(b, b.emit('conv', [b.input('x', f32(1, 5, 5, 4)), b.input('k', f32(3, 3, 2, 4))], {
    strides: [2, 1], padding: [[1, -1], [2, 0]], dilation: [1, 2], lhsDilation: [2, 1], groups: 2,
  })),
  reduce_window: (b) => {
    const x = b.input('x', f32(2, 4, 5, 3));
    return fin(b, b.emit('reduce_window', [x], { kind: 'max', window: [2, 3], strides: [2, 1], padding: [[0, 1], [1, 1]] }),
      b.emit('reduce_window', [x], { kind: 'sum', window: [3, 3], strides: [1, 2], padding: [[1, 1], [1, 1]] }));
  },
  random_uniform: (b) => fin(b, b.emit('random_uniform', [b.input('step', i32())], { seed: -12345, shape: [2, 5] })),
  scan: (b) => {
    // a running sum over axis 0 in reverse, with a "quoted" body name and every kind of result
    const { carries, ys } = buildScan(b, (bb, [c], [x]) => {
      const s = bb.emit('add', [c!, x!]);
      return [[s], [bb.emit('mul', [s, bb.constant(-0, 'float32', [2])])]];
    }, [b.input('c', f32(2))], [b.input('x', f32(3, 2))], [], true);
    return fin(b, carries[0]!, ys[0]!, b.emit('scan', carries[0]!.src, { ...carries[0]!.attrs, output: 2 }));
  },
  allreduce: (b) => fin(b, b.emit('allreduce', [b.input('x', f32(2, 3))])),
  quantize: (b) => fin(b, b.emit('quantize', [b.input('x', f32(2, 3))], { scale: 0.015625, zeroPoint: -3 })),
  dequantize: (b) => fin(b, b.emit('dequantize', [b.input('q', i8(2, 3))], { scale: 0.1, zeroPoint: 127 })),
  qmatmul: (b) => fin(b, b.emit('qmatmul', [b.input('x', i8(2, 3)), b.input('w', i8(3, 2)), b.input('bias', i32(2)),
    b.constant([1073741824, 2147483647], 'int32', [2]), b.constant([-31, 3], 'int32', [2])], { xZero: -128, outZero: 5, lo: 5, hi: 127 })),
  qconv: (b) => fin(b, b.emit('qconv', [b.input('x', i8(1, 5, 5, 4)), b.input('k', i8(3, 3, 2, 4)), b.input('bias', i32(4)),
    b.constant([1073741824, 2147483647, 1, 0], 'int32', [4]), b.constant([-31, 3, 0, -1], 'int32', [4])], {
    strides: [2, 1], padding: [[1, 0], [2, 0]], dilation: [1, 2], lhsDilation: [2, 1], groups: 2, xZero: 3, outZero: -2, lo: -128, hi: 100,
  })),
};
