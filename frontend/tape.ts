// keras.backend.GradientTape: records eager ops, then differentiates them as one graph with the autodiff pass.
import { Builder, type Node } from '../ir/graph.js';
import { interpret } from '../ir/interpreter.js';
import type { TypedArray } from '../ir/types.js';
import { gradients } from '../passes/autodiff.js';
import { type OpRecorder, type TapeEntry, addRecorder, removeRecorder } from './engine.js';
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

  record<T>(fn: () => T): T {
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
    const leaf = (t: Tensor): Node => {
      let n = nodes.get(t);
      if (n) return n;
      const type = { dtype: t.dtype, shape: t.shape };
      if (t instanceof Variable) {
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
    const res = interpret(g, bind, params);
    return [...res.outputs.values()].map((v) => new Tensor(v.type.dtype, v.type.shape, v.data));
  }
}
