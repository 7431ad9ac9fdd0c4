// The closed set of graph-IR primitives, their groups, and per-op shape/dtype inference.
import {
  type DType, type ReduceKind, type Shape, type TensorType, formatShape, formatType, isDType, isFloat, shapesEqual, sizeOf,
} from './types.js';
import { inferScan } from './scan.js';

export const LEAF_OPS = ['input', 'param', 'const', 'iota'] as const;
/** Unary ops defined on floats only (an int operand is a type error; the frontend casts ints to float32 first). */
export const FLOAT_UNARY_OPS = ['exp', 'log', 'log1p', 'sqrt', 'rsqrt', 'tanh', 'erf', 'sin', 'cos', 'recip'] as const;
export const UNARY_OPS = ['neg', 'abs', 'sign', 'floor', 'ceil', 'round', 'not', ...FLOAT_UNARY_OPS] as const;
export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min'] as const;
export const COMPARE_OPS = ['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
export const LOGICAL_OPS = ['and', 'or'] as const;
export const REDUCE_OPS = ['reduce_sum', 'reduce_max', 'reduce_min', 'reduce_prod'] as const;
export const ARG_OPS = ['argmax', 'argmin'] as const;
export const MOVEMENT_OPS = ['reshape', 'transpose', 'broadcast', 'slice', 'pad', 'concat', 'gather'] as const;
/** `allreduce`: the sum of its operand over the processes of a data-parallel step (one process: the operand itself). */
export const OTHER_OPS = ['cast', 'select', 'matmul', 'conv', 'reduce_window', 'random_uniform', 'scan', 'allreduce', 'scatter_add'] as const;
/** int8 quantization (ir/quant.ts defines their integer semantics). */
export const QUANT_OPS = ['quantize', 'dequantize', 'qmatmul', 'qconv'] as const;

export type LeafOp = (typeof LEAF_OPS)[number];
export type UnaryOp = (typeof UNARY_OPS)[number];
export type FloatUnaryOp = (typeof FLOAT_UNARY_OPS)[number];

const UNARY_SET: ReadonlySet<string> = new Set(UNARY_OPS);
/** Whether op is one of the elementwise unary primitives (which loop IR keeps as they are). */
export const isUnaryOp = (op: string): op is UnaryOp => UNARY_SET.has(op);
export type BinaryOp = (typeof BINARY_OPS)[number];
export type CompareOp = (typeof COMPARE_OPS)[number];
export type LogicalOp = (typeof LOGICAL_OPS)[number];
export type ReduceOp = (typeof REDUCE_OPS)[number];
export type ArgOp = (typeof ARG_OPS)[number];
export type MovementOp = (typeof MOVEMENT_OPS)[number];
export type Op = LeafOp | UnaryOp | BinaryOp | CompareOp | LogicalOp | ReduceOp | ArgOp | MovementOp
  | (typeof OTHER_OPS)[number] | (typeof QUANT_OPS)[number];

export const ALL_OPS: readonly Op[] = [
  ...LEAF_OPS, ...UNARY_OPS, ...BINARY_OPS, ...COMPARE_OPS, ...LOGICAL_OPS, ...REDUCE_OPS, ...ARG_OPS,
  ...MOVEMENT_OPS, ...OTHER_OPS, ...QUANT_OPS,
];

/** The kind of each reduction: its identity is `identityOf(kind, dtype)` (ir/types.ts). */
export const REDUCE_KIND: Readonly<Record<ReduceOp, ReduceKind>> = {
  reduce_sum: 'sum', reduce_prod: 'prod', reduce_max: 'max', reduce_min: 'min',
};

/** The binary op a reduction of each kind folds its elements with. */
export const REDUCE_BINARY: Readonly<Record<ReduceKind, 'add' | 'mul' | 'max' | 'min'>> = {
  sum: 'add', prod: 'mul', max: 'max', min: 'min',
};

/** Named op groups: passes ask "is it elementwise?" instead of listing ops. */
export const GroupOp = {
  Leaf: new Set<Op>(LEAF_OPS),
  Unary: new Set<Op>([...UNARY_OPS, 'cast']),
  Binary: new Set<Op>([...BINARY_OPS, ...COMPARE_OPS, ...LOGICAL_OPS]),
  Elementwise: new Set<Op>([...UNARY_OPS, 'cast', ...BINARY_OPS, ...COMPARE_OPS, ...LOGICAL_OPS, 'select', 'quantize', 'dequantize']),
  Reduce: new Set<Op>([...REDUCE_OPS, ...ARG_OPS]),
  Movement: new Set<Op>(MOVEMENT_OPS),
};

export function isOp(s: string): s is Op {
  return (ALL_OPS as readonly string[]).includes(s);
}

/** Whether op is one of reduce_sum, reduce_max, reduce_min, reduce_prod (not reduce_window, not argmax/argmin). */
export function isReduceOp(op: Op): op is ReduceOp {
  return (REDUCE_OPS as readonly Op[]).includes(op);
}

export type AttrValue = number | boolean | string | readonly AttrValue[];
export type Attrs = Readonly<Record<string, AttrValue>>;

/**
 * The order of a reduction declared with `tree: W` (every evaluator follows it, so targets stay bit-exact): the
 * reduced elements, flattened row-major over the reduced axes in increasing order, go to W partials (element k
 * to partial k % W, in increasing k, each partial starting at the identity); then for s = W/2, W/4, ..., 1 each
 * partial i < s becomes `p[i] op p[i + s]`; the result is p[0]. W = 1 is the serial order.
 */
export function treeLevels(w: number): number[] {
  const out: number[] = [];
  for (let s = w >> 1; s >= 1; s >>= 1) out.push(s);
  return out;
}

/** Kinds of window for reduce_window. */
export type WindowKind = 'max' | 'sum';

/** Thrown when an op is given operands or attributes it does not accept. */
export class ShapeError extends Error {
  override name = 'ShapeError';
}

function fail(op: string, msg: string): never {
  throw new ShapeError(`${op}: ${msg}`);
}

/** The value an attribute of each kind holds. */
interface AttrKindType {
  int: number;
  ints: readonly number[];
  number: number;
  numbers: readonly number[];
  bool: boolean;
  string: string;
  dtype: DType;
  pairs: readonly (readonly [number, number])[];
  windowKind: WindowKind;
}
type AttrKind = keyof AttrKindType;
/** An attribute's kind; with a trailing '?' it may be absent. */
type AttrSpec = AttrKind | `${AttrKind}?`;

const isInt = (v: unknown): boolean => Number.isInteger(v);
const isIntPair = (p: unknown): boolean => Array.isArray(p) && p.length === 2 && p.every(isInt);
/** Per kind: the test a value must pass, and what the error says it must be. */
const KINDS: Record<AttrKind, readonly [(v: AttrValue) => boolean, string]> = {
  int: [isInt, 'an integer'],
  ints: [(v) => Array.isArray(v) && v.every(isInt), 'a list of integers'],
  number: [(v) => typeof v === 'number', 'a number'],
  numbers: [(v) => Array.isArray(v) && v.every((x) => typeof x === 'number'), 'a list of numbers'],
  bool: [(v) => typeof v === 'boolean', 'true or false'],
  string: [(v) => typeof v === 'string', 'a string'],
  dtype: [isDType, 'a dtype'],
  pairs: [(v) => Array.isArray(v) && v.every(isIntPair), 'a list of [low, high] integer pairs'],
  windowKind: [(v) => v === 'max' || v === 'sum', "'max' or 'sum'"],
};

// tree: W partials combined by a fixed tree (reductionTree below), the order a GPU block of W threads sums in
const REDUCE_ATTRS = { axes: 'ints', keepdims: 'bool?', tree: 'int?' } as const;
const ARG_ATTRS = { axis: 'int', keepdims: 'bool?' } as const;

/** A declared tree over a contraction's n reduced elements (treeLevels), or a ShapeError. */
function checkTree(op: string, tree: number | undefined, n: number): void {
  if (tree !== undefined && (tree < 1 || (tree & (tree - 1)) !== 0 || n % tree !== 0)) {
    fail(op, `tree ${tree} must be a power of two dividing the ${n} reduced elements`);
  }
}

/** The attributes of each op, by kind; an op not listed takes none. */
export const OP_ATTRS = {
  input: { name: 'string' }, param: { name: 'string' }, const: { value: 'numbers' }, iota: { axis: 'int' },
  cast: { dtype: 'dtype' },
  reduce_sum: REDUCE_ATTRS, reduce_max: REDUCE_ATTRS, reduce_min: REDUCE_ATTRS, reduce_prod: REDUCE_ATTRS,
  argmax: ARG_ATTRS, argmin: ARG_ATTRS,
  reshape: { shape: 'ints' }, transpose: { perm: 'ints' }, broadcast: { shape: 'ints' },
  slice: { start: 'ints', end: 'ints', step: 'ints' },
  pad: { padding: 'pairs', value: 'number' },
  concat: { axis: 'int' }, gather: { axis: 'int' },
  // gather's transpose: scatter_add(src, idx) adds src's slices at idx's positions into `size` slices along axis
  scatter_add: { axis: 'int', size: 'int' },
  // matmul and conv may declare a tree over their contraction (matmul: K; conv: window positions, then input
  // channels, row-major), as reductions do
  matmul: { tree: 'int?' },
  conv: { strides: 'ints', dilation: 'ints', lhsDilation: 'ints', padding: 'pairs', groups: 'int', tree: 'int?' },
  reduce_window: { kind: 'windowKind', window: 'ints', strides: 'ints', padding: 'pairs' },
  random_uniform: { seed: 'int', shape: 'ints' },
  // a loop over axis 0 with a body graph (ir/scan.ts): carries, sequences, consts; the node is result `output`
  scan: { body: 'string', length: 'int', carries: 'int', seqs: 'int', reverse: 'bool', output: 'int' },
  // float32 -> int8 and back with a per-tensor scale (a float32) and zero point
  quantize: { scale: 'number', zeroPoint: 'int' }, dequantize: { scale: 'number', zeroPoint: 'int' },
  // qmatmul(x, w, bias, multiplier, shift): int8 x [M, K] @ int8 w [K, N] + int32 bias [N], accumulated in int32
  // as (x - xZero)·w, then per output channel n MultiplyByQuantizedMultiplier(acc, multiplier[n], shift[n]) +
  // outZero clamped to [lo, hi] (a fused ReLU); multiplier and shift are int32 [N] (shift clamped to -31..31)
  qmatmul: { xZero: 'int', outZero: 'int', lo: 'int', hi: 'int' },
  // qconv(x, k, bias, multiplier, shift): conv's window over int8 x [N, ...spatial, C] and int8 k [...window, C/groups,
  // O] (padding taps add nothing: they are x's zero point), then qmatmul's int32 accumulation and requantization
  qconv: { strides: 'ints', dilation: 'ints', lhsDilation: 'ints', padding: 'pairs', groups: 'int', xZero: 'int', outZero: 'int', lo: 'int', hi: 'int' },
} as const satisfies { readonly [O in Op]?: Readonly<Record<string, AttrSpec>> };

/** Ops that take attributes. */
export type AttrOp = keyof typeof OP_ATTRS;
type SpecType<S> = S extends `${infer K extends AttrKind}?` ? AttrKindType[K] | undefined : S extends AttrKind ? AttrKindType[S] : never;
/** The typed attributes of op O (of every op in O when it is a union). */
export type OpAttrs<O extends AttrOp> = { readonly [K in keyof (typeof OP_ATTRS)[O]]: SpecType<(typeof OP_ATTRS)[O][K]> };

const show = (v: AttrValue): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : JSON.stringify(v));

