// Normalization layers: BatchNormalization (batch statistics while training, moving ones at inference) and LayerNormalization.
import { normAxis } from '../../ir/types.js';
import { apply, currentTrace, noRecord } from '../engine.js';
import type { InitializerIdentifier } from '../initializers.js';
import * as ops from '../ops.js';
import { type SymbolicShape, type Tensor, type Variable, formatKerasShape } from '../tensor.js';
import { type CallOptions, Layer, type LayerOptions } from './layer.js';
import { type OptionNames, regularizers } from '../options.js';

/** Axes as a sorted list of non-negative indices for a rank, each with a known size. */
function resolveAxes(axis: number | readonly number[], shape: SymbolicShape): number[] {
  const axes = [...new Set((typeof axis === 'number' ? [axis] : axis).map((a) => normAxis(a, shape.length)))].sort((a, b) => a - b);
  for (const a of axes) {
    if (shape[a] === null || shape[a] === undefined) throw new Error(`axis ${a} of input shape ${formatKerasShape(shape)} must be known`);
  }
  return axes;
}

/** Reshapes a parameter over `axes` so it broadcasts against an input of `rank` ([1, C, 1] style). */
function broadcastable(p: Tensor, axes: readonly number[], shape: readonly number[]): Tensor {
  return ops.reshape(p, shape.map((d, i) => (axes.includes(i) ? d : 1)));
}

export interface BatchNormalizationOptions extends LayerOptions {
  /** The features axis (normalized per entry of it); -1 = channels_last. */
  axis?: number;
  /** Moving-average momentum: moving = moving * momentum + batch * (1 - momentum). */
  momentum?: number;
  /** Added to the variance before the square root. */
  epsilon?: number;
  /** Add the learned offset beta. */
  center?: boolean;
  /** Multiply by the learned scale gamma. */
  scale?: boolean;
  betaInitializer?: InitializerIdentifier;
  gammaInitializer?: InitializerIdentifier;
  movingMeanInitializer?: InitializerIdentifier;
  movingVarianceInitializer?: InitializerIdentifier;
  /**
   * Keras's SyncBatchNormalization: while training data-parallel (kiln compile --train --distributed mpi or nccl),
   * the batch mean and variance are those of the whole global batch, all-reduced over the ranks in the forward pass
   * (and the backward pass through them); on one process the same as local statistics. Default false: each rank's.
   */
  synchronized?: boolean;
}

/**
 * Normalizes each feature with the batch's mean and variance while training (training: true) and with the
 * moving statistics otherwise; weights in Keras order gamma, beta, moving_mean, moving_variance.
 * The moving statistics are updated by training-mode calls: eager ones (custom loops) assign them at once, and
 * the traced training step of fit updates them in place with the weights.
 * @example keras.layers.BatchNormalization()
 */
export class BatchNormalization extends Layer {
  static override readonly optionNames = {
    axis: true, momentum: true, epsilon: true, center: true, scale: true,
    betaInitializer: true, gammaInitializer: true, movingMeanInitializer: true, movingVarianceInitializer: true, synchronized: true,
  } satisfies OptionNames<BatchNormalizationOptions, LayerOptions>;
  static override readonly notImplemented = { ...regularizers('beta', 'gamma'), renorm: false, renormClipping: null, renormMomentum: 0.99 };
  static override readonly callNotImplemented = { mask: null };
  readonly axis: number;
  readonly momentum: number;
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  readonly synchronized: boolean;
  gamma: Variable | undefined;
  beta: Variable | undefined;
  movingMean!: Variable;
  movingVariance!: Variable;
  private axes: number[] = [];
  private readonly options: BatchNormalizationOptions;

