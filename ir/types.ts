// Tensor types of the graph IR: dtypes, static shapes, typed storage and shape helpers.

export type DType = 'float32' | 'int32' | 'bool' | 'float16' | 'bfloat16' | 'int8';

export type Shape = readonly number[];

export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
}

export type TypedArray = Float32Array | Int32Array | Uint8Array | Int8Array;

/** Reductions by how they combine elements; reduce_window's kinds are 'max' and 'sum'. */
export type ReduceKind = 'sum' | 'prod' | 'max' | 'min';

/** Names of a dtype's stored element in the targets, the C runtime and the file formats. */
export interface DTypeNames {
  /** C (and CUDA) storage type. */
  readonly c: string;
  /** LLVM IR storage type (bool is a byte in memory, i1 in registers). */
  readonly llvm: string;
  /** wasm memory access type. */
  readonly wasm: 'f32' | 'i32' | 'u8';
  /** kiln_dtype enumerator of the C runtime (runtime/c/kiln_runtime.h). */
  readonly runtime: string;
  /** NumPy .npy descr. */
  readonly npy: string;
  /** safetensors dtype code. */
  readonly safetensors: string;
}

/** Every fact about one dtype, in one place. */
export interface DTypeInfo {
  /** Name in the IR text format. */
  readonly short: string;
  /** Bytes of one stored element (bool is one byte holding 0 or 1). */
  readonly bytes: number;
  readonly isFloat: boolean;
  /** Loop-IR scalar type (codegen/loop/ir.ts's Scalar); undefined for a dtype reserved but not computed with yet. */
  readonly scalar: 'f32' | 'i32' | 'bool' | undefined;
  /** Target and format names; undefined where the dtype is not computed with yet. */
  readonly names: DTypeNames | undefined;
  /**
   * The value of a reduction over no element, which every reduction starts from: 0 for sum (+0, as NumPy's empty
   * sum; so a float sum of only -0 is +0), 1 for prod, the lowest value for max and the highest for min (±inf on
   * floats; INT_MIN and INT_MAX on int32, which has no infinity; false and true on bool).
   */
  readonly identity: Readonly<Record<ReduceKind, number>>;
}

export const INT32_MIN = -2147483648;
export const INT32_MAX = 2147483647;

const FLOAT_IDENTITY = { sum: 0, prod: 1, max: -Infinity, min: Infinity } as const;

/** The dtype table. */
export const DTYPES: Readonly<Record<DType, DTypeInfo>> = {
  float32: {
    short: 'f32', bytes: 4, isFloat: true, scalar: 'f32', identity: FLOAT_IDENTITY,
    names: { c: 'float', llvm: 'float', wasm: 'f32', runtime: 'KILN_F32', npy: '<f4', safetensors: 'F32' },
  },
  int32: {
    short: 'i32', bytes: 4, isFloat: false, scalar: 'i32', identity: { sum: 0, prod: 1, max: INT32_MIN, min: INT32_MAX },
    names: { c: 'int', llvm: 'i32', wasm: 'i32', runtime: 'KILN_I32', npy: '<i4', safetensors: 'I32' },
  },
  bool: {
    short: 'bool', bytes: 1, isFloat: false, scalar: 'bool', identity: { sum: 0, prod: 1, max: 0, min: 1 },
    names: { c: 'unsigned char', llvm: 'i8', wasm: 'u8', runtime: 'KILN_BOOL', npy: '|b1', safetensors: 'BOOL' },
  },
  float16: { short: 'f16', bytes: 2, isFloat: true, scalar: undefined, names: undefined, identity: FLOAT_IDENTITY },
  bfloat16: { short: 'bf16', bytes: 2, isFloat: true, scalar: undefined, names: undefined, identity: FLOAT_IDENTITY },
  // quantized storage only (ir/quant.ts): the quantized ops widen it to int32 to compute
  int8: {
    short: 'i8', bytes: 1, isFloat: false, scalar: undefined, identity: { sum: 0, prod: 1, max: -128, min: 127 },
    names: { c: 'signed char', llvm: 'i8', wasm: 'u8', runtime: 'KILN_I8', npy: '|i1', safetensors: 'I8' },
  },
};

/** Bytes of one stored element of a dtype. */
export function dtypeBytes(dtype: DType): number {
  return DTYPES[dtype].bytes;
}

/** The value a reduction of `kind` over no element of `dtype` gives (its starting value). */
export function identityOf(kind: ReduceKind, dtype: DType): number {
  return DTYPES[dtype].identity[kind];
}

/** Short dtype names used by the IR text format. */
export const DTYPE_SHORT: Record<DType, string> = Object.fromEntries(
  Object.entries(DTYPES).map(([k, v]) => [k, v.short]),
) as Record<DType, string>;
const FROM_SHORT = new Map(Object.entries(DTYPES).map(([k, v]) => [v.short, k as DType]));

/** The dtype of a short name of the IR text format, or undefined. */
export function dtypeFromShort(short: string): DType | undefined {
  return FROM_SHORT.get(short);
}

export function isDType(s: unknown): s is DType {
  // own keys only: 'toString' and 'constructor' are in every object
  return typeof s === 'string' && Object.hasOwn(DTYPES, s);
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
    case 'int8': return new Int8Array(n);
    case 'float16':
    case 'bfloat16':
      throw new Error(`dtype ${dtype} is reserved and cannot be computed with yet`);
  }
}

/** Converts numbers to the storage of a dtype with that dtype's rounding (float32 round, int32/int8 truncate (int8 wraps), bool != 0). */
export function toTyped(dtype: DType, values: ArrayLike<number>): TypedArray {
  const out = allocate(dtype, values.length);
  if (dtype === 'bool') for (let i = 0; i < values.length; i++) out[i] = values[i] ? 1 : 0;
  else if (dtype === 'int32' || dtype === 'int8') for (let i = 0; i < values.length; i++) out[i] = Math.trunc(values[i]!);
  else out.set(values);
  return out;
}

export function dtypeOfTyped(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Int8Array) return 'int8';
  return 'bool';
}

export function isFloat(dtype: DType): boolean {
  return DTYPES[dtype].isFloat;
}

/** Normalizes a possibly negative axis against a rank, throwing a clear message when out of range. */
export function normAxis(axis: number, rank: number, what = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new Error(`${what} ${axis} is out of range for rank ${rank}`);
  return a;
}
