// Running models: trace a model into one graph per (batch size, mode) and run it on the selected backend.
import { type Graph, nodeName } from '../../ir/graph.js';
import type { TypedArray } from '../../ir/types.js';
import { Trace, withTrace } from '../engine.js';
import * as ops from '../ops.js';
import { show } from '../errors.js';
import { Tensor, type Variable } from '../tensor.js';
import { type Backend, checkBackend } from '../config.js';
import { type OptionNames, checkOptions } from '../options.js';
import { Progbar } from './progbar.js';
import type { Model, ModelInput } from './model.js';
import { runnerFor } from './runner.js';
import { type CallbackLike, CallbackList } from '../callbacks.js';
import { getMask } from '../layers/layer.js';

export interface PredictOptions {
  /** Samples per call (Keras default 32). */
  batchSize?: number;
  /** 0 silent (the default, unlike Keras), 1 progress bar, 2 one line ('auto' = 1). */
  verbose?: 0 | 1 | 2 | 'auto';
  /** Where progress lines go (default: process.stdout). */
  print?: (text: string) => void;
  /** Where to run (default: keras.config.backend(), initially compiled wasm). */
  backend?: Backend;
  /** Callbacks whose onPredict* hooks run (Keras's hook names). */
  callbacks?: readonly CallbackLike[];
}

/** Checks verbose, batchSize, print and backend, shared by fit, evaluate and predict. */
export function checkRunOptions(o: { verbose?: unknown; batchSize?: unknown; print?: unknown; backend?: unknown }, what: string): void {
  if (o.batchSize !== undefined && (!Number.isSafeInteger(o.batchSize) || (o.batchSize as number) < 1)) {
    throw new Error(`${what}: batchSize must be a positive integer, got ${show(o.batchSize)}`);
  }
  if (o.verbose !== undefined && ![0, 1, 2, 'auto'].includes(o.verbose as number)) throw new Error(`${what}: verbose must be 0, 1, 2 or 'auto', got ${show(o.verbose)}`);
  if (o.print !== undefined && typeof o.print !== 'function') throw new Error(`${what}: print must be a function of one line of text, got ${show(o.print)}`);
  if (o.backend !== undefined) checkBackend(o.backend, what);
}

export interface TracedModel {
  readonly graph: Graph;
  /** The variables behind the graph's params, in param order. */
  readonly variables: Variable[];
}

/**
 * Traces model(inputs) at a fixed batch size into a graph: inputs by model input name, outputs by output name; with
 * `masks`, then "mask/<output>" for each output that carries a mask (bool, Keras's _keras_mask).
 */
export function traceModel(model: Model, batchSize: number, training = false, masks = false): TracedModel {
  const tr = new Trace();
  for (const v of model.weights) tr.paramOf(v);
  const outputs = withTrace(tr, () => {
    const ins = model.inputSpecs.map((s) => tr.input(s.name, s.dtype, s.shape.map((d, i) => (i === 0 ? batchSize : d ?? 1))));
    const out = model.call(ins.length === 1 ? ins[0]! : ins, { training }) as Tensor | Tensor[];
    return Array.isArray(out) ? out : [out];
  });
  const named = outputs.map((t, i) => ({ name: model.outputNames[i]!, node: tr.nodeOf(t) }));
  if (masks) outputs.forEach((t, i) => { const m = getMask(t); if (m) named.push({ name: `mask/${model.outputNames[i]!}`, node: tr.nodeOf(m) }); });
  const graph = tr.finish(training ? 'forward_train' : 'predict', named);
  return { graph, variables: tr.variables };
}

const cache = new WeakMap<Model, Map<string, TracedModel>>();

/** The traced graph of a model for a batch size, cached until the model's layers change. */
export function tracedFor(model: Model, batchSize: number, training = false, masks = false): TracedModel {
  let m = cache.get(model);
  if (!m) cache.set(model, (m = new Map()));
  const key = `${batchSize}|${training}|${masks}|${model.structureVersion}`;
  let t = m.get(key);
  if (!t) m.set(key, (t = traceModel(model, batchSize, training, masks)));
  return t;
}

/** Runs a traced graph on concrete input tensors with the variables' current values. */
export function runTraced(t: TracedModel, inputs: readonly Tensor[], extra: Record<string, TypedArray> = {}, backend?: Backend): Tensor[] {
  const bind: Record<string, TypedArray> = { ...extra };
  t.graph.inputs.forEach((n, i) => {
    const name = nodeName(n);
    if (!Object.hasOwn(bind, name)) bind[name] = inputs[i]!.data; // own keys: an input may be named 'constructor'
  });
  const params: Record<string, TypedArray> = {};
  for (const v of t.variables) params[v.path] = v.data;
  const res = runnerFor(t.graph, backend).run(bind, params);
  return t.graph.outputs.map((o) => new Tensor(o.node.type.dtype, o.node.type.shape, res.outputs.get(o.name)!));
}

/** Slices rows [start, end) of a tensor along the batch axis. */
export function sliceBatch(t: Tensor, start: number, end: number): Tensor {
  const row = t.size / t.shape[0]!;
  return new Tensor(t.dtype, [end - start, ...t.shape.slice(1)], t.data.slice(start * row, end * row));
}

/** model.predict: batches through the traced inference graph; the last partial batch gets its own graph. */
export function predict(model: Model, x: ModelInput, options: PredictOptions = {}): Tensor | Tensor[] {
  checkOptions(options, { batchSize: true, verbose: true, print: true, backend: true, callbacks: true } satisfies OptionNames<PredictOptions>, 'predict', { steps: null });
  checkRunOptions(options, 'predict');
  const inputs = model.normalizeInputs(x);
  const n = inputs[0]!.shape[0]!;
  if (n === 0) throw new Error(`predict: model '${model.name}' was given no samples (a batch dimension of 0)`);
  for (const t of inputs) if (t.shape[0] !== n) throw new Error(`predict: inputs have different numbers of samples (${inputs.map((i) => i.shape[0]).join(', ')})`);
  const bs = Math.min(options.batchSize ?? 32, n);
  const steps = Math.ceil(n / bs);
  const verbose = options.verbose === 'auto' ? 1 : options.verbose ?? 0;
  const bar = new Progbar(steps, verbose, options.print);
  const callbacks = new CallbackList(options.callbacks, model, { epochs: 1, steps, verbose, directions: {} }, 'predict');
  callbacks.call('onPredictBegin', {});
  const parts: Tensor[][] = [];
  for (let s = 0; s < n; s += bs) {
    const e = Math.min(n, s + bs);
    callbacks.call('onPredictBatchBegin', parts.length, {});
    const traced = tracedFor(model, e - s);
    const outs = runTraced(traced, inputs.map((t) => sliceBatch(t, s, e)), {}, options.backend);
    parts.push(outs);
    callbacks.call('onPredictBatchEnd', parts.length - 1, { outputs: model.multiOutput ? outs : outs[0]! });
    bar.update(parts.length, {});
  }
  callbacks.call('onPredictEnd', {});
  bar.finish({});
  const outs = model.outputNames.map((_, i) => (parts.length === 1 ? parts[0]![i]! : ops.concatenate(parts.map((p) => p[i]!), 0)));
  return model.multiOutput ? outs : outs[0]!;
}
