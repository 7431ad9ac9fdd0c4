// A subclass's custom trainStep traced into one compiled training step, as Keras runs train_step under jit: the tape,
// computeLoss and applyGradients build graph nodes; a step that cannot be traced runs eagerly instead.
import { NotTraceableError, Trace, withTrace } from '../engine.js';
import { describe } from '../errors.js';
import { Tensor } from '../tensor.js';
import type { Backend } from '../config.js';
import type { Model } from './model.js';
import { type Compiled, type SampleWeights, type TrainStep, type TrainStepFn, runTrainStep } from './training.js';

/** A traced custom step: its graph (outputs "log/<name>"), and the logs that are plain numbers. */
interface TracedStep extends TrainStep {
  readonly logs: Readonly<Record<string, number | undefined>>;
}

/** Traced steps by compile (its optimizer's variables are the step's), then batch shape; a string: why it runs eagerly. */
const traced = new WeakMap<Compiled, Map<string, TracedStep | string>>();

/**
 * Traces `step` on one batch's shapes: the data it gets are the batch's inputs, targets and sample weights as graph
 * inputs (the names of traceTrainStep's), its optimizer updates and the state its forward pass sets are the graph's
 * updates, its logs its outputs. Why it cannot be traced when it reads values (`.item()`, `.data`), runs a metric's
 * updateState, or reads a variable it has updated: Keras's jit traces once too, so JS state changed in the step
 * changes once per batch shape.
 */
function trace(model: Model, step: TrainStepFn, x: readonly Tensor[], y: readonly Tensor[], sw: SampleWeights | undefined): TracedStep | string {
  if (Array.isArray(sw)) return 'it gets sample weights per output';
  const tr = new Trace();
  tr.strictUpdates = true;
  let result: unknown;
  try {
    result = withTrace(tr, () => {
      const ins = model.inputSpecs.map((s, i) => tr.input(s.name, x[i]!.dtype, x[i]!.shape));
      const ts = model.outputNames.map((n, i) => tr.input(`target/${n}`, y[i]!.dtype, y[i]!.shape));
      const one = (t: Tensor[]) => (t.length === 1 ? t[0]! : t);
      const data = sw ? [one(ins), one(ts), tr.input('sample_weight', 'float32', sw.shape)] : [one(ins), one(ts)];
      return step.call(model, data as Parameters<TrainStepFn>[0]);
    });
  } catch (e) {
    return e instanceof NotTraceableError ? e.message : `it cannot be traced (${(e as Error).message})`;
  } finally {
    tr.strictUpdates = false;
  }
  if (typeof result !== 'object' || result === null || Array.isArray(result)) return 'its result is not a record of logs';
  const outputs: { name: string; node: ReturnType<Trace['nodeOf']> }[] = [];
  const logs: Record<string, number | undefined> = {};
  for (const [k, v] of Object.entries(result)) {
    if (typeof v === 'number') logs[k] = v;
    else if (v instanceof Tensor && v.size === 1 && v._node) {
      logs[k] = undefined;
      outputs.push({ name: `log/${k}`, node: tr.nodeOf(v) });
    } else if (v instanceof Tensor && v.size === 1) logs[k] = v.item();
    else throw new Error(`Model '${model.name}': trainStep's log '${k}' must be a number or a scalar tensor, got ${describe(v)}`);
  }
  const updates = [...tr.stateUpdates].map(([v, t]) => ({ param: tr.paramOf(v), value: tr.nodeOf(t) }));
  return { graph: tr.finish('custom_train_step', outputs, updates), variables: tr.variables, logs };
}

/**
 * Runs the model's custom trainStep on one batch, compiled (traced once per batch shape, then run on `backend`) unless
 * compile's runEagerly is set or the step cannot be traced; returns its logs, or undefined to run it eagerly.
 */
export function runCustomStep(model: Model, comp: Compiled, step: TrainStepFn, x: Tensor[], y: Tensor[], sw: SampleWeights | undefined, key: string, backend?: Backend): Record<string, number> | undefined {
  let byShape = traced.get(comp);
  if (!byShape) traced.set(comp, (byShape = new Map()));
  const k = `${key}|${x.map((t) => t.shape).join(';')}|${model.structureVersion}`;
  let s = byShape.get(k);
  if (s === undefined) byShape.set(k, (s = trace(model, step, x, y, sw)));
  if (typeof s === 'string') return undefined;
  const out = runTrainStep(s, model, x, y, comp.optimizer.iterations.data[0]!, backend, sw);
  const logs: Record<string, number> = {};
  for (const [name, v] of Object.entries(s.logs)) logs[name] = v ?? out.get(`log/${name}`)!.item();
  return logs;
}

/** How fit has run the custom trainStep of a compile, by batch shape: 'compiled', or why it ran eagerly. */
export function customStepModes(comp: Compiled): string[] {
  return [...(traced.get(comp)?.values() ?? [])].map((s) => (typeof s === 'string' ? s : 'compiled'));
}
