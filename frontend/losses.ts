// keras.losses: loss classes and Keras string names; callable like layers: lossFn(yTrue, yPred).
import { type TensorLike, convertToTensor } from './ops.js';
import * as ops from './ops.js';
import { CallableObject, callableClass } from './callable.js';
import { Tensor } from './tensor.js';
import { getMask } from './layers/layer.js';
import { type NotImplemented, type OptionNames, checkOptions } from './options.js';

const REDUCTIONS = ['sum_over_batch_size', 'sum', 'mean', 'none'];
const LOSS_OPTIONS = { reduction: true, name: true } satisfies OptionNames<LossOptions>;

/** Keras's fuzz factor for probabilities (backend.epsilon()). */
export const EPSILON = 1e-7;

export type Reduction = 'sum_over_batch_size' | 'sum' | 'mean' | 'none';

export interface LossOptions {
  reduction?: Reduction;
  name?: string;
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface Loss {
  (yTrue: TensorLike, yPred: TensorLike): Tensor;
}

/** A loss: per-sample values from `call`, then the reduction (mean over all samples by default). */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export abstract class Loss extends CallableObject {
  readonly reduction: Reduction;
  readonly name: string;
  /** Names of the options a loss class takes beyond LossOptions'; any other key is an error. */
  static readonly optionNames: Readonly<Record<string, true>> = {};
  /** The options of the Keras class that kiln does not implement, with their Keras defaults (see options.ts). */
  static readonly notImplemented: NotImplemented = {};

  constructor(name: string, options: LossOptions = {}) {
    super();
    const where = `losses.${new.target.name.replace(/Loss$/, '')}`;
    const cls = new.target as unknown as typeof Loss;
    checkOptions(options, { ...LOSS_OPTIONS, ...cls.optionNames }, where, { dtype: null, ...cls.notImplemented });
    if (options.reduction !== undefined && !REDUCTIONS.includes(options.reduction)) throw new Error(`${where}: reduction must be one of ${REDUCTIONS.join(', ')}, got ${JSON.stringify(options.reduction)}`);
    this.reduction = options.reduction ?? 'sum_over_batch_size';
    this.name = options.name ?? name;
  }

  /** Per-sample losses (the last axis reduced). */
  abstract call(yTrue: Tensor, yPred: Tensor): Tensor;

  /** dtype the targets are cast to ('int32' for sparse labels). */
  get targetDtype(): 'float32' | 'int32' {
    return 'float32';
  }

  /** Checks concrete targets before they are cast (sparse labels must be class ids). */
  protected checkTargets(_yTrue: Tensor, _yPred: Tensor): void {}

  __call__(yTrue: TensorLike, yPred: TensorLike): Tensor {
    const per = this.perSample(yTrue, yPred);
    const mask = maskOf(yPred);
    if (mask) return this.reduceMasked(per, mask);
    if (this.reduction === 'none') return per;
    const total = ops.sum(per);
    return this.reduction === 'sum' ? total : ops.divide(total, Math.max(1, per.size));
  }

  /** Per-sample losses, the targets cast and shaped to the predictions as Keras does. */
  private perSample(yTrue: TensorLike, yPred: TensorLike): Tensor {
    const p = convertToTensor(yPred);
    const t0 = convertToTensor(yTrue);
    this.checkTargets(t0, p);
    let t = ops.cast(t0, this.targetDtype);
    // as Keras: targets [n] against predictions [n, 1] (or the reverse) get the missing unit axis
    if (this.targetDtype === 'float32' && t.rank === p.rank - 1 && p.shape[p.rank - 1] === 1) t = ops.expandDims(t, -1);
    else if (this.targetDtype === 'float32' && t.rank === p.rank + 1 && t.shape[t.rank - 1] === 1) t = ops.squeeze(t, -1);
    return this.call(t, ops.cast(p, 'float32'));
  }

  /**
   * The loss over the first `rows` rows of a batch (an int32 scalar; the rest are padding): per-sample losses at
   * later rows are replaced by 0 before the reduction, and the mean divides by the valid samples. With rows equal to
   * the batch it computes what the plain call does bit for bit (select keeps every value, the sum runs in the same
   * order, and rows * (samples per row) is the same count). Throws when the per-sample losses have no batch axis.
   */
  masked(yTrue: TensorLike, yPred: TensorLike, rows: Tensor): Tensor {
    const p = convertToTensor(yPred);
    const per = this.perSample(yTrue, p);
    const batch = p.shape[0];
    if (per.rank === 0 || per.shape[0] !== batch) throw new NoRowsError(`${this.name}: per-sample losses of shape [${per.shape}] have no batch axis of ${batch}`);
    const mask = maskOf(yPred);
    if (mask) return this.reduceMasked(per, mask, undefined, rows);
    const valid = ops.less(ops.iotaTensor(per.shape, 0), ops.broadcastTo(rows, per.shape));
    const kept = ops.where(valid, per, 0);
    if (this.reduction === 'none') return kept;
    const total = ops.sum(kept);
    return this.reduction === 'sum' ? total : ops.divide(total, ops.multiply(ops.cast(rows, 'float32'), per.size / batch!));
  }

  /**
   * The loss with per-sample weights (a [batch] tensor), as Keras 3's reduce_weighted_values: the weights are brought
   * to the per-sample losses' rank (squeezed or given trailing unit axes), multiplied in, and the reduction divides by
   * the number of losses, not by the weights' sum ('sum_over_batch_size').
   */
  weighted(yTrue: TensorLike, yPred: TensorLike, sampleWeight: Tensor): Tensor {
    const per = this.perSample(yTrue, yPred);
    const mask = maskOf(yPred);
    if (mask) return this.reduceMasked(per, mask, sampleWeight);
    let w = ops.cast(sampleWeight, 'float32');
    if (w.rank === per.rank + 1 && w.shape[w.rank - 1] === 1) w = ops.squeeze(w, -1);
    while (w.rank < per.rank) w = ops.expandDims(w, -1);
    const values = ops.multiply(per, w);
    if (this.reduction === 'none') return values;
    const total = ops.sum(values);
    return this.reduction === 'sum' ? total : ops.divide(total, Math.max(1, values.size));
  }

  /**
   * Per-sample losses under the mask of the predictions (Keras 3's apply_mask, then reduce_weighted_values): for a
   * mean, a real step weighs total/valid (the mask's size over its true entries; 0 when none is) and a masked one 0,
   * so that the sum over the losses' size is the mean over the real steps; for 'sum' and 'none' the mask is 0/1.
   * Sample weights [batch] multiply the mask (given trailing unit axes: Keras itself cannot broadcast a [batch] weight
   * against a [batch, time] mask and raises). With `rows` (a padded batch), steps of later rows count as masked and
   * the sizes are those of the first `rows` rows.
   */
  private reduceMasked(per: Tensor, mask: Tensor, sampleWeight?: Tensor, rows?: Tensor): Tensor {
    const batch = mask.shape[0]!;
    let m = ops.cast(mask, 'bool');
    const rowsOf = (shape: readonly number[]) => ops.less(ops.iotaTensor(shape, 0), ops.broadcastTo(rows!, shape));
    if (rows) m = ops.logicalAnd(m, rowsOf(m.shape));
    const size = (t: Tensor) => (rows ? ops.multiply(ops.cast(rows, 'float32'), t.size / batch) : t.size);
    let w: Tensor;
    if (this.reduction === 'sum_over_batch_size' || this.reduction === 'mean') {
      const valid = ops.sum(ops.cast(m, 'float32'));
      w = ops.where(m, divideNoNan(size(m), valid), 0);
    } else w = ops.cast(m, 'float32');
    if (sampleWeight) {
      let sw = ops.cast(sampleWeight, 'float32');
      [w, sw] = sameRank(w, sw);
      while (sw.rank < w.rank) sw = ops.expandDims(sw, -1);
      w = ops.multiply(sw, w);
    }
    let [values, weights] = sameRank(per, w);
    if (weights.rank > values.rank) throw new Error(`${this.name}: the mask of shape [${mask.shape}] has more axes than the per-sample losses [${per.shape}]`);
    values = ops.multiply(values, weights);
    if (rows) values = ops.where(rowsOf(values.shape), values, 0);
    if (this.reduction === 'none') return values;
    const total = ops.sum(values);
    return this.reduction === 'sum' ? total : divideNoNan(total, size(values));
  }

  getConfig(): Record<string, unknown> {
    return { name: this.name, reduction: this.reduction };
  }
}

/** The mask a model's output carries (Keras's _keras_mask on y_pred), if yPred is a tensor with one. */
function maskOf(yPred: TensorLike): Tensor | undefined {
  return yPred instanceof Tensor ? getMask(yPred) : undefined;
}

/** a / b, 0 where b is 0 (Keras's divide_no_nan). */
function divideNoNan(a: TensorLike, b: TensorLike): Tensor {
  const zero = ops.equal(b, 0);
  return ops.where(zero, 0, ops.divide(a, ops.where(zero, 1, b)));
}

/** Keras's squeeze_or_expand_to_same_rank: a trailing unit axis dropped (or added to a rank-1 other) when ranks differ by one. */
export function sameRank(x1: Tensor, x2: Tensor): [Tensor, Tensor] {
  if (x1.rank === x2.rank + 1 && x1.shape[x1.rank - 1] === 1) return x2.rank === 1 ? [x1, ops.expandDims(x2, -1)] : [ops.squeeze(x1, -1), x2];
  if (x2.rank === x1.rank + 1 && x2.shape[x2.rank - 1] === 1) return x1.rank === 1 ? [ops.expandDims(x1, -1), x2] : [x1, ops.squeeze(x2, -1)];
  return [x1, x2];
}

/** Loss.masked of a loss whose per-sample values have no batch axis (a custom loss that reduces the batch itself). */
export class NoRowsError extends Error {}

function checkShapes(name: string, yTrue: Tensor, yPred: Tensor): void {
  const ok = yTrue.shape.length === yPred.shape.length && yTrue.shape.every((d, i) => d === yPred.shape[i] || d === 1 || yPred.shape[i] === 1);
  if (!ok) throw new Error(`${name}: y_true shape [${yTrue.shape}] does not match y_pred shape [${yPred.shape}]`);
}

export class MeanSquaredErrorLoss extends Loss {
  constructor(options: LossOptions = {}) { super('mean_squared_error', options); }
  call(yTrue: Tensor, yPred: Tensor): Tensor {
    checkShapes(this.name, yTrue, yPred);
    return ops.mean(ops.square(ops.subtract(yPred, yTrue)), { axis: -1 });
  }
}

export class MeanAbsoluteErrorLoss extends Loss {
  constructor(options: LossOptions = {}) { super('mean_absolute_error', options); }
  call(yTrue: Tensor, yPred: Tensor): Tensor {
    checkShapes(this.name, yTrue, yPred);
    return ops.mean(ops.abs(ops.subtract(yPred, yTrue)), { axis: -1 });
  }
}

export interface HuberOptions extends LossOptions {
  delta?: number;
}

/** 0.5 e^2 for |e| <= delta, delta (|e| - 0.5 delta) beyond; mean over the last axis. */
export class HuberLoss extends Loss {
  static override readonly optionNames = { delta: true } satisfies OptionNames<HuberOptions, LossOptions>;
  readonly delta: number;
  constructor(options: HuberOptions = {}) {
    super('huber_loss', options);
    this.delta = options.delta ?? 1;
  }
  call(yTrue: Tensor, yPred: Tensor): Tensor {
    checkShapes(this.name, yTrue, yPred);
    const err = ops.abs(ops.subtract(yPred, yTrue));
    const quad = ops.minimum(err, this.delta);
    const lin = ops.subtract(err, quad);
    return ops.mean(ops.add(ops.multiply(ops.square(quad), 0.5), ops.multiply(lin, this.delta)), { axis: -1 });
  }
}

export interface SparseCrossentropyOptions extends LossOptions {
  /** Whether yPred holds logits rather than probabilities. */
  fromLogits?: boolean;
}

export interface CrossentropyOptions extends SparseCrossentropyOptions {
  /** Axis the loss reduces (the class axis of the categorical loss); -1 = the last. */
  axis?: number;
}

const CROSSENTROPY_OPTIONS = { fromLogits: true, axis: true } satisfies OptionNames<CrossentropyOptions, LossOptions>;

export class BinaryCrossentropyLoss extends Loss {
  static override readonly optionNames = CROSSENTROPY_OPTIONS;
  static override readonly notImplemented = { labelSmoothing: 0 };
  readonly fromLogits: boolean;
  readonly axis: number;
  constructor(options: CrossentropyOptions = {}) {
    super('binary_crossentropy', options);
    this.fromLogits = options.fromLogits ?? false;
    this.axis = options.axis ?? -1;
  }
  call(yTrue: Tensor, yPred: Tensor): Tensor {
    checkShapes(this.name, yTrue, yPred);
    let bce: Tensor;
    if (this.fromLogits) {
      // max(x, 0) - x z + log(1 + exp(-|x|))
      bce = ops.add(ops.subtract(ops.relu(yPred), ops.multiply(yPred, yTrue)), ops.log1p(ops.exp(ops.negative(ops.abs(yPred)))));
    } else {
      const p = ops.clip(yPred, EPSILON, 1 - EPSILON);
      const pos = ops.multiply(yTrue, ops.log(p));
      const neg = ops.multiply(ops.subtract(1, yTrue), ops.log(ops.subtract(1, p)));
      bce = ops.negative(ops.add(pos, neg));
    }
    return ops.mean(bce, { axis: this.axis });
  }
}

export class CategoricalCrossentropyLoss extends Loss {
  static override readonly optionNames = CROSSENTROPY_OPTIONS;
  static override readonly notImplemented = { labelSmoothing: 0 };
  readonly fromLogits: boolean;
  readonly axis: number;
  constructor(options: CrossentropyOptions = {}) {
    super('categorical_crossentropy', options);
    this.fromLogits = options.fromLogits ?? false;
    this.axis = options.axis ?? -1;
  }
  call(yTrue: Tensor, yPred: Tensor): Tensor {
    checkShapes(this.name, yTrue, yPred);
    return ops.negative(ops.sum(ops.multiply(yTrue, logProbs(yPred, this.fromLogits, this.axis)), { axis: this.axis }));
  }
}

/** log-probabilities: log_softmax of logits, or log of probabilities renormalized and clipped as Keras does. */
function logProbs(yPred: Tensor, fromLogits: boolean, axis: number): Tensor {
  if (fromLogits) return ops.logSoftmax(yPred, axis);
  const p = ops.divide(yPred, ops.sum(yPred, { axis, keepdims: true }));
  return ops.log(ops.clip(p, EPSILON, 1 - EPSILON));
}

/** Cross-entropy with integer class labels (shape [batch] or [batch, 1]). */
export class SparseCategoricalCrossentropyLoss extends Loss {
  static override readonly optionNames = { fromLogits: true } satisfies OptionNames<SparseCrossentropyOptions, LossOptions>;
  static override readonly notImplemented = { ignoreClass: null, axis: -1 };
  readonly fromLogits: boolean;
  constructor(options: SparseCrossentropyOptions = {}) {
    super('sparse_categorical_crossentropy', options);
    this.fromLogits = options.fromLogits ?? false;
  }
  override get targetDtype(): 'int32' {
    return 'int32';
  }

