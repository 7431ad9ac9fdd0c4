// Tensor types of the graph IR: dtypes, static shapes, typed storage and shape helpers.

export type DType = 'float32' | 'int32' | 'bool' | 'float16' | 'bfloat16';

export type Shape = readonly number[];

export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
}

export type TypedArray = Float32Array | Int32Array | Uint8Array;

/** Short dtype names used by the IR text format. */
export const DTYPE_SHORT: Record<DType, string> = {
  float32: 'f32', int32: 'i32', bool: 'bool', float16: 'f16', bfloat16: 'bf16',
};
export const DTYPE_FROM_SHORT: Record<string, DType> = Object.fromEntries(
  Object.entries(DTYPE_SHORT).map(([k, v]) => [v, k as DType]),
);

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && s in DTYPE_SHORT;
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function typesEqual(a: TensorType, b: TensorType): boolean {
  return a.dtype === b.dtype && shapesEqual(a.shape, b.shape);
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function formatType(t: TensorType): string {
  return `${DTYPE_SHORT[t.dtype]}${formatShape(t.shape)}`;
}

/** Allocates zeroed storage for a dtype; bool is one byte per element. */
export function allocate(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'int32': return new Int32Array(n);
    case 'bool': return new Uint8Array(n);
    case 'float16':
    case 'bfloat16':
      throw new Error(`dtype ${dtype} is reserved and cannot be computed with yet`);
  }
}

/** Converts numbers to the storage of a dtype with that dtype's rounding (float32 round, int32 truncate, bool != 0). */
export function toTyped(dtype: DType, values: ArrayLike<number>): TypedArray {
  const out = allocate(dtype, values.length);
  if (dtype === 'bool') for (let i = 0; i < values.length; i++) out[i] = values[i] ? 1 : 0;
  else if (dtype === 'int32') for (let i = 0; i < values.length; i++) out[i] = Math.trunc(values[i]!);
  else out.set(values);
  return out;
}

export function dtypeOfTyped(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Int32Array) return 'int32';
  return 'bool';
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16';
}

/** Normalizes a possibly negative axis against a rank, throwing a clear message when out of range. */
export function normAxis(axis: number, rank: number, what = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new Error(`${what} ${axis} is out of range for rank ${rank}`);
  return a;
}
