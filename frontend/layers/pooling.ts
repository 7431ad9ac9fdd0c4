// Pooling layers: Max/AveragePooling1D-3D on the `reduce_window` primitive, GlobalMax/AveragePooling1D-3D as reductions.
import * as ops from '../ops.js';
import { windowOut } from '../../ir/ops.js';
import { type SymbolicShape, type Tensor, Tensor as TensorClass, formatKerasShape } from '../tensor.js';
import { kerasLayerName } from './conv.js';
import { type CallOptions, Layer, type LayerOptions, uniqueName } from './layer.js';
import type { OptionNames } from '../options.js';

export interface PoolingOptions extends LayerOptions {
  /** Stride of the window along each spatial axis; defaults to poolSize. */
  strides?: number | readonly number[] | null;
  /** 'valid' (no padding) or 'same' (TensorFlow's SAME; average pooling counts only real elements). */
  padding?: 'valid' | 'same';
  /** Only 'channels_last' ([N, ...spatial, C]). */
  dataFormat?: 'channels_last';
}

/** Windowed max or average over the spatial axes of [batch, ...spatial, channels]. */
export abstract class BasePooling extends Layer {
  static override readonly optionNames = { strides: true, padding: true, dataFormat: true } satisfies OptionNames<PoolingOptions, LayerOptions>;
  readonly rank: number;
  readonly kind: 'max' | 'avg';
  readonly poolSize: number[];
  readonly strides: number[];
  readonly padding: 'valid' | 'same';

  constructor(rank: number, kind: 'max' | 'avg', poolSize: number | readonly number[], options: PoolingOptions = {}) {
    super({ ...options, name: options.name ?? uniqueName(kerasLayerName(new.target.name)) });
    const cls = new.target.name;
    this.rank = rank;
    this.kind = kind;
    this.poolSize = ops.spatialTuple(poolSize, rank, `${cls}: poolSize`);
    this.strides = ops.spatialTuple(options.strides ?? this.poolSize, rank, `${cls}: strides`);
    this.padding = options.padding ?? 'valid';
    if (this.padding !== 'valid' && this.padding !== 'same') throw new Error(`${cls}: padding must be 'valid' or 'same', got '${String(this.padding)}'`);
    if (options.dataFormat !== undefined && options.dataFormat !== 'channels_last') {
      throw new Error(`${cls}: only dataFormat 'channels_last' is supported, got '${String(options.dataFormat)}'`);
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    if (inputShape.length !== this.rank + 2) throw new Error(`expects inputs of rank ${this.rank + 2}, got ${formatKerasShape(inputShape)}`);
    const spatial = inputShape.slice(1, -1);
    ops.checkWindowFits(spatial, this.poolSize, this.poolSize.map(() => 1), this.padding, 'pool size');
    const pads = ops.windowPadding(spatial.map((n) => n ?? 1), this.poolSize, this.strides, this.poolSize.map(() => 1), this.padding);
    const out = spatial.map((n, i) => (n === null ? null : windowOut(n, this.poolSize[i]!, this.strides[i]!, pads[i]![0], pads[i]![1])));
    return [inputShape[0] ?? null, ...out, inputShape[inputShape.length - 1] ?? null];
  }

  call(inputs: Tensor): Tensor {
    if (inputs.rank !== this.rank + 2) throw new Error(`expects inputs of rank ${this.rank + 2}, got shape ${formatKerasShape(inputs.shape)}`);
    ops.checkWindowFits(inputs.shape.slice(1, -1), this.poolSize, this.poolSize.map(() => 1), this.padding, 'pool size');
    return this.kind === 'max'
      ? ops.maxPool(inputs, this.poolSize, this.strides, this.padding)
      : ops.averagePool(inputs, this.poolSize, this.strides, this.padding);
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), poolSize: this.poolSize, strides: this.strides, padding: this.padding, dataFormat: 'channels_last' };
  }
}

/** @example keras.layers.MaxPooling1D(2) */
export class MaxPooling1D extends BasePooling {
  constructor(poolSize: number | readonly [number] = 2, options: PoolingOptions = {}) { super(1, 'max', poolSize, options); }
}

/** @example keras.layers.MaxPooling2D(2) or keras.layers.MaxPooling2D([3, 3], { strides: 2, padding: 'same' }) */
export class MaxPooling2D extends BasePooling {
  constructor(poolSize: number | readonly [number, number] = 2, options: PoolingOptions = {}) { super(2, 'max', poolSize, options); }
}

/** @example keras.layers.MaxPooling3D(2) */
export class MaxPooling3D extends BasePooling {
  constructor(poolSize: number | readonly [number, number, number] = 2, options: PoolingOptions = {}) { super(3, 'max', poolSize, options); }
}

