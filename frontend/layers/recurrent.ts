// Embedding and the recurrent layers SimpleRNN, LSTM and GRU (Keras 3 formulas and weight layouts). The input
// projections of all steps are one matmul; the recurrence is one scan loop (recurrent_scan.ts), or with `unroll` one
// copy of the step per timestep, as Keras's unroll=True.
import * as activations from '../activations.js';
import type { Initializer, InitializerIdentifier } from '../initializers.js';
import * as ops from '../ops.js';
import { type SymbolicShape, Tensor, type Variable, formatKerasShape } from '../tensor.js';
import { type CallOptions, Layer, type LayerOptions, type Mask } from './layer.js';
import { type OptionNames, regularizers } from '../options.js';
import { scan } from './recurrent_scan.js';

export interface EmbeddingOptions extends LayerOptions {
  /** Initializer of the [inputDim, outputDim] table (Keras: uniform in [-0.05, 0.05]). */
  embeddingsInitializer?: InitializerIdentifier;
  /** Index 0 is padding: the output carries a mask (index != 0) that RNNs and pooling downstream honour. */
  maskZero?: boolean;
}

/** Turns integer indices into rows of a learned table: output shape = input shape + [outputDim]. */
export class Embedding extends Layer {
  static override readonly optionNames = { embeddingsInitializer: true, maskZero: true } satisfies OptionNames<EmbeddingOptions, LayerOptions>;
  static override readonly notImplemented = {
    ...regularizers('embeddings'), weights: null, loraRank: null, loraAlpha: null, quantizationConfig: null, inputLength: null,
  };
  embeddings!: Variable;
  readonly maskZero: boolean;

  constructor(readonly inputDim: number, readonly outputDim: number, private readonly options: EmbeddingOptions = {}) {
    super(options);
    for (const [what, v] of [['inputDim', inputDim], ['outputDim', outputDim]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new Error(`Embedding: ${what} must be a positive integer, got ${v}`);
    }
    this.maskZero = options.maskZero ?? false;
  }

  /** With maskZero, the steps whose index is not 0. */
  override computeMask(inputs: Tensor): Mask {
    return this.maskZero ? ops.notEqual(inputs, 0) : undefined;
  }

  override build(): void {
    this.embeddings = this.addWeight('embeddings', [this.inputDim, this.outputDim], this.options.embeddingsInitializer ?? 'random_uniform');
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    return [...inputShape, this.outputDim];
  }

  /** Indices are cast to int32 (as Keras does); an index outside [0, inputDim) reads the nearest row. */
  call(inputs: Tensor): Tensor {
    return ops.take(this.embeddings, inputs.dtype === 'int32' ? inputs : ops.cast(inputs, 'int32'), 0);
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), inputDim: this.inputDim, outputDim: this.outputDim, maskZero: this.maskZero };
  }
}

export interface RNNOptions extends LayerOptions {
  /** Output activation (tanh). */
  activation?: activations.ActivationIdentifier;
  useBias?: boolean;
  kernelInitializer?: InitializerIdentifier;
  /** Initializer of the recurrent kernel (orthogonal). */
  recurrentInitializer?: InitializerIdentifier;
  biasInitializer?: InitializerIdentifier;
  /** Return the output of every step ([batch, time, units]) instead of the last one ([batch, units]). */
  returnSequences?: boolean;
  /** Process the sequence from its last step to its first (returned sequences are in that order, as Keras's). */
  goBackwards?: boolean;
  /** Unroll the recurrence into one copy of the step per timestep instead of a loop (graphs grow with the length). */
  unroll?: boolean;
  /** Also return the final states: [output, h] (LSTM: [output, h, c]), as Keras's return_state. */
  returnState?: boolean;
}

export interface GatedOptions extends RNNOptions {
  /** Activation of the gates (sigmoid). */
  recurrentActivation?: activations.ActivationIdentifier;
}

export interface LSTMOptions extends GatedOptions {
  /** Initialize the forget gate's bias to ones (Keras's unit_forget_bias, default true). */
  unitForgetBias?: boolean;
}

export interface GRUOptions extends GatedOptions {
  /** Apply the reset gate after the recurrent matmul (Keras 3 default true: separate input and recurrent biases). */
  resetAfter?: boolean;
}

const RNN_OPTIONS = {
  activation: true, useBias: true, kernelInitializer: true, recurrentInitializer: true, biasInitializer: true, returnSequences: true, goBackwards: true,
  unroll: true, returnState: true,
} satisfies OptionNames<RNNOptions, LayerOptions>;

