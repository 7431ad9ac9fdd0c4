// keras.callbacks: hooks into fit (Keras's hook names) and the callbacks Keras ships, after keras/src/callbacks/*.py.
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { callableClass } from './callable.js';
import { describe, show } from './errors.js';
import { type OptionNames, checkOptions } from './options.js';
import type { TypedArray } from '../ir/types.js';
import type { Model } from './models/model.js';
import type { Tensor } from './tensor.js';

/** Logs passed to the hooks: metric name to value (e.g. loss, accuracy, val_loss, learning_rate). */
export type Logs = Record<string, number>;

/** What fit tells its callbacks (Keras's callback.params), plus which way each logged metric improves. */
export interface CallbackParams {
  epochs: number;
  steps: number;
  verbose: number;
  /** 'up' for metrics that improve upward (accuracy, AUC), 'down' for losses and errors; by log name, without 'val_'. */
  directions: Record<string, 'up' | 'down'>;
}

/** The hook names of Keras's Callback, in camelCase. */
export const HOOKS = [
  'onTrainBegin', 'onTrainEnd', 'onEpochBegin', 'onEpochEnd', 'onTrainBatchBegin', 'onTrainBatchEnd',
  'onTestBegin', 'onTestEnd', 'onTestBatchBegin', 'onTestBatchEnd', 'onPredictBegin', 'onPredictEnd', 'onPredictBatchBegin', 'onPredictBatchEnd',
] as const;
export type Hook = (typeof HOOKS)[number];

/**
 * Base of callbacks: override the hooks you need. `this.model` is the model being trained (set `this.model.stopTraining
 * = true` to stop after the current batch's epoch ends), `this.params` what fit passed.
 * @example class Print extends keras.callbacks.Callback { override onEpochEnd(epoch, logs) { console.log(epoch, logs.loss); } }
 */
export class Callback {
  model!: Model;
  params!: CallbackParams;
  setModel(model: Model): void {
    this.model = model;
  }
  setParams(params: CallbackParams): void {
    this.params = params;
  }
  onTrainBegin(_logs: Logs): void {}
  onTrainEnd(_logs: Logs): void {}
  onEpochBegin(_epoch: number, _logs: Logs): void {}
  onEpochEnd(_epoch: number, _logs: Logs): void {}
  onTrainBatchBegin(_batch: number, _logs: Logs): void {}
  onTrainBatchEnd(_batch: number, _logs: Logs): void {}
  /** evaluate, and fit's validation at each epoch's end: the logs so far (at the end, the results). */
  onTestBegin(_logs: Logs): void {}
  onTestEnd(_logs: Logs): void {}
  onTestBatchBegin(_batch: number, _logs: Logs): void {}
  onTestBatchEnd(_batch: number, _logs: Logs): void {}
  /** predict: after each batch, that batch's outputs (Keras's logs["outputs"]). */
  onPredictBegin(_logs: Logs): void {}
  onPredictEnd(_logs: Logs): void {}
  onPredictBatchBegin(_batch: number, _logs: Logs): void {}
  onPredictBatchEnd(_batch: number, _logs: { outputs: Tensor | Tensor[] }): void {}
}

/** A plain object of hook functions, as TF.js's CustomCallbackArgs: `{ onEpochEnd: (epoch, logs) => ... }`. */
export type CallbackHooks = Partial<{ [K in Hook]: Callback[K] }>;

/** A callback given to fit: a Callback, or an object of hook functions. */
export type CallbackLike = Callback | CallbackHooks;

/** A plain object of hooks wrapped as a Callback; any other key is an error naming it. */
function toCallback(c: unknown, i: number, what: string): Callback {
  if (c instanceof Callback) return c;
  const where = `${what}: callbacks[${i}]`;
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new TypeError(`${where} must be a keras.callbacks.Callback or an object of hook functions (${HOOKS.join(', ')}), got ${describe(c)}`);
  const cb = new Callback();
  for (const [k, f] of Object.entries(c)) {
    if (!(HOOKS as readonly string[]).includes(k)) throw new Error(`${where}: unknown hook '${k}'; hooks: ${HOOKS.join(', ')}`);
    if (typeof f !== 'function') throw new TypeError(`${where}: hook '${k}' must be a function, got ${describe(f)}`);
    (cb as unknown as Record<string, unknown>)[k] = f;
  }
  return cb;
}

