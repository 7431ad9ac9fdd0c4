// Attention layers: Attention (Luong dot-product) and MultiHeadAttention (Keras 3 weight layout), on matmul and softmax.
import * as ops from '../ops.js';
import type { TensorLike } from '../ops.js';
import { type SymbolicShape, Tensor as TensorClass, type Tensor, type Variable, formatKerasShape } from '../tensor.js';
import { type CallOptions, KerasTensor, Layer, type LayerOptions, type Mask, getMask } from './layer.js';
import type { InitializerIdentifier } from '../initializers.js';
import { type OptionNames, regularizers } from '../options.js';

/** [query, value] or [query, value, key]: the key defaults to the value. */
function qvk<T>(inputs: T | readonly T[], layer: string): [T, T, T] {
  if (!Array.isArray(inputs) || inputs.length < 2 || inputs.length > 3) throw new Error(`${layer} takes a list [query, value] or [query, value, key]`);
  const [q, v, k] = inputs as T[];
  return [q!, v!, k ?? v!];
}

export interface AttentionOptions extends LayerOptions {
  /** Multiply the scores by a learned scalar `scale` (initialized to 1). */
  useScale?: boolean;
}

/** Dot-product attention: softmax(query @ key^T [* scale]) @ value, over [batch, time, dim] tensors. */
export class Attention extends Layer {
  static override readonly optionNames = { useScale: true } satisfies OptionNames<AttentionOptions, LayerOptions>;
  static override readonly notImplemented = { scoreMode: 'dot', dropout: 0, seed: null };
  static override readonly callNotImplemented = { returnAttentionScores: false };
  static override readonly callOptionNames = { useCausalMask: true } satisfies OptionNames<AttentionCallOptions, CallOptions>;
  static override readonly takesMask = true;
  readonly useScale: boolean;
  scale: Variable | undefined;

  constructor(options: AttentionOptions = {}) {
    super(options);
    this.useScale = options.useScale ?? false;
  }

  override build(): void {
    if (this.useScale) this.scale = this.addWeight('scale', [], 'ones');
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape[]): SymbolicShape {
    const [q, v] = qvk(inputShape, 'Attention');
    return [...q.slice(0, -1), v[v.length - 1]!];
  }

  /**
   * With masks ([queryMask, valueMask], from the inputs or given) or useCausalMask, as Keras's: scores of masked value
   * steps (and later steps) lowered by 1e9 before the softmax, outputs of masked query steps zero.
   */
  call(inputs: Tensor[], options: AttentionCallOptions = {}): Tensor {
    const [q, v, k] = qvk(inputs, 'Attention');
    if (q.shape.length !== 3 || k.shape.length !== 3 || v.shape.length !== 3 || q.shape[2] !== k.shape[2] || k.shape[1] !== v.shape[1]) {
      throw new Error(`needs query [b, tq, d], value [b, tv, dv], key [b, tv, d]; got ${[q, v, k].map((t) => formatKerasShape(t.shape)).join(', ')}`);
    }
    const [qm, vm] = options.mask instanceof TensorClass ? [options.mask] : options.mask ?? [];
    let scores = ops.matmul(q, ops.transpose(k, [0, 2, 1]));
    if (this.scale) scores = ops.multiply(scores, this.scale);
    const parts: Tensor[] = [];
    if (vm) parts.push(ops.expandDims(ops.cast(vm, 'bool'), 1));
    if (options.useCausalMask) parts.push(ops.expandDims(ops.greaterEqual(ops.expandDims(ops.arange(q.shape[1]!), 1), ops.expandDims(ops.arange(v.shape[1]!), 0)), 0));
    if (parts.length) {
      const keep = parts.reduce((a, m) => ops.logicalAnd(a, m));
      scores = ops.subtract(scores, ops.multiply(ops.cast(ops.logicalNot(keep), 'float32'), 1e9));
    }
    const out = ops.matmul(ops.softmax(scores, -1), v);
    return qm ? ops.multiply(out, ops.expandDims(ops.cast(qm, 'float32'), -1)) : out;
  }

  /** The query's mask is the output's (Keras). */
  override computeMask(_inputs: Tensor[], mask: Mask): Mask {
    return mask instanceof TensorClass ? mask : mask?.[0];
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), useScale: this.useScale };
  }
}

export interface AttentionCallOptions extends CallOptions {
  /** Each query step attends only to value steps at or before it. */
  useCausalMask?: boolean;
}

export interface MultiHeadAttentionOptions extends LayerOptions {
  numHeads: number;
  /** Size of each head's query and key projections. */
  keyDim: number;
  /** Size of each head's value projection (default keyDim). */
  valueDim?: number;
  useBias?: boolean;
  /** Last dimension of the output (default the query's). */
  outputShape?: number;
  kernelInitializer?: InitializerIdentifier;
  biasInitializer?: InitializerIdentifier;
}