/** Columns [k*units, (k+1)*units) of a [batch, g*units] matrix. */
function gate(z: Tensor, k: number, units: number): Tensor {
  return ops.slice(z, [0, k * units], [z.shape[0]!, units]);
}

/** A recurrent layer over [batch, time, features]: the cell's step applied along time from zero states. */
abstract class RecurrentBase extends Layer {
  static override readonly notImplemented = {
    ...regularizers('kernel', 'recurrent', 'bias'), dropout: 0, recurrentDropout: 0, stateful: false, seed: null,
  };
  static override readonly callNotImplemented = { initialState: null };
  static override readonly takesMask = true;
  /** Output zeros at masked steps instead of the previous output (Keras's zero_output_for_mask; Bidirectional sets it). */
  zeroOutputForMask = false;
  readonly activation: activations.ActivationFn;
  readonly useBias: boolean;
  readonly returnSequences: boolean;
  readonly goBackwards: boolean;
  readonly unroll: boolean;
  readonly returnState: boolean;
  kernel!: Variable;
  recurrentKernel!: Variable;
  bias: Variable | undefined;

  constructor(readonly units: number, protected readonly options: RNNOptions, private readonly gates: number) {
    super(options);
    if (!Number.isInteger(units) || units <= 0) throw new Error(`${new.target.name}: units must be a positive integer, got ${units}`);
    this.activation = activations.get(options.activation ?? 'tanh');
    this.useBias = options.useBias ?? true;
    this.returnSequences = options.returnSequences ?? false;
    this.goBackwards = options.goBackwards ?? false;
    this.unroll = options.unroll ?? false;
    this.returnState = options.returnState ?? false;
  }

  protected biasShape(): number[] {
    return [this.gates * this.units];
  }

  protected biasInitializer(): InitializerIdentifier {
    return this.options.biasInitializer ?? 'zeros';
  }