/** The callbacks of one fit, called in order (Keras's CallbackList). */
export class CallbackList {
  readonly callbacks: Callback[];
  constructor(list: unknown, model: Model, params: CallbackParams, what = 'fit') {
    if (list !== undefined && !Array.isArray(list)) throw new TypeError(`${what}: callbacks must be a list, got ${describe(list)}`);
    this.callbacks = (list ?? []).map((c: unknown, i: number) => toCallback(c, i, what));
    for (const c of this.callbacks) {
      c.setModel(model);
      c.setParams(params);
    }
  }
  call<K extends Hook>(hook: K, ...args: Parameters<Callback[K]>): void {
    for (const c of this.callbacks) (c[hook] as (...a: Parameters<Callback[K]>) => void).apply(c, args);
  }
}

/** Keras's MonitorCallback: a monitored log value, whether it improves up or down, and by at least minDelta. */
abstract class MonitorCallback extends Callback {
  readonly monitor: string;
  readonly mode: 'auto' | 'min' | 'max';
  readonly minDelta: number;
  best: number | null = null;
  private op: ((a: number, b: number) => boolean) | undefined;
  private signedDelta = 0;

  constructor(where: string, monitor: unknown, mode: unknown, minDelta: unknown) {
    super();
    if (monitor !== undefined && (typeof monitor !== 'string' || !monitor)) throw new TypeError(`${where}: monitor must be a log name such as 'val_loss', got ${describe(monitor)}`);
    if (mode !== undefined && !['auto', 'min', 'max'].includes(mode as string)) throw new Error(`${where}: mode must be 'auto', 'min' or 'max', got ${show(mode)}`);
    this.monitor = (monitor as string | undefined) ?? 'val_loss';
    this.mode = (mode as 'auto' | 'min' | 'max' | undefined) ?? 'auto';
    this.minDelta = Math.abs(finite(minDelta ?? 0, `${where}: minDelta`));
  }

  /** The comparison, resolved on first use as Keras's _set_monitor_op: 'auto' from the metric's direction. */
  private monitorOp(): (a: number, b: number) => boolean {
    if (this.op) return this.op;
    let up: boolean;
    if (this.mode !== 'auto') up = this.mode === 'max';
    else {
      const name = this.monitor.replace(/^val_/, '');
      const dir = name === 'loss' || name.endsWith('_loss') ? 'down' : this.params?.directions[name];
      if (!dir) throw new Error(`${this.constructor.name}: cannot tell whether '${this.monitor}' should be maximized or minimized; pass mode: 'max' or mode: 'min'`);
      up = dir === 'up';
    }
    this.signedDelta = up ? this.minDelta : -this.minDelta;
    this.op = up ? (a, b) => a > b : (a, b) => a < b;
    return this.op;
  }

  /** Keras's _is_improvement: op(value - minDelta, reference), true against no reference. */
  protected isImprovement(value: number, reference: number | null): boolean {
    const op = this.monitorOp();
    return reference === null || op(value - this.signedDelta, reference);
  }

  protected value(logs: Logs): number | undefined {
    const v = logs[this.monitor];
    if (v === undefined) warnOnce(this, `${this.constructor.name}: monitored '${this.monitor}' is not in the logs (they have ${Object.keys(logs).join(', ')})`);
    return v;
  }
}

const warned = new WeakSet<object>();
/** One warning per callback on stderr (Keras warns where a monitored metric is missing, then carries on). */
function warnOnce(key: object, text: string): void {
  if (warned.has(key)) return;
  warned.add(key);
  process.stderr.write(`warning: ${text}\n`);
}

function finite(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`${what} must be a finite number, got ${describe(v)}`);
  return v;
}

function count(v: unknown, what: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw new TypeError(`${what} must be a non-negative integer, got ${describe(v)}`);
  return v as number;
}

