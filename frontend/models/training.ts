// compile / fit / evaluate: the training step traced as one graph (forward, loss, backward, optimizer update).
import type { Graph, Node } from '../../ir/graph.js';
import type { TypedArray } from '../../ir/types.js';
import { gradients } from '../../passes/autodiff.js';
import { Trace, globalRng, noRecord, withTrace } from '../engine.js';
import * as losses from '../losses.js';
import * as metrics from '../metrics.js';
import { type TensorLike, convertToTensor } from '../ops.js';
import * as ops from '../ops.js';
import * as optimizers from '../optimizers.js';
import { Tensor, type Variable } from '../tensor.js';
import { checkRunOptions, runTraced, sliceBatch, tracedFor } from './executor.js';
import type { Model, ModelInput } from './model.js';
import { LayerError, getMask, setMask } from '../layers/layer.js';
import { Progbar } from './progbar.js';
import type { Backend } from '../config.js';
import { type OptionNames, checkOptions } from '../options.js';
import { describe, show } from '../errors.js';
import { runnerFor } from './runner.js';
import { type CallbackLike, CallbackList, type Logs } from '../callbacks.js';
import { runCustomStep } from './custom_step.js';

type PerOutput<T> = T | readonly T[] | Readonly<Record<string, T>>;

export interface CompileOptions {
  optimizer?: optimizers.OptimizerIdentifier;
  /** One loss for every output, a list in output order, or a record by output name. */
  loss: PerOutput<losses.LossIdentifier>;
  /** Metrics for every output, or per output (list of lists, or record by output name). */
  metrics?: readonly metrics.MetricIdentifier[] | readonly (readonly metrics.MetricIdentifier[])[] | Readonly<Record<string, readonly metrics.MetricIdentifier[]>>;
  /** Weights of the per-output losses in the total loss. */
  lossWeights?: readonly number[] | Readonly<Record<string, number>>;
  /** Metrics weighted by the sample weights (Keras's weighted_metrics), as `metrics`; 'weighted_' prefixes a name taken by `metrics`. */
  weightedMetrics?: CompileOptions['metrics'];
  /** Run a subclass's custom trainStep eagerly, op by op (default false: traced into one compiled step). */
  runEagerly?: boolean;
}

/** What compile resolved: per output, its loss, weight and metrics. */
export interface Compiled {
  readonly optimizer: optimizers.Optimizer;
  readonly losses: losses.Loss[];
  readonly lossWeights: number[];
  readonly metricIds: metrics.MetricIdentifier[][];
  readonly weightedMetricIds: metrics.MetricIdentifier[][];
  readonly runEagerly: boolean;
}

/** Converts one input or target array, the error naming what it is for. */
export function tensorArg(v: TensorLike, what: string): Tensor {
  try {
    return convertToTensor(v);
  } catch (e) {
    throw new LayerError(`${what}: ${(e as Error).message.replace(/^ops\.array: /, '')}`);
  }
}

function perOutput<T>(model: Model, value: PerOutput<T> | undefined, what: string, fill: (i: number) => T): T[] {
  const names = model.outputNames;
  if (value === undefined) return names.map((_, i) => fill(i));
  if (Array.isArray(value)) {
    if (value.length !== names.length) throw new Error(`compile: ${what} has ${value.length} entries for ${names.length} outputs (${names.join(', ')})`);
    return [...value] as T[];
  }
  if (typeof value === 'object' && value !== null && !(value instanceof losses.Loss) && !(value instanceof metrics.Metric)) {
    const rec = value as Record<string, T>;
    for (const k of Object.keys(rec)) if (!names.includes(k)) throw new Error(`compile: ${what} names '${k}', which is not an output (${names.join(', ')})`);
    return names.map((n, i) => (n in rec ? rec[n]! : fill(i)));
  }
  return names.map(() => value as T);
}

/** Checks compile's options when it is called (they are resolved once the model is built). */
export function checkCompileOptions(model: Model, options: CompileOptions): void {
  const where = `Model '${model.name}': compile`;
  checkOptions(options, { optimizer: true, loss: true, metrics: true, lossWeights: true, runEagerly: true, weightedMetrics: true } satisfies OptionNames<CompileOptions>, where,
    { stepsPerExecution: 1, jitCompile: 'auto', autoScaleLoss: true });
  if (!options || options.loss === undefined) throw new Error(`${where} needs a loss`);
  checkBoolean(options.runEagerly, `${where}: runEagerly`);
  checkMetricLists(options.metrics, where);
  checkMetricLists(options.weightedMetrics, `${where}: weightedMetrics`);
}

/** Metrics are resolved when fit runs: a misspelt name is an error at compile, not then. */
function checkMetricLists(m: unknown, where: string): void {
  if (m === undefined) return;
  const lists = Array.isArray(m) ? (m.length > 0 && m.every((x) => Array.isArray(x)) ? m : [m]) : typeof m === 'object' && m !== null && !(m instanceof metrics.Metric) ? Object.values(m) : undefined;
  const shape = 'metrics must be a list, a list per output or a record by output name of lists';
  if (!lists) throw new TypeError(`${where}: ${shape}, got ${describe(m)}`);
  for (const list of lists as unknown[]) {
    if (!Array.isArray(list)) throw new TypeError(`${where}: ${shape}, got ${describe(list)} in it`);
    for (const id of list) metrics.checkMetric(id, where);
  }
}

