// Wrapper and function layers: Lambda (a function of ops), TimeDistributed (a layer per step), Bidirectional (an RNN
// both ways), and Masking (marks the steps that are all maskValue as padding).
import * as ops from '../ops.js';
import { type SymbolicShape, Tensor, formatKerasShape } from '../tensor.js';
import { show } from '../errors.js';
import { type AnyLayer, type CallOptions, Layer, type LayerOptions, type Mask } from './layer.js';
import { type OptionNames } from '../options.js';
import { GRU, LSTM, type RNNOptions, SimpleRNN } from './recurrent.js';

export interface LambdaOptions extends LayerOptions {
  /** Output shape of one sample (without the batch dimension); inferred by tracing the function when omitted. */
  outputShape?: SymbolicShape;
}

/**
 * Wraps a function of kiln ops as a layer; the function is traced like any layer's call, so it compiles.
 * @example const double = keras.layers.Lambda((x) => keras.ops.multiply(x, 2));
 */
export class Lambda extends Layer {
  static override readonly optionNames = { outputShape: true } satisfies OptionNames<LambdaOptions, LayerOptions>;
  static override readonly notImplemented = { mask: null, arguments: null };
  static override readonly callNotImplemented = { mask: null };
  private readonly outputShape: SymbolicShape | undefined;

  constructor(readonly fn: (inputs: Tensor | Tensor[]) => Tensor | Tensor[], options: LambdaOptions = {}) {
    super(options);
    if (typeof fn !== 'function') throw new Error(`Lambda: the first argument must be a function of tensors, got ${show(fn)}`);
    this.outputShape = options.outputShape;
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape | SymbolicShape[]): SymbolicShape | SymbolicShape[] {
    if (this.outputShape) return [(inputShape[0] as number | null | undefined) ?? null, ...this.outputShape];
    return super.computeOutputShape(inputShape);
  }

  call(inputs: Tensor | Tensor[]): Tensor | Tensor[] {
    const out = this.fn(inputs);
    const bad = (Array.isArray(out) ? out : [out]).find((t) => !(t instanceof Tensor));
    if (bad !== undefined) throw new Error(`the function must return a tensor or a list of tensors, got ${show(bad)}`);
    return out;
  }
}

/**
 * Applies a layer to every step of a [batch, time, ...] input (the steps folded into the batch: one call, shared weights).
 * @example keras.layers.TimeDistributed(keras.layers.Dense(8))
 */
export class TimeDistributed extends Layer {
  static override readonly takesMask = true;
  constructor(readonly layer: AnyLayer, options: LayerOptions = {}) {
    super(options);
    if (!(layer instanceof Layer)) throw new Error(`TimeDistributed: needs a layer, got ${show(layer)}`);
    this.track(layer);
    this.supportsMasking = true;
  }

  private static split(shape: SymbolicShape): [number | null, number | null, SymbolicShape] {
    if (shape.length < 3) throw new Error(`expects [batch, time, ...] (rank 3 or more), got ${formatKerasShape(shape)}`);
    return [shape[0]!, shape[1]!, shape.slice(2)];
  }

  override build(inputShape: SymbolicShape): void {
    const [b, t, rest] = TimeDistributed.split(inputShape);
    if (!this.layer.built) this.layer.build([b === null || t === null ? null : b * t, ...rest]);
    this.layer.built = true;
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    const [b, t, rest] = TimeDistributed.split(inputShape);
    const inner = this.layer.computeOutputShape([null, ...rest]);
    if (!Array.isArray(inner[0]) && inner.length > 0) return [b, t, ...(inner as SymbolicShape).slice(1)];
    throw new Error(`the wrapped layer '${this.layer.name}' must return one tensor`);
  }

  call(inputs: Tensor, options: CallOptions = {}): Tensor {
    const [b, t, rest] = TimeDistributed.split(inputs.shape) as [number, number, number[]];
    const y = this.layer.__call__(ops.reshape(inputs, [b * t, ...rest]), { training: options.training });
    if (!(y instanceof Tensor)) throw new Error(`the wrapped layer '${this.layer.name}' must return one tensor`);
    return ops.reshape(y, [b, t, ...y.shape.slice(1)]);
  }
}

export type MergeMode = 'concat' | 'sum' | 'mul' | 'ave';
const MERGE_MODES: readonly MergeMode[] = ['concat', 'sum', 'mul', 'ave'];

export interface BidirectionalOptions extends LayerOptions {
  /** How the forward and backward outputs combine: 'concat' (default, along the last axis), 'sum', 'mul' or 'ave'. */
  mergeMode?: MergeMode;
}

type RNNLayer = SimpleRNN | LSTM | GRU;

/** A new, unbuilt RNN of the same class and configuration (Keras recreates the wrapped layer from its config). */
function recreate(layer: RNNLayer, name: string, goBackwards: boolean): RNNLayer {
  const options = { ...(layer as unknown as { options: RNNOptions }).options, name, goBackwards, inputShape: undefined };
  const cls = layer.constructor as new (units: number, o: RNNOptions) => RNNLayer;
  return new cls(layer.units, options);
}

