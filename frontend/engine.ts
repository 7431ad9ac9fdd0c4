// Dispatch of every frontend op: eager on concrete tensors (via the interpreter), symbolic while tracing a graph.
import { Builder, type Graph, type NamedNode, type Node, type Update } from '../ir/graph.js';
import { evalOp } from '../ir/interpreter.js';
import { type Attrs, type Op, inferType } from '../ir/ops.js';
import { philox4x32 } from '../ir/philox.js';
import type { DType, Shape } from '../ir/types.js';
import { Tensor, Variable } from './tensor.js';

/** One eagerly executed op, as a gradient tape records it. */
export interface TapeEntry {
  readonly op: Op;
  readonly attrs: Attrs;
  readonly src: readonly Tensor[];
  readonly out: Tensor;
}

/** Anything listening to eager ops (gradient tapes); one started while tracing also hears that trace's ops. */
export interface OpRecorder {
  readonly trace?: Trace | undefined;
  recordOp(e: TapeEntry): void;
}

/** A traced step that cannot stand for the eager one (it reads a variable it already updated): run it eagerly. */
export class NotTraceableError extends Error {}

/**
 * A trace in progress: ops on traced tensors or variables build graph nodes.
 * Variables become `param` nodes named by their path; concrete tensors become constants.
 */
export class Trace {
  readonly builder = new Builder();
  private readonly varNodes = new Map<Variable, Node>();
  private counterNode: Node | undefined;
  private rowNode: Node | undefined;
  /** Set for one rank's share of a data-parallel batch: random ops draw by the rows' global index (rngRow). */
  shardedRows = false;
  /** New values of non-trainable state (BatchNormalization's moving statistics) computed by a traced step. */
  readonly stateUpdates = new Map<Variable, Tensor>();
  /**
   * Set for a traced custom trainStep: reading a variable after the step updated it is an error (NotTraceableError),
   * as the graph would read its old value where the eager step reads the new one.
   */
  strictUpdates = false;

  /** Declares a variable as a parameter up front, fixing the parameter order. */
  paramOf(v: Variable): Node {
    let n = this.varNodes.get(v);
    if (!n) {
      n = this.builder.param(v.path, { dtype: v.dtype, shape: v.shape });
      this.varNodes.set(v, n);
    }
    return n;
  }

  input(name: string, dtype: DType, shape: Shape): Tensor {
    return new Tensor(dtype, shape, undefined, this.builder.input(name, { dtype, shape }));
  }

  nodeOf(t: Tensor): Node {
    if (t instanceof Variable) {
      if (this.strictUpdates && this.stateUpdates.has(t)) throw new NotTraceableError(`it reads variable '${t.path}' after updating it`);
      return this.paramOf(t);
    }
    if (t._node) return t._node;
    return this.builder.constant(t.data, t.dtype, t.shape);
  }

  /** The int32 scalar that keys random ops (the training step), an input named "rng_counter". */
  rngCounter(): Node {
    this.counterNode ??= this.builder.input('rng_counter', { dtype: 'int32', shape: [] });
    return this.counterNode;
  }

  /** With shardedRows, the int32 scalar "rng_row": the global index of this rank's first row in the batch. */
  rngRow(): Node | undefined {
    if (this.shardedRows) this.rowNode ??= this.builder.input('rng_row', { dtype: 'int32', shape: [] });
    return this.rowNode;
  }

  /** Records that a traced step sets variable v to value (applied as an in-place update of the step's graph). */
  update(v: Variable, value: Tensor): void {
    this.paramOf(v);
    this.stateUpdates.set(v, value);
  }

  get variables(): Variable[] {
    return [...this.varNodes.keys()];
  }

  finish(name: string, outputs: readonly NamedNode[], updates: readonly Update[] = []): Graph {
    return this.builder.finish(name, outputs, updates);
  }
}

let current: Trace | undefined;
const recorders = new Set<OpRecorder>();

export function currentTrace(): Trace | undefined {
  return current;
}