export function compileModel(model: Model, options: CompileOptions): Compiled {
  if (!options || options.loss === undefined) throw new Error(`Model '${model.name}': compile needs a loss`);
  const lossIds = perOutput(model, options.loss, 'loss', () => { throw new Error('compile: a loss is needed for every output'); });
  const ls = lossIds.map((l) => losses.get(l));
  const weights = perOutput(model, options.lossWeights as PerOutput<number> | undefined, 'lossWeights', () => 1);
  const ids = (m: CompileOptions['metrics'], what: string): metrics.MetricIdentifier[][] => {
    if (m === undefined) return model.outputNames.map(() => []);
    if (Array.isArray(m) && m.length > 0 && m.every((x) => Array.isArray(x))) return perOutput(model, m as metrics.MetricIdentifier[][], what, () => []);
    if (Array.isArray(m)) return model.outputNames.map(() => [...m] as metrics.MetricIdentifier[]);
    return perOutput(model, m as Record<string, metrics.MetricIdentifier[]>, what, () => []);
  };
  return {
    optimizer: optimizers.get(options.optimizer ?? 'rmsprop'), losses: ls, lossWeights: weights, metricIds: ids(options.metrics, 'metrics'),
    weightedMetricIds: ids(options.weightedMetrics, 'weightedMetrics'), runEagerly: options.runEagerly ?? false,
  };
}

type OutputMetric = { name: string; output: number; metric: metrics.Metric; weighted: boolean };

/**
 * The per-output metric objects with Keras's log names (prefixed by the output name for several outputs), then the
 * weighted metrics ('weighted_' before a name the unweighted ones already log, as Keras's CompileMetrics).
 */
function makeMetrics(model: Model, c: Compiled): OutputMetric[] {
  const multi = model.outputNames.length > 1;
  const make = (idss: metrics.MetricIdentifier[][], weighted: boolean) => idss.flatMap((ids, i) => ids.map((id) => {
    const metric = metrics.get(id, c.losses[i], model.outputShapes[i]);
    const base = typeof id === 'string' ? id : metric.name;
    const size = metric.result().size; // checked before training, not after its first batch
    if (size !== 1) throw new Error(`metric '${base}' has ${size} values (one per threshold); fit and evaluate log one number per metric: give it one threshold`);
    return { name: base, output: i, metric, weighted };
  }));
  const plain = make(c.metricIds, false), taken = new Set(plain.map((m) => `${m.output}/${m.name}`));
  const weighted = make(c.weightedMetricIds, true).map((m) => (taken.has(`${m.output}/${m.name}`) ? { ...m, name: `weighted_${m.name}` } : m));
  return [...plain, ...weighted].map((m) => ({ ...m, name: multi ? `${model.outputNames[m.output]}_${m.name}` : m.name }));
}

/** Sample weights: one [n] tensor for every output, or one per output (fit's sampleWeight as a list or by output name). */
export type SampleWeights = Tensor | Tensor[];

/** The sample weights of output i. */
function weightOf(w: SampleWeights, i: number): Tensor {
  return Array.isArray(w) ? w[i]! : w;
}

function mapWeights(w: SampleWeights, f: (t: Tensor) => Tensor): SampleWeights {
  return Array.isArray(w) ? w.map(f) : f(w);
}

/** Targets in output order, cast to each loss's dtype; sparse labels checked against the output's classes. */
function normalizeTargets(model: Model, y: ModelInput, c: Compiled, what: string): Tensor[] {
  const names = model.outputNames;
  let list: TensorLike[];
  if (y === undefined || y === null || typeof y === 'string' || typeof y === 'function') throw new Error(`${what}: model '${model.name}' needs targets (a tensor, a typed array, nested arrays of numbers, a list or a record by output name), got ${describe(y)}`);
  if (y instanceof Tensor || ArrayBuffer.isView(y) || !Array.isArray(y) && typeof y !== 'object') list = [y as TensorLike];
  else if (Array.isArray(y)) {
    const perOutput = y.every((e) => e instanceof Tensor || ArrayBuffer.isView(e)) || (names.length > 1 && y.length === names.length && !y.every((e) => typeof e === 'number'));
    list = perOutput ? [...y] as TensorLike[] : [y as TensorLike];
  }
  else list = names.map((n) => {
    const rec = y as Record<string, TensorLike>;
    if (!(n in rec)) throw new Error(`Model '${model.name}': missing targets for output '${n}'`);
    return rec[n]!;
  });
  if (list.length !== names.length) throw new Error(`Model '${model.name}' has ${names.length} output(s) (${names.join(', ')}), got ${list.length} target array(s)`);
  return list.map((t, i) => {
    const target = tensorArg(t, `${what}: targets of output '${names[i]}'`), loss = c.losses[i]!, classes = model.outputShapes[i]!.at(-1);
    if (loss instanceof losses.SparseCategoricalCrossentropyLoss && typeof classes === 'number') {
      loss.checkLabels(target, classes, `${what}: targets of output '${names[i]}' (${loss.name})`);
    }
    return ops.cast(target, loss.targetDtype);
  });
}

/** The training step of one batch shape: its graph and the variables bound to its params, in order. */
export interface TrainStep {
  readonly graph: Graph;
  readonly variables: Variable[];
}

