// Convolution layers: Conv1D, Conv2D, Conv3D (channels_last), on the graph-IR `conv` primitive.
import * as activations from '../activations.js';
import type { InitializerIdentifier } from '../initializers.js';
import * as ops from '../ops.js';
import { windowOut } from '../../ir/ops.js';
import { type SymbolicShape, type Tensor, type Variable, formatKerasShape } from '../tensor.js';
import { Layer, type LayerOptions, uniqueName } from './layer.js';
import { type OptionNames, regularizers } from '../options.js';

/** Keras's default layer name for a class: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d. */
export function kerasLayerName(className: string): string {
  return className.replace(/(.)([A-Z][a-z]+)/g, '$1_$2').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}

export interface ConvOptions extends LayerOptions {
  /** Stride of the window along each spatial axis (one number for all). */
  strides?: number | readonly number[];
  /** 'valid' (no padding), 'same' (TensorFlow's SAME: output = ceil(n / stride)), or 'causal' (Conv1D only). */
  padding?: 'valid' | 'same' | 'causal';
  /** Only 'channels_last' ([N, ...spatial, C]). */
  dataFormat?: 'channels_last';
  /** Dilation of the kernel along each spatial axis; strides and dilation cannot both exceed 1. */
  dilationRate?: number | readonly number[];
  /** Number of channel groups; filters and input channels must both divide by it. */
  groups?: number;
  activation?: activations.ActivationIdentifier;
  useBias?: boolean;
  kernelInitializer?: InitializerIdentifier;
  biasInitializer?: InitializerIdentifier;
}

/** N-D convolution: activation(conv(inputs, kernel) + bias), kernel [...kernelSize, inChannels / groups, filters]. */
export abstract class BaseConv extends Layer {
  static override readonly optionNames = {
    strides: true, padding: true, dataFormat: true, dilationRate: true, groups: true, activation: true, useBias: true, kernelInitializer: true, biasInitializer: true,
  } satisfies OptionNames<ConvOptions, LayerOptions>;
  static override readonly notImplemented = { ...regularizers('kernel', 'bias'), loraRank: null, loraAlpha: null };
  readonly rank: number;
  readonly filters: number;
  readonly kernelSize: number[];
  readonly strides: number[];
  readonly padding: 'valid' | 'same' | 'causal';
  readonly dilationRate: number[];
  readonly groups: number;
  readonly activation: activations.ActivationFn;
  readonly useBias: boolean;
  kernel!: Variable;
  bias: Variable | undefined;
  private readonly options: ConvOptions;

  constructor(rank: number, filters: number, kernelSize: number | readonly number[], options: ConvOptions = {}) {
    super({ ...options, name: options.name ?? uniqueName(kerasLayerName(new.target.name)) });
    const cls = new.target.name;
    if (!Number.isInteger(filters) || filters <= 0) throw new Error(`${cls}: filters must be a positive integer, got ${filters}`);
    this.rank = rank;
    this.filters = filters;
    this.kernelSize = ops.spatialTuple(kernelSize, rank, `${cls}: kernelSize`);
    this.strides = ops.spatialTuple(options.strides ?? 1, rank, `${cls}: strides`);
    this.dilationRate = ops.spatialTuple(options.dilationRate ?? 1, rank, `${cls}: dilationRate`);
    this.padding = options.padding ?? 'valid';
    if (!['valid', 'same', 'causal'].includes(this.padding) || (this.padding === 'causal' && rank !== 1)) {
      throw new Error(`${cls}: padding must be 'valid' or 'same'${rank === 1 ? " or 'causal'" : ''}, got '${this.padding}'`);
    }
    if (options.dataFormat !== undefined && options.dataFormat !== 'channels_last') {
      throw new Error(`${cls}: only dataFormat 'channels_last' is supported, got '${String(options.dataFormat)}'`);
    }
    if (this.strides.some((s) => s > 1) && this.dilationRate.some((d) => d > 1)) {
      throw new Error(`${cls}: strides > 1 is not supported together with dilationRate > 1, got strides ${JSON.stringify(this.strides)} and dilationRate ${JSON.stringify(this.dilationRate)}`);
    }
    this.groups = options.groups ?? 1;
    if (!Number.isInteger(this.groups) || this.groups < 1 || filters % this.groups !== 0) {
      throw new Error(`${cls}: filters (${filters}) must be divisible by groups (${this.groups})`);
    }
    this.activation = activations.get(options.activation);
    this.useBias = options.useBias ?? true;
    this.options = options;
  }

