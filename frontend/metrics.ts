// keras.metrics: stateful metrics (updateState / result / resetState) and Keras's resolution of 'accuracy'.
import { callableClass } from './callable.js';
import { noRecord } from './engine.js';
import { describe } from './errors.js';
import type { Loss } from './losses.js';
import * as losses from './losses.js';
import { type TensorLike, convertToTensor } from './ops.js';
import * as ops from './ops.js';
import { type OptionNames, checkOptions } from './options.js';
import type { Tensor } from './tensor.js';

export interface MetricOptions {
  /** The metric's name in logs and History (default: its Keras name, e.g. 'sparse_categorical_accuracy'). */
  name?: string;
  /** Only 'float32': metrics accumulate in float32. */
  dtype?: 'float32';
}

const METRIC_OPTIONS = { name: true, dtype: true } satisfies OptionNames<MetricOptions>;

/** A metric accumulating a mean of per-sample values. */
export abstract class Metric {
  readonly name: string;
  protected total = 0;
  protected count = 0;
  /** Names of the options a metric class takes beyond MetricOptions'; any other key is an error. */
  static readonly optionNames: Readonly<Record<string, true>> = {};

  /** `options` is the options object, or the name alone (Keras's first positional argument). */
  constructor(defaultName: string, options?: string | MetricOptions) {
    const where = `metrics.${new.target.name.replace(/Metric$/, '')}`;
    const opts = typeof options === 'string' ? { name: options } : options;
    checkOptions(opts, { ...METRIC_OPTIONS, ...(new.target as unknown as typeof Metric).optionNames }, where);
    if (opts?.name !== undefined && (typeof opts.name !== 'string' || opts.name === '')) throw new TypeError(`${where}: name must be a non-empty string, got ${describe(opts.name)}`);
    if (opts?.dtype !== undefined && opts.dtype !== 'float32') throw new Error(`${where}: dtype must be 'float32' (kiln's metrics accumulate in float32), got ${describe(opts.dtype)}`);
    this.name = opts?.name ?? defaultName;
  }

  /** Per-sample values for a batch. */
  protected abstract values(yTrue: Tensor, yPred: Tensor): Tensor;

  /** Which way the metric improves (Keras's _direction), for callbacks in mode 'auto'. */
  get direction(): 'up' | 'down' {
    return 'up';
  }

  updateState(yTrue: TensorLike, yPred: TensorLike): void {
    noRecord(() => {
      const v = this.values(convertToTensor(yTrue), convertToTensor(yPred));
      const d = v.data;
      for (let i = 0; i < d.length; i++) this.total += d[i]!;
      this.count += d.length;
    });
  }

  /** The mean so far, as a float32 scalar tensor (0 before any update). */
  result(): Tensor {
    return ops.full([], this.count ? this.total / this.count : 0);
  }

  resetState(): void {
    this.total = 0;
    this.count = 0;
  }
}

/** Labels as int32 class ids: [batch] from [batch] or [batch, 1]. */
function classIds(yTrue: Tensor, yPred: Tensor): Tensor {
  let t = yTrue;
  if (t.rank === yPred.rank && t.shape[t.rank - 1] === 1) t = ops.squeeze(t, -1);
  return ops.cast(t, 'int32');
}

export class SparseCategoricalAccuracyMetric extends Metric {
  constructor(options?: string | MetricOptions) { super('sparse_categorical_accuracy', options); }
  protected values(yTrue: Tensor, yPred: Tensor): Tensor {
    return ops.cast(ops.equal(classIds(yTrue, yPred), ops.argmax(yPred, -1)), 'float32');
  }
}

export class CategoricalAccuracyMetric extends Metric {
  constructor(options?: string | MetricOptions) { super('categorical_accuracy', options); }
  protected values(yTrue: Tensor, yPred: Tensor): Tensor {
    return ops.cast(ops.equal(ops.argmax(yTrue, -1), ops.argmax(yPred, -1)), 'float32');
  }
}

export interface BinaryAccuracyOptions extends MetricOptions {
  /** Predictions above it count as 1 (default 0.5). */
  threshold?: number;
}

export class BinaryAccuracyMetric extends Metric {
  static override readonly optionNames = { threshold: true } satisfies OptionNames<BinaryAccuracyOptions, MetricOptions>;
  readonly threshold: number;
  constructor(options?: string | BinaryAccuracyOptions) {
    super('binary_accuracy', options);
    const threshold = typeof options === 'object' ? options.threshold : undefined;
    if (threshold !== undefined && !(typeof threshold === 'number' && Number.isFinite(threshold))) throw new TypeError(`metrics.BinaryAccuracy: threshold must be a finite number, got ${describe(threshold)}`);
    this.threshold = threshold ?? 0.5;
  }
  protected values(yTrue: Tensor, yPred: Tensor): Tensor {
    const pred = ops.cast(ops.greater(yPred, this.threshold), 'float32');
    return ops.mean(ops.cast(ops.equal(ops.cast(yTrue, 'float32'), pred), 'float32'), { axis: -1 });
  }
}