/** Runs fn with `trace` active; ops on its tensors and on variables build graph nodes. */
export function withTrace<T>(trace: Trace, fn: () => T): T {
  const prev = current;
  current = trace;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

export function addRecorder(r: OpRecorder): void {
  recorders.add(r);
}

export function removeRecorder(r: OpRecorder): void {
  recorders.delete(r);
}

/** Runs fn with recording off (optimizer updates and metrics are not differentiated). */
export function noRecord<T>(fn: () => T): T {
  const saved = [...recorders];
  recorders.clear();
  try {
    return fn();
  } finally {
    for (const r of saved) recorders.add(r);
  }
}

/** Applies a graph-IR op to tensors: a node while tracing, a concrete result otherwise. */
export function apply(op: Op, src: readonly Tensor[], attrs: Attrs = {}): Tensor {
  const tr = current;
  if (tr && src.some((s) => s._node !== undefined || s instanceof Variable)) {
    const node = tr.builder.emit(op, src.map((s) => tr.nodeOf(s)), attrs);
    const out = new Tensor(node.type.dtype, node.type.shape, undefined, node);
    for (const r of recorders) if (r.trace === tr) r.recordOp({ op, attrs, src, out });
    return out;
  }
  const type = inferType(op, src.map((s) => ({ dtype: s.dtype, shape: s.shape })), attrs);
  const data = evalOp({ op, type, attrs }, src.map((s) => ({ type: { dtype: s.dtype, shape: s.shape }, data: s.data })));
  const out = new Tensor(type.dtype, type.shape, data);
  for (const r of recorders) r.recordOp({ op, attrs, src, out });
  return out;
}

/** The counter tensor for random ops: the trace's rng_counter input, or a concrete scalar when eager. */
export function rngCounter(eagerValue: number): Tensor {
  const tr = current;
  if (tr) {
    const n = tr.rngCounter();
    return new Tensor('int32', [], undefined, n);
  }
  return new Tensor('int32', [], Int32Array.of(eagerValue));
}

/**
 * The operands of a random op drawing one value per element of a batch: the counter, then, in a trace of one rank's
 * share of a data-parallel batch, the global index of its first row (so k ranks draw what one process draws).
 */
export function rngOperands(eagerValue: number): Tensor[] {
  const row = current?.rngRow();
  return row ? [rngCounter(eagerValue), new Tensor('int32', [], undefined, row)] : [rngCounter(eagerValue)];
}

/** Global seedable generator for initializers and layer seeds (Philox keyed by the global seed). */
class SeedGenerator {
  private seed = 1337;
  private counter = 0;

  setSeed(seed: number): void {
    this.seed = seed >>> 0;
    this.counter = 0;
  }

  /** Four fresh uint32 words. */
  next(): [number, number, number, number] {
    return philox4x32(this.counter++ >>> 0, 0x6b696c6e, 0, 0, this.seed, 0x5eed);
  }

  /** Uniform floats in [0, 1) as float64 (53-bit from two words). */
  uniform(n: number): Float64Array {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i += 2) {
      const w = this.next();
      out[i] = (w[0] * 2097152 + (w[1] >>> 11)) / 9007199254740992;
      if (i + 1 < n) out[i + 1] = (w[2] * 2097152 + (w[3] >>> 11)) / 9007199254740992;
    }
    return out;
  }

  /** Standard normal floats (Box-Muller). */
  normal(n: number): Float64Array {
    const u = this.uniform(n + (n % 2));
    const out = new Float64Array(n);
    for (let i = 0; i < n; i += 2) {
      const r = Math.sqrt(-2 * Math.log(1 - u[i]!)), t = 2 * Math.PI * u[i + 1]!;
      out[i] = r * Math.cos(t);
      if (i + 1 < n) out[i + 1] = r * Math.sin(t);
    }
    return out;
  }

  /** A uint31 seed for a layer's own counter-based RNG. */
  int(): number {
    return this.next()[0] >>> 1;
  }
}

export const globalRng = new SeedGenerator();
