// Tensors of the frontend: concrete (typed data), traced (a graph node), variables, and Keras symbolic tensors.
import type { Node } from '../ir/graph.js';
import { type DType, type Shape, type TypedArray, formatShape, sizeOf } from '../ir/types.js';

export type NestedArray = number | boolean | NestedArray[];

/**
 * A tensor: either concrete (row-major typed `data`) or traced (a node of the graph being traced).
 * Tensors print like NumPy arrays.
 */
export class Tensor {
  readonly shape: number[];
  readonly dtype: DType;
  /** @internal concrete storage (replaced in place by Variable.assign) */
  protected _value: TypedArray | undefined;
  /** @internal graph node while tracing */
  readonly _node: Node | undefined;

  constructor(dtype: DType, shape: Shape, data?: TypedArray, node?: Node) {
    this.dtype = dtype;
    this.shape = [...shape];
    this._value = data;
    this._node = node;
    if (data && data.length !== sizeOf(shape)) throw new Error(`tensor data of ${data.length} elements does not fill shape ${formatShape(shape)}`);
  }

  /** @internal concrete storage, undefined while symbolic */
  get _data(): TypedArray | undefined {
    return this._value;
  }

  get isSymbolic(): boolean {
    return this._value === undefined;
  }

  /** Row-major typed data (Float32Array, Int32Array, or Uint8Array for bool). */
  get data(): TypedArray {
    if (!this._value) {
      throw new Error(`this ${this.dtype}${formatShape(this.shape)} tensor is symbolic (being traced); it has no data until the compiled graph runs`);
    }
    return this._value;
  }

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  /** Nested JS arrays (numbers; booleans for bool). A scalar gives a number. */
  toArray(): NestedArray {
    const d = this.data;
    const at = (i: number): number | boolean => (this.dtype === 'bool' ? d[i] !== 0 : d[i]!);
    const build = (dim: number, off: number): NestedArray => {
      if (dim === this.shape.length) return at(off);
      const stride = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim]! }, (_, i) => build(dim + 1, off + i * stride));
    };
    return build(0, 0);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item() needs a one-element tensor, got shape ${formatShape(this.shape)}`);
    return this.data[0]!;
  }

  toString(): string {
    if (this.isSymbolic) return `<tensor ${this.dtype}${formatShape(this.shape)} (symbolic)>`;
    return formatArray(this.data, this.shape, this.dtype);
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

/** A mutable, named weight. Optimizers and `setWeights` assign it in place. */
export class Variable extends Tensor {
  /** Keras weight name, e.g. "kernel"; `path` is "layer/kernel". */
  readonly name: string;
  path: string;
  trainable: boolean;

  constructor(name: string, dtype: DType, shape: Shape, data: TypedArray, trainable = true, path = name) {
    super(dtype, shape, data);
    this.name = name;
    this.path = path;
    this.trainable = trainable;
  }

  /** Replaces the value in place (same shape; cast to this variable's dtype). */
  assign(value: Tensor | TypedArray): void {
    const data = value instanceof Tensor ? value.data : value;
    if (data.length !== this.size) {
      throw new Error(`cannot assign ${data.length} values to variable '${this.path}' of shape ${formatShape(this.shape)}`);
    }
    const copy = this.data.slice();
    if (this.dtype === 'int32') for (let i = 0; i < data.length; i++) copy[i] = Math.trunc(data[i]!);
    else copy.set(data);
    this._value = copy;
  }

  override toString(): string {
    return `<Variable path=${this.path}, shape=(${this.shape.join(', ')}${this.shape.length === 1 ? ',' : ''}), dtype=${this.dtype}, value=${formatArray(this.data, this.shape, this.dtype)}>`;
  }
}

/** Shape with unknown (null) dimensions, as Keras prints it: (None, 64). */
export type SymbolicShape = readonly (number | null)[];

export function formatKerasShape(shape: SymbolicShape): string {
  const dims = shape.map((d) => (d === null ? 'None' : String(d)));
  return `(${dims.join(', ')}${dims.length === 1 ? ',' : ''})`;
}

/** Formats one float32 value with the fewest digits that round-trip (at most 8 after the point), NumPy style. */
function shortFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  for (let p = 1; p <= 9; p++) {
    const s = x.toPrecision(p);
    if (Math.fround(Number(s)) === x) return String(Number(s));
  }
  return String(x);
}

function formatElements(data: TypedArray, dtype: DType): string[] {
  const vals = Array.from(data);
  if (dtype === 'bool') return vals.map((v) => (v ? 'True' : 'False'));
  if (dtype === 'int32') return vals.map(String);
  const finite = vals.filter((v) => Number.isFinite(v) && v !== 0).map(Math.abs);
  const sci = finite.length > 0 && (Math.max(...finite) >= 1e8 || Math.min(...finite) < 1e-4 || Math.max(...finite) / Math.min(...finite) >= 1e3 && Math.min(...finite) < 1e-3);
  if (sci) {
    const digits = Math.min(8, Math.max(...vals.map((v) => (Number.isFinite(v) ? shortFloat(v).replace(/^-|\.|e.*$/g, '').replace(/^0+/, '').length - 1 : 0))));
    return vals.map((v) => (Number.isFinite(v) ? v.toExponential(Math.max(digits, 0)).replace(/e([+-])(\d)$/, 'e$10$2') : shortFloat(v)));
  }
  const strs = vals.map(shortFloat);
  const decimals = Math.max(0, ...strs.map((s) => (s.includes('.') ? s.length - s.indexOf('.') - 1 : 0)));
  return vals.map((v, i) => {
    if (!Number.isFinite(v)) return strs[i]!;
    return decimals === 0 ? `${strs[i]}.` : v.toFixed(Math.min(decimals, 8)).replace(/0+$/, (z) => ' '.repeat(z.length));
  });
}

/** NumPy-style text of an array: [[1. 2.]\n [3. 4.]] with right-aligned columns. */
export function formatArray(data: TypedArray, shape: Shape, dtype: DType): string {
  const els = formatElements(data, dtype);
  if (shape.length === 0) return els[0]!.trimEnd();
  const width = Math.max(0, ...els.map((s) => s.length));
  const build = (dim: number, off: number, indent: string): string => {
    const n = shape[dim]!;
    const stride = sizeOf(shape.slice(dim + 1));
    if (dim === shape.length - 1) {
      return `[${Array.from({ length: n }, (_, i) => els[off + i]!.padStart(width)).join(' ')}]`;
    }
    const sep = `\n${'\n'.repeat(shape.length - dim - 2)}${indent} `;
    return `[${Array.from({ length: n }, (_, i) => build(dim + 1, off + i * stride, indent + ' ')).join(sep)}]`;
  };
  return build(0, 0, '');
}