  override build(inputShape: SymbolicShape): void {
    const features = inputShape[2];
    if (inputShape.length !== 3 || features === null || features === undefined) {
      throw new Error(`expects [batch, time, features] with known features, got ${formatKerasShape(inputShape)}`);
    }
    this.kernel = this.addWeight('kernel', [features, this.gates * this.units], this.options.kernelInitializer ?? 'glorot_uniform');
    this.recurrentKernel = this.addWeight('recurrent_kernel', [this.units, this.gates * this.units], this.options.recurrentInitializer ?? 'orthogonal');
    if (this.useBias) this.bias = this.addWeight('bias', this.biasShape(), this.biasInitializer());
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape | SymbolicShape[] {
    if (inputShape.length !== 3) throw new Error(`expects [batch, time, features], got ${formatKerasShape(inputShape)}`);
    const out = this.returnSequences ? [inputShape[0]!, inputShape[1]!, this.units] : [inputShape[0]!, this.units];
    return this.returnState ? [out, ...Array.from({ length: this.stateCount() }, () => [inputShape[0]!, this.units])] : out;
  }

  /** The input projection of every step: x @ kernel (+ the input bias), [batch, time, gates*units]. */
  protected project(x: Tensor): Tensor {
    const xw = ops.matmul(x, this.kernel);
    return this.bias && this.bias.shape.length === 1 ? ops.add(xw, this.bias) : xw;
  }

  /** The weights a step reads (the recurrent kernel, and GRU's recurrent bias): a scan loop's consts. */
  protected stepWeights(): Tensor[] {
    return [this.recurrentKernel];
  }

  /** One step: the projected input of this step, the states and the step weights, to the output and the next states. */
  protected abstract step(xw: Tensor, states: Tensor[], weights: Tensor[]): [Tensor, Tensor[]];

  protected abstract stateCount(): number;

  /**
   * The output, and with returnState the final states after it. With a mask (bool [batch, time]) a masked step keeps
   * the states and repeats the previous output (zeros with zeroOutputForMask), as Keras's RNN.
   */
  call(inputs: Tensor, options: CallOptions = {}): Tensor | Tensor[] {
    const mask = options.mask;
    if (mask !== undefined && !(mask instanceof Tensor)) throw new Error('takes one mask, [batch, time]');
    const [output, states] = this.run(inputs, mask);
    return this.returnState ? [output, ...states] : output;
  }

  /** The sequence's mask when returning sequences, none otherwise (as Keras's). */
  override computeMask(_inputs: Tensor, mask: Mask): Mask {
    const out = this.returnSequences && mask instanceof Tensor ? mask : undefined;
    return this.returnState ? [out, ...Array.from({ length: this.stateCount() }, () => undefined)] : out;
  }

  /** A step under a mask: the new states where the step is real, the old ones where it is masked. */
  private maskedStep(x: Tensor, m: Tensor | undefined, states: Tensor[], weights: Tensor[]): [Tensor, Tensor[]] {
    const [h, next] = this.step(x, states, weights);
    if (!m) return [h, next];
    const kept = next.map((s, i) => ops.where(m, s, states[i]!));
    // the cells' output is their first state, so the previous output is the kept h
    return [this.zeroOutputForMask ? ops.where(m, h, ops.zerosLike(h)) : kept[0]!, kept];
  }

  private run(inputs: Tensor, mask: Tensor | undefined): [Tensor, Tensor[]] {
    const [batch, time, features] = inputs.shape as [number, number, number];
    if (inputs.shape.length !== 3 || features !== this.kernel.shape[0]) {
      throw new Error(`expects [batch, time, ${this.kernel.shape[0]}], got ${formatKerasShape(inputs.shape)}`);
    }
    if (time === 0) throw new Error('needs a sequence of at least one step');
    const xw = this.project(inputs);
    const width = xw.shape[2]!;
    const inits = Array.from({ length: this.stateCount() }, () => ops.zeros([batch, this.units]));
    if (mask && (mask.shape.length !== 2 || mask.shape[0] !== batch || mask.shape[1] !== time)) {
      throw new Error(`expects a mask of shape [${batch}, ${time}], got ${formatKerasShape(mask.shape)}`);
    }
    // [batch, time] -> bool [time, batch, 1]: one [batch, 1] slice per step, broadcast over the units
    const stepMasks = mask && ops.expandDims(ops.transpose(ops.cast(mask, 'bool'), [1, 0]), 2);
    if (!this.unroll) {
      // time-major for the loop; the output of each step is the new h (carry 0)
      const { carries, ys } = scan(this.name, (states, [x, m], weights) => {
        const [h, next] = this.maskedStep(x!, m, states, weights);
        return [next, [h]];
      }, inits, stepMasks ? [ops.transpose(xw, [1, 0, 2]), stepMasks] : [ops.transpose(xw, [1, 0, 2])], this.stepWeights(), this.goBackwards);
      if (!this.returnSequences) return [carries[0]!, carries];
      // Keras returns a backwards sequence in processing order: the step at time t goes to position time-1-t
      const seq = this.goBackwards ? ops.take(ys[0]!, ops.array(Int32Array.from({ length: time }, (_, i) => time - 1 - i)), 0) : ys[0]!;
      return [ops.transpose(seq, [1, 0, 2]), carries];
    }
    let states = inits;
    const outputs: Tensor[] = [];
    for (let i = 0; i < time; i++) {
      const t = this.goBackwards ? time - 1 - i : i;
      const m = stepMasks && ops.reshape(ops.slice(stepMasks, [t, 0, 0], [1, batch, 1]), [batch, 1]);
      const [h, next] = this.maskedStep(ops.reshape(ops.slice(xw, [0, t, 0], [batch, 1, width]), [batch, width]), m, states, this.stepWeights());
      outputs.push(h);
      states = next;
    }
    return [this.returnSequences ? ops.stack(outputs, 1) : outputs[outputs.length - 1]!, states];
  }

  override getConfig(): Record<string, unknown> {
    return {
      ...super.getConfig(), units: this.units, activation: activations.serialize(this.activation), useBias: this.useBias,
      returnSequences: this.returnSequences, returnState: this.returnState, goBackwards: this.goBackwards, unroll: this.unroll,
    };
  }
}

/** Fully connected recurrence: h = activation(x @ kernel + h @ recurrent_kernel + bias). */
export class SimpleRNN extends RecurrentBase {
  static override readonly optionNames = RNN_OPTIONS;
  constructor(units: number, options: RNNOptions = {}) {
    super(units, options, 1);
  }

  protected stateCount(): number {
    return 1;
  }

  protected step(xw: Tensor, [h]: Tensor[], [u]: Tensor[]): [Tensor, Tensor[]] {
    const y = this.activation(ops.add(xw, ops.matmul(h!, u!)));
    return [y, [y]];
  }
}

/**
 * Long short-term memory; gates in Keras's order i, f, c, o over kernel [features, 4*units]:
 * c = f*c + i*activation(z_c), h = o*activation(c), the gates through recurrentActivation.
 */
export class LSTM extends RecurrentBase {
  static override readonly optionNames = { ...RNN_OPTIONS, recurrentActivation: true, unitForgetBias: true } satisfies OptionNames<LSTMOptions, LayerOptions>;
  static override readonly notImplemented = { ...RecurrentBase.notImplemented, useCudnn: 'auto' };
  readonly recurrentActivation: activations.ActivationFn;