/** Attribute objects already checked, with their op: nodes are immutable, so each is checked once. */
const checked = new WeakMap<Attrs, Op>();

/**
 * Checks every attribute of op against its kind, and that op takes no other, throwing a ShapeError that names
 * the op and the attribute.
 */
export function checkAttrs(op: Op, attrs: Attrs): void {
  if (checked.get(attrs) === op) return;
  const specs: Readonly<Record<string, AttrSpec>> = (OP_ATTRS as Partial<Record<Op, Readonly<Record<string, AttrSpec>>>>)[op] ?? {};
  for (const key of Object.keys(attrs)) {
    if (!Object.hasOwn(specs, key)) {
      const known = Object.keys(specs);
      fail(op, `unknown attribute '${key}' (${known.length ? `it takes ${known.join(', ')}` : 'it takes none'})`);
    }
  }
  for (const [key, spec] of Object.entries(specs)) {
    const optional = spec.endsWith('?'), [test, what] = KINDS[(optional ? spec.slice(0, -1) : spec) as AttrKind];
    const v = attrs[key];
    if (v === undefined ? !optional : !test(v)) fail(op, `attribute '${key}' must be ${what}, got ${v === undefined ? 'none' : show(v)}`);
  }
  checked.set(attrs, op);
}

/**
 * The attributes of node n, which must be an `op` node (or one of the ops of a group, e.g. REDUCE_OPS), typed and
 * checked: a missing or wrong-typed attribute is a ShapeError naming the op and the attribute (nodes built outside
 * the Builder are checked here, not at creation).
 */
