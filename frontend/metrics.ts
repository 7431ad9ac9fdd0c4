// keras.metrics: stateful metrics (updateState / result / resetState) and Keras's resolution of 'accuracy'.
import { callableClass } from './callable.js';
import { noRecord } from './engine.js';
import type { Loss } from './losses.js';
import * as losses from './losses.js';
import { type TensorLike, convertToTensor } from './ops.js';
import * as ops from './ops.js';
import type { Tensor } from './tensor.js';

/** A metric accumulating a mean of per-sample values. */
export abstract class Metric {
  readonly name: string;
  protected total = 0;
  protected count = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** Per-sample values for a batch. */
  protected abstract values(yTrue: Tensor, yPred: Tensor): Tensor;

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
  constructor(name = 'sparse_categorical_accuracy') { super(name); }
  protected values(yTrue: Tensor, yPred: Tensor): Tensor {
    return ops.cast(ops.equal(classIds(yTrue, yPred), ops.argmax(yPred, -1)), 'float32');
  }
}

export class CategoricalAccuracyMetric extends Metric {
  constructor(name = 'categorical_accuracy') { super(name); }
  protected values(yTrue: Tensor, yPred: Tensor): Tensor {
    return ops.cast(ops.equal(ops.argmax(yTrue, -1), ops.argmax(yPred, -1)), 'float32');
  }
}

export class BinaryAccuracyMetric extends Metric {
  readonly threshold: number;
  constructor(name = 'binary_accuracy', threshold = 0.5) {
    super(name);
    this.threshold = threshold;
  }
  protected values(yTrue: Tensor, yPred: Tensor): Tensor {
    const pred = ops.cast(ops.greater(yPred, this.threshold), 'float32');
    return ops.mean(ops.cast(ops.equal(ops.cast(yTrue, 'float32'), pred), 'float32'), { axis: -1 });
  }
}

/** Exact equality of labels and predictions. */
export class AccuracyMetric extends Metric {
  constructor(name = 'accuracy') { super(name); }
  protected values(yTrue: Tensor, yPred: Tensor): Tensor {
    return ops.cast(ops.equal(ops.cast(yTrue, 'float32'), ops.cast(yPred, 'float32')), 'float32');
  }
}

/** A loss function used as a metric (mae, mse, crossentropies): mean of its per-sample values. */
export class MeanMetricWrapper extends Metric {
  constructor(name: string, readonly loss: Loss) { super(name); }
  protected values(yTrue: Tensor, yPred: Tensor): Tensor {
    return this.loss.call(ops.cast(yTrue, this.loss.targetDtype), ops.cast(yPred, 'float32'));
  }
}

export class MeanAbsoluteErrorMetric extends MeanMetricWrapper {
  constructor(name = 'mean_absolute_error') { super(name, new losses.MeanAbsoluteError()); }
}

export class MeanSquaredErrorMetric extends MeanMetricWrapper {
  constructor(name = 'mean_squared_error') { super(name, new losses.MeanSquaredError()); }
}

/** A running mean of scalar values (Keras's metrics.Mean), used for the loss in fit. */
export class MeanMetric extends Metric {
  constructor(name = 'mean') { super(name); }
  protected values(_yTrue: Tensor, yPred: Tensor): Tensor {
    return yPred;
  }
  /** Adds values with a weight (e.g. a batch loss weighted by its sample count). */
  add(value: number, weight = 1): void {
    this.total += value * weight;
    this.count += weight;
  }
}

export type MetricIdentifier = string | Metric;

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
    default: throw new Error(`unknown metric '${id}'; known: accuracy, sparse_categorical_accuracy, categorical_accuracy, binary_accuracy, mae, mse`);
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
