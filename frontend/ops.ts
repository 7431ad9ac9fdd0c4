// keras.ops: NumPy-style tensor functions composed from graph-IR primitives (broadcasting, dtype promotion).
import { type FloatUnaryOp, broadcastShapes } from '../ir/ops.js';
import { type DType, INT32_MAX, INT32_MIN, type Shape, type TypedArray, allocate, dtypeOfTyped, isDType, formatShape, isFloat, normAxis, sizeOf, toTyped } from '../ir/types.js';
import { apply, currentTrace } from './engine.js';
import { type NestedArray, Tensor } from './tensor.js';
import { describe, show } from './errors.js';
import { type OptionNames, checkOptions } from './options.js';

export type TensorLike = Tensor | NestedArray | TypedArray;
export type Axis = number | readonly number[] | null | undefined;

function flatten(v: NestedArray, shape: number[], out: number[], depth: number): void {
  if (Array.isArray(v)) {
    if (shape.length === depth) shape.push(v.length);
    else if (shape[depth] !== v.length) throw new Error(`array is ragged: expected ${shape[depth]} elements at depth ${depth}, got ${v.length}`);
    for (const x of v) flatten(x, shape, out, depth + 1);
  } else {
    if (depth !== shape.length) throw new Error('array is ragged: mixes scalars and lists at one depth');
    if (typeof v !== 'number' && typeof v !== 'boolean') throw new TypeError(`ops.array: elements must be numbers or booleans, got ${describe(v)}`);
    out.push(Number(v));
  }
}

/**
 * Creates a tensor. The dtype is inferred like Keras (all int32-range integers -> int32, booleans -> bool, else float32;
 * typed arrays keep theirs) unless given.
 * @example keras.ops.array([[1, 2, 3], [4, 5, 6]]) // int32, shape [2, 3]
 */
export function array(values: TensorLike, dtype?: DType): Tensor {
  if (dtype !== undefined && !isDType(dtype)) throw new TypeError(`ops.array: dtype must be a dtype name such as 'float32', got ${JSON.stringify(dtype)} (the dtype is the second argument, as in keras.ops.array(x, 'float32'))`);
  if (typeof values !== 'number' && typeof values !== 'boolean' && !Array.isArray(values) && !ArrayBuffer.isView(values) && !(values instanceof Tensor)) {
    throw new TypeError(`ops.array: expected a tensor, a typed array, a number or nested arrays of numbers, got ${describe(values)}`);
  }
  if (values instanceof Tensor) return dtype && dtype !== values.dtype ? cast(values, dtype) : values;
  if (ArrayBuffer.isView(values)) {
    const d = dtypeOfTyped(values);
    const t = new Tensor(d, [values.length], values.slice());
    return dtype && dtype !== d ? cast(t, dtype) : t;
  }
  const shape: number[] = [], flat: number[] = [];
  flatten(values, shape, flat, 0);
  const allBool = flat.length > 0 && isAllBool(values);
  // integers outside int32 (1e30) and empty lists are float32, as in Keras
  const isInt32 = (v: number): boolean => Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX;
  const inferred: DType = allBool ? 'bool' : flat.length > 0 && flat.every(isInt32) ? 'int32' : 'float32';
  const d = dtype ?? inferred;
  return new Tensor(d, shape, toTyped(d, flat));
}

function isAllBool(v: NestedArray): boolean {
  return Array.isArray(v) ? v.every(isAllBool) : typeof v === 'boolean';
}

/** Converts numbers and arrays to tensors; a JS number next to a tensor takes that tensor's dtype (weak typing). */
export function convertToTensor(x: TensorLike, like?: DType): Tensor {
  if (x instanceof Tensor) return x;
  if (typeof x === 'number' && like) return full([], x, like);
  return array(x);
}

const RANK: Record<DType, number> = { bool: 0, int8: 0.5, int32: 1, float16: 2, bfloat16: 2, float32: 3 };

/** Keras result_type for two dtypes: bool < int32 < float32. */
export function resultType(a: DType, b: DType): DType {
  return RANK[a] >= RANK[b] ? a : b;
}

