// Tensors of the frontend: concrete (typed data), traced (a graph node), variables, and Keras symbolic tensors.
import type { Node } from '../ir/graph.js';
import { type DType, type Shape, type TypedArray, formatShape, isDType, sizeOf } from '../ir/types.js';

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
    if (!isDType(dtype)) throw new TypeError(`Tensor: unknown dtype ${JSON.stringify(dtype) ?? String(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new RangeError(`Tensor: shape ${Array.isArray(shape) ? formatShape(shape) : String(shape)} must be a list of non-negative integers`);
    }
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

  /** @internal Takes ownership of a fresh array of this variable's dtype and size (no copy). */
  _adopt(data: TypedArray): void {
    if (data.length !== this.size || data.constructor !== this.data.constructor) throw new Error(`variable '${this.path}': cannot adopt ${data.length} ${data.constructor.name} values`);
    this._value = data;
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

// NumPy's default print options: 75 columns, arrays above 1000 elements summarized to 3 items at each edge,
// at most 8 digits after the point.
const LINE_WIDTH = 75;
const THRESHOLD = 1000;
const EDGE_ITEMS = 3;
const PRECISION = 8;

/** x.toFixed / x.toExponential, but ties round to even as in NumPy (JS rounds them away from zero). */
function roundEven(x: number, digits: number, how: 'toFixed' | 'toExponential'): string {
  const s = x[how](digits);
  const extra = Math.min(100, digits + 40) - digits;
  const exact = x[how](digits + extra); // exact for float32 values
  const mant = exact.replace(/e.*$/, '');
  if (!/^50*$/.test(mant.slice(-extra))) return s;
  const kept = mant.slice(0, -extra).replace(/\.$/, '');
  return Number(kept[kept.length - 1]) % 2 === 0 ? kept + exact.slice(mant.length) : s;
}

/** The fewest significant digits that round-trip a float32 value, positional ('0.1', '-0', '100'). */
function shortFloat(x: number): string {
  if (Object.is(x, -0)) return '-0';
  for (let p = 0; p < 9; p++) {
    const s = roundEven(x, p, 'toExponential');
    if (Math.fround(Number(s)) === x) return String(Number(s));
  }
  return String(x);
}

function special(x: number): string {
  return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
}

/** Digits after the point of the shortest round-trip scientific form, at most PRECISION. */
function sciDigits(x: number): number {
  for (let p = 0; p < PRECISION; p++) if (Math.fround(Number(roundEven(x, p, 'toExponential'))) === x) return p;
  return PRECISION;
}

/** 1.5e-05 style; `point` keeps the point of a bare mantissa as NumPy arrays do (1.e-05), scalars drop it (1e-05). */
function sci(x: number, digits: number, point: boolean): string {
  const [m, e] = roundEven(x, digits, 'toExponential').split('e') as [string, string];
  return `${Object.is(x, -0) ? '-' : ''}${m}${digits === 0 && point ? '.' : ''}e${e[0]}${e.slice(1).padStart(2, '0')}`;
}

/** Positional form with at most PRECISION digits after the point, without trailing zeros. */
function positional(x: number): string {
  const s = shortFloat(x);
  return s.includes('.') && s.length - s.indexOf('.') - 1 > PRECISION ? String(Number(roundEven(x, PRECISION, 'toFixed'))) : s;
}

/** A 0-d value as NumPy prints the scalar: 2.5, 3.0, 1e-05, True. */
function formatScalar(x: number, dtype: DType): string {
  if (dtype === 'bool') return x ? 'True' : 'False';
  if (dtype === 'int32') return String(x);
  if (!Number.isFinite(x)) return special(x);
  const a = Math.abs(x);
  if (a === 0 || (a >= 1e-4 && a < 1e6)) {
    const s = shortFloat(x);
    return s.includes('.') ? s : `${s}.0`;
  }
  return sci(x, sciDigits(x), false);
}

/** NumPy's element formatter for the values shown: one width for all, floats in one notation and precision. */
function elementFormatter(vals: readonly number[], dtype: DType): (x: number) => string {
  let body: (x: number) => string;
  if (dtype === 'bool') body = (x) => (x ? ' True' : 'False');
  else if (dtype === 'int32') body = String;
  else {
    let lo = Infinity, hi = 0;
    for (const v of vals) if (Number.isFinite(v) && v !== 0) { lo = Math.min(lo, Math.abs(v)); hi = Math.max(hi, Math.abs(v)); }
    // NumPy >= 2.2 compares in float32 and switches float32 to scientific from 1e6 (10 ** finfo.precision)
    if (hi > 0 && (hi >= 1e6 || lo < Math.fround(1e-4) || Math.fround(hi / lo) > 1e3)) {
      const digits = vals.reduce((d, v) => (Number.isFinite(v) ? Math.max(d, sciDigits(v)) : d), 0);
      body = (x) => (Number.isFinite(x) ? sci(x, digits, true) : special(x));
    } else {
      const frac = (s: string): string => (s.includes('.') ? s.slice(s.indexOf('.') + 1) : '');
      const decimals = vals.reduce((d, v) => (Number.isFinite(v) ? Math.max(d, frac(positional(v)).length) : d), 0);
      body = (x) => {
        if (!Number.isFinite(x)) return special(x);
        const s = positional(x), f = frac(s);
        return `${f ? s.slice(0, -f.length - 1) : s}.${f.padEnd(decimals)}`;
      };
    }
  }
  const width = vals.reduce((w, v) => Math.max(w, body(v).length), 0);
  return (x) => body(x).padStart(width);
}

/** Indices shown along an axis of length n: all, or the edges when summarizing. */
function shownIndices(n: number, summarize: boolean): number[] {
  if (!summarize || n <= 2 * EDGE_ITEMS) return Array.from({ length: n }, (_, i) => i);
  return [...Array.from({ length: EDGE_ITEMS }, (_, i) => i), ...Array.from({ length: EDGE_ITEMS }, (_, i) => n - EDGE_ITEMS + i)];
}

/**
 * NumPy-style text of an array (numpy's array_str): [[1. 2.]\n [3. 4.]], columns right-aligned,
 * rows wrapped at 75 characters, arrays over 1000 elements summarized with '...'.
 */
export function formatArray(data: TypedArray, shape: Shape, dtype: DType): string {
  if (shape.length === 0) return formatScalar(data[0]!, dtype);
  if (data.length === 0) return '[]';
  const summarize = sizeOf(shape) > THRESHOLD;
  const strides = shape.map((_, i) => sizeOf(shape.slice(i + 1)));
  // the format is chosen from the values that are shown
  const shown: number[] = [];
  const collect = (dim: number, off: number): void => {
    for (const i of shownIndices(shape[dim]!, summarize)) {
      if (dim === shape.length - 1) shown.push(data[off + i]!);
      else collect(dim + 1, off + i * strides[dim]!);
    }
  };
  collect(0, 0);
  const fmt = elementFormatter(shown, dtype);
  // a port of numpy's _formatArray: `hanging` prefixes continuation lines, `width` shrinks by one per nesting level
  const recurse = (dim: number, off: number, hanging: string, width: number): string => {
    const n = shape[dim]!;
    const idx = shownIndices(n, summarize);
    const parts: string[] = idx.map((i) => (dim === shape.length - 1 ? fmt(data[off + i]!) : recurse(dim + 1, off + i * strides[dim]!, `${hanging} `, width - 1)));
    if (idx.length < n) parts.splice(EDGE_ITEMS, 0, '...');
    let s = '';
    if (dim === shape.length - 1) {
      let line = hanging;
      parts.forEach((word, i) => {
        if (line.length + word.length > width - 1 && line.length > hanging.length) {
          s += `${line.trimEnd()}\n`;
          line = hanging;
        }
        line += i < parts.length - 1 ? `${word} ` : word;
      });
      s += line;
    } else {
      s = parts.map((p) => hanging + p).join('\n'.repeat(shape.length - dim - 1));
    }
    return `[${s.slice(hanging.length)}]`;
  };
  return recurse(0, 0, ' ', LINE_WIDTH);
}