/** @example keras.layers.AveragePooling1D(2) */
export class AveragePooling1D extends BasePooling {
  constructor(poolSize: number | readonly [number] = 2, options: PoolingOptions = {}) { super(1, 'avg', poolSize, options); }
}

/** @example keras.layers.AveragePooling2D(2) */
export class AveragePooling2D extends BasePooling {
  constructor(poolSize: number | readonly [number, number] = 2, options: PoolingOptions = {}) { super(2, 'avg', poolSize, options); }
}

/** @example keras.layers.AveragePooling3D(2) */
export class AveragePooling3D extends BasePooling {
  constructor(poolSize: number | readonly [number, number, number] = 2, options: PoolingOptions = {}) { super(3, 'avg', poolSize, options); }
}

export interface GlobalPoolingOptions extends LayerOptions {
  /** Keep the spatial axes with size 1 ([N, 1, 1, C]) instead of dropping them ([N, C]). */
  keepdims?: boolean;
  /** Only 'channels_last'. */
  dataFormat?: 'channels_last';
}

/** Mean or max over all spatial axes of [batch, ...spatial, channels]. */
export abstract class BaseGlobalPooling extends Layer {
  static override readonly optionNames = { keepdims: true, dataFormat: true } satisfies OptionNames<GlobalPoolingOptions, LayerOptions>;
  readonly rank: number;
  readonly kind: 'max' | 'avg';
  readonly keepdims: boolean;

  constructor(rank: number, kind: 'max' | 'avg', options: GlobalPoolingOptions = {}) {
    super({ ...options, name: options.name ?? uniqueName(kerasLayerName(new.target.name)) });
    if (options.dataFormat !== undefined && options.dataFormat !== 'channels_last') {
      throw new Error(`${new.target.name}: only dataFormat 'channels_last' is supported, got '${String(options.dataFormat)}'`);
    }
    this.rank = rank;
    this.kind = kind;
    this.keepdims = options.keepdims ?? false;
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    if (inputShape.length !== this.rank + 2) throw new Error(`expects inputs of rank ${this.rank + 2}, got ${formatKerasShape(inputShape)}`);
    const c = inputShape[inputShape.length - 1] ?? null;
    return this.keepdims ? [inputShape[0] ?? null, ...Array<number>(this.rank).fill(1), c] : [inputShape[0] ?? null, c];
  }

  call(inputs: Tensor): Tensor {
    if (inputs.rank !== this.rank + 2) throw new Error(`expects inputs of rank ${this.rank + 2}, got shape ${formatKerasShape(inputs.shape)}`);
    const axis = Array.from({ length: this.rank }, (_, i) => i + 1);
    return this.kind === 'max' ? ops.max(inputs, { axis, keepdims: this.keepdims }) : ops.mean(inputs, { axis, keepdims: this.keepdims });
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), keepdims: this.keepdims, dataFormat: 'channels_last' };
  }
}

export class GlobalAveragePooling1D extends BaseGlobalPooling {
  static override readonly takesMask = true;
  constructor(options: GlobalPoolingOptions = {}) { super(1, 'avg', options); }

  /** With a mask (bool [batch, steps]), the mean over the unmasked steps only, as Keras's. */
  override call(inputs: Tensor, options: CallOptions = {}): Tensor {
    const mask = options.mask;
    if (mask === undefined) return super.call(inputs);
    if (!(mask instanceof TensorClass) || mask.shape.length !== 2 || mask.shape[0] !== inputs.shape[0] || mask.shape[1] !== inputs.shape[1]) {
      throw new Error(`expects one mask of shape [batch, steps] for input ${formatKerasShape(inputs.shape)}`);
    }
    const m = ops.expandDims(ops.cast(mask, inputs.dtype), 2);
    const o = { axis: 1, keepdims: this.keepdims };
    return ops.divide(ops.sum(ops.multiply(inputs, m), o), ops.sum(m, o));
  }
}

/** @example keras.layers.GlobalAveragePooling2D() */
export class GlobalAveragePooling2D extends BaseGlobalPooling {
  constructor(options: GlobalPoolingOptions = {}) { super(2, 'avg', options); }
}

export class GlobalAveragePooling3D extends BaseGlobalPooling {
  constructor(options: GlobalPoolingOptions = {}) { super(3, 'avg', options); }
}

export class GlobalMaxPooling1D extends BaseGlobalPooling {
  constructor(options: GlobalPoolingOptions = {}) { super(1, 'max', options); }
}

export class GlobalMaxPooling2D extends BaseGlobalPooling {
  constructor(options: GlobalPoolingOptions = {}) { super(2, 'max', options); }
}

export class GlobalMaxPooling3D extends BaseGlobalPooling {
  constructor(options: GlobalPoolingOptions = {}) { super(3, 'max', options); }
}