export function cast(x: TensorLike, dtype: DType): Tensor {
  const t = convertToTensor(x);
  return t.dtype === dtype ? t : apply('cast', [t], { dtype });
}

export function shape(x: TensorLike): number[] {
  return [...convertToTensor(x).shape];
}

export function ndim(x: TensorLike): number {
  return convertToTensor(x).shape.length;
}

export function size(x: TensorLike): number {
  return sizeOf(convertToTensor(x).shape);
}

/** Checks a shape argument: a list of non-negative integers (`what` names the function in the error). */
export function checkShape(shape: unknown, what: string): asserts shape is Shape {
  if (!Array.isArray(shape)) throw new TypeError(`${what}: shape must be a list of dimensions, got ${show(shape)}`);
  const bad = shape.find((d) => !Number.isSafeInteger(d) || d < 0);
  if (bad !== undefined) throw new RangeError(`${what}: shape ${formatShape(shape)} has an invalid dimension ${show(bad)} (dimensions are non-negative integers)`);
}

function checkDType(dtype: unknown, what: string): asserts dtype is DType {
  if (!isDType(dtype)) throw new TypeError(`${what}: dtype must be a dtype name such as 'float32', got ${show(dtype)}`);
}

export function full(shape: Shape, value: number, dtype: DType = 'float32', what = 'ops.full'): Tensor {
  checkShape(shape, what);
  checkDType(dtype, what);
  if (typeof value !== 'number' && typeof value !== 'boolean') throw new TypeError(`${what}: the fill value must be a number, got ${show(value)}`);
  const n = sizeOf(shape);
  return new Tensor(dtype, shape, allocate(dtype, n).fill(dtype === 'bool' ? (value ? 1 : 0) : value));
}

export function zeros(shape: Shape, dtype: DType = 'float32'): Tensor {
  return full(shape, 0, dtype, 'ops.zeros');
}

export function ones(shape: Shape, dtype: DType = 'float32'): Tensor {
  return full(shape, 1, dtype, 'ops.ones');
}

export function zerosLike(x: TensorLike, dtype?: DType): Tensor {
  const t = convertToTensor(x);
  return zeros(t.shape, dtype ?? t.dtype);
}

export function onesLike(x: TensorLike, dtype?: DType): Tensor {
  const t = convertToTensor(x);
  return ones(t.shape, dtype ?? t.dtype);
}

/** int32 (or given dtype) values start, start+step, ... below stop. */
export function arange(start: number, stop?: number, step = 1, dtype?: DType): Tensor {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0 || !Number.isFinite(step)) throw new Error(`arange: step must be a non-zero number, got ${step}`);
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const vals = Array.from({ length: n }, (_, i) => start + i * step);
  return array(vals, dtype ?? (vals.every(Number.isInteger) && Number.isInteger(step) ? 'int32' : 'float32'));
}

/** Broadcasts x to shape by NumPy rules. */
export function broadcastTo(x: TensorLike, shape: Shape): Tensor {
  checkShape(shape, 'broadcastTo');
  const t = convertToTensor(x);
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  return apply('broadcast', [t], { shape: [...shape] });
}

/** Brings operands to a common dtype (weak JS numbers) and a common broadcast shape. */
function binaryOperands(a: TensorLike, b: TensorLike, name: string): [Tensor, Tensor] {
  let x = a instanceof Tensor ? a : undefined, y = b instanceof Tensor ? b : undefined;
  if (!x && !y) { x = convertToTensor(a); y = convertToTensor(b); }
  x ??= convertToTensor(a, typeof a === 'number' && !Number.isInteger(a) && !isFloat(y!.dtype) ? 'float32' : y!.dtype);
  y ??= convertToTensor(b, typeof b === 'number' && !Number.isInteger(b) && !isFloat(x.dtype) ? 'float32' : x.dtype);
  const dt = resultType(x.dtype, y.dtype);
  x = cast(x, dt);
  y = cast(y, dt);
  const s = broadcastShapes(x.shape, y.shape);
  if (!s) throw new Error(`${name}: shapes ${formatShape(x.shape)} and ${formatShape(y.shape)} do not broadcast`);
  return [broadcastTo(x, s), broadcastTo(y, s)];
}