  constructor(units: number, options: LSTMOptions = {}) {
    super(units, options, 4);
    this.recurrentActivation = activations.get(options.recurrentActivation ?? 'sigmoid');
  }

  protected override biasInitializer(): InitializerIdentifier {
    const o = this.options as LSTMOptions;
    if (o.biasInitializer || o.unitForgetBias === false) return super.biasInitializer();
    // zeros, except ones for the forget gate
    const u = this.units;
    const init: Initializer = (shape) => Float32Array.from({ length: shape[0]! }, (_, i) => (i >= u && i < 2 * u ? 1 : 0));
    return init;
  }

  protected stateCount(): number {
    return 2;
  }

  protected step(xw: Tensor, [h, c]: Tensor[], [rk]: Tensor[]): [Tensor, Tensor[]] {
    const z = ops.add(xw, ops.matmul(h!, rk!)), u = this.units, sig = this.recurrentActivation;
    const i = sig(gate(z, 0, u)), f = sig(gate(z, 1, u)), o = sig(gate(z, 3, u));
    const cNext = ops.add(ops.multiply(f, c!), ops.multiply(i, this.activation(gate(z, 2, u))));
    const hNext = ops.multiply(o, this.activation(cNext));
    return [hNext, [hNext, cNext]];
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), recurrentActivation: activations.serialize(this.recurrentActivation) };
  }
}

/**
 * Gated recurrent unit; gates in Keras's order z, r, h over kernel [features, 3*units]. With resetAfter (Keras 3's
 * default) the bias is [2, 3*units] (input and recurrent rows) and hh = activation(x_h + r * (h @ U_h + b_h));
 * without it hh = activation(x_h + (r * h) @ U_h). h = z*h + (1 - z)*hh.
 */
export class GRU extends RecurrentBase {
  static override readonly optionNames = { ...RNN_OPTIONS, recurrentActivation: true, resetAfter: true } satisfies OptionNames<GRUOptions, LayerOptions>;
  static override readonly notImplemented = { ...RecurrentBase.notImplemented, useCudnn: 'auto' };
  readonly recurrentActivation: activations.ActivationFn;
  readonly resetAfter: boolean;

  constructor(units: number, options: GRUOptions = {}) {
    super(units, options, 3);
    this.recurrentActivation = activations.get(options.recurrentActivation ?? 'sigmoid');
    this.resetAfter = options.resetAfter ?? true;
  }

  protected override biasShape(): number[] {
    return this.resetAfter ? [2, 3 * this.units] : [3 * this.units];
  }

  protected override project(x: Tensor): Tensor {
    const xw = super.project(x);
    return this.bias && this.resetAfter ? ops.add(xw, ops.slice(this.bias, [0, 0], [1, 3 * this.units])) : xw;
  }

  protected stateCount(): number {
    return 1;
  }

  /** The recurrent kernel, and with resetAfter the recurrent bias row. */
  protected override stepWeights(): Tensor[] {
    return this.bias && this.resetAfter ? [this.recurrentKernel, ops.slice(this.bias, [1, 0], [1, 3 * this.units])] : [this.recurrentKernel];
  }

  protected step(xw: Tensor, [h]: Tensor[], [U, rb]: Tensor[]): [Tensor, Tensor[]] {
    const u = this.units, sig = this.recurrentActivation;
    const recurrentGates = (m: Tensor) => (rb ? ops.add(m, rb) : m);
    let z: Tensor, r: Tensor, hh: Tensor;
    if (this.resetAfter) {
      const hu = recurrentGates(ops.matmul(h!, U!));
      z = sig(ops.add(gate(xw, 0, u), gate(hu, 0, u)));
      r = sig(ops.add(gate(xw, 1, u), gate(hu, 1, u)));
      hh = this.activation(ops.add(gate(xw, 2, u), ops.multiply(r, gate(hu, 2, u))));
    } else {
      const hu = ops.matmul(h!, ops.slice(U!, [0, 0], [u, 2 * u]));
      z = sig(ops.add(gate(xw, 0, u), gate(hu, 0, u)));
      r = sig(ops.add(gate(xw, 1, u), gate(hu, 1, u)));
      hh = this.activation(ops.add(gate(xw, 2, u), ops.matmul(ops.multiply(r, h!), ops.slice(U!, [0, 2 * u], [u, u]))));
    }
    const hNext = ops.add(ops.multiply(z, h!), ops.multiply(ops.subtract(1, z), hh));
    return [hNext, [hNext]];
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), recurrentActivation: activations.serialize(this.recurrentActivation), resetAfter: this.resetAfter };
  }
}