/**
 * Traces forward + loss + backward + optimizer update into one graph. Inputs: the model inputs, one
 * "target/<output>" per output, "rng_counter" (if random ops are used) and, with `partial`, "rows"; params: weights
 * then optimizer state; outputs: "loss", per-output losses and "pred/<output>"; every param updated in place.
 * `partial`: the int32 scalar input "rows" (1..batch) says how many leading rows are data; the losses are means over
 * those rows (Loss.masked) and the rows after them, padding, add nothing to the gradients. Exact only for a model
 * whose training forward pass keeps rows apart (the compiler checks with passes/rows.ts).
 */
export function traceTrainStep(model: Model, c: Compiled, inputShapes: number[][], targetShapes: number[][], options: { partial?: boolean; weighted?: boolean | 'perOutput'; masks?: boolean } = {}): TrainStep {
  const tr = new Trace();
  const trainable = model.trainableWeights;
  c.optimizer.build(trainable);
  for (const v of [...model.weights, ...c.optimizer.variables]) tr.paramOf(v);
  const names = model.outputNames;
  const { total, perLoss, preds, grads } = withTrace(tr, () => {
    const ins = model.inputSpecs.map((s, i) => tr.input(s.name, s.dtype, inputShapes[i]!));
    const targets = names.map((n, i) => tr.input(`target/${n}`, c.losses[i]!.targetDtype, targetShapes[i]!));
    const out = model.call(ins.length === 1 ? ins[0]! : ins, { training: true }) as Tensor | Tensor[];
    const preds = Array.isArray(out) ? out : [out];
    const rows = options.partial ? tr.input('rows', 'int32', []) : undefined;
    // sampleWeight / classWeight: one weight per sample, for every output's loss (Keras's reduce_weighted_values)
    // (per output: "sample_weight/<output>", fit's sampleWeight as a list or a record)
    const n = inputShapes[0]![0]!;
    const sw = options.weighted === 'perOutput' ? names.map((o) => tr.input(`sample_weight/${o}`, 'float32', [n])) : options.weighted ? tr.input('sample_weight', 'float32', [n]) : undefined;
    if (rows && sw) throw new Error('traceTrainStep: partial batches with sample weights are not supported');
    const perLoss = preds.map((p, i) => (rows ? c.losses[i]!.masked(targets[i]!, p, rows) : sw ? c.losses[i]!.weighted(targets[i]!, p, weightOf(sw, i)) : c.losses[i]!(targets[i]!, p)));
    const total = perLoss.reduce((acc: Tensor | undefined, l, i) => {
      const w = c.lossWeights[i] === 1 ? l : ops.multiply(l, c.lossWeights[i]!);
      return acc ? ops.add(acc, w) : w;
    }, undefined)!;
    const gNodes = gradients(tr.builder, tr.nodeOf(total), trainable.map((v) => tr.paramOf(v)));
    const grads = gNodes.map((n) => new Tensor(n.type.dtype, n.type.shape, undefined, n));
    return { total, perLoss, preds, grads };
  });
  const updates = withTrace(tr, () => c.optimizer.updates(grads, trainable));
  // state the forward pass updates (BatchNormalization's moving statistics), unless the optimizer owns it
  for (const [v, t] of tr.stateUpdates) if (!updates.some(([u]) => u === v)) updates.push([v, t]);
  const outputs = [{ name: 'loss', node: tr.nodeOf(total) }];
  if (names.length > 1) names.forEach((n, i) => outputs.push({ name: `${n}_loss`, node: tr.nodeOf(perLoss[i]!) }));
  names.forEach((n, i) => outputs.push({ name: `pred/${n}`, node: tr.nodeOf(preds[i]!) }));
  // with `masks`: the masks the outputs carry (the losses above applied them), for fit's metrics
  if (options.masks) names.forEach((n, i) => { const m = getMask(preds[i]!); if (m) outputs.push({ name: `mask/${n}`, node: tr.nodeOf(m) }); });
  const graph = tr.finish('train_step', outputs, updates.map(([v, t]) => ({ param: tr.paramOf(v), value: tr.nodeOf(t) })));
  return { graph, variables: tr.variables };
}

/**
 * The training step split at the gradients, for data-parallel training: `gradStep` runs forward + loss + backward on
 * one rank's share of the batch (the same inputs as traceTrainStep's, plus "rng_row" when it draws random values:
 * the global index of the rank's first row, so Dropout masks its rows as one process would) and updates no param; its outputs are
 * "grad/<weight>" for every trainable weight (in trainableWeights order), "state/<variable>" for the new values of the
 * state the forward pass updates (BatchNormalization's moving statistics, from this rank's rows), "loss", then
 * "pred/<output>". `applyGrads` takes those values before the preds as one flat float32 vector "grads", in that
 * order, once the ranks have reduced it (a mean over the ranks' rows), and runs the optimizer update and sets the
 * state. The runtime has kiln_run_entry copy gradStep's outputs side by side into that one vector, so one all-reduce
 * per step covers the gradients, the state and the loss. (Concatenating them in the graph costs a kernel as slow as
 * the backward pass: a concat of 50,891 values took 218 us, the whole seed MLP step 234 us.)
 */