function bool(v: unknown, what: string): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean') throw new TypeError(`${what} must be true or false, got ${describe(v)}`);
  return v;
}

function verbosity(v: unknown, what: string): number {
  if (v !== undefined && v !== 0 && v !== 1) throw new TypeError(`${what}: verbose must be 0 or 1, got ${show(v)}`);
  return (v as number | undefined) ?? 0;
}

function weightsOf(model: Model): TypedArray[] {
  return model.weights.map((w) => w.data.slice());
}

export interface EarlyStoppingOptions {
  /** The log to watch (default 'val_loss'). */
  monitor?: string;
  /** Smaller changes do not count as improvements (default 0). */
  minDelta?: number;
  /** Epochs without improvement before stopping (default 0). */
  patience?: number;
  /** 1 prints when it stops and restores. */
  verbose?: 0 | 1;
  /** 'min', 'max' or 'auto' (from the metric: losses down, accuracies up). */
  mode?: 'auto' | 'min' | 'max';
  /** Training stops unless the monitored value improves on it within patience epochs. */
  baseline?: number | null;
  /** At the end, restore the weights of the best epoch seen. */
  restoreBestWeights?: boolean;
  /** Epochs to wait before watching at all (warm-up). */
  startFromEpoch?: number;
}

/**
 * Stops training when the monitored log has stopped improving, as keras/src/callbacks/early_stopping.py.
 * @example model.fit(x, y, { epochs: 100, validationSplit: 0.2, callbacks: [keras.callbacks.EarlyStopping({ patience: 3, restoreBestWeights: true })] })
 */
export class EarlyStoppingCallback extends MonitorCallback {
  readonly patience: number;
  readonly verbose: number;
  readonly baseline: number | null;
  readonly restoreBestWeights: boolean;
  readonly startFromEpoch: number;
  wait = 0;
  stoppedEpoch = 0;
  bestEpoch = 0;
  private bestWeights: TypedArray[] | null = null;

  constructor(options: EarlyStoppingOptions = {}) {
    const w = 'callbacks.EarlyStopping';
    checkOptions(options, { monitor: true, minDelta: true, patience: true, verbose: true, mode: true, baseline: true, restoreBestWeights: true, startFromEpoch: true } satisfies OptionNames<EarlyStoppingOptions>, w);
    super(w, options.monitor, options.mode, options.minDelta);
    this.patience = count(options.patience ?? 0, `${w}: patience`);
    this.verbose = verbosity(options.verbose, w);
    this.baseline = options.baseline === undefined || options.baseline === null ? null : finite(options.baseline, `${w}: baseline`);
    this.restoreBestWeights = bool(options.restoreBestWeights, `${w}: restoreBestWeights`) ?? false;
    this.startFromEpoch = count(options.startFromEpoch ?? 0, `${w}: startFromEpoch`);
  }

  override onTrainBegin(): void {
    this.wait = 0;
    this.stoppedEpoch = 0;
    this.best = null;
    this.bestWeights = null;
    this.bestEpoch = 0;
  }

  override onEpochEnd(epoch: number, logs: Logs): void {
    const current = this.value(logs);
    if (current === undefined || epoch < this.startFromEpoch) return;
    if (this.restoreBestWeights && this.bestWeights === null) {
      this.bestWeights = weightsOf(this.model);
      this.bestEpoch = epoch;
    }
    this.wait += 1;
    if (this.isImprovement(current, this.best)) {
      this.best = current;
      this.bestEpoch = epoch;
      if (this.restoreBestWeights) this.bestWeights = weightsOf(this.model);
      // with a baseline, the wait restarts only once the baseline is beaten
      if (this.baseline === null || this.isImprovement(current, this.baseline)) this.wait = 0;
      return;
    }
    if (this.wait >= this.patience && epoch > 0) {
      this.stoppedEpoch = epoch;
      this.model.stopTraining = true;
    }
  }