  constructor(options: BatchNormalizationOptions = {}) {
    super(options);
    this.axis = options.axis ?? -1;
    this.momentum = options.momentum ?? 0.99;
    this.epsilon = options.epsilon ?? 1e-3;
    if (!Number.isInteger(this.axis)) throw new Error(`BatchNormalization: axis must be an integer, got ${this.axis}`);
    if (!(this.epsilon > 0)) throw new Error(`BatchNormalization: epsilon must be positive, got ${this.epsilon}`);
    this.center = options.center ?? true;
    this.scale = options.scale ?? true;
    this.synchronized = options.synchronized ?? false;
    if (typeof this.synchronized !== 'boolean') throw new Error(`BatchNormalization: synchronized must be true or false, got ${String(this.synchronized)}`);
    this.options = options;
  }

  override build(inputShape: SymbolicShape): void {
    this.axes = resolveAxes(this.axis, inputShape);
    const shape = [inputShape[this.axes[0]!] as number];
    const o = this.options;
    if (this.scale) this.gamma = this.addWeight('gamma', shape, o.gammaInitializer ?? 'ones');
    if (this.center) this.beta = this.addWeight('beta', shape, o.betaInitializer ?? 'zeros');
    this.movingMean = this.addWeight('moving_mean', shape, o.movingMeanInitializer ?? 'zeros', false);
    this.movingVariance = this.addWeight('moving_variance', shape, o.movingVarianceInitializer ?? 'ones', false);
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    return inputShape;
  }

  call(inputs: Tensor, options: CallOptions): Tensor {
    const axes = this.axes.length ? this.axes : resolveAxes(this.axis, inputs.shape);
    const shape = inputs.shape;
    if (shape[axes[0]!] !== this.movingMean.shape[0]) {
      throw new Error(`expected ${this.movingMean.shape[0]} features on axis ${axes[0]}, got shape ${formatKerasShape(shape)}`);
    }
    const x = ops.cast(inputs, 'float32');
    let mean: Tensor, variance: Tensor;
    if (options.training && this.trainable) {
      const reduce = shape.map((_, i) => i).filter((i) => !axes.includes(i));
      if (this.synchronized) [mean, variance] = syncMoments(x, reduce);
      else {
        mean = ops.mean(x, { axis: reduce, keepdims: true });
        variance = ops.mean(ops.square(ops.subtract(x, mean)), { axis: reduce, keepdims: true });
      }
      this.updateMoving(ops.reshape(mean, [-1]), ops.reshape(variance, [-1]));
    } else {
      mean = broadcastable(this.movingMean, axes, shape);
      variance = broadcastable(this.movingVariance, axes, shape);
    }
    let y = ops.multiply(ops.subtract(x, mean), ops.rsqrt(ops.add(variance, this.epsilon)));
    if (this.gamma) y = ops.multiply(y, broadcastable(this.gamma, axes, shape));
    if (this.beta) y = ops.add(y, broadcastable(this.beta, axes, shape));
    return y;
  }

  /**
   * moving = moving * momentum + batch * (1 - momentum), as Keras 3 (biased batch variance): assigned at once in an
   * eager call (outside any tape), an in-place update of the training step while tracing (fit).
   */
  private updateMoving(mean: Tensor, variance: Tensor): void {
    const m = this.momentum;
    const blend = (moving: Variable, batch: Tensor) => ops.add(ops.multiply(moving, m), ops.multiply(batch, 1 - m));
    const tr = currentTrace();
    if (tr) {
      tr.update(this.movingMean, blend(this.movingMean, mean));
      tr.update(this.movingVariance, blend(this.movingVariance, variance));
      return;
    }
    noRecord(() => {
      this.movingMean.assign(blend(this.movingMean, mean));
      this.movingVariance.assign(blend(this.movingVariance, variance));
    });
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), axis: this.axis, momentum: this.momentum, epsilon: this.epsilon, center: this.center, scale: this.scale, synchronized: this.synchronized };
  }
}

/**
 * The mean and (biased) variance over the `reduce` axes of x summed over the processes of a data-parallel step, kept
 * as dims: the sums of this process and its count of values go through one all-reduce, then the squared deviations
 * from the global mean through a second. Each is ops.mean's sum / count, so on one process (the all-reduce the
 * identity) they are local statistics bit for bit. The gradient through the all-reduce (an all-reduce of the
 * gradient) is exact when every process weighs its loss alike, as data-parallel steps of whole batches do.
 */