export function traceSplitStep(model: Model, c: Compiled, inputShapes: number[][], targetShapes: number[][], options: { partial?: boolean } = {}): { grad: Graph; apply: Graph } {
  const trainable = model.trainableWeights;
  c.optimizer.build(trainable);
  const declare = (tr: Trace) => { for (const v of [...model.weights, ...c.optimizer.variables]) tr.paramOf(v); };
  const tr = new Trace();
  tr.shardedRows = true; // Dropout draws by the global row: input "rng_row", the rank's first row in the batch
  declare(tr);
  const names = model.outputNames;
  const { flat, preds, state } = withTrace(tr, () => {
    const ins = model.inputSpecs.map((s, i) => tr.input(s.name, s.dtype, inputShapes[i]!));
    const targets = names.map((n, i) => tr.input(`target/${n}`, c.losses[i]!.targetDtype, targetShapes[i]!));
    const out = model.call(ins.length === 1 ? ins[0]! : ins, { training: true }) as Tensor | Tensor[];
    const preds = Array.isArray(out) ? out : [out];
    const rows = options.partial ? tr.input('rows', 'int32', []) : undefined;
    const perLoss = preds.map((p, i) => (rows ? c.losses[i]!.masked(targets[i]!, p, rows) : c.losses[i]!(targets[i]!, p)));
    const total = perLoss.reduce((acc: Tensor | undefined, l, i) => {
      const w = c.lossWeights[i] === 1 ? l : ops.multiply(l, c.lossWeights[i]!);
      return acc ? ops.add(acc, w) : w;
    }, undefined)!;
    const gNodes = gradients(tr.builder, tr.nodeOf(total), trainable.map((v) => tr.paramOf(v)));
    const grads = gNodes.map((n) => new Tensor(n.type.dtype, n.type.shape, undefined, n));
    const state = [...tr.stateUpdates].filter(([v]) => !trainable.includes(v));
    const flat = [...grads.map((g, i) => [`grad/${trainable[i]!.path}`, g] as const), ...state.map(([v, t]) => [`state/${v.path}`, t] as const), ['loss', total] as const];
    return { flat: flat.map(([name, t]) => ({ name, t: ops.cast(t, 'float32') })), preds, state: state.map(([v]) => v) };
  });
  const outputs: { name: string; node: Node }[] = flat.map(({ name, t }) => ({ name, node: tr.nodeOf(t) }));
  names.forEach((n, i) => outputs.push({ name: `pred/${n}`, node: tr.nodeOf(preds[i]!) }));
  const grad = tr.finish('grad_step', outputs);
  const ta = new Trace();
  declare(ta);
  const { updates, loss } = withTrace(ta, () => {
    const reduced = ta.input('grads', 'float32', [flat.reduce((n, { t }) => n + t.size, 0)]);
    let at = 0;
    const take = (shape: readonly number[]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const t = ops.reshape(ops.slice(reduced, [at], [n]), shape);
      at += n;
      return t;
    };
    const grads = trainable.map((v) => take(v.shape));
    const updates = c.optimizer.updates(grads, trainable);
    for (const v of state) updates.push([v, ops.cast(take(v.shape), v.dtype)]);
    return { updates, loss: take([]) };
  });
  const apply = ta.finish('apply_grads', [{ name: 'loss', node: ta.nodeOf(loss) }], updates.map(([v, t]) => ({ param: ta.paramOf(v), value: ta.nodeOf(t) })));
  return { grad, apply };
}

/** Runs one training step on concrete data and writes the updated values back into the variables. */
export function runTrainStep(step: TrainStep, model: Model, inputs: Tensor[], targets: Tensor[], counter: number, backend?: Backend, sampleWeight?: SampleWeights): Map<string, Tensor> {
  const bind: Record<string, TypedArray> = { rng_counter: Int32Array.of(counter) };
  if (Array.isArray(sampleWeight)) model.outputNames.forEach((n, i) => { bind[`sample_weight/${n}`] = sampleWeight[i]!.data; });
  else if (sampleWeight) bind['sample_weight'] = sampleWeight.data;
  model.inputSpecs.forEach((s, i) => { bind[s.name] = inputs[i]!.data; });
  model.outputNames.forEach((n, i) => { bind[`target/${n}`] = targets[i]!.data; });
  const params: Record<string, TypedArray> = {};
  for (const v of step.variables) params[v.path] = v.data;
  const res = runnerFor(step.graph, backend).run(bind, params);
  // the runner's update arrays are fresh: the variables take them over (a runner that sees them again knows
  // its memory already holds them)
  for (const v of step.variables) {
    const u = res.updates.get(v.path);
    if (u) v._adopt(u);
  }
  return new Map(step.graph.outputs.map((o) => [o.name, new Tensor(o.node.type.dtype, o.node.type.shape, res.outputs.get(o.name)!)]));
}