  override onTrainEnd(): void {
    if (this.stoppedEpoch > 0 && this.verbose > 0) process.stdout.write(`Epoch ${this.stoppedEpoch + 1}: early stopping\n`);
    if (this.restoreBestWeights && this.bestWeights !== null) {
      if (this.verbose > 0) process.stdout.write(`Restoring model weights from the end of the best epoch: ${this.bestEpoch + 1}.\n`);
      this.model.weights.forEach((v, i) => v.assign(this.bestWeights![i]!));
    }
  }
}

export interface ReduceLROnPlateauOptions {
  monitor?: string;
  /** The learning rate is multiplied by it (< 1, default 0.1). */
  factor?: number;
  /** Epochs without improvement before reducing (default 10). */
  patience?: number;
  verbose?: 0 | 1;
  mode?: 'auto' | 'min' | 'max';
  /** Smaller changes do not count as improvements (default 1e-4). */
  minDelta?: number;
  /** Epochs to wait after a reduction before watching again. */
  cooldown?: number;
  /** The learning rate is not reduced below it. */
  minLr?: number;
}

/**
 * Multiplies the optimizer's learning rate by factor when the monitored log stops improving, as
 * keras/src/callbacks/reduce_lr_on_plateau.py; the rate is optimizer state, so the compiled step is kept.
 */
export class ReduceLROnPlateauCallback extends MonitorCallback {
  readonly factor: number;
  readonly patience: number;
  readonly verbose: number;
  readonly cooldown: number;
  readonly minLr: number;
  cooldownCounter = 0;
  wait = 0;

  constructor(options: ReduceLROnPlateauOptions = {}) {
    const w = 'callbacks.ReduceLROnPlateau';
    checkOptions(options, { monitor: true, factor: true, patience: true, verbose: true, mode: true, minDelta: true, cooldown: true, minLr: true } satisfies OptionNames<ReduceLROnPlateauOptions>, w);
    super(w, options.monitor, options.mode, options.minDelta ?? 1e-4);
    this.factor = finite(options.factor ?? 0.1, `${w}: factor`);
    if (this.factor >= 1) throw new Error(`${w}: factor must be < 1, got ${this.factor}`);
    this.patience = count(options.patience ?? 10, `${w}: patience`);
    this.verbose = verbosity(options.verbose, w);
    this.cooldown = count(options.cooldown ?? 0, `${w}: cooldown`);
    this.minLr = finite(options.minLr ?? 0, `${w}: minLr`);
  }

  override onTrainBegin(): void {
    this.best = null;
    this.cooldownCounter = 0;
    this.wait = 0;
  }

  override onEpochEnd(epoch: number, logs: Logs): void {
    const opt = this.model.optimizer!;
    logs['learning_rate'] = opt.learningRate;
    const current = this.value(logs);
    if (current === undefined) return;
    if (this.cooldownCounter > 0) {
      this.cooldownCounter -= 1;
      this.wait = 0;
    }
    if (this.isImprovement(current, this.best)) {
      this.best = current;
      this.wait = 0;
    } else if (this.cooldownCounter <= 0) {
      this.wait += 1;
      if (this.wait >= this.patience) {
        const old = opt.learningRate;
        if (old > Math.fround(this.minLr)) {
          const lr = Math.max(old * this.factor, this.minLr);
          opt.learningRate = lr;
          if (this.verbose > 0) process.stdout.write(`\nEpoch ${epoch + 1}: ReduceLROnPlateau reducing learning rate to ${lr}.\n`);
          this.cooldownCounter = this.cooldown;
          this.wait = 0;
        }
      }
    }
  }
}

/**
 * Sets the learning rate at the start of each epoch from schedule(epoch, lr) (epochs from 0), as
 * keras/src/callbacks/learning_rate_scheduler.py; logs it as learning_rate.
 */
