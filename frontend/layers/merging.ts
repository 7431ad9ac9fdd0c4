// Merging layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate (and their function forms).
import * as ops from '../ops.js';
import { type SymbolicShape, type Tensor, formatKerasShape } from '../tensor.js';
import { KerasTensor, Layer, type LayerOptions, type Mask } from './layer.js';
import type { OptionNames } from '../options.js';

/** Elementwise merge of a list of same-shaped inputs. */
abstract class Merge extends Layer {
  constructor(options: LayerOptions = {}) {
    super(options);
    this.built = true;
  }

  protected abstract merge(a: Tensor, b: Tensor): Tensor;

  /** The inputs' masks combined: a step is real where it is real in every masked input (Keras's Merge.compute_mask). */
  override computeMask(_inputs: Tensor[], mask: Mask): Mask {
    const ms = Array.isArray(mask) ? (mask as (Tensor | undefined)[]).filter((m): m is Tensor => m !== undefined) : [];
    return ms.length ? ms.reduce((a, b) => ops.logicalAnd(a, b)) : undefined;
  }

  override computeOutputShape(inputShape: SymbolicShape[]): SymbolicShape {
    if (!Array.isArray(inputShape[0]) || inputShape.length < 2) throw new Error('expects a list of at least 2 inputs');
    const first = inputShape[0]!;
    for (const s of inputShape) {
      if (s.length !== first.length || s.some((d, i) => d !== null && first[i] !== null && d !== first[i] && d !== 1 && first[i] !== 1)) {
        throw new Error(`inputs must have matching shapes, got ${inputShape.map(formatKerasShape).join(' and ')}`);
      }
    }
    return first.map((d, i) => (d === 1 ? inputShape.map((s) => s[i]!).find((x) => x !== 1) ?? 1 : d));
  }

  call(inputs: Tensor[]): Tensor {
    if (!Array.isArray(inputs) || inputs.length < 2) throw new Error('expects a list of at least 2 inputs');
    return inputs.slice(1).reduce((acc, x) => this.merge(acc, x), inputs[0]!);
  }
}

export class Add extends Merge {
  protected merge(a: Tensor, b: Tensor): Tensor { return ops.add(a, b); }
}

export class Subtract extends Merge {
  protected merge(a: Tensor, b: Tensor): Tensor { return ops.subtract(a, b); }
}

export class Multiply extends Merge {
  protected merge(a: Tensor, b: Tensor): Tensor { return ops.multiply(a, b); }
}

export class Maximum extends Merge {
  protected merge(a: Tensor, b: Tensor): Tensor { return ops.maximum(a, b); }
}

export class Minimum extends Merge {
  protected merge(a: Tensor, b: Tensor): Tensor { return ops.minimum(a, b); }
}

export class Average extends Merge {
  protected merge(a: Tensor, b: Tensor): Tensor { return ops.add(a, b); }

  override call(inputs: Tensor[]): Tensor {
    return ops.divide(super.call(inputs), inputs.length);
  }
}

export interface ConcatenateOptions extends LayerOptions {
  axis?: number;
}

/** Concatenates a list of inputs along `axis` (default last). */
export class Concatenate extends Layer {
  static override readonly optionNames = { axis: true } satisfies OptionNames<ConcatenateOptions, LayerOptions>;
  readonly axis: number;

  /** Concatenate(axis?, options?): Keras's leading positional argument is the axis. */
  constructor(axisOrOptions: number | ConcatenateOptions = {}, options: ConcatenateOptions = {}) {
    const opts = typeof axisOrOptions === 'number' ? { ...options, axis: axisOrOptions } : axisOrOptions;
    super(opts);
    this.axis = opts.axis ?? -1;
    if (!Number.isInteger(this.axis)) throw new Error(`Concatenate: axis must be an integer, got ${this.axis}`);
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape[]): SymbolicShape {
    if (!Array.isArray(inputShape[0]) || inputShape.length < 1) throw new Error('expects a list of inputs');
    const rank = inputShape[0]!.length;
    const a = this.axis < 0 ? this.axis + rank : this.axis;
    for (const s of inputShape) {
      if (s.length !== rank || s.some((d, i) => i !== a && d !== inputShape[0]![i])) {
        throw new Error(`inputs must match except on the concat axis, got ${inputShape.map(formatKerasShape).join(', ')}`);
      }
    }
    const sizes = inputShape.map((s) => s[a] ?? null);
    const total = sizes.some((d) => d === null) ? null : (sizes as number[]).reduce((x, y) => x + y, 0);
    return inputShape[0]!.map((d, i) => (i === a ? total : d));
  }

  call(inputs: Tensor[]): Tensor {
    return ops.concatenate(inputs, this.axis);
  }

  /**
   * Keras's Concatenate.compute_mask: each input's mask broadcast to its shape (all true where it has none),
   * concatenated, then any over the last axis.
   */
  override computeMask(inputs: Tensor[], mask: Mask): Mask {
    const ms = Array.isArray(mask) ? mask as (Tensor | undefined)[] : [];
    if (!ms.some(Boolean)) return undefined;
    const full = inputs.map((x, i) => {
      const m = ms[i];
      if (!m) return ops.onesLike(x, 'bool');
      return m.rank < x.rank ? ops.broadcastTo(ops.expandDims(m, -1), x.shape) : m;
    });
    return ops.greater(ops.sum(ops.concatenate(full, this.axis), { axis: -1 }), 0);
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), axis: this.axis };
  }
}

type Merged<T> = T extends KerasTensor ? KerasTensor : Tensor;

/** keras.layers.concatenate(inputs, axis): function form of Concatenate. */
export function concatenate<T extends KerasTensor | Tensor>(inputs: readonly T[], axis = -1, options: LayerOptions = {}): Merged<T> {
  return new Concatenate({ ...options, axis })(inputs as readonly KerasTensor[]) as Merged<T>;
}

export function add<T extends KerasTensor | Tensor>(inputs: readonly T[], options: LayerOptions = {}): Merged<T> {
  return new Add(options)(inputs as readonly KerasTensor[]) as Merged<T>;
}

export function subtract<T extends KerasTensor | Tensor>(inputs: readonly T[], options: LayerOptions = {}): Merged<T> {
  return new Subtract(options)(inputs as readonly KerasTensor[]) as Merged<T>;
}

export function multiply<T extends KerasTensor | Tensor>(inputs: readonly T[], options: LayerOptions = {}): Merged<T> {
  return new Multiply(options)(inputs as readonly KerasTensor[]) as Merged<T>;
}

export function average<T extends KerasTensor | Tensor>(inputs: readonly T[], options: LayerOptions = {}): Merged<T> {
  return new Average(options)(inputs as readonly KerasTensor[]) as Merged<T>;
}

export function maximum<T extends KerasTensor | Tensor>(inputs: readonly T[], options: LayerOptions = {}): Merged<T> {
  return new Maximum(options)(inputs as readonly KerasTensor[]) as Merged<T>;
}

export function minimum<T extends KerasTensor | Tensor>(inputs: readonly T[], options: LayerOptions = {}): Merged<T> {
  return new Minimum(options)(inputs as readonly KerasTensor[]) as Merged<T>;
}