export interface FitOptions {
  epochs?: number;
  batchSize?: number;
  /** Fraction of the samples (taken from the end, before shuffling) held out for validation. */
  validationSplit?: number;
  /** [x, y] or [x, y, sampleWeight] to evaluate after each epoch. */
  validationData?: readonly [ModelInput, ModelInput] | readonly [ModelInput, ModelInput, TensorLike];
  shuffle?: boolean;
  /** 0 silent, 1 progress bar, 2 one line per epoch ('auto' = 1). */
  verbose?: 0 | 1 | 2 | 'auto';
  /** Where progress lines go (default: process.stdout). */
  print?: (text: string) => void;
  /** Where to run (default: keras.config.backend(), initially compiled wasm). */
  backend?: Backend;
  /** keras.callbacks objects, Callback subclasses or objects of hook functions, called in order. */
  callbacks?: readonly CallbackLike[];
  /**
   * One weight per training sample, multiplying its loss (Keras 3's sum_over_batch_size: the sum over the batch size);
   * for several outputs also a list with one per output, or a record by output name.
   */
  sampleWeight?: TensorLike | readonly TensorLike[] | Readonly<Record<string, TensorLike>>;
  /** Weight by class id (the label, or the argmax of a one-hot target): the sample weights of a single-output model. */
  classWeight?: Readonly<Record<number, number>>;
  /** The epoch to start at (resuming): epochs run from initialEpoch to epochs - 1. */
  initialEpoch?: number;
}

/** What fit returns: per-epoch logs by metric name, as Keras's History. */
export class History {
  readonly history: Record<string, number[]> = {};
  readonly epoch: number[] = [];
  constructor(readonly params: { epochs: number; steps: number; verbose: number }) {}
}

function takeRows(t: Tensor, rows: ArrayLike<number>): Tensor {
  const width = t.size / t.shape[0]!;
  const out = new (t.data.constructor as new (n: number) => TypedArray)(rows.length * width);
  for (let i = 0; i < rows.length; i++) out.set(t.data.subarray(rows[i]! * width, (rows[i]! + 1) * width), i * width);
  return new Tensor(t.dtype, [rows.length, ...t.shape.slice(1)], out);
}

function samples(ts: readonly Tensor[], what: string): number {
  const n = ts[0]!.shape[0]!;
  for (const t of ts) if (t.shape[0] !== n) throw new Error(`${what}: all arrays need the same number of samples, got ${ts.map((x) => x.shape[0]).join(', ')}`);
  return n;
}

const FIT_OPTIONS = {
  epochs: true, batchSize: true, validationSplit: true, validationData: true, shuffle: true, verbose: true, print: true, backend: true,
  callbacks: true, sampleWeight: true, classWeight: true, initialEpoch: true,
} satisfies OptionNames<FitOptions>;

const EVALUATE_OPTIONS = { batchSize: true, verbose: true, returnDict: true, print: true, backend: true, sampleWeight: true, callbacks: true } satisfies OptionNames<EvaluateOptions>;

/** Sample weights as a float32 [n] tensor, checked: one finite weight per sample. */
function sampleWeights(v: TensorLike, n: number, what: string): Tensor {
  let t = ops.cast(tensorArg(v, what), 'float32');
  if (t.rank === 2 && t.shape[1] === 1) t = ops.reshape(t, [t.shape[0]!]);
  if (t.rank !== 1 || t.shape[0] !== n) throw new Error(`${what} must hold one weight per sample (shape [${n}]), got shape [${t.shape}]`);
  const bad = t.data.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new Error(`${what}: weight ${t.data[bad]} at sample ${bad} is not a finite number`);
  return t;
}

/** fit's and evaluate's sampleWeight: one [n] array for every output, or (several outputs) a list or record of them. */
function sampleWeightsOf(model: Model, v: unknown, n: number, what: string): SampleWeights {
  const names = model.outputNames;
  const isArrayLike = (e: unknown) => e instanceof Tensor || ArrayBuffer.isView(e) || Array.isArray(e);
  if (names.length > 1 && Array.isArray(v) && v.length === names.length && v.every(isArrayLike)) {
    return v.map((w, i) => sampleWeights(w as TensorLike, n, `${what} of output '${names[i]}'`));
  }
  if (names.length > 1 && typeof v === 'object' && v !== null && !isArrayLike(v)) {
    const rec = v as Record<string, TensorLike>;
    for (const k of Object.keys(rec)) if (!names.includes(k)) throw new Error(`${what} names '${k}', which is not an output (${names.join(', ')})`);
    return names.map((o) => {
      if (!(o in rec)) throw new Error(`${what}: missing weights for output '${o}'`);
      return sampleWeights(rec[o]!, n, `${what} of output '${o}'`);
    });
  }
  return sampleWeights(v as TensorLike, n, what);
}

/** Keras's class_weight_to_sample_weights: each sample's weight is that of its class (rounded label or one-hot argmax), else 1. */
function classWeights(model: Model, classWeight: unknown, targets: Tensor[]): Tensor {
  const where = 'fit: classWeight';
  if (typeof classWeight !== 'object' || classWeight === null || Array.isArray(classWeight)) throw new TypeError(`${where} must be a record of class id to weight, e.g. { 0: 1, 1: 5 }, got ${describe(classWeight)}`);
  if (targets.length !== 1) throw new Error(`${where} is not supported for a model with ${targets.length} outputs (as Keras); pass sampleWeight`);
  const byClass = new Map<number, number>();
  for (const [k, w] of Object.entries(classWeight)) {
    if (!/^(0|[1-9]\d*)$/.test(k)) throw new Error(`${where}: key '${k}' is not a class id (a non-negative integer)`);
    if (typeof w !== 'number' || !Number.isFinite(w)) throw new TypeError(`${where}: the weight of class ${k} must be a finite number, got ${describe(w)}`);
    byClass.set(Number(k), w);
  }
  const y = targets[0]!, n = y.shape[0]!;
  const width = y.rank > 1 ? y.size / n : 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let cls: number;
    if (width > 1) {
      let best = 0;
      for (let j = 1; j < width; j++) if (y.data[i * width + j]! > y.data[i * width + best]!) best = j;
      cls = best;
    } else cls = Math.round(y.data[i]!); // numpy rounds halves to even: labels are whole in practice
    out[i] = byClass.get(cls) ?? 1;
  }
  return new Tensor('float32', [n], out);
}