export class LearningRateSchedulerCallback extends Callback {
  readonly verbose: number;
  constructor(readonly schedule: (epoch: number, lr: number) => number, verbose: 0 | 1 = 0) {
    super();
    if (typeof schedule !== 'function') throw new TypeError(`callbacks.LearningRateScheduler: schedule must be a function (epoch, lr) => lr, got ${describe(schedule)}`);
    this.verbose = verbosity(verbose, 'callbacks.LearningRateScheduler');
  }
  override onEpochBegin(epoch: number): void {
    const opt = this.model.optimizer!;
    const lr = this.schedule(epoch, opt.learningRate);
    if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0) throw new Error(`callbacks.LearningRateScheduler: the schedule must return a non-negative number, got ${show(lr)} for epoch ${epoch}`);
    opt.learningRate = lr;
    if (this.verbose > 0) process.stdout.write(`\nEpoch ${epoch + 1}: LearningRateScheduler setting learning rate to ${lr}.\n`);
  }
  override onEpochEnd(_epoch: number, logs: Logs): void {
    logs['learning_rate'] = this.model.optimizer!.learningRate;
  }
}

export interface CSVLoggerOptions {
  /** Field separator (default ','). */
  separator?: string;
  /** Append to an existing file (its header is kept) instead of overwriting it. */
  append?: boolean;
}

/**
 * Writes one CSV row per epoch (epoch, then the logs in sorted order; the val_ columns added when there is no
 * validation, as Keras, holding NA), flushed every epoch, as keras/src/callbacks/csv_logger.py.
 */
export class CSVLoggerCallback extends Callback {
  readonly separator: string;
  readonly append: boolean;
  private keys: string[] | null = null;
  private header = true;
  constructor(readonly filename: string, options: CSVLoggerOptions = {}) {
    super();
    const w = 'callbacks.CSVLogger';
    if (typeof filename !== 'string' || !filename) throw new TypeError(`${w}: filename must be a path, got ${describe(filename)}`);
    checkOptions(options, { separator: true, append: true } satisfies OptionNames<CSVLoggerOptions>, w);
    if (options.separator !== undefined && (typeof options.separator !== 'string' || options.separator.length !== 1)) throw new TypeError(`${w}: separator must be one character, got ${describe(options.separator)}`);
    this.separator = options.separator ?? ',';
    this.append = bool(options.append, `${w}: append`) ?? false;
  }
  override onTrainBegin(): void {
    this.keys = null;
    this.header = true;
    if (this.append && existsSync(this.filename)) this.header = readFileSync(this.filename, 'utf8').split('\n')[0] === '';
    else writeFileSync(this.filename, '');
  }
  override onEpochEnd(epoch: number, logs: Logs): void {
    if (!this.keys) {
      this.keys = Object.keys(logs).sort();
      if (!this.keys.some((k) => k.startsWith('val_')) && this.keys.length) this.keys.push(...this.keys.map((k) => `val_${k}`));
    }
    const row = (cells: string[]) => `${cells.join(this.separator)}\r\n`; // Python's csv module ends rows with \r\n
    let text = '';
    if (this.header) {
      text += row(['epoch', ...this.keys]);
      this.header = false;
    }
    text += row([String(epoch), ...this.keys.map((k) => (logs[k] === undefined ? 'NA' : pyFloat(logs[k]!)))]);
    appendFileSync(this.filename, text);
  }
}

/** A number as Python's str(float) writes it (1.0, 0.25, 1e-05, nan, inf). */
function pyFloat(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (Number.isInteger(v) && Math.abs(v) < 1e16) return v.toFixed(1);
  const s = String(v);
  // JS writes 1e-7, Python 1e-07
  return s.replace(/e([+-])(\d)$/, 'e$10$2');
}

/** Stops training at the first batch whose loss is NaN or infinite, as keras/src/callbacks/terminate_on_nan.py. */
export class TerminateOnNaNCallback extends Callback {
  readonly raiseError: boolean;
  constructor(options: { raiseError?: boolean } = {}) {
    super();
    checkOptions(options, { raiseError: true }, 'callbacks.TerminateOnNaN');
    this.raiseError = bool(options.raiseError, 'callbacks.TerminateOnNaN: raiseError') ?? false;
  }
  override onTrainBatchEnd(batch: number, logs: Logs): void {
    const loss = logs['loss'];
    if (loss === undefined || Number.isFinite(loss)) return;
    if (this.raiseError) throw new Error(`NaN or Inf loss encountered at batch ${batch}. Loss value: ${loss}. Terminating training immediately.`);
    process.stdout.write(`Batch ${batch}: Invalid loss, terminating training\n`);
    this.model.stopTraining = true;
  }
}