  override build(inputShape: SymbolicShape): void {
    const c = inputShape[inputShape.length - 1];
    if (inputShape.length !== this.rank + 2 || c === null || c === undefined) {
      throw new Error(`expects inputs of rank ${this.rank + 2} ([batch, ...spatial, channels]) with known channels, got ${formatKerasShape(inputShape)}`);
    }
    if (c % this.groups !== 0) throw new Error(`input channels (${c}) must be divisible by groups (${this.groups})`);
    ops.checkWindowFits(inputShape.slice(1, -1), this.kernelSize, this.dilationRate, this.padding, 'kernel size');
    this.kernel = this.addWeight('kernel', [...this.kernelSize, c / this.groups, this.filters], this.options.kernelInitializer ?? 'glorot_uniform');
    if (this.useBias) this.bias = this.addWeight('bias', [this.filters], this.options.biasInitializer ?? 'zeros');
    this.built = true;
  }

  /** [lo, hi] padding per spatial axis for an input's spatial sizes. */
  private pads(spatial: readonly number[]): [number, number][] {
    if (this.padding === 'causal') return [[(this.kernelSize[0]! - 1) * this.dilationRate[0]!, 0]];
    return ops.windowPadding(spatial, this.kernelSize, this.strides, this.dilationRate, this.padding);
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    if (inputShape.length !== this.rank + 2) throw new Error(`expects inputs of rank ${this.rank + 2}, got ${formatKerasShape(inputShape)}`);
    const spatial = inputShape.slice(1, -1);
    ops.checkWindowFits(spatial, this.kernelSize, this.dilationRate, this.padding, 'kernel size');
    const out = spatial.map((n, i) => {
      if (n === null) return null;
      const [lo, hi] = this.pads(spatial.map((m) => m ?? 1))[i]!;
      return windowOut(n, this.kernelSize[i]!, this.strides[i]!, lo, hi, this.dilationRate[i]!);
    });
    return [inputShape[0] ?? null, ...out, this.filters];
  }

  call(inputs: Tensor): Tensor {
    const c = this.kernel.shape[this.rank]! * this.groups;
    if (inputs.rank !== this.rank + 2 || inputs.shape[inputs.rank - 1] !== c) {
      throw new Error(`expected input of rank ${this.rank + 2} with ${c} channels, got shape ${formatKerasShape(inputs.shape)}`);
    }
    let x = inputs;
    if (this.padding === 'causal') x = ops.pad(x, [[0, 0], ...this.pads(x.shape.slice(1, -1)), [0, 0]]);
    let y = ops.conv(x, this.kernel, this.strides, this.padding === 'same' ? 'same' : 'valid', 'channels_last', this.dilationRate);
    if (this.bias) y = ops.add(y, this.bias);
    return this.activation(y);
  }

  override getConfig(): Record<string, unknown> {
    return {
      ...super.getConfig(), filters: this.filters, kernelSize: this.kernelSize, strides: this.strides, padding: this.padding,
      dataFormat: 'channels_last', dilationRate: this.dilationRate, groups: this.groups,
      activation: activations.serialize(this.activation), useBias: this.useBias,
    };
  }
}

/**
 * 1D convolution over [batch, steps, channels].
 * @example keras.layers.Conv1D(16, 3, { padding: 'causal', activation: 'relu' })
 */
export class Conv1D extends BaseConv {
  constructor(filters: number, kernelSize: number | readonly [number], options: ConvOptions = {}) {
    super(1, filters, kernelSize, options);
  }
}

/**
 * 2D convolution over [batch, height, width, channels]; kernel [kh, kw, cin / groups, filters].
 * @example keras.layers.Conv2D(32, 3, { activation: 'relu', padding: 'same' })
 */
export class Conv2D extends BaseConv {
  constructor(filters: number, kernelSize: number | readonly [number, number], options: ConvOptions = {}) {
    super(2, filters, kernelSize, options);
  }
}

/**
 * 3D convolution over [batch, depth, height, width, channels].
 * @example keras.layers.Conv3D(8, [3, 3, 3], { strides: 2 })
 */
export class Conv3D extends BaseConv {
  constructor(filters: number, kernelSize: number | readonly [number, number, number], options: ConvOptions = {}) {
    super(3, filters, kernelSize, options);
  }
}