export function attrsOf<O extends AttrOp>(n: { readonly op: Op; readonly attrs: Attrs }, op: O | readonly O[]): OpAttrs<O> {
  const ops: readonly Op[] = typeof op === 'string' ? [op] : op;
  if (!ops.includes(n.op)) throw new ShapeError(`${n.op}: read as a ${ops.join(' or ')} node`);
  checkAttrs(n.op, n.attrs);
  return n.attrs as OpAttrs<O>;
}

function atLeast(op: string, key: string, xs: readonly number[], min: number): void {
  if (xs.some((x) => x < min)) fail(op, `attribute '${key}' entries must be >= ${min}, got ${formatShape(xs)}`);
}

/** Checks that a 'pairs' attribute has one pair per spatial axis. */
function pairCount(op: string, key: string, v: readonly unknown[], n: number): void {
  if (v.length !== n) fail(op, `attribute '${key}' must be ${n} [low, high] pairs`);
}

function count(op: string, srcs: readonly TensorType[], n: number): void {
  if (srcs.length !== n) fail(op, `expects ${n} operand(s), got ${srcs.length}`);
}

function checkAxes(op: string, axes: readonly number[], rank: number): void {
  const seen = new Set<number>();
  for (const a of axes) {
    if (a < 0 || a >= rank) fail(op, `axis ${a} is out of range for rank ${rank}`);
    if (seen.has(a)) fail(op, `axis ${a} is repeated`);
    seen.add(a);
  }
}