function binary(op: 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'max' | 'min', name: string) {
  return (a: TensorLike, b: TensorLike): Tensor => {
    const [x, y] = binaryOperands(a, b, name);
    return apply(op, [x, y]);
  };
}

function compare(op: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge', name: string) {
  return (a: TensorLike, b: TensorLike): Tensor => {
    const [x, y] = binaryOperands(a, b, name);
    return apply(op, [x, y]);
  };
}

export const add = binary('add', 'add');
export const subtract = binary('sub', 'subtract');
export const multiply = binary('mul', 'multiply');
export const maximum = binary('max', 'maximum');
export const minimum = binary('min', 'minimum');
export const equal = compare('eq', 'equal');
export const notEqual = compare('ne', 'notEqual');
export const less = compare('lt', 'less');
export const lessEqual = compare('le', 'lessEqual');
export const greater = compare('gt', 'greater');
export const greaterEqual = compare('ge', 'greaterEqual');

/** True division: integer operands give float32, as in Keras. */
export function divide(a: TensorLike, b: TensorLike): Tensor {
  let [x, y] = binaryOperands(a, b, 'divide');
  if (!isFloat(x.dtype)) [x, y] = [cast(x, 'float32'), cast(y, 'float32')];
  return apply('div', [x, y]);
}

export const trueDivide = divide;

export function power(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = binaryOperands(a, b, 'power');
  return apply('pow', [x, y]);
}

export function logicalAnd(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = binaryOperands(cast(a, 'bool'), cast(b, 'bool'), 'logicalAnd');
  return apply('and', [x, y]);
}

export function logicalOr(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = binaryOperands(cast(a, 'bool'), cast(b, 'bool'), 'logicalOr');
  return apply('or', [x, y]);
}

export function logicalNot(x: TensorLike): Tensor {
  return apply('not', [cast(x, 'bool')]);
}

function floatUnary(op: FloatUnaryOp) {
  return (x: TensorLike): Tensor => {
    const t = convertToTensor(x);
    return apply(op, [isFloat(t.dtype) ? t : cast(t, 'float32')]);
  };
}

export const exp = floatUnary('exp');
export const log = floatUnary('log');
export const sqrt = floatUnary('sqrt');
export const rsqrt = floatUnary('rsqrt');
export const tanh = floatUnary('tanh');
export const erf = floatUnary('erf');
export const sin = floatUnary('sin');
export const cos = floatUnary('cos');
export const reciprocal = floatUnary('recip');

export function negative(x: TensorLike): Tensor {
  return apply('neg', [convertToTensor(x)]);
}

export function abs(x: TensorLike): Tensor {
  return apply('abs', [convertToTensor(x)]);
}

export function sign(x: TensorLike): Tensor {
  return apply('sign', [convertToTensor(x)]);
}

export function floor(x: TensorLike): Tensor {
  return apply('floor', [convertToTensor(x)]);
}

export function ceil(x: TensorLike): Tensor {
  return apply('ceil', [convertToTensor(x)]);
}

export function round(x: TensorLike): Tensor {
  return apply('round', [convertToTensor(x)]);
}

export function square(x: TensorLike): Tensor {
  const t = convertToTensor(x);
  return multiply(t, t);
}

/** log(1 + x), accurate for x near 0 (where 1 + x rounds away x's low bits). */
export const log1p = floatUnary('log1p');

export function expm1(x: TensorLike): Tensor {
  return subtract(exp(x), 1);
}

/** Chooses x where condition holds, else y (broadcasting all three). */
export function where(condition: TensorLike, x: TensorLike, y: TensorLike): Tensor {
  const c = cast(condition, 'bool');
  const [a, b] = binaryOperands(x, y, 'where');
  const s = broadcastShapes(c.shape, a.shape);
  if (!s) throw new Error(`where: condition ${formatShape(c.shape)} does not broadcast with ${formatShape(a.shape)}`);
  return apply('select', [broadcastTo(c, s), broadcastTo(a, s), broadcastTo(b, s)]);
}