/**
 * Multi-head attention as Keras 3's: per head, softmax(q k^T / sqrt(keyDim)) v over projections q, k, v, then the
 * heads projected back. Weights in Keras's order and shapes: query/key/value kernel [dim, heads, keyDim|valueDim]
 * and bias [heads, keyDim|valueDim], attention_output kernel [heads, valueDim, out] and bias [out].
 */
export class MultiHeadAttention extends Layer {
  static override readonly optionNames = {
    numHeads: true, keyDim: true, valueDim: true, useBias: true, outputShape: true, kernelInitializer: true, biasInitializer: true,
  } satisfies OptionNames<MultiHeadAttentionOptions, LayerOptions>;
  static override readonly notImplemented = {
    ...regularizers('kernel', 'bias'), dropout: 0, attentionAxes: null, slidingWindow: null, flashAttention: null, useGate: false, seed: null,
  };
  static override readonly callNotImplemented = { returnAttentionScores: false };
  static override readonly callOptionNames = {
    queryMask: true, valueMask: true, keyMask: true, attentionMask: true, useCausalMask: true,
  } satisfies OptionNames<MultiHeadAttentionCallOptions, CallOptions>;
  readonly numHeads: number;
  readonly keyDim: number;
  readonly valueDim: number;
  readonly useBias: boolean;
  private readonly w: Record<'query' | 'key' | 'value' | 'attention_output', { kernel: Variable; bias?: Variable }> = {} as never;

  constructor(private readonly options: MultiHeadAttentionOptions) {
    super(options);
    if (!options || !Number.isInteger(options.numHeads) || options.numHeads <= 0) throw new Error('MultiHeadAttention: numHeads must be a positive integer');
    if (!Number.isInteger(options.keyDim) || options.keyDim <= 0) throw new Error('MultiHeadAttention: keyDim must be a positive integer');
    this.numHeads = options.numHeads;
    this.keyDim = options.keyDim;
    this.valueDim = options.valueDim ?? options.keyDim;
    this.useBias = options.useBias ?? true;
  }

  override build(inputShape: SymbolicShape[]): void {
    const dims = qvk(inputShape, 'MultiHeadAttention').map((s) => s[s.length - 1]);
    if (dims.some((d) => d === null || d === undefined)) throw new Error(`needs known last dimensions, got ${inputShape.map(formatKerasShape).join(', ')}`);
    const [dq, dv, dk] = dims as number[];
    const H = this.numHeads, out = this.options.outputShape ?? dq!;
    const dense = (name: 'query' | 'key' | 'value' | 'attention_output', kernel: number[], bias: number[]) => {
      this.w[name] = {
        kernel: this.addWeight(`${name}/kernel`, kernel, this.options.kernelInitializer ?? 'glorot_uniform'),
        ...(this.useBias ? { bias: this.addWeight(`${name}/bias`, bias, this.options.biasInitializer ?? 'zeros') } : {}),
      };
    };
    dense('query', [dq!, H, this.keyDim], [H, this.keyDim]);
    dense('key', [dk!, H, this.keyDim], [H, this.keyDim]);
    dense('value', [dv!, H, this.valueDim], [H, this.valueDim]);
    dense('attention_output', [H, this.valueDim, out], [out]);
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape[]): SymbolicShape {
    const [q] = qvk(inputShape, 'MultiHeadAttention');
    return [...q.slice(0, -1), this.options.outputShape ?? q[q.length - 1]!];
  }

  /** x [b, t, d] projected per head: [b, heads, t, size]. */
  private heads(x: Tensor, name: 'query' | 'key' | 'value', size: number): Tensor {
    const [b, t, d] = x.shape as [number, number, number];
    const { kernel, bias } = this.w[name];
    let y = ops.matmul(x, ops.reshape(kernel, [d, this.numHeads * size]));
    if (bias) y = ops.add(y, ops.reshape(bias, [this.numHeads * size]));
    return ops.transpose(ops.reshape(y, [b, t, this.numHeads, size]), [0, 2, 1, 3]);
  }