  /**
   * Throws unless every (concrete) label is an integer class id in [0, classes), naming the first bad label's row,
   * as Keras raises; out-of-range labels would otherwise give a zero one-hot row and train on nothing.
   */
  checkLabels(labels: Tensor, classes: number, what: string): void {
    if (labels.isSymbolic) return;
    const d = labels.data, perRow = labels.rank && labels.shape[0] ? labels.size / labels.shape[0] : 1;
    for (let i = 0; i < d.length; i++) {
      const l = d[i]!;
      if (!(Number.isInteger(l) && l >= 0 && l < classes)) throw new Error(`${what}: label ${l} at row ${Math.floor(i / perRow)} is not a class id in [0, ${classes})`);
    }
  }

  protected override checkTargets(yTrue: Tensor, yPred: Tensor): void {
    if (yPred.rank > 0) this.checkLabels(yTrue, yPred.shape[yPred.rank - 1]!, this.name);
  }
  call(yTrue: Tensor, yPred: Tensor): Tensor {
    let labels = yTrue;
    if (labels.rank === yPred.rank && labels.shape[labels.rank - 1] === 1) labels = ops.squeeze(labels, -1);
    if (labels.rank !== yPred.rank - 1 || labels.shape.some((d, i) => d !== yPred.shape[i])) {
      throw new Error(`${this.name}: labels of shape [${yTrue.shape}] do not match predictions of shape [${yPred.shape}] (expected [${yPred.shape.slice(0, -1)}])`);
    }
    const classes = yPred.shape[yPred.rank - 1]!;
    const oneHot = ops.oneHot(labels, classes);
    return ops.negative(ops.sum(ops.multiply(oneHot, logProbs(yPred, this.fromLogits, -1)), { axis: -1 }));
  }
}

const BY_NAME: Record<string, () => Loss> = {
  mse: () => new MeanSquaredErrorLoss(), mean_squared_error: () => new MeanSquaredErrorLoss(),
  mae: () => new MeanAbsoluteErrorLoss(), mean_absolute_error: () => new MeanAbsoluteErrorLoss(),
  huber: () => new HuberLoss(), huber_loss: () => new HuberLoss(),
  binary_crossentropy: () => new BinaryCrossentropyLoss(),
  categorical_crossentropy: () => new CategoricalCrossentropyLoss(),
  sparse_categorical_crossentropy: () => new SparseCategoricalCrossentropyLoss(),
  // class names, as keras.losses.get accepts them
  MeanSquaredError: () => new MeanSquaredErrorLoss(), MeanAbsoluteError: () => new MeanAbsoluteErrorLoss(), Huber: () => new HuberLoss(),
  BinaryCrossentropy: () => new BinaryCrossentropyLoss(), CategoricalCrossentropy: () => new CategoricalCrossentropyLoss(),
  SparseCategoricalCrossentropy: () => new SparseCategoricalCrossentropyLoss(),
};

export type LossIdentifier = string | Loss | ((yTrue: Tensor, yPred: Tensor) => Tensor);

/** Resolves a Keras loss name, a Loss, or a function returning per-sample losses. */
export function get(id: LossIdentifier): Loss {
  if (id instanceof Loss) return id;
  if (typeof id === 'function') {
    const fn = id;
    return new (class extends Loss {
      call(t: Tensor, p: Tensor): Tensor { return fn(t, p); }
    })(fn.name || 'custom_loss');
  }
  const f = BY_NAME[id];
  if (!f) throw new Error(`unknown loss '${id}'; known: ${Object.keys(BY_NAME).join(', ')}`);
  return f();
}

// Keras names, constructible with or without `new`.
export const MeanSquaredError = callableClass(MeanSquaredErrorLoss);
export type MeanSquaredError = MeanSquaredErrorLoss;
export const MeanAbsoluteError = callableClass(MeanAbsoluteErrorLoss);
export type MeanAbsoluteError = MeanAbsoluteErrorLoss;
export const Huber = callableClass(HuberLoss);
export type Huber = HuberLoss;
export const BinaryCrossentropy = callableClass(BinaryCrossentropyLoss);
export type BinaryCrossentropy = BinaryCrossentropyLoss;
export const CategoricalCrossentropy = callableClass(CategoricalCrossentropyLoss);
export type CategoricalCrossentropy = CategoricalCrossentropyLoss;
export const SparseCategoricalCrossentropy = callableClass(SparseCategoricalCrossentropyLoss);
export type SparseCategoricalCrossentropy = SparseCategoricalCrossentropyLoss;