/**
 * Runs an RNN forwards and a copy backwards (goBackwards flipped) and merges their outputs; with returnSequences the
 * backward sequence is reversed back into time order. Weights: the forward layer's, then the backward layer's.
 * @example keras.layers.Bidirectional(keras.layers.LSTM(16), { mergeMode: 'concat' })
 */
export class Bidirectional extends Layer<Tensor | Tensor[]> {
  static override readonly optionNames = { mergeMode: true } satisfies OptionNames<BidirectionalOptions, LayerOptions>;
  static override readonly notImplemented = { weights: null, backwardLayer: null };
  static override readonly callNotImplemented = { initialState: null };
  static override readonly takesMask = true;
  readonly forwardLayer: RNNLayer;
  readonly backwardLayer: RNNLayer;
  readonly mergeMode: MergeMode;

  constructor(layer: RNNLayer, options: BidirectionalOptions = {}) {
    super(options);
    if (!(layer instanceof SimpleRNN || layer instanceof LSTM || layer instanceof GRU)) {
      throw new Error(`Bidirectional: needs a SimpleRNN, LSTM or GRU layer, got ${show(layer)}`);
    }
    const mode = options.mergeMode ?? 'concat';
    if (!MERGE_MODES.includes(mode)) throw new Error(`Bidirectional: mergeMode must be one of ${MERGE_MODES.join(', ')}, got ${show(mode)}`);
    this.mergeMode = mode;
    const base = layer.name.replace(/^forward_/, '');
    this.forwardLayer = this.track(recreate(layer, `forward_${base}`, layer.goBackwards));
    this.backwardLayer = this.track(recreate(layer, `backward_${base}`, !layer.goBackwards));
    // Keras: masked steps of returned sequences are zeros, so the two directions line up
    for (const l of [this.forwardLayer, this.backwardLayer]) l.zeroOutputForMask = l.returnSequences;
  }

  override build(inputShape: SymbolicShape): void {
    for (const l of [this.forwardLayer, this.backwardLayer]) if (!l.built) l.build(inputShape);
    this.built = true;
  }

  private merge(a: Tensor, b: Tensor): Tensor {
    switch (this.mergeMode) {
      case 'concat': return ops.concatenate([a, b], -1);
      case 'sum': return ops.add(a, b);
      case 'mul': return ops.multiply(a, b);
      case 'ave': return ops.multiply(ops.add(a, b), 0.5);
    }
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape | SymbolicShape[] {
    const f = this.forwardLayer.computeOutputShape(inputShape);
    const [out, ...states] = (this.forwardLayer.returnState ? f : [f]) as SymbolicShape[];
    const merged = this.mergeMode === 'concat' ? [...out!.slice(0, -1), out![out!.length - 1]! * 2] : out!;
    return this.forwardLayer.returnState ? [merged, ...states, ...states] : merged;
  }

  override computeMask(inputs: Tensor, mask: Mask): Mask {
    return this.forwardLayer.computeMask(inputs, mask);
  }

  call(inputs: Tensor, options: CallOptions = {}): Tensor | Tensor[] {
    const o = { training: options.training, ...(options.mask ? { mask: options.mask } : {}) };
    const f = this.forwardLayer.__call__(inputs, o) as Tensor | Tensor[];
    const b = this.backwardLayer.__call__(inputs, o) as Tensor | Tensor[];
    const [yf, ...sf] = Array.isArray(f) ? f : [f];
    let [yb, ...sb] = Array.isArray(b) ? b : [b];
    if (this.forwardLayer.returnSequences) {
      const time = yb!.shape[1]!;
      yb = ops.take(yb!, ops.array(Int32Array.from({ length: time }, (_, i) => time - 1 - i)), 1);
    }
    const y = this.merge(yf!, yb!);
    return this.forwardLayer.returnState ? [y, ...sf, ...sb] : y;
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), mergeMode: this.mergeMode, layer: this.forwardLayer.getConfig() };
  }
}

export interface MaskingOptions extends LayerOptions {
  /** The value that marks padding: a step whose features all equal it is masked (0). */
  maskValue?: number;
}

/**
 * Masks the steps of [batch, time, features] whose features all equal maskValue: they become zeros and the output
 * carries the mask (any feature != maskValue) for the RNNs and pooling downstream.
 * @example keras.layers.Masking({ maskValue: 0 })
 */
export class Masking extends Layer {
  static override readonly optionNames = { maskValue: true } satisfies OptionNames<MaskingOptions, LayerOptions>;
  readonly maskValue: number;

  constructor(options: MaskingOptions = {}) {
    super(options);
    this.maskValue = options.maskValue ?? 0;
    if (typeof this.maskValue !== 'number') throw new Error(`Masking: maskValue must be a number, got ${show(this.maskValue)}`);
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    return inputShape;
  }

  override computeMask(inputs: Tensor): Mask {
    return ops.greater(ops.sum(ops.notEqual(inputs, this.maskValue), { axis: -1 }), 0);
  }

  call(inputs: Tensor): Tensor {
    if (inputs.shape.length < 2) throw new Error(`expects [batch, time, ...], got ${formatKerasShape(inputs.shape)}`);
    const keep = ops.expandDims(this.computeMask(inputs) as Tensor, -1);
    return ops.multiply(inputs, ops.cast(keep, inputs.dtype));
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), maskValue: this.maskValue };
  }
}