  /**
   * Which query steps may attend to which key steps, [b, tq, tk] bool, as Keras's _compute_attention_mask: the query's
   * mask along rows, the value's and key's along columns, the causal mask (key step <= query step), attentionMask.
   */
  private attentionMask(query: Tensor, value: Tensor, key: Tensor, options: MultiHeadAttentionCallOptions): Tensor | undefined {
    const [b, tq] = query.shape as [number, number], tk = value.shape[1]!;
    // explicit masks, else those the inputs carry (Embedding maskZero, Masking)
    const steps = (what: string, given: TensorLike | undefined, input: Tensor, t: number): Tensor | undefined => {
      const m = given === undefined ? getMask(input) : ops.convertToTensor(given);
      if (m && (m.shape.length !== 2 || m.shape[0] !== b || m.shape[1] !== t)) throw new Error(`${what} must have shape [${b}, ${t}], got ${formatKerasShape(m.shape)}`);
      return m;
    };
    const qm = steps('queryMask', options.queryMask, query, tq), vm = steps('valueMask', options.valueMask, value, tk), km = steps('keyMask', options.keyMask, key, tk);
    const parts: Tensor[] = [];
    if (qm) parts.push(ops.expandDims(ops.cast(qm, 'bool'), 2));
    for (const m of [vm, km]) if (m) parts.push(ops.expandDims(ops.cast(m, 'bool'), 1));
    if (options.useCausalMask) {
      const rows = ops.expandDims(ops.arange(tq), 1), cols = ops.expandDims(ops.arange(tk), 0);
      parts.push(ops.expandDims(ops.greaterEqual(rows, cols), 0));
    }
    if (options.attentionMask !== undefined) {
      const am = ops.convertToTensor(options.attentionMask);
      const ok = am.shape.length === 3 && (am.shape[0] === b || am.shape[0] === 1) && am.shape[1] === tq && am.shape[2] === tk;
      if (!ok) throw new Error(`attentionMask must have shape [${b}, ${tq}, ${tk}] (batch, query steps, key steps), got ${formatKerasShape(am.shape)}`);
      parts.push(ops.cast(am, 'bool'));
    }
    if (parts.length === 0) return undefined;
    return ops.broadcastTo(parts.reduce((a, m) => ops.logicalAnd(a, m)), [b, tq, tk]);
  }

  /** The query's mask is the output's (Keras). */
  override computeMask(inputs: Tensor[]): Mask {
    return getMask(inputs[0]!);
  }

  call(inputs: Tensor[], options: MultiHeadAttentionCallOptions = {}): Tensor {
    const [query, value, key] = qvk(inputs, 'MultiHeadAttention');
    for (const t of [query, value, key]) if (t.shape.length !== 3) throw new Error(`expects [batch, time, dim] inputs, got ${formatKerasShape(t.shape)}`);
    const [b, tq] = query.shape as [number, number];
    const q = ops.multiply(this.heads(query, 'query', this.keyDim), 1 / Math.sqrt(this.keyDim));
    const k = this.heads(key, 'key', this.keyDim), v = this.heads(value, 'value', this.valueDim);
    let scores = ops.matmul(q, ops.transpose(k, [0, 1, 3, 2])); // [b, heads, tq, tk]
    const mask = this.attentionMask(query, value, key, options);
    // Keras's masked softmax: masked scores become -1e9 (a fully masked row attends uniformly)
    if (mask) scores = ops.where(ops.expandDims(mask, 1), scores, -1e9);
    const weights = ops.softmax(scores, -1);
    const ctx = ops.reshape(ops.transpose(ops.matmul(weights, v), [0, 2, 1, 3]), [b, tq, this.numHeads * this.valueDim]);
    const { kernel, bias } = this.w.attention_output;
    const y = ops.matmul(ctx, ops.reshape(kernel, [this.numHeads * this.valueDim, kernel.shape[2]!]));
    return bias ? ops.add(y, bias) : y;
  }

  /** Keras's call `mha(query, value[, key][, options])`, as well as `mha([query, value, key])`. */
  override __call__(...args: unknown[]): ReturnType<Layer['__call__']> {
    const isTensor = (x: unknown) => x instanceof KerasTensor || x instanceof TensorClass;
    const n = args.findIndex((x, i) => i > 0 && !isTensor(x));
    const tensors = n < 0 ? args : args.slice(0, n);
    if (tensors.length < 2) return super.__call__(args[0] as never, args[1] as never);
    // the options come after the tensors, past an undefined key: mha(q, v, undefined, { useCausalMask: true })
    const options = n < 0 ? undefined : args[n] === undefined && n === 2 ? args[3] : args[n];
    return super.__call__(tensors as never, options as never);
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), numHeads: this.numHeads, keyDim: this.keyDim, valueDim: this.valueDim, useBias: this.useBias };
  }
}

export interface MultiHeadAttentionCallOptions extends CallOptions {
  /** Which query steps are real, bool [batch, queryTime] (default: the query's mask, as from Embedding maskZero). */
  queryMask?: TensorLike;
  /** Which value steps are real, bool [batch, valueTime] (default: the value's mask). */
  valueMask?: TensorLike;
  /** Which key steps are real, bool [batch, keyTime] (default: the key's mask). */
  keyMask?: TensorLike;
  /** Which key steps each query step may attend to: bool [batch, queryTime, keyTime] (1 = attend), as Keras's. */
  attentionMask?: TensorLike;
  /** Each query step attends only to key steps at or before it (decoders). */
  useCausalMask?: boolean;
}

export interface MultiHeadAttention {
  (query: KerasTensor, value: KerasTensor, key?: KerasTensor, options?: MultiHeadAttentionCallOptions): KerasTensor;
  (query: TensorLike, value: TensorLike, key?: TensorLike, options?: MultiHeadAttentionCallOptions): Tensor;
}
