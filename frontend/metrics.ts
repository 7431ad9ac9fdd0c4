// keras.metrics: stateful metrics (updateState / result / resetState) and Keras's resolution of 'accuracy'.
import { callableClass } from './callable.js';
import { noRecord } from './engine.js';
import { describe } from './errors.js';
import type { Loss } from './losses.js';
import * as losses from './losses.js';
import { type TensorLike, convertToTensor } from './ops.js';
import * as ops from './ops.js';
import { type OptionNames, checkOptions } from './options.js';
import { Tensor } from './tensor.js';
import { getMask } from './layers/layer.js';

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

  /**
   * Adds a batch; with sampleWeight (one weight per sample) the mean is weighted, as Keras's Mean(values, sample_weight).
   * Predictions that carry a mask (a masked model's output) weigh each step by it, as Keras's MeanMetricWrapper
   * (apply_mask with reduction 'sum'): the mean is over the real steps.
   */
  updateState(yTrue: TensorLike, yPred: TensorLike, sampleWeight?: TensorLike): void {
    noRecord(() => {
      const mask = yPred instanceof Tensor ? getMask(yPred) : undefined;
      const v = this.values(convertToTensor(yTrue), convertToTensor(yPred));
      const d = v.data;
      if (mask) {
        const w = maskWeights(mask, sampleWeight, v, this.name), per = d.length / w.length;
        // values past the mask's axes are averaged within their step (Keras reduces them with a mean first)
        for (let i = 0; i < d.length; i++) {
          const wi = w[Math.floor(i / per)]! / per;
          this.total += d[i]! * wi;
          this.count += wi;
        }
        return;
      }
      if (sampleWeight === undefined) {
        for (let i = 0; i < d.length; i++) this.total += d[i]!;
        this.count += d.length;
        return;
      }
      const w = rowWeights(sampleWeight, v.rank ? v.shape[0]! : 1, this.name), per = d.length / w.length;
      for (let i = 0; i < d.length; i++) {
        this.total += d[i]! * w[Math.floor(i / per)]!;
        this.count += w[Math.floor(i / per)]!;
      }
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

/** Sample weights as numbers, one per row of a batch of `rows`. */
function rowWeights(sampleWeight: TensorLike, rows: number, name: string): Float32Array {
  const w = ops.cast(convertToTensor(sampleWeight), 'float32');
  if (w.size !== rows) throw new Error(`metric '${name}': ${w.size} sample weights for a batch of ${rows}`);
  return w.data as Float32Array;
}

/**
 * A mask's weights (times the sample weights of its rows) for values with the mask's leading axes: one per mask
 * entry; a value beyond them (per-feature values) shares its step's weight, its step counting once.
 */
function maskWeights(mask: Tensor, sampleWeight: TensorLike | undefined, v: Tensor, name: string): Float32Array {
  const m = mask.data, rows = mask.shape[0]!, w = Float32Array.from(m, (x) => (x ? 1 : 0));
  if (v.rank < mask.rank || mask.shape.some((d, i) => v.shape[i] !== d)) throw new Error(`metric '${name}': values of shape [${v.shape}] do not match the predictions' mask [${mask.shape}]`);
  if (sampleWeight !== undefined) {
    const sw = rowWeights(sampleWeight, rows, name), per = w.length / rows;
    for (let i = 0; i < w.length; i++) w[i]! *= sw[Math.floor(i / per)]!;
  }
  return w;
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
    // Keras's squeeze_or_expand_to_same_rank: labels [n] against predictions [n, 1] (not a broadcast to [n, n])
    let t = ops.cast(yTrue, 'float32');
    if (t.rank === pred.rank - 1 && pred.shape[pred.rank - 1] === 1) t = ops.expandDims(t, -1);
    else if (t.rank === pred.rank + 1 && t.shape[t.rank - 1] === 1) t = ops.squeeze(t, -1);
    return ops.mean(ops.cast(ops.equal(t, pred), 'float32'), { axis: -1 });
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

export interface TopKCategoricalAccuracyOptions extends MetricOptions {
  /** How many of the highest predictions may hold the true class (default 5). */
  k?: number;
}

/**
 * Whether the true class (argmax of the one-hot target) is among the k highest predictions, ties counting in:
 * Keras 3's in_top_k (keras/src/backend/jax/math.py), rank = 1 + #(predictions > the true class's), NaN ranked last.
 */
export class TopKCategoricalAccuracyMetric extends Metric {
  static override readonly optionNames = { k: true } satisfies OptionNames<TopKCategoricalAccuracyOptions, MetricOptions>;
  readonly k: number;
  constructor(options?: string | TopKCategoricalAccuracyOptions) {
    super('top_k_categorical_accuracy', options);
    const k = typeof options === 'object' ? options.k : undefined;
    if (k !== undefined && !(Number.isSafeInteger(k) && k > 0)) throw new TypeError(`metrics.TopKCategoricalAccuracy: k must be a positive integer, got ${describe(k)}`);
    this.k = k ?? 5;
  }
  protected values(yTrue: Tensor, yPred: Tensor): Tensor {
    const classes = yPred.shape[yPred.rank - 1]!;
    const target = ops.argmax(yTrue, -1).data, p = ops.cast(yPred, 'float32').data;
    const out = new Float32Array(target.length);
    for (let i = 0; i < target.length; i++) {
      let at = p[i * classes + target[i]!]!;
      if (Number.isNaN(at)) at = -Infinity;
      let rank = 1;
      for (let j = 0; j < classes; j++) if (p[i * classes + j]! > at) rank++;
      out[i] = rank <= this.k ? 1 : 0;
    }
    return ops.array(out);
  }
}

/** Keras's NEG_INF (metrics_utils.py): the score of predictions outside the top k, and Precision/Recall's threshold with topK. */
const NEG_INF = -1e10;

/**
 * True/false positives and negatives at thresholds, weighted, as keras/src/metrics/metrics_utils.py's
 * update_confusion_matrix_variables: with `topK`, predictions outside each row's k highest (ties to the lower index,
 * as top_k) score NEG_INF first; with `classId`, only that column counts; with `labels` > 1 (AUC's multiLabel), each
 * label (the last axis) has counts of its own, element i counting for label i % labels.
 */
abstract class ConfusionMetric extends Metric {
  protected tp: Float64Array;
  protected fp: Float64Array;
  protected tn: Float64Array;
  protected fn: Float64Array;
  /** Counts per label, threshold-major ([threshold * labels + label]); 0 until the first batch gives multiLabel's count. */
  protected labels: number;
  constructor(defaultName: string, options: string | MetricOptions | undefined, readonly thresholds: readonly number[], private readonly fromLogits = false,
    private readonly multiLabel = false, numLabels?: number, private readonly topK?: number, private readonly classId?: number) {
    super(defaultName, options);
    this.labels = multiLabel ? numLabels ?? 0 : 1;
    [this.tp, this.fp, this.tn, this.fn] = this.zeros();
  }
  private zeros(): [Float64Array, Float64Array, Float64Array, Float64Array] {
    const n = this.thresholds.length * this.labels;
    return [new Float64Array(n), new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  }
  protected values(): Tensor {
    throw new Error(`metric '${this.name}' counts a confusion matrix; it has no per-sample values`);
  }
  /** Counts each element of the batch: labels as booleans, a prediction positive when above a threshold. */
  override updateState(yTrue: TensorLike, yPred: TensorLike, sampleWeight?: TensorLike): void {
    noRecord(() => {
      const t0 = ops.cast(convertToTensor(yTrue), 'float32'), p0 = ops.cast(convertToTensor(yPred), 'float32');
      const p1 = this.fromLogits ? ops.sigmoid(p0) : p0;
      if (t0.size !== p1.size) throw new Error(`metric '${this.name}': targets of shape [${t0.shape}] and predictions of shape [${p1.shape}] differ in size`);
      const rows = p1.rank ? p1.shape[0]! : 1;
      const w = sampleWeight === undefined ? undefined : rowWeights(sampleWeight, rows, this.name);
      let t: ArrayLike<number> = t0.data, p: ArrayLike<number> = p1.data;
      const width = p1.rank ? p1.shape[p1.rank - 1]! : 1;
      if (this.topK !== undefined) p = filterTopK(p, width, this.topK);
      if (this.classId !== undefined) {
        if (this.classId >= width) throw new Error(`metric '${this.name}': classId ${this.classId} is out of range for predictions of shape [${p1.shape}]`);
        const col = <T extends ArrayLike<number>>(a: T) => Float32Array.from({ length: a.length / width }, (_, i) => a[i * width + this.classId!]!);
        [t, p] = [col(t), col(p)];
      }
      if (this.multiLabel) {
        if (this.labels === 0) {
          this.labels = width;
          [this.tp, this.fp, this.tn, this.fn] = this.zeros();
        }
        if (width !== this.labels) throw new Error(`metric '${this.name}': multiLabel predictions have ${width} labels on the last axis, not ${this.labels}`);
      }
      const per = p.length / rows, L = this.labels;
      const th = this.thresholds.map((x) => Math.fround(x)); // Keras compares float32 predictions to float32 thresholds
      for (let i = 0; i < p.length; i++) {
        const label = t[i] !== 0, pred = p[i]!, wi = w ? w[Math.floor(i / per)]! : 1, l = i % L;
        for (let j = 0; j < th.length; j++) {
          const pos = pred > th[j]!;
          const acc = label ? (pos ? this.tp : this.fn) : pos ? this.fp : this.tn;
          acc[j * L + l] = acc[j * L + l]! + wi;
        }
      }
    });
  }
  override resetState(): void {
    for (const a of [this.tp, this.fp, this.tn, this.fn]) a.fill(0);
  }
  /** The values per threshold: one threshold gives a scalar, several a vector (as Keras). */
  protected resultOf(values: number[]): Tensor {
    return values.length === 1 ? ops.full([], values[0]!) : ops.array(Float32Array.from(values));
  }
}

/** Keras's _filter_top_k on rows of `width`: x where among the row's k highest (ties: lower index first), else NEG_INF. */
function filterTopK(p: ArrayLike<number>, width: number, k: number): Float32Array {
  const out = new Float32Array(p.length).fill(NEG_INF);
  for (let r = 0; r < p.length / width; r++) {
    const idx = Array.from({ length: width }, (_, j) => j).sort((a, b) => p[r * width + b]! - p[r * width + a]! || a - b);
    for (const j of idx.slice(0, k)) out[r * width + j] = p[r * width + j]!;
  }
  return out;
}

/** a / b, 0 where b is 0 (Keras's divide_no_nan). */
function divideNoNan(a: number, b: number): number {
  return b === 0 ? 0 : a / b;
}

export interface PrecisionRecallOptions extends MetricOptions {
  /** A prediction above it counts as positive (default 0.5, or NEG_INF with topK); a list gives one value per threshold. */
  thresholds?: number | readonly number[];
  /** Only each row's k highest predictions can be positive (Keras's top_k). */
  topK?: number;
  /** Count only this class (a column of the last axis). */
  classId?: number;
}

/** Precision/Recall's options: thresholds (Keras's default: 0.5, NEG_INF with topK), topK and classId checked. */
function prOptions(options: string | PrecisionRecallOptions | undefined, where: string): [MetricOptions | string | undefined, number[], number | undefined, number | undefined] {
  checkOptions(typeof options === 'object' ? options : undefined, { ...METRIC_OPTIONS, ...PR_OPTIONS }, where);
  const o = typeof options === 'object' ? options : {};
  const int = (v: unknown, what: string, min: number) => {
    if (v !== undefined && !(Number.isSafeInteger(v) && (v as number) >= min)) throw new Error(`${where}: ${what} must be an integer >= ${min}, got ${describe(v)}`);
    return v as number | undefined;
  };
  const topK = int(o.topK, 'topK', 1), classId = int(o.classId, 'classId', 0);
  const thresholds = o.thresholds === undefined && topK !== undefined ? [NEG_INF] : thresholdList(o.thresholds, where);
  return [typeof options === 'object' ? { name: options.name, dtype: options.dtype } : options, thresholds, topK, classId];
}

function thresholdList(v: unknown, where: string): number[] {
  const list = v === undefined ? [0.5] : typeof v === 'number' ? [v] : Array.isArray(v) ? [...v] as unknown[] : undefined;
  if (!list || list.length === 0 || list.some((x) => typeof x !== 'number' || !(x >= 0 && x <= 1))) throw new Error(`${where}: thresholds must be a number in [0, 1] or a non-empty list of them, got ${describe(v)}`);
  return list as number[];
}

const PR_OPTIONS = { thresholds: true, topK: true, classId: true } satisfies OptionNames<PrecisionRecallOptions, MetricOptions>;

/** tp / (tp + fp) over every element seen, as keras.metrics.Precision. */
export class PrecisionMetric extends ConfusionMetric {
  static override readonly optionNames = PR_OPTIONS;
  constructor(options?: string | PrecisionRecallOptions) {
    const [base, thresholds, topK, classId] = prOptions(options, 'metrics.Precision');
    super('precision', base, thresholds, false, false, undefined, topK, classId);
  }
  override result(): Tensor {
    return this.resultOf(this.thresholds.map((_, j) => divideNoNan(this.tp[j]!, this.tp[j]! + this.fp[j]!)));
  }
}

/** tp / (tp + fn) over every element seen, as keras.metrics.Recall. */
export class RecallMetric extends ConfusionMetric {
  static override readonly optionNames = PR_OPTIONS;
  constructor(options?: string | PrecisionRecallOptions) {
    const [base, thresholds, topK, classId] = prOptions(options, 'metrics.Recall');
    super('recall', base, thresholds, false, false, undefined, topK, classId);
  }
  override result(): Tensor {
    return this.resultOf(this.thresholds.map((_, j) => divideNoNan(this.tp[j]!, this.tp[j]! + this.fn[j]!)));
  }
}

export interface AUCOptions extends MetricOptions {
  /** Thresholds evenly spaced over [0, 1] (default 200), the outer two just beyond 0 and 1. */
  numThresholds?: number;
  /** 'ROC' (default) or 'PR'. */
  curve?: 'ROC' | 'PR';
  /** 'interpolation' (default; PR uses Davis & Goadrich's), 'minoring' or 'majoring'. */
  summationMethod?: 'interpolation' | 'minoring' | 'majoring';
  /** Explicit thresholds in (0, 1) instead of numThresholds; -epsilon and 1 + epsilon are added. */
  thresholds?: readonly number[] | null;
  /** Predictions are logits (a sigmoid is applied first). */
  fromLogits?: boolean;
  /** Each label (the last axis) its own curve; the result is their mean (or labelWeights' weighted mean). */
  multiLabel?: boolean;
  /** The number of labels with multiLabel (default: from the first batch). */
  numLabels?: number | null;
  /** With multiLabel: the weight of each label's AUC in the result. */
  labelWeights?: readonly number[] | null;
}

/**
 * Area under the ROC or PR curve from confusion counts at thresholds, as keras/src/metrics/confusion_metrics.py's AUC
 * (single-label): Riemann sums over the thresholds, PR by interpolate_pr_auc.
 */
export class AUCMetric extends ConfusionMetric {
  static override readonly optionNames = {
    numThresholds: true, curve: true, summationMethod: true, thresholds: true, fromLogits: true, multiLabel: true, numLabels: true, labelWeights: true,
  } satisfies OptionNames<AUCOptions, MetricOptions>;
  readonly curve: 'ROC' | 'PR';
  readonly labelWeights: readonly number[] | undefined;
  readonly summationMethod: 'interpolation' | 'minoring' | 'majoring';
  constructor(options?: string | AUCOptions) {
    const where = 'metrics.AUC';
    const o = typeof options === 'object' ? options : {};
    checkOptions(o, { ...METRIC_OPTIONS, ...AUCMetric.optionNames }, where);
    if (o.multiLabel !== undefined && typeof o.multiLabel !== 'boolean') throw new TypeError(`${where}: multiLabel must be true or false, got ${describe(o.multiLabel)}`);
    const numLabels = o.numLabels ?? undefined;
    if (numLabels !== undefined && !(Number.isSafeInteger(numLabels) && numLabels > 0)) throw new Error(`${where}: numLabels must be a positive integer, got ${describe(numLabels)}`);
    const lw = o.labelWeights ?? undefined;
    if (lw !== undefined && (!Array.isArray(lw) || lw.some((x) => typeof x !== 'number' || !(x >= 0)))) throw new Error(`${where}: labelWeights must be a list of non-negative numbers, got ${describe(lw)}`);
    if ((numLabels !== undefined || lw !== undefined) && !o.multiLabel) throw new Error(`${where}: numLabels and labelWeights need multiLabel: true`);
    if (lw !== undefined && numLabels !== undefined && lw.length !== numLabels) throw new Error(`${where}: ${lw.length} labelWeights for ${numLabels} labels`);
    const eps = 1e-7; // backend.epsilon()
    let inner: number[];
    if (o.thresholds !== undefined && o.thresholds !== null) {
      if (!Array.isArray(o.thresholds) || o.thresholds.some((x) => typeof x !== 'number' || !(x >= 0 && x <= 1))) throw new Error(`${where}: thresholds must be a list of numbers in [0, 1], got ${describe(o.thresholds)}`);
      inner = [...o.thresholds as number[]];
    } else {
      const n = o.numThresholds ?? 200;
      if (!Number.isSafeInteger(n) || n <= 1) throw new Error(`${where}: numThresholds must be an integer > 1, got ${describe(n)}`);
      inner = Array.from({ length: n - 2 }, (_, i) => (i + 1) / (n - 1));
    }
    if (o.curve !== undefined && o.curve !== 'ROC' && o.curve !== 'PR') throw new Error(`${where}: curve must be 'ROC' or 'PR', got ${describe(o.curve)}`);
    if (o.summationMethod !== undefined && !['interpolation', 'minoring', 'majoring'].includes(o.summationMethod)) throw new Error(`${where}: summationMethod must be 'interpolation', 'minoring' or 'majoring', got ${describe(o.summationMethod)}`);
    if (o.fromLogits !== undefined && typeof o.fromLogits !== 'boolean') throw new TypeError(`${where}: fromLogits must be true or false, got ${describe(o.fromLogits)}`);
    const name = typeof options === 'string' ? options : o.name;
    super('auc', name === undefined ? undefined : { name }, [0 - eps, ...inner, 1 + eps], o.fromLogits ?? false, o.multiLabel ?? false, numLabels ?? lw?.length);
    this.labelWeights = lw && [...lw];
    this.curve = o.curve ?? 'ROC';
    this.summationMethod = o.summationMethod ?? 'interpolation';
  }
  override result(): Tensor {
    const L = this.labels;
    if (L === 0) return ops.full([], 0); // multiLabel before any batch
    const byLabel = Array.from({ length: L }, (_, l) => this.labelAUC(l));
    if (L === 1 && !this.labelWeights) return ops.full([], byLabel[0]!);
    // multiLabel: the mean of the labels' areas, or their labelWeights-weighted mean (Keras's divide_no_nan)
    if (!this.labelWeights) return ops.full([], byLabel.reduce((a, b) => a + b, 0) / L);
    if (this.labelWeights.length !== L) throw new Error(`metric '${this.name}': ${this.labelWeights.length} labelWeights for ${L} labels`);
    const lw = this.labelWeights;
    return ops.full([], divideNoNan(byLabel.reduce((a, b, l) => a + b * lw[l]!, 0), lw.reduce((a, b) => a + b, 0)));
  }
  /** The area of one label's curve: Riemann sums over the thresholds, PR by interpolate_pr_auc. */
  private labelAUC(l: number): number {
    const n = this.thresholds.length, L = this.labels;
    const at = (a: Float64Array) => (i: number) => a[i * L + l]!;
    const [tp, fp, tn, fn] = [at(this.tp), at(this.fp), at(this.tn), at(this.fn)];
    let sum = 0;
    if (this.curve === 'PR' && this.summationMethod === 'interpolation') {
      for (let i = 0; i < n - 1; i++) {
        const dtp = tp(i) - tp(i + 1), p0 = tp(i) + fp(i), p1 = tp(i + 1) + fp(i + 1);
        const slope = divideNoNan(dtp, Math.max(p0 - p1, 0));
        const intercept = tp(i + 1) - slope * p1;
        const ratio = p0 > 0 && p1 > 0 ? divideNoNan(p0, Math.max(p1, 0)) : 1;
        sum += divideNoNan(slope * (dtp + intercept * Math.log(ratio)), Math.max(tp(i + 1) + fn(i + 1), 0));
      }
      return sum;
    }
    const recall = (i: number) => divideNoNan(tp(i), tp(i) + fn(i));
    const x = this.curve === 'ROC' ? (i: number) => divideNoNan(fp(i), fp(i) + tn(i)) : recall;
    const y = this.curve === 'ROC' ? recall : (i: number) => divideNoNan(tp(i), tp(i) + fp(i));
    for (let i = 0; i < n - 1; i++) {
      const a = y(i), b = y(i + 1);
      const h = this.summationMethod === 'interpolation' ? (a + b) / 2 : this.summationMethod === 'minoring' ? Math.min(a, b) : Math.max(a, b);
      sum += (x(i) - x(i + 1)) * h;
    }
    return sum;
  }
}

export type MetricIdentifier = string | Metric;

/** The metric names compile takes ('acc' is Keras's alias of 'accuracy'). */
export const METRIC_NAMES = [
  'accuracy', 'acc', 'sparse_categorical_accuracy', 'categorical_accuracy', 'binary_accuracy', 'mae', 'mean_absolute_error', 'mse', 'mean_squared_error',
  'auc', 'precision', 'recall', 'top_k_categorical_accuracy',
];

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
    case 'auc': return new AUCMetric();
    case 'precision': return new PrecisionMetric();
    case 'recall': return new RecallMetric();
    case 'top_k_categorical_accuracy': return new TopKCategoricalAccuracyMetric();
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
export const TopKCategoricalAccuracy = callableClass(TopKCategoricalAccuracyMetric);
export type TopKCategoricalAccuracy = TopKCategoricalAccuracyMetric;
export const Precision = callableClass(PrecisionMetric);
export type Precision = PrecisionMetric;
export const Recall = callableClass(RecallMetric);
export type Recall = RecallMetric;
export const AUC = callableClass(AUCMetric);
export type AUC = AUCMetric;
