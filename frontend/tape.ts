// keras.backend.GradientTape: records eager ops, then differentiates them as one graph with the autodiff pass.
import { Builder, type Node } from '../ir/graph.js';
import { interpret } from '../ir/interpreter.js';
import type { TypedArray } from '../ir/types.js';
import { gradients } from '../passes/autodiff.js';
import { inline } from '../passes/scan_grad.js';
import { type OpRecorder, type TapeEntry, type Trace, addRecorder, currentTrace, removeRecorder } from './engine.js';
import { Tensor, Variable } from './tensor.js';

/**
 * Records the ops run inside `record(fn)`; `gradient(loss, sources)` builds the recorded computation as a
 * graph, derives its backward graph, and runs it on the interpreter.
 * @example
 * const tape = keras.backend.GradientTape();
 * const loss = tape.record(() => lossFn(y, model(x, { training: true })));
 * const grads = tape.gradient(loss, model.trainableWeights);
 */
export class GradientTape implements OpRecorder {
  private readonly entries: TapeEntry[] = [];
  private readonly produced = new Map<Tensor, TapeEntry>();
  /** The trace the tape records in (a compiled custom trainStep): its gradients are nodes of that trace. */
  trace: Trace | undefined;

  record<T>(fn: () => T): T {
    const tr = currentTrace();
    if (this.entries.length && tr !== this.trace) throw new Error('GradientTape.record: the tape already recorded ops ' + (tr ? 'eagerly' : 'in a traced step'));
    this.trace = tr;
    addRecorder(this);
    try {
      return fn();
    } finally {
      removeRecorder(this);
    }
  }

  /** @internal called by the engine for each eager op while recording */
  recordOp(e: TapeEntry): void {
    this.entries.push(e);
    this.produced.set(e.out, e);
  }

  /** d target / d each source (zeros where the target does not depend on a source). */
  gradient(target: Tensor, sources: readonly Tensor[]): Tensor[] {
    if (!this.produced.has(target)) {
      throw new Error('GradientTape.gradient: the target was not computed inside tape.record(() => ...)');
    }
    const b = new Builder();
    const nodes = new Map<Tensor, Node>();
    const bind: Record<string, TypedArray> = {};
    const params: Record<string, TypedArray> = {};
    const tr = this.trace;
    if (tr && currentTrace() !== tr) throw new Error('GradientTape.gradient: call it in the traced step that recorded the tape');
    // traced: every leaf is an input of the backward graph, bound to its node in the trace when it is inlined there
    const leaves: Tensor[] = [];
    const leaf = (t: Tensor): Node => {
      let n = nodes.get(t);
      if (n) return n;
      const type = { dtype: t.dtype, shape: t.shape };
      if (tr) {
        n = b.input(`t${nodes.size}`, type);
        leaves.push(t);
      } else if (t instanceof Variable) {
        const name = `${t.path}#${nodes.size}`;
        n = b.param(name, type);
        params[name] = t.data;
      } else {
        const name = `t${nodes.size}`;
        n = b.input(name, type);
        bind[name] = t.data;
      }
      nodes.set(t, n);
      return n;
    };
    for (const s of sources) leaf(s);
    for (const e of this.entries) {
      if (nodes.has(e.out)) continue;
      nodes.set(e.out, b.emit(e.op, e.src.map((s) => nodes.get(s) ?? leaf(s)), e.attrs));
    }
    const grads = gradients(b, nodes.get(target)!, sources.map((s) => nodes.get(s)!));
    const g = b.finish('tape_gradient', grads.map((node, i) => ({ name: `grad${i}`, node })));
    if (tr) return inline(tr.builder, g, leaves.map((t) => tr.nodeOf(t))).map((n) => new Tensor(n.type.dtype, n.type.shape, undefined, n));
    const res = interpret(g, bind, params);
    return [...res.outputs.values()].map((v) => new Tensor(v.type.dtype, v.type.shape, v.data));
  }
}