export interface ModelCheckpointOptions {
  /** The log that saveBestOnly watches (default 'val_loss'). */
  monitor?: string;
  verbose?: 0 | 1;
  /** Save only when the monitored log improves on the best so far. */
  saveBestOnly?: boolean;
  /** Save the weights (a `.weights.h5` path) rather than the whole model (a `.keras` path). */
  saveWeightsOnly?: boolean;
  mode?: 'auto' | 'min' | 'max';
  /** 'epoch' (default), or a number of batches. */
  saveFreq?: 'epoch' | number;
  /** saveBestOnly saves only values that beat it. */
  initialValueThreshold?: number | null;
}

/**
 * Saves the model (`.keras`) or its weights (`.weights.h5`) after each epoch (or each saveFreq batches), the path
 * formatted with Python's format fields: `{epoch}`, `{epoch:02d}`, `{val_loss:.2f}` and any other log, as
 * keras/src/callbacks/model_checkpoint.py. The weights are copied when the save is due (fit stays synchronous) and the
 * file is written as soon as the HDF5 writer has loaded; `await checkpoint.saved` waits for every file.
 */
export class ModelCheckpointCallback extends MonitorCallback {
  readonly verbose: number;
  readonly saveBestOnly: boolean;
  readonly saveWeightsOnly: boolean;
  readonly saveFreq: 'epoch' | number;
  /** Settles when every checkpoint due so far is on disk (rejects with the first failed write). */
  saved: Promise<void> = Promise.resolve();
  private epoch = 0;
  private batchesSinceSave = 0;
  private lastBatch: number | null = null;

  constructor(readonly filepath: string, options: ModelCheckpointOptions = {}) {
    const w = 'callbacks.ModelCheckpoint';
    checkOptions(options, { monitor: true, verbose: true, saveBestOnly: true, saveWeightsOnly: true, mode: true, saveFreq: true, initialValueThreshold: true } satisfies OptionNames<ModelCheckpointOptions>, w);
    super(w, options.monitor, options.mode, 0);
    if (typeof filepath !== 'string' || !filepath) throw new TypeError(`${w}: filepath must be a path, got ${describe(filepath)}`);
    this.verbose = verbosity(options.verbose, w);
    this.saveBestOnly = bool(options.saveBestOnly, `${w}: saveBestOnly`) ?? false;
    this.saveWeightsOnly = bool(options.saveWeightsOnly, `${w}: saveWeightsOnly`) ?? false;
    const freq = options.saveFreq ?? 'epoch';
    if (freq !== 'epoch' && !(Number.isSafeInteger(freq) && (freq as number) > 0)) throw new Error(`${w}: saveFreq must be 'epoch' or a positive number of batches, got ${show(freq)}`);
    this.saveFreq = freq;
    if (options.initialValueThreshold !== undefined && options.initialValueThreshold !== null) this.best = finite(options.initialValueThreshold, `${w}: initialValueThreshold`);
    if (this.saveWeightsOnly ? !filepath.endsWith('.weights.h5') : !filepath.endsWith('.keras')) {
      throw new Error(`${w}: ${this.saveWeightsOnly ? 'with saveWeightsOnly the filepath must end in .weights.h5' : 'the filepath must end in .keras (or pass saveWeightsOnly: true and a .weights.h5 path)'}, got ${filepath}`);
    }
    formatPath(filepath, { epoch: 1, batch: 1 }, true); // a malformed field is an error now, not after the first epoch
  }

  override onEpochBegin(epoch: number): void {
    this.epoch = epoch;
  }

  override onTrainBatchEnd(batch: number, logs: Logs): void {
    if (this.saveFreq === 'epoch') return;
    this.batchesSinceSave += this.lastBatch === null || batch <= this.lastBatch ? batch + 1 : batch - this.lastBatch;
    this.lastBatch = batch;
    if (this.batchesSinceSave >= this.saveFreq) {
      this.batchesSinceSave = 0;
      this.save(this.epoch, batch, logs);
    }
  }