/** Output spatial size of a window of size k (dilated by d) sliding with stride s over n (dilated by ld) padded by lo/hi. */
export function windowOut(n: number, k: number, s: number, lo: number, hi: number, d = 1, ld = 1): number {
  const nIn = (n === 0 ? 0 : (n - 1) * ld + 1) + lo + hi;
  const kEff = (k - 1) * d + 1;
  return nIn < kEff ? 0 : Math.floor((nIn - kEff) / s) + 1;
}

/**
 * Infers the result type of a non-leaf op from its operand types and attributes,
 * throwing a ShapeError that names the op and the problem when they are not accepted.
 */
export function inferType(op: Op, srcs: readonly TensorType[], attrs: Attrs): TensorType {
  const s0 = srcs[0]!;
  if (GroupOp.Leaf.has(op)) fail(op, 'is a leaf; its type is given, not inferred');
  checkAttrs(op, attrs);
  const node = { op, attrs };
  switch (op) {
    case 'input': case 'param': case 'const': case 'iota':
      return fail(op, 'is a leaf; its type is given, not inferred');
    case 'neg': case 'abs': case 'sign': case 'floor': case 'ceil': case 'round':
      count(op, srcs, 1);
      if (s0.dtype === 'bool') fail(op, 'does not accept bool');
      return s0;
    case 'exp': case 'log': case 'log1p': case 'sqrt': case 'rsqrt': case 'tanh': case 'erf': case 'sin': case 'cos': case 'recip':
      count(op, srcs, 1);
      if (!isFloat(s0.dtype)) fail(op, `expects a float operand, got ${formatType(s0)}`);
      return s0;
    case 'not':
      count(op, srcs, 1);
      if (s0.dtype !== 'bool') fail(op, `expects bool, got ${formatType(s0)}`);
      return s0;
    case 'cast':
      count(op, srcs, 1);
      return { dtype: attrsOf(node, op).dtype, shape: s0.shape };
    case 'add': case 'sub': case 'mul': case 'div': case 'pow': case 'max': case 'min':
    case 'eq': case 'ne': case 'lt': case 'le': case 'gt': case 'ge': case 'and': case 'or': {
      count(op, srcs, 2);
      const s1 = srcs[1]!;
      if (!shapesEqual(s0.shape, s1.shape) || s0.dtype !== s1.dtype) {
        fail(op, `operands must have the same type (broadcast explicitly), got ${formatType(s0)} and ${formatType(s1)}`);
      }
      if ((op === 'and' || op === 'or') && s0.dtype !== 'bool') fail(op, `does not accept ${s0.dtype}`);
      if (s0.dtype === 'bool' && !['and', 'or', 'eq', 'ne'].includes(op)) fail(op, 'does not accept bool');
      const cmp = op === 'eq' || op === 'ne' || op === 'lt' || op === 'le' || op === 'gt' || op === 'ge';
      return cmp ? { dtype: 'bool', shape: s0.shape } : s0;
    }
    case 'select': {
      count(op, srcs, 3);
      const [c, a, b] = srcs as [TensorType, TensorType, TensorType];
      if (c.dtype !== 'bool') fail(op, `condition must be bool, got ${formatType(c)}`);
      if (!shapesEqual(c.shape, a.shape) || !shapesEqual(a.shape, b.shape) || a.dtype !== b.dtype) {
        fail(op, `operands must have one shape and the branches one dtype, got ${srcs.map(formatType).join(', ')}`);
      }
      return a;
    }
    case 'reduce_sum': case 'reduce_max': case 'reduce_min': case 'reduce_prod': {
      count(op, srcs, 1);
      if (s0.dtype === 'bool') fail(op, 'does not accept bool');
      const { axes, keepdims: keep } = attrsOf(node, op);
      checkAxes(op, axes, s0.shape.length);
      const shape = keep ? s0.shape.map((d, i) => (axes.includes(i) ? 1 : d))
        : s0.shape.filter((_, i) => !axes.includes(i));
      if ((op === 'reduce_max' || op === 'reduce_min') && axes.some((a) => s0.shape[a] === 0)) {
        fail(op, 'cannot reduce an empty axis (no identity)');
      }
      checkTree(op, attrsOf(node, op).tree, axes.reduce((a, d) => a * s0.shape[d]!, 1));
      return { dtype: s0.dtype, shape };
    }
    case 'argmax': case 'argmin': {
      count(op, srcs, 1);
      const { axis, keepdims: keep } = attrsOf(node, op);
      checkAxes(op, [axis], s0.shape.length);
      if (s0.shape[axis] === 0) fail(op, 'cannot take the arg of an empty axis');
      return { dtype: 'int32', shape: keep ? s0.shape.map((d, i) => (i === axis ? 1 : d)) : s0.shape.filter((_, i) => i !== axis) };
    }
    case 'reshape': {
      count(op, srcs, 1);
      const { shape } = attrsOf(node, op);
      if (shape.some((d) => d < 0)) fail(op, `target shape ${formatShape(shape)} has a negative dimension`);
      if (sizeOf(shape) !== sizeOf(s0.shape)) fail(op, `cannot reshape ${formatType(s0)} (${sizeOf(s0.shape)} elements) to ${formatShape(shape)}`);
      return { dtype: s0.dtype, shape };
    }
    case 'transpose': {
      count(op, srcs, 1);
      const { perm } = attrsOf(node, op);
      if (perm.length !== s0.shape.length) fail(op, `perm ${formatShape(perm)} does not match rank ${s0.shape.length}`);
      checkAxes(op, perm, perm.length);
      return { dtype: s0.dtype, shape: perm.map((p) => s0.shape[p]!) };
    }
    case 'broadcast': {
      count(op, srcs, 1);
      const { shape } = attrsOf(node, op);
      atLeast(op, 'shape', shape, 0);
      const off = shape.length - s0.shape.length;
      if (off < 0) fail(op, `cannot broadcast ${formatType(s0)} to the lower rank ${formatShape(shape)}`);
      s0.shape.forEach((d, i) => {
        if (d !== 1 && d !== shape[i + off]) fail(op, `cannot broadcast ${formatType(s0)} to ${formatShape(shape)}`);
      });
      return { dtype: s0.dtype, shape };
    }
    case 'slice': {
      count(op, srcs, 1);
      const r = s0.shape.length;
      const { start, end, step } = attrsOf(node, op);
      if (start.length !== r || end.length !== r || step.length !== r) fail(op, `start/end/step must each have ${r} entries`);
      const shape = s0.shape.map((d, i) => {
        const [a, b, st] = [start[i]!, end[i]!, step[i]!];
        if (st <= 0 || a < 0 || b > d || a > b) fail(op, `slice ${a}:${b}:${st} is out of range for dimension ${i} of size ${d}`);
        return Math.ceil((b - a) / st);
      });
      return { dtype: s0.dtype, shape };
    }
    case 'pad': {
      count(op, srcs, 1);
      const p = attrsOf(node, op).padding;
      pairCount(op, 'padding', p, s0.shape.length);
      const shape = s0.shape.map((d, i) => {
        const n = d + p[i]![0] + p[i]![1];
        if (p[i]![0] < 0 || p[i]![1] < 0) fail(op, 'padding must be non-negative (use slice to crop)');
        return n;
      });
      return { dtype: s0.dtype, shape };
    }
    case 'concat': {
      if (srcs.length < 1) fail(op, 'expects at least one operand');
      const { axis } = attrsOf(node, op);
      checkAxes(op, [axis], s0.shape.length);
      let n = 0;
      for (const s of srcs) {
        const same = s.dtype === s0.dtype && s.shape.length === s0.shape.length && s.shape.every((d, i) => i === axis || d === s0.shape[i]);
        if (!same) fail(op, `operands must agree except on axis ${axis}, got ${srcs.map(formatType).join(', ')}`);
        n += s.shape[axis]!;
      }
      return { dtype: s0.dtype, shape: s0.shape.map((d, i) => (i === axis ? n : d)) };
    }
    case 'gather': {
      count(op, srcs, 2);
      const idx = srcs[1]!;
      const { axis } = attrsOf(node, op);
      checkAxes(op, [axis], s0.shape.length);
      if (idx.dtype !== 'int32') fail(op, `indices must be int32, got ${formatType(idx)}`);
      if (s0.shape[axis] === 0 && sizeOf(idx.shape) > 0) fail(op, `cannot gather from the empty axis ${axis} of ${formatType(s0)}`);
      return { dtype: s0.dtype, shape: [...s0.shape.slice(0, axis), ...idx.shape, ...s0.shape.slice(axis + 1)] };
    }
    case 'scatter_add': {
      // src [...pre, ...idx.shape, ...post] -> [...pre, size, ...post]: out[p, clamp(idx[j]), q] += src[p, j, q], j in
      // increasing row-major order (indices clamped into range as gather's are, so it is gather's exact transpose)
      count(op, srcs, 2);
      const idx = srcs[1]!, ir = idx.shape.length;
      const { axis, size } = attrsOf(node, op);
      if (idx.dtype !== 'int32') fail(op, `indices must be int32, got ${formatType(idx)}`);
      if (s0.dtype !== 'float32' && s0.dtype !== 'int32') fail(op, `adds float32 or int32 values, got ${formatType(s0)}`);
      if (axis < 0 || axis + ir > s0.shape.length || !shapesEqual(s0.shape.slice(axis, axis + ir), idx.shape)) {
        fail(op, `source ${formatType(s0)} does not hold indices ${formatType(idx)} at axis ${axis}`);
      }
      if (size < 0 || (size === 0 && sizeOf(idx.shape) > 0)) fail(op, `size ${size} must be >= 1 (>= 0 without indices)`);
      return { dtype: s0.dtype, shape: [...s0.shape.slice(0, axis), size, ...s0.shape.slice(axis + ir)] };
    }
    case 'matmul': {
      count(op, srcs, 2);
      const [a, b] = [s0.shape, srcs[1]!.shape];
      if (s0.dtype !== srcs[1]!.dtype || s0.dtype === 'bool') fail(op, `operands must share a numeric dtype, got ${formatType(s0)} and ${formatType(srcs[1]!)}`);
      if (a.length < 2 || a.length !== b.length) fail(op, `operands must have the same rank >= 2, got ${formatType(s0)} and ${formatType(srcs[1]!)}`);
      const r = a.length;
      if (!shapesEqual(a.slice(0, r - 2), b.slice(0, r - 2))) fail(op, `batch dimensions differ: ${formatType(s0)} and ${formatType(srcs[1]!)}`);
      if (a[r - 1] !== b[r - 2]) fail(op, `contraction dimensions differ: ${formatType(s0)} @ ${formatType(srcs[1]!)} (${a[r - 1]} vs ${b[r - 2]})`);
      checkTree(op, attrsOf(node, op).tree, a[r - 1]!);
      return { dtype: s0.dtype, shape: [...a.slice(0, r - 1), b[r - 1]!] };
    }
    case 'conv': case 'qconv': {
      // input [N, ...spatial, C], kernel [...window, C/groups, O] -> [N, ...out, O]
      const quant = op === 'qconv', dt = quant ? 'int8' : 'float32';
      count(op, srcs, quant ? 5 : 2);
      const k = srcs[1]!;
      const nsp = s0.shape.length - 2;
      if (nsp < 1 || k.shape.length !== nsp + 2) fail(op, `expects input [N, ...spatial, C] and kernel [...window, Cin, Cout], got ${formatType(s0)} and ${formatType(k)}`);
      if (s0.dtype !== dt || k.dtype !== dt) fail(op, `expects ${dt} operands`);
      if (quant) {
        const cout = k.shape[nsp + 1]!;
        if (srcs.slice(2).some((t) => t.dtype !== 'int32' || t.shape.length !== 1 || t.shape[0] !== cout)) fail(op, `bias, multiplier and shift must be int32 [${cout}], got ${srcs.slice(2).map(formatType).join(', ')}`);
        const { xZero, outZero, lo, hi } = attrsOf(node, 'qconv');
        if ([xZero, outZero, lo, hi].some((z) => z < -128 || z > 127) || lo > hi) fail(op, 'zero points and lo <= hi must be int8 values');
      }
      const { strides, dilation: dil, lhsDilation: ldil, padding: pad, groups } = attrsOf(node, ['conv', 'qconv']);
      pairCount(op, 'padding', pad, nsp);
      if (strides.length !== nsp || dil.length !== nsp || ldil.length !== nsp) fail(op, `strides/dilation/lhsDilation need ${nsp} entries`);
      atLeast(op, 'strides', strides, 1); atLeast(op, 'dilation', dil, 1); atLeast(op, 'lhsDilation', ldil, 1);
      const c = s0.shape[nsp + 1]!, cin = k.shape[nsp]!, cout = k.shape[nsp + 1]!;
      if (groups < 1 || c !== cin * groups || cout % groups !== 0) fail(op, `input channels ${c} do not match kernel ${formatType(k)} with ${groups} group(s)`);
      if (op === 'conv') checkTree(op, attrsOf(node, 'conv').tree, sizeOf(k.shape.slice(0, nsp + 1)));
      const out = s0.shape.slice(1, nsp + 1).map((n, i) => windowOut(n, k.shape[i]!, strides[i]!, pad[i]![0], pad[i]![1], dil[i], ldil[i]));
      return { dtype: dt, shape: [s0.shape[0]!, ...out, cout] };
    }
    case 'reduce_window': {
      // input [N, ...spatial, C]; window over the spatial axes only
      count(op, srcs, 1);
      const nsp = s0.shape.length - 2;
      if (nsp < 1) fail(op, `expects input [N, ...spatial, C], got ${formatType(s0)}`);
      if (s0.dtype === 'bool') fail(op, 'does not accept bool');
      const { window: win, strides, padding: pad } = attrsOf(node, op);
      pairCount(op, 'padding', pad, nsp);
      if (win.length !== nsp || strides.length !== nsp) fail(op, `window/strides need ${nsp} entries`);
      atLeast(op, 'window', win, 1); atLeast(op, 'strides', strides, 1);
      const out = s0.shape.slice(1, nsp + 1).map((n, i) => windowOut(n, win[i]!, strides[i]!, pad[i]![0], pad[i]![1]));
      return { dtype: s0.dtype, shape: [s0.shape[0]!, ...out, s0.shape[nsp + 1]!] };
    }
    case 'random_uniform': {
      // counter-based: operand is the int32 scalar counter (e.g. the training step); the seed is an attribute. An
      // optional second int32 scalar, the first row: the values are rows [first, first + shape[0]) of a larger draw
      // (a rank's share of a data-parallel batch draws the mask one process would draw for those rows)
      if (srcs.length !== 1 && srcs.length !== 2) fail(op, `expects 1 or 2 operands (counter, first row), got ${srcs.length}`);
      if (s0.dtype !== 'int32' || s0.shape.length !== 0) fail(op, `counter must be an int32 scalar, got ${formatType(s0)}`);
      const { shape } = attrsOf(node, op);
      atLeast(op, 'shape', shape, 0);
      const s1 = srcs[1];
      if (s1 && (s1.dtype !== 'int32' || s1.shape.length !== 0)) fail(op, `first row must be an int32 scalar, got ${formatType(s1)}`);
      if (s1 && shape.length === 0) fail(op, 'a first row needs a shape with rows (rank >= 1)');
      return { dtype: 'float32', shape };
    }
    case 'scan':
      return inferScan(srcs, attrs);
    case 'allreduce':
      // runtimes sum float32 buffers (kiln_allreduce(buf, n)); the result is the operand's type on every process
      count(op, srcs, 1);
      if (s0.dtype !== 'float32') fail(op, `expects float32, got ${formatType(s0)}`);
      return s0;
    case 'quantize': case 'dequantize': {
      count(op, srcs, 1);
      const [from, to] = op === 'quantize' ? ['float32', 'int8'] as const : ['int8', 'float32'] as const;
      if (s0.dtype !== from) fail(op, `expects ${from}, got ${formatType(s0)}`);
      const { scale, zeroPoint } = attrsOf(node, op);
      if (!(scale > 0) || !Number.isFinite(scale)) fail(op, `scale must be finite and > 0, got ${scale}`);
      if (zeroPoint < -128 || zeroPoint > 127) fail(op, `zero point ${zeroPoint} is not an int8`);
      return { dtype: to, shape: s0.shape };
    }
    case 'qmatmul': {
      count(op, srcs, 5);
      const [w, bias, mult, shift] = srcs.slice(1) as [TensorType, TensorType, TensorType, TensorType];
      const vec = (t: TensorType) => t.dtype === 'int32' && t.shape.length === 1 && t.shape[0] === w.shape[1];
      if (s0.dtype !== 'int8' || w.dtype !== 'int8' || s0.shape.length !== 2 || w.shape.length !== 2 || s0.shape[1] !== w.shape[0]
        || !vec(bias) || !vec(mult) || !vec(shift)) {
        fail(op, `expects int8 [M, K], int8 [K, N] and int32 [N] bias, multiplier and shift, got ${srcs.map(formatType).join(', ')}`);
      }
      const { xZero, outZero, lo, hi } = attrsOf(node, op);
      if ([xZero, outZero, lo, hi].some((z) => z < -128 || z > 127) || lo > hi) fail(op, 'zero points and lo <= hi must be int8 values');
      return { dtype: 'int8', shape: [s0.shape[0]!, w.shape[1]!] };
    }
    default: {
      const never: never = op;
      return fail(String(never), 'unknown op');
    }
  }
}

/** Broadcast result shape of two shapes by NumPy rules, or undefined when they do not broadcast. */
export function broadcastShapes(a: Shape, b: Shape): number[] | undefined {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1, y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return undefined;
    out.push(x === 1 ? y : x);
  }
  return out;
}