export function clip(x: TensorLike, min: number, max: number): Tensor {
  return minimum(maximum(x, min), max);
}

function axesOf(axis: Axis, rank: number): number[] {
  if (axis === null || axis === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axis === 'number' ? [axis] : [...axis];
  return [...new Set(list.map((a) => normAxis(a, rank)))].sort((a, b) => a - b);
}

export interface ReduceOptions {
  /** Axis or axes to reduce; all when omitted. */
  axis?: Axis;
  keepdims?: boolean;
}

const REDUCE_OPTIONS = { axis: true, keepdims: true } satisfies OptionNames<ReduceOptions>;

/** A reduction's options (an axis alone, or { axis, keepdims }); any other key is an error, not a sum over all axes. */
function reduceOptions(opts: ReduceOptions | number, what: string): ReduceOptions {
  if (typeof opts === 'number') return { axis: opts };
  checkOptions(opts, REDUCE_OPTIONS, what);
  return opts;
}

function reducer(op: 'reduce_sum' | 'reduce_max' | 'reduce_min' | 'reduce_prod', what: string) {
  return (x: TensorLike, opts: ReduceOptions | number = {}): Tensor => {
    const o = reduceOptions(opts, what);
    let t = convertToTensor(x);
    if (t.dtype === 'bool') t = cast(t, 'int32');
    return apply(op, [t], { axes: axesOf(o.axis, t.rank), keepdims: o.keepdims ?? false });
  };
}

export const sum = reducer('reduce_sum', 'ops.sum');
export const max = reducer('reduce_max', 'ops.max');
export const min = reducer('reduce_min', 'ops.min');
export const prod = reducer('reduce_prod', 'ops.prod');
export const amax = max;
export const amin = min;

/** Arithmetic mean; integer inputs give float32 as in Keras. */
export function mean(x: TensorLike, opts: ReduceOptions | number = {}): Tensor {
  const o = reduceOptions(opts, 'ops.mean');
  let t = convertToTensor(x);
  if (!isFloat(t.dtype)) t = cast(t, 'float32');
  const axes = axesOf(o.axis, t.rank);
  const n = axes.reduce((acc, a) => acc * t.shape[a]!, 1);
  return divide(sum(t, { axis: axes, keepdims: o.keepdims ?? false }), n);
}

/** Population variance over axes. */
export function variance(x: TensorLike, opts: ReduceOptions | number = {}): Tensor {
  const o = reduceOptions(opts, 'ops.variance');
  const t = convertToTensor(x);
  const m = mean(t, { axis: o.axis, keepdims: true });
  return mean(square(subtract(t, m)), o);
}

export const var_ = variance;

export function std(x: TensorLike, opts: ReduceOptions | number = {}): Tensor {
  return sqrt(variance(x, reduceOptions(opts, 'ops.std')));
}

function argReducer(op: 'argmax' | 'argmin') {
  return (x: TensorLike, axis: number | null = null, keepdims = false): Tensor => {
    let t = convertToTensor(x);
    if (axis === null) {
      t = reshape(t, [-1]);
      axis = 0;
    }
    return apply(op, [t], { axis: normAxis(axis, t.rank), keepdims });
  };
}

export const argmax = argReducer('argmax');
export const argmin = argReducer('argmin');

/** Reshape; one dimension may be -1 (inferred). */
export function reshape(x: TensorLike, newShape: readonly number[]): Tensor {
  const t = convertToTensor(x);
  if (!Array.isArray(newShape)) throw new TypeError(`reshape: the new shape must be a list of dimensions, got ${describe(newShape)}`);
  const bad = newShape.find((d) => !Number.isSafeInteger(d) || d < -1);
  if (bad !== undefined) throw new RangeError(`reshape: new shape ${formatShape(newShape)} has an invalid dimension ${bad} (dimensions are non-negative integers, or one -1)`);
  const known = newShape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const unknown = newShape.filter((d) => d === -1).length;
  if (unknown > 1) throw new Error(`reshape: only one dimension may be -1, got ${formatShape(newShape)}`);
  const shape = newShape.map((d) => (d === -1 ? (known === 0 ? 0 : t.size / known) : d));
  if (unknown && (known === 0 || t.size % known !== 0)) throw new Error(`reshape: cannot reshape ${formatShape(t.shape)} (${t.size} elements) to ${formatShape(newShape)}`);
  if (shape.length === t.rank && shape.every((d, i) => d === t.shape[i])) return t;
  return apply('reshape', [t], { shape });
}

/** Permutes axes; reverses them when `axes` is omitted. */
export function transpose(x: TensorLike, axes?: readonly number[]): Tensor {
  const t = convertToTensor(x);
  const perm = axes ? axes.map((a) => normAxis(a, t.rank)) : Array.from({ length: t.rank }, (_, i) => t.rank - 1 - i);
  if (perm.every((p, i) => p === i)) return t;
  return apply('transpose', [t], { perm });
}

export function expandDims(x: TensorLike, axis: number): Tensor {
  const t = convertToTensor(x);
  const a = normAxis(axis, t.rank + 1);
  return reshape(t, [...t.shape.slice(0, a), 1, ...t.shape.slice(a)]);
}

export function squeeze(x: TensorLike, axis?: number | number[]): Tensor {
  const t = convertToTensor(x);
  const axes = axis === undefined ? t.shape.flatMap((d, i) => (d === 1 ? [i] : [])) : axesOf(axis, t.rank);
  for (const a of axes) if (t.shape[a] !== 1) throw new Error(`squeeze: axis ${a} has size ${t.shape[a]}, not 1`);
  return reshape(t, t.shape.filter((_, i) => !axes.includes(i)));
}

/** Matrix product with NumPy semantics: 1-D operands are promoted, batch dimensions broadcast. */
export function matmul(a: TensorLike, b: TensorLike): Tensor {
  let x = convertToTensor(a), y = convertToTensor(b);
  const dt = resultType(x.dtype, y.dtype) === 'bool' ? 'int32' : resultType(x.dtype, y.dtype);
  x = cast(x, dt);
  y = cast(y, dt);
  if (x.rank === 0 || y.rank === 0) throw new Error('matmul: operands must not be scalars (use multiply)');
  const xv = x.rank === 1, yv = y.rank === 1;
  if (xv) x = reshape(x, [1, x.shape[0]!]);
  if (yv) y = reshape(y, [y.shape[0]!, 1]);
  if (x.shape[x.rank - 1] !== y.shape[y.rank - 2]) {
    throw new Error(`matmul: inner dimensions do not match: ${formatShape(convertToTensor(a).shape)} @ ${formatShape(convertToTensor(b).shape)}`);
  }
  const batch = broadcastShapes(x.shape.slice(0, -2), y.shape.slice(0, -2));
  if (!batch) throw new Error(`matmul: batch dimensions ${formatShape(x.shape)} and ${formatShape(y.shape)} do not broadcast`);
  x = broadcastTo(x, [...batch, ...x.shape.slice(-2)]);
  y = broadcastTo(y, [...batch, ...y.shape.slice(-2)]);
  let out = apply('matmul', [x, y]);
  if (xv || yv) out = reshape(out, [...batch, ...(xv ? [] : [x.shape[x.rank - 2]!]), ...(yv ? [] : [y.shape[y.rank - 1]!])]);
  return out;
}

export const dot = matmul;

/** Joins tensors along an existing axis. */
export function concatenate(xs: readonly TensorLike[], axis = -1): Tensor {
  if (xs.length === 0) throw new Error('concatenate: needs at least one tensor');
  const ts = xs.map((x) => convertToTensor(x));
  const dt = ts.map((t) => t.dtype).reduce(resultType);
  const a = normAxis(axis, ts[0]!.rank);
  if (ts.length === 1) return cast(ts[0]!, dt);
  return apply('concat', ts.map((t) => cast(t, dt)), { axis: a });
}

export function stack(xs: readonly TensorLike[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error('stack: needs at least one tensor');
  const ts = xs.map((x) => convertToTensor(x));
  const a = normAxis(axis, ts[0]!.rank + 1);
  return concatenate(ts.map((t) => expandDims(t, a)), a);
}

/** Static slice: start indices and sizes per axis (Keras ops.slice). */
export function slice(x: TensorLike, startIndices: readonly number[], shape_: readonly number[]): Tensor {
  const t = convertToTensor(x);
  return apply('slice', [t], {
    start: [...startIndices], end: startIndices.map((s, i) => s + shape_[i]!), step: t.shape.map(() => 1),
  });
}

/** Strided slice over [start, end) with step per axis (for x[a:b:c]). */
export function stridedSlice(x: TensorLike, start: readonly number[], end: readonly number[], step?: readonly number[]): Tensor {
  const t = convertToTensor(x);
  return apply('slice', [t], { start: [...start], end: [...end], step: step ? [...step] : t.shape.map(() => 1) });
}

export function pad(x: TensorLike, padWidth: readonly (readonly [number, number])[], constantValue = 0): Tensor {
  const t = convertToTensor(x);
  return apply('pad', [t], { padding: padWidth.map((p) => [p[0], p[1]]), value: constantValue });
}

/** Gathers slices along axis at integer indices (NumPy take): negative indices count from the end. */
export function take(x: TensorLike, indices: TensorLike, axis = 0): Tensor {
  const t = convertToTensor(x);
  const a = normAxis(axis, t.rank);
  const idx = cast(indices, 'int32');
  const wrapped = where(less(idx, 0), add(idx, t.shape[a]!), idx);
  return apply('gather', [t, wrapped], { axis: a });
}

/** One-hot encoding of integer labels along a new last axis (float32). */
export function oneHot(x: TensorLike, numClasses: number, dtype: DType = 'float32'): Tensor {
  const labels = cast(x, 'int32');
  const shapeOut = [...labels.shape, numClasses];
  const iota = iotaTensor(shapeOut, shapeOut.length - 1);
  return cast(equal(broadcastTo(expandDims(labels, -1), shapeOut), iota), dtype);
}

/** int32 index along axis at every position of shape. */
export function iotaTensor(shape_: Shape, axis: number): Tensor {
  const tr = currentTrace();
  if (tr) {
    const n = tr.builder.iota(shape_, axis);
    return new Tensor('int32', shape_, undefined, n);
  }
  const strides = sizeOf(shape_.slice(axis + 1)), dim = shape_[axis]!;
  const out = new Int32Array(sizeOf(shape_));
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(i / strides) % dim;
  return new Tensor('int32', shape_, out);
}

/** Numerically stable log(sum(exp(x))) over axes. */
export function logsumexp(x: TensorLike, opts: ReduceOptions | number = {}): Tensor {
  const o = reduceOptions(opts, 'ops.logsumexp');
  const t = convertToTensor(x);
  const mx = max(t, { axis: o.axis, keepdims: true });
  // an all -inf row has max -inf: shift by 0 instead so the result is -inf, not NaN
  const m = where(equal(abs(mx), Infinity), zerosLike(mx), mx);
  const s = log(sum(exp(subtract(t, m)), { axis: o.axis, keepdims: true }));
  const r = add(s, m);
  return o.keepdims ? r : squeeze(r, axesOf(o.axis, t.rank));
}

// Activations as ops (keras.ops.relu, ...): defined here once, keras.activations re-exports them.

export function relu(x: TensorLike): Tensor {
  return maximum(x, 0);
}

export function relu6(x: TensorLike): Tensor {
  return clip(x, 0, 6);
}

/** 1 / (1 + exp(-x)) computed from exp(-|x|), finite with finite gradients for every input. */
export function sigmoid(x: TensorLike): Tensor {
  const t = convertToTensor(x);
  const e = exp(negative(abs(t)));
  const r = reciprocal(add(e, 1));
  return where(greaterEqual(t, 0), r, multiply(e, r));
}

export function softmax(x: TensorLike, axis = -1): Tensor {
  const t = convertToTensor(x);
  const e = exp(subtract(t, max(t, { axis, keepdims: true })));
  return divide(e, sum(e, { axis, keepdims: true }));
}

export function logSoftmax(x: TensorLike, axis = -1): Tensor {
  const t = convertToTensor(x);
  const shifted = subtract(t, max(t, { axis, keepdims: true }));
  return subtract(shifted, log(sum(exp(shifted), { axis, keepdims: true })));
}

/** log(1 + exp(x)) stable: max(x, 0) + log1p(exp(-|x|)). */
export function softplus(x: TensorLike): Tensor {
  const t = convertToTensor(x);
  return add(relu(t), log1p(exp(negative(abs(t)))));
}

export function softsign(x: TensorLike): Tensor {
  return divide(x, add(abs(x), 1));
}

export function silu(x: TensorLike): Tensor {
  return multiply(x, sigmoid(x));
}

export const swish = silu;

export function elu(x: TensorLike, alpha = 1): Tensor {
  const t = convertToTensor(x);
  return where(greater(t, 0), t, multiply(expm1(minimum(t, 0)), alpha));
}

export function selu(x: TensorLike): Tensor {
  return multiply(elu(x, 1.6732632423543772), 1.0507009873554805);
}

export function leakyRelu(x: TensorLike, negativeSlope = 0.2): Tensor {
  const t = convertToTensor(x);
  return where(greaterEqual(t, 0), t, multiply(t, negativeSlope));
}

/** GELU: the tanh approximation by default as in keras.ops.gelu (keras.activations.gelu defaults to exact). */
export function gelu(x: TensorLike, approximate = true): Tensor {
  const t = convertToTensor(x);
  if (approximate) {
    const inner = multiply(add(t, multiply(power(t, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return multiply(multiply(t, 0.5), add(tanh(inner), 1));
  }
  return multiply(multiply(t, 0.5), add(erf(divide(t, Math.SQRT2)), 1));
}

export function hardSigmoid(x: TensorLike): Tensor {
  return clip(add(divide(x, 6), 0.5), 0, 1);
}

// Convolution and pooling (channels_last), as keras.ops.conv / max_pool / average_pool.

export type PaddingMode = 'valid' | 'same';

/** A number or one entry per spatial axis, checked to be positive integers. */
export function spatialTuple(v: number | readonly number[], n: number, what: string): number[] {
  const t = typeof v === 'number' ? Array<number>(n).fill(v) : [...v];
  if (t.length !== n || !t.every((x) => Number.isInteger(x) && x > 0)) {
    throw new Error(`${what} must be a positive integer or ${n} of them, got ${JSON.stringify(v)}`);
  }
  return t;
}

/**
 * [lo, hi] padding per spatial axis: none for 'valid'; for 'same' TensorFlow's arithmetic,
 * total = max((ceil(n/s) - 1)*s + (k-1)*d + 1 - n, 0), lo = floor(total/2) (the odd one goes at the end).
 */
export function windowPadding(spatial: readonly number[], window: readonly number[], strides: readonly number[],
  dilation: readonly number[], padding: PaddingMode): [number, number][] {
  if (padding !== 'valid' && padding !== 'same') throw new Error(`padding must be 'valid' or 'same', got '${String(padding)}'`);
  return spatial.map((n, i) => {
    if (padding === 'valid') return [0, 0];
    const s = strides[i]!, kEff = (window[i]! - 1) * dilation[i]! + 1;
    const total = Math.max((Math.ceil(n / s) - 1) * s + kEff - n, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)];
  });
}

/**
 * Throws when a window is larger than its input under 'valid' padding (the output would be empty), as Keras
 * raises; `what` names the window ("kernel size"), unknown (null) sizes are not checked.
 */
export function checkWindowFits(spatial: readonly (number | null)[], window: readonly number[], dilation: readonly number[], padding: string, what: string): void {
  if (padding !== 'valid') return;
  spatial.forEach((n, i) => {
    const k = (window[i]! - 1) * dilation[i]! + 1;
    if (n !== null && n < k) {
      throw new Error(`${what} ${window[i]}${k !== window[i] ? ` (${k} dilated)` : ''} is larger than the input's size ${n} on spatial axis ${i + 1} with padding 'valid': the output would be empty`);
    }
  });
}

function channelsLast(dataFormat: string, name: string): void {
  if (dataFormat !== 'channels_last') throw new Error(`${name}: only dataFormat 'channels_last' is supported, got '${dataFormat}'`);
}

/**
 * N-D convolution of inputs [N, ...spatial, C] with kernel [...window, C/groups, O] (groups = C / kernel's in-channels).
 * @example keras.ops.conv(x, kernel, 1, 'same')
 */
export function conv(inputs: TensorLike, kernel: TensorLike, strides: number | readonly number[] = 1, padding: PaddingMode = 'valid',
  dataFormat = 'channels_last', dilationRate: number | readonly number[] = 1): Tensor {
  channelsLast(dataFormat, 'conv');
  const x = cast(inputs, 'float32'), k = cast(kernel, 'float32');
  const nsp = x.rank - 2;
  if (nsp < 1 || k.rank !== x.rank) throw new Error(`conv: expects inputs [N, ...spatial, C] and a kernel of the same rank, got ${formatShape(x.shape)} and ${formatShape(k.shape)}`);
  const c = x.shape[nsp + 1]!, cin = k.shape[nsp]!;
  if (cin === 0 || c % cin !== 0) throw new Error(`conv: input channels ${c} are not a multiple of the kernel's ${cin}`);
  const s = spatialTuple(strides, nsp, 'conv: strides'), d = spatialTuple(dilationRate, nsp, 'conv: dilationRate');
  checkWindowFits(x.shape.slice(1, nsp + 1), k.shape.slice(0, nsp), d, padding, 'conv: kernel size');
  return apply('conv', [x, k], {
    strides: s, dilation: d, lhsDilation: s.map(() => 1), groups: c / cin,
    padding: windowPadding(x.shape.slice(1, nsp + 1), k.shape.slice(0, nsp), s, d, padding),
  });
}

function pool(kind: 'max' | 'avg', inputs: TensorLike, poolSize: number | readonly number[], strides: number | readonly number[] | null | undefined,
  padding: PaddingMode, dataFormat: string): Tensor {
  const name = kind === 'max' ? 'maxPool' : 'averagePool';
  channelsLast(dataFormat, name);
  const x = convertToTensor(inputs);
  const nsp = x.rank - 2;
  if (nsp < 1) throw new Error(`${name}: expects inputs [N, ...spatial, C], got ${formatShape(x.shape)}`);
  const window = spatialTuple(poolSize, nsp, `${name}: poolSize`);
  const st = spatialTuple(strides ?? window, nsp, `${name}: strides`);
  const spatial = x.shape.slice(1, nsp + 1);
  checkWindowFits(spatial, window, window.map(() => 1), padding, `${name}: pool size`);
  const pads = windowPadding(spatial, window, st, window.map(() => 1), padding);
  const attrs = { window, strides: st, padding: pads };
  if (kind === 'max') return apply('reduce_window', [x], { kind: 'max', ...attrs });
  const t = isFloat(x.dtype) ? x : cast(x, 'float32');
  const sums = apply('reduce_window', [t], { kind: 'sum', ...attrs });
  if (pads.every(([lo, hi]) => lo === 0 && hi === 0)) return divide(sums, window.reduce((a, b) => a * b, 1));
  // 'same': divide by the number of real (unpadded) elements in each window, as Keras/TF do; a constant
  const counts = apply('reduce_window', [ones([1, ...spatial, 1], t.dtype)], { kind: 'sum', ...attrs });
  return divide(sums, counts);
}

/** Max pooling over the spatial axes of [N, ...spatial, C]; strides default to poolSize. */
export function maxPool(inputs: TensorLike, poolSize: number | readonly number[], strides: number | readonly number[] | null = null,
  padding: PaddingMode = 'valid', dataFormat = 'channels_last'): Tensor {
  return pool('max', inputs, poolSize, strides, padding, dataFormat);
}

/** Average pooling over the spatial axes of [N, ...spatial, C]; with 'same' padded positions are not counted. */
export function averagePool(inputs: TensorLike, poolSize: number | readonly number[], strides: number | readonly number[] | null = null,
  padding: PaddingMode = 'valid', dataFormat = 'channels_last'): Tensor {
  return pool('avg', inputs, poolSize, strides, padding, dataFormat);
}