  override onEpochEnd(epoch: number, logs: Logs): void {
    if (this.saveFreq === 'epoch') this.save(epoch, undefined, logs);
  }

  private save(epoch: number, batch: number | undefined, logs: Logs): void {
    const file = formatPath(this.filepath, { ...logs, epoch: epoch + 1, ...(batch === undefined || 'batch' in logs ? {} : { batch: batch + 1 }) });
    if (this.saveBestOnly) {
      const current = this.value(logs);
      if (current !== undefined) {
        const best = this.best === null ? 'None' : this.best.toFixed(5);
        if (!this.isImprovement(current, this.best)) {
          if (this.verbose > 0) process.stdout.write(`\nEpoch ${epoch + 1}: ${this.monitor} did not improve from ${best}\n`);
          return;
        }
        if (this.verbose > 0) process.stdout.write(`\nEpoch ${epoch + 1}: ${this.monitor} improved from ${best} to ${current.toFixed(5)}, saving model to ${file}\n`);
        this.best = current;
      }
    } else if (this.verbose > 0) process.stdout.write(`\nEpoch ${epoch + 1}: saving model to ${file}\n`);
    const dir = path.dirname(file);
    if (dir && !existsSync(dir)) mkdirSync(dir, { recursive: true });
    if (existsSync(file) && statSync(file).isDirectory()) throw new Error(`callbacks.ModelCheckpoint: ${file} is a directory; give a file path`);
    const model = this.model, values = new Map(model.weights.map((v) => [v, v.data.slice()] as const));
    this.saved = this.saved.then(async () => {
      const saving = await import('./saving/index.js');
      await (this.saveWeightsOnly ? saving.saveWeights(model, file, values) : saving.saveModel(model, file, values));
    });
  }
}

/** Python's str.format on named fields with the format specs checkpoints use ({epoch:02d}, {loss:.4f}); `check` only parses. */
function formatPath(pattern: string, values: Record<string, number>, check = false): string {
  return pattern.replace(/\{([^{}:]*)(?::([^{}]*))?\}/g, (field, name: string, spec: string | undefined) => {
    const m = /^(0?)(\d*)(?:\.(\d+))?([dfe]?)$/.exec(spec ?? '');
    if (!m) throw new Error(`callbacks.ModelCheckpoint: cannot format ${field} in '${pattern}' (format specs: d, f, e with width and precision)`);
    if (check) return '';
    const v = values[name];
    if (v === undefined) throw new Error(`callbacks.ModelCheckpoint: cannot format '${pattern}': no log named '${name}' (logs: ${Object.keys(values).join(', ')})`);
    const [, zero, width, prec, type] = m;
    let s = type === 'd' ? String(Math.trunc(v)) : type === 'f' ? v.toFixed(prec === undefined ? 6 : Number(prec))
      : type === 'e' ? v.toExponential(prec === undefined ? 6 : Number(prec)).replace(/e([+-])(\d)$/, 'e$10$2') : prec !== undefined ? String(Number(v.toPrecision(Number(prec)))) : pyFloat(v);
    if (width) s = s.padStart(Number(width), zero ? '0' : ' ');
    return s;
  });
}

// Keras names, constructible with or without `new`.
export const EarlyStopping = callableClass(EarlyStoppingCallback);
export type EarlyStopping = EarlyStoppingCallback;
export const ReduceLROnPlateau = callableClass(ReduceLROnPlateauCallback);
export type ReduceLROnPlateau = ReduceLROnPlateauCallback;
export const LearningRateScheduler = callableClass(LearningRateSchedulerCallback);
export type LearningRateScheduler = LearningRateSchedulerCallback;
export const CSVLogger = callableClass(CSVLoggerCallback);
export type CSVLogger = CSVLoggerCallback;
export const TerminateOnNaN = callableClass(TerminateOnNaNCallback);
export type TerminateOnNaN = TerminateOnNaNCallback;
export const ModelCheckpoint = callableClass(ModelCheckpointCallback);
export type ModelCheckpoint = ModelCheckpointCallback;