/** Exact equality of labels and predictions. */
export class AccuracyMetric extends Metric {
  constructor(options?: string | MetricOptions) { super('accuracy', options); }
  protected values(yTrue: Tensor, yPred: Tensor): Tensor {
    return ops.cast(ops.equal(ops.cast(yTrue, 'float32'), ops.cast(yPred, 'float32')), 'float32');
  }
}

/** A loss function used as a metric (mae, mse, crossentropies): mean of its per-sample values. */
export class MeanMetricWrapper extends Metric {
  constructor(defaultName: string, readonly loss: Loss, options?: string | MetricOptions) { super(defaultName, options); }
  protected values(yTrue: Tensor, yPred: Tensor): Tensor {
    return this.loss.call(ops.cast(yTrue, this.loss.targetDtype), ops.cast(yPred, 'float32'));
  }
  override get direction(): 'up' | 'down' {
    return 'down';
  }
}

export class MeanAbsoluteErrorMetric extends MeanMetricWrapper {
  constructor(options?: string | MetricOptions) { super('mean_absolute_error', new losses.MeanAbsoluteError(), options); }
}

export class MeanSquaredErrorMetric extends MeanMetricWrapper {
  constructor(options?: string | MetricOptions) { super('mean_squared_error', new losses.MeanSquaredError(), options); }
}

/** A running mean of scalar values (Keras's metrics.Mean), used for the loss in fit. */
export class MeanMetric extends Metric {
  constructor(options?: string | MetricOptions) { super('mean', options); }
  protected values(_yTrue: Tensor, yPred: Tensor): Tensor {
    return yPred;
  }
  override get direction(): 'up' | 'down' {
    return 'down';
  }
  /** Adds values with a weight (e.g. a batch loss weighted by its sample count). */
  add(value: number, weight = 1): void {
    this.total += value * weight;
    this.count += weight;
  }
}

export type MetricIdentifier = string | Metric;

/** The metric names compile takes ('acc' is Keras's alias of 'accuracy'). */
export const METRIC_NAMES = ['accuracy', 'acc', 'sparse_categorical_accuracy', 'categorical_accuracy', 'binary_accuracy', 'mae', 'mean_absolute_error', 'mse', 'mean_squared_error'];

/** Throws unless `id` is a metric name or a metric object; `where` names the call (compile). */
export function checkMetric(id: unknown, where: string): void {
  if (id instanceof Metric) return;
  if (typeof id !== 'string') throw new TypeError(`${where}: a metric is a name or a keras.metrics object, got ${describe(id)}`);
  if (!METRIC_NAMES.includes(id)) throw new Error(`${where}: unknown metric '${id}'; known: ${METRIC_NAMES.join(', ')}`);
}

/**
 * Resolves a metric name as Keras compile does: 'accuracy'/'acc' picks binary, sparse or categorical
 * accuracy from the loss and the output shape; 'mae', 'mse' keep Keras's short names.
 */
export function get(id: MetricIdentifier, loss?: Loss, outputShape?: readonly (number | null)[]): Metric {
  if (id instanceof Metric) return id;
  switch (id) {
    case 'accuracy': case 'acc': {
      if (loss instanceof losses.SparseCategoricalCrossentropy) return new SparseCategoricalAccuracyMetric(id);
      if (loss instanceof losses.CategoricalCrossentropy) return new CategoricalAccuracyMetric(id);
      if (loss instanceof losses.BinaryCrossentropy || outputShape?.[outputShape.length - 1] === 1) return new BinaryAccuracyMetric(id);
      return new CategoricalAccuracyMetric(id);
    }
    case 'sparse_categorical_accuracy': return new SparseCategoricalAccuracyMetric();
    case 'categorical_accuracy': return new CategoricalAccuracyMetric();
    case 'binary_accuracy': return new BinaryAccuracyMetric();
    case 'mae': return new MeanAbsoluteErrorMetric('mae');
    case 'mean_absolute_error': return new MeanAbsoluteErrorMetric();
    case 'mse': return new MeanSquaredErrorMetric('mse');
    case 'mean_squared_error': return new MeanSquaredErrorMetric();
    default: throw new Error(`unknown metric '${id}'; known: ${METRIC_NAMES.join(', ')}`);
  }
}

// Keras names, constructible with or without `new`.
export const SparseCategoricalAccuracy = callableClass(SparseCategoricalAccuracyMetric);
export type SparseCategoricalAccuracy = SparseCategoricalAccuracyMetric;
export const CategoricalAccuracy = callableClass(CategoricalAccuracyMetric);
export type CategoricalAccuracy = CategoricalAccuracyMetric;
export const BinaryAccuracy = callableClass(BinaryAccuracyMetric);
export type BinaryAccuracy = BinaryAccuracyMetric;
export const Accuracy = callableClass(AccuracyMetric);
export type Accuracy = AccuracyMetric;
export const MeanAbsoluteError = callableClass(MeanAbsoluteErrorMetric);
export type MeanAbsoluteError = MeanAbsoluteErrorMetric;
export const MeanSquaredError = callableClass(MeanSquaredErrorMetric);
export type MeanSquaredError = MeanSquaredErrorMetric;
export const Mean = callableClass(MeanMetric);
export type Mean = MeanMetric;