/** A boolean option is true, false or not given ('yes' or 1 would be taken for true). */
function checkBoolean(v: unknown, what: string): void {
  if (v !== undefined && typeof v !== 'boolean') throw new Error(`${what} must be true or false, got ${show(v)}`);
}

function requireCompiled(model: Model, c: Compiled | undefined): Compiled {
  if (!c) throw new Error(`Model '${model.name}' must be compiled before training or evaluation: call model.compile({ optimizer, loss })`);
  return c;
}

/** The training steps traced for a compile, by batch size and what else shapes them. */
const trainSteps = new WeakMap<Compiled, Map<string, TrainStep>>();

/** model.fit: epochs of shuffled batches through the traced training step, with Keras-style progress. */
export function fitModel(model: Model, c: Compiled | undefined, x: ModelInput, y: ModelInput, options: FitOptions = {}): History {
  checkOptions(options, FIT_OPTIONS, 'fit', { stepsPerEpoch: null, validationSteps: null, validationBatchSize: null, validationFreq: 1 });
  checkRunOptions(options, 'fit');
  checkBoolean(options.shuffle, 'fit: shuffle');
  const comp = requireCompiled(model, c);
  let inputs = model.normalizeInputs(x);
  let targets = normalizeTargets(model, y, comp, 'fit');
  let n = samples([...inputs, ...targets], 'fit');
  if (options.sampleWeight !== undefined && options.classWeight !== undefined) throw new Error('fit: give sampleWeight or classWeight, not both (as Keras)');
  let weights: SampleWeights | undefined = options.sampleWeight !== undefined ? sampleWeightsOf(model, options.sampleWeight, n, 'fit: sampleWeight')
    : options.classWeight !== undefined ? classWeights(model, options.classWeight, targets) : undefined;
  let val: [Tensor[], Tensor[], SampleWeights | undefined] | undefined;
  const vd = options.validationData;
  if (vd !== undefined && !(Array.isArray(vd) && (vd.length === 2 || vd.length === 3))) {
    throw new Error(`fit: validationData must be [x, y] or [x, y, sampleWeight], got ${describe(vd)}`);
  }
  if (vd) {
    const vx = model.normalizeInputs(vd[0]), vy = normalizeTargets(model, vd[1], comp, 'fit: validationData');
    val = [vx, vy, vd.length === 3 ? sampleWeightsOf(model, vd[2], samples([...vx, ...vy], 'fit: validationData'), 'fit: validationData sample weights') : undefined];
  } else if (options.validationSplit) {
    const split = options.validationSplit;
    if (!(typeof split === 'number' && split > 0 && split < 1)) throw new Error(`fit: validationSplit must be a number in (0, 1), got ${show(split)}`);
    const nTrain = Math.floor(n * (1 - split));
    const cut = (ts: Tensor[]) => [ts.map((t) => sliceBatch(t, 0, nTrain)), ts.map((t) => sliceBatch(t, nTrain, n))] as const;
    const [ti, vi] = cut(inputs), [tt, vt] = cut(targets);
    const [tw, vw] = weights ? cut(Array.isArray(weights) ? weights : [weights]) : [undefined, undefined];
    const one = (w: readonly Tensor[] | undefined) => (w && (Array.isArray(weights) ? [...w] : w[0]));
    val = [vi, vt, one(vw)];
    inputs = ti;
    targets = tt;
    weights = one(tw);
    n = nTrain;
  }
  if (n === 0) throw new Error('fit: no training samples');
  const epochs = options.epochs ?? 1;
  if (!Number.isInteger(epochs) || epochs < 0) throw new Error(`fit: epochs must be a non-negative integer, got ${epochs}`);
  const initialEpoch = options.initialEpoch ?? 0;
  if (!Number.isSafeInteger(initialEpoch) || initialEpoch < 0) throw new Error(`fit: initialEpoch must be a non-negative integer, got ${show(initialEpoch)}`);
  const bs = Math.min(options.batchSize ?? 32, n);
  const steps = Math.ceil(n / bs);
  const verbose = options.verbose === 'auto' || options.verbose === undefined ? 1 : options.verbose;
  const history = new History({ epochs, steps, verbose });
  const ms = makeMetrics(model, comp);
  const directions: Record<string, 'up' | 'down'> = {};
  for (const m of ms) directions[m.name] = m.metric.direction;
  const callbacks = new CallbackList(options.callbacks, model, { epochs, steps, verbose, directions });
  // traced steps are kept across fit calls (fit one epoch at a time compiles once), until compile or the model changes
  let steps0 = trainSteps.get(comp);
  if (!steps0) trainSteps.set(comp, (steps0 = new Map()));
  const stepCache = steps0;
  const signature = `${model.structureVersion}|${model.trainableWeights.map((v) => v.path).join(',')}|${inputs.map((t) => t.shape.slice(1)).join(';')}|${targets.map((t) => t.shape.slice(1)).join(';')}|${weights === undefined ? '' : Array.isArray(weights) ? 'perOutput' : 'weighted'}`;
  const stepFor = (b: number): TrainStep => {
    let s = stepCache.get(`${b}|${signature}`);
    if (!s) {
      s = traceTrainStep(model, comp, inputs.map((t) => [b, ...t.shape.slice(1)]), targets.map((t) => [b, ...t.shape.slice(1)]), { weighted: Array.isArray(weights) ? 'perOutput' : weights !== undefined, masks: true });
      stepCache.set(`${b}|${signature}`, s);
    }
    return s;
  };
  const customStep = (model as { trainStep?: TrainStepFn }).trainStep;
  model.stopTraining = false;
  callbacks.call('onTrainBegin', {});
  let last: Logs = {};
  for (let epoch = initialEpoch; epoch < epochs && !model.stopTraining; epoch++) {
    callbacks.call('onEpochBegin', epoch, {});
    const bar = new Progbar(steps, verbose, options.print, `Epoch ${epoch + 1}/${epochs}`);
    const order = Int32Array.from({ length: n }, (_, i) => i);
    if (options.shuffle ?? true) {
      const u = globalRng.uniform(n);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(u[i]! * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
    }
    const lossMean = new metrics.Mean('loss');
    const perOutLoss = model.outputNames.map((o) => new metrics.Mean(`${o}_loss`));
    for (const m of ms) m.metric.resetState();
    let logs: Logs = {};
    for (let s = 0; s < steps && !model.stopTraining; s++) {
      callbacks.call('onTrainBatchBegin', s, {});
      const rows = order.subarray(s * bs, Math.min(n, (s + 1) * bs));
      const bi = inputs.map((t) => takeRows(t, rows)), bt = targets.map((t) => takeRows(t, rows));
      const bw = weights && mapWeights(weights, (w) => takeRows(w, rows));
      if (customStep) {
        // the model's own trainStep (Keras's train_step), traced into a compiled step where it can be, else eager:
        // its logs are the returned record
        const one = (ts: Tensor[]) => (ts.length === 1 ? ts[0]! : ts);
        const compiled = comp.runEagerly ? undefined : runCustomStep(model, comp, customStep, bi, bt, bw, signature, options.backend);
        logs = compiled ?? customLogs(customStep.call(model, bw ? [one(bi), one(bt), bw] : [one(bi), one(bt)]), model);
        bar.update(s + 1, logs);
        callbacks.call('onTrainBatchEnd', s, { ...logs });
        continue;
      }
      const out = runTrainStep(stepFor(rows.length), model, bi, bt, comp.optimizer.iterations.data[0]!, options.backend, bw);
      lossMean.add(out.get('loss')!.item(), rows.length);
      if (model.outputNames.length > 1) perOutLoss.forEach((m, i) => m.add(out.get(`${model.outputNames[i]}_loss`)!.item(), rows.length));
      const preds = withMasks(model, out);
      for (const m of ms) m.metric.updateState(bt[m.output]!, preds[m.output]!, m.weighted && bw ? weightOf(bw, m.output) : undefined);
      logs = logsOf(lossMean, perOutLoss, ms);
      bar.update(s + 1, logs);
      callbacks.call('onTrainBatchEnd', s, { ...logs });
    }
    if (!customStep) logs = logsOf(lossMean, perOutLoss, ms);
    if (val) {
      const v = evaluateNormalized(model, comp, val[0], val[1], { batchSize: bs, verbose: 0, returnDict: true, backend: options.backend }, val[2], callbacks) as Record<string, number>;
      for (const [k, value] of Object.entries(v)) logs[`val_${k}`] = value;
    }
    // callbacks first: the learning-rate callbacks add learning_rate to the logs that History and the bar show (as Keras)
    callbacks.call('onEpochEnd', epoch, logs);
    bar.finish(logs);
    history.epoch.push(epoch);
    for (const [k, v] of Object.entries(logs)) (history.history[k] ??= []).push(v);
    last = logs;
  }
  callbacks.call('onTrainEnd', last);
  return history;
}

/** The predictions among a step's outputs ("pred/<output>", else "<output>"), each with its "mask/<output>" attached. */
function withMasks(model: Model, out: Map<string, Tensor>): Tensor[] {
  return model.outputNames.map((n) => {
    const p = out.get(`pred/${n}`) ?? out.get(n)!, m = out.get(`mask/${n}`);
    if (m) setMask(p, m);
    return p;
  });
}

/** A custom train step: [x, y] or [x, y, sampleWeight] of one batch to its logs (numbers or scalar tensors). */
export type TrainStepFn = (data: [Tensor | Tensor[], Tensor | Tensor[]] | [Tensor | Tensor[], Tensor | Tensor[], Tensor | Tensor[]]) => Readonly<Record<string, number | Tensor>>;

function customLogs(r: unknown, model: Model): Logs {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new Error(`Model '${model.name}': trainStep must return a record of logs ({ loss, ... }), got ${describe(r)}`);
  const logs: Logs = {};
  for (const [k, v] of Object.entries(r)) {
    const n = v instanceof Tensor && v.size === 1 ? v.item() : v;
    if (typeof n !== 'number') throw new Error(`Model '${model.name}': trainStep's log '${k}' must be a number or a scalar tensor, got ${describe(v)}`);
    logs[k] = n;
  }
  return logs;
}

function logsOf(loss: metrics.Mean, perOut: metrics.Mean[], ms: { name: string; metric: metrics.Metric }[]): Record<string, number> {
  const logs: Record<string, number> = { loss: loss.result().item() };
  if (perOut.length > 1) for (const m of perOut) logs[m.name] = m.result().item();
  for (const m of ms) logs[m.name] = m.metric.result().item();
  return logs;
}

export interface EvaluateOptions {
  batchSize?: number;
  verbose?: 0 | 1 | 2 | 'auto';
  /** Return a record by metric name instead of [loss, ...metrics]. */
  returnDict?: boolean;
  /** One weight per sample, multiplying its loss (and weightedMetrics; compile's metrics stay unweighted), or one per output as fit's. */
  sampleWeight?: FitOptions['sampleWeight'];
  print?: (text: string) => void;
  backend?: Backend;
  /** Callbacks whose onTest* hooks run (Keras's hook names; fit's validation calls fit's own). */
  callbacks?: readonly CallbackLike[];
}

/** model.evaluate: loss and metrics over batches of the inference graph. */
export function evaluateModel(model: Model, c: Compiled | undefined, x: ModelInput, y: ModelInput, options: EvaluateOptions = {}): number[] | Record<string, number> {
  checkOptions(options, EVALUATE_OPTIONS, 'evaluate', { steps: null });
  checkRunOptions(options, 'evaluate');
  checkBoolean(options.returnDict, 'evaluate: returnDict');
  const comp = requireCompiled(model, c);
  const inputs = model.normalizeInputs(x), targets = normalizeTargets(model, y, comp, 'evaluate');
  const sw = options.sampleWeight === undefined ? undefined : sampleWeightsOf(model, options.sampleWeight, samples([...inputs, ...targets], 'evaluate'), 'evaluate: sampleWeight');
  return evaluateNormalized(model, comp, inputs, targets, options, sw);
}

/** evaluate on inputs and targets already checked and cast (fit's validation data, with fit's callbacks). */
function evaluateNormalized(model: Model, comp: Compiled, inputs: Tensor[], targets: Tensor[], options: EvaluateOptions, weights?: SampleWeights, fitCallbacks?: CallbackList): number[] | Record<string, number> {
  const n = samples([...inputs, ...targets], 'evaluate');
  const bs = Math.max(1, Math.min(options.batchSize ?? 32, n));
  const ms = makeMetrics(model, comp);
  const verbose0 = options.verbose === 'auto' || options.verbose === undefined ? 1 : options.verbose;
  const directions: Record<string, 'up' | 'down'> = {};
  for (const m of ms) directions[m.name] = m.metric.direction;
  const callbacks = fitCallbacks ?? new CallbackList(options.callbacks, model, { epochs: 1, steps: Math.ceil(n / bs), verbose: verbose0, directions }, 'evaluate');
  // a metric object given to compile is the one fit used: start from zero, as Keras's reset_metrics
  for (const m of ms) m.metric.resetState();
  const names = model.outputNames;
  const lossMean = new metrics.Mean('loss');
  const perOut = names.map((o) => new metrics.Mean(`${o}_loss`));
  const steps = Math.ceil(n / bs);
  const verbose = options.verbose === 'auto' || options.verbose === undefined ? 1 : options.verbose;
  const bar = new Progbar(steps, verbose, options.print);
  callbacks.call('onTestBegin', {});
  noRecord(() => {
    for (let s = 0; s < steps; s++) {
      callbacks.call('onTestBatchBegin', s, {});
      const a = s * bs, e = Math.min(n, a + bs);
      const bt = targets.map((t) => sliceBatch(t, a, e)), bw = weights && mapWeights(weights, (w) => sliceBatch(w, a, e));
      const t = tracedFor(model, e - a, false, true);
      const outs = runTraced(t, inputs.map((x) => sliceBatch(x, a, e)), {}, options.backend);
      const preds = withMasks(model, new Map(t.graph.outputs.map((o, i) => [o.name, outs[i]!])));
      let total = 0;
      preds.forEach((p, i) => {
        const l = (bw ? comp.losses[i]!.weighted(bt[i]!, p, weightOf(bw, i)) : comp.losses[i]!(bt[i]!, p)).item();
        perOut[i]!.add(l, e - a);
        total += comp.lossWeights[i]! * l;
      });
      lossMean.add(total, e - a);
      for (const m of ms) m.metric.updateState(bt[m.output]!, preds[m.output]!, m.weighted && bw ? weightOf(bw, m.output) : undefined);
      const logs = logsOf(lossMean, perOut, ms);
      bar.update(s + 1, logs);
      callbacks.call('onTestBatchEnd', s, { ...logs });
    }
  });
  const logs = logsOf(lossMean, perOut, ms);
  callbacks.call('onTestEnd', { ...logs });
  bar.finish(logs);
  return options.returnDict ? logs : Object.values(logs);
}