function syncMoments(x: Tensor, reduce: readonly number[]): [Tensor, Tensor] {
  const kept = x.shape.map((d, i) => (reduce.includes(i) ? 1 : d));
  const c = kept.reduce((a, b) => a * b, 1), count = reduce.reduce((a, i) => a * x.shape[i]!, 1);
  const sums = apply('allreduce', [ops.concatenate([ops.reshape(ops.sum(x, { axis: [...reduce] }), [c]), ops.array([count], 'float32')], 0)]);
  const total = ops.broadcastTo(ops.slice(sums, [c], [1]), [c]);
  const mean = ops.reshape(ops.divide(ops.slice(sums, [0], [c]), total), kept);
  const squares = apply('allreduce', [ops.reshape(ops.sum(ops.square(ops.subtract(x, mean)), { axis: [...reduce] }), [c])]);
  return [mean, ops.reshape(ops.divide(squares, total), kept)];
}

export interface LayerNormalizationOptions extends LayerOptions {
  /** Axis or axes normalized together (each sample separately); -1 = the last. */
  axis?: number | readonly number[];
  /** Added to the variance before the square root. */
  epsilon?: number;
  /** Add the learned offset beta. */
  center?: boolean;
  /** Multiply by the learned scale gamma. */
  scale?: boolean;
  betaInitializer?: InitializerIdentifier;
  gammaInitializer?: InitializerIdentifier;
}

/**
 * Normalizes each sample over `axis` to zero mean and unit variance, then scales by gamma and shifts by beta
 * (both shaped like the normalized axes); weights gamma, beta.
 * @example keras.layers.LayerNormalization({ epsilon: 1e-6 })
 */
export class LayerNormalization extends Layer {
  static override readonly optionNames = {
    axis: true, epsilon: true, center: true, scale: true, betaInitializer: true, gammaInitializer: true,
  } satisfies OptionNames<LayerNormalizationOptions, LayerOptions>;
  static override readonly notImplemented = { ...regularizers('beta', 'gamma'), rmsScaling: false };
  readonly axis: number | readonly number[];
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  gamma: Variable | undefined;
  beta: Variable | undefined;
  private axes: number[] = [];
  private readonly options: LayerNormalizationOptions;

  constructor(options: LayerNormalizationOptions = {}) {
    super(options);
    this.supportsMasking = true;
    this.axis = options.axis ?? -1;
    this.epsilon = options.epsilon ?? 1e-3;
    if (!(this.epsilon > 0)) throw new Error(`LayerNormalization: epsilon must be positive, got ${this.epsilon}`);
    this.center = options.center ?? true;
    this.scale = options.scale ?? true;
    this.options = options;
  }

  override build(inputShape: SymbolicShape): void {
    this.axes = resolveAxes(this.axis, inputShape);
    const shape = this.axes.map((a) => inputShape[a] as number);
    if (this.scale) this.gamma = this.addWeight('gamma', shape, this.options.gammaInitializer ?? 'ones');
    if (this.center) this.beta = this.addWeight('beta', shape, this.options.betaInitializer ?? 'zeros');
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    return inputShape;
  }

  call(inputs: Tensor): Tensor {
    const axes = this.axes.length ? this.axes : resolveAxes(this.axis, inputs.shape);
    const x = ops.cast(inputs, 'float32');
    const mean = ops.mean(x, { axis: axes, keepdims: true });
    const centered = ops.subtract(x, mean);
    const variance = ops.mean(ops.square(centered), { axis: axes, keepdims: true });
    let y = ops.multiply(centered, ops.rsqrt(ops.add(variance, this.epsilon)));
    if (this.gamma) y = ops.multiply(y, broadcastable(this.gamma, axes, x.shape));
    if (this.beta) y = ops.add(y, broadcastable(this.beta, axes, x.shape));
    return y;
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), axis: this.axis, epsilon: this.epsilon, center: this.center, scale: this.scale };
  }
}
