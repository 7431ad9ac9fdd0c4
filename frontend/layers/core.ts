// Core layers: InputLayer, Dense, Activation, Flatten, Reshape, Dropout.
import { sizeOf } from '../../ir/types.js';
import * as activations from '../activations.js';
import { apply, globalRng, rngOperands } from '../engine.js';
import type { InitializerIdentifier } from '../initializers.js';
import * as ops from '../ops.js';
import { show } from '../errors.js';
import { type SymbolicShape, type Tensor, type Variable, formatKerasShape } from '../tensor.js';
import { type CallOptions, KerasTensor, Layer, type LayerOptions, uniqueName } from './layer.js';
import { type OptionNames, checkOptions, regularizers } from '../options.js';

export interface InputOptions {
  /** Shape of one sample, without the batch dimension. */
  shape: SymbolicShape;
  /** Fixed batch size (unknown when omitted). */
  batchSize?: number;
  name?: string;
  dtype?: 'float32' | 'int32' | 'bool';
}

/** The layer behind keras.Input: it has no weights and passes its input through. */
export class InputLayer extends Layer {
  readonly output: KerasTensor;

  constructor(options: InputOptions) {
    if (!options || !Array.isArray(options.shape)) throw new Error('keras.Input needs { shape: [...] }, the shape of one sample');
    checkOptions(options, { shape: true, batchSize: true, name: true, dtype: true } satisfies OptionNames<InputOptions>, 'keras.Input',
      { sparse: null, batchShape: null, tensor: null, optional: false });
    if (options.batchSize !== undefined && options.batchSize !== null && (!Number.isInteger(options.batchSize) || options.batchSize < 1)) {
      throw new Error(`keras.Input: batchSize must be a positive integer, got ${options.batchSize}`);
    }
    for (const d of options.shape) {
      if (d !== null && (!Number.isInteger(d) || d < 0)) throw new Error(`keras.Input: shape ${formatKerasShape(options.shape)} has an invalid dimension ${d}`);
    }
    super({ name: options.name ?? uniqueName('input_layer'), dtype: options.dtype ?? 'float32' });
    this.built = true;
    this.output = new KerasTensor([options.batchSize ?? null, ...options.shape], this.dtype, {
      layer: this, inputs: [], outputs: [], listIn: false, listOut: false, options: {},
    }, this.name);
    (this.output.history!.outputs as KerasTensor[]).push(this.output);
  }

  call(inputs: Tensor | Tensor[]): Tensor | Tensor[] {
    return inputs;
  }
}

/**
 * keras.Input: a symbolic input for the functional API.
 * @example const inputs = keras.Input({ shape: [784] });
 */
export function Input(options: InputOptions): KerasTensor {
  return new InputLayer(options).output;
}

export interface DenseOptions extends LayerOptions {
  activation?: activations.ActivationIdentifier;
  useBias?: boolean;
  kernelInitializer?: InitializerIdentifier;
  biasInitializer?: InitializerIdentifier;
}

/** Densely connected layer: activation(dot(input, kernel) + bias), kernel [in, units]. */
export class Dense extends Layer {
  static override readonly optionNames = { activation: true, useBias: true, kernelInitializer: true, biasInitializer: true } satisfies OptionNames<DenseOptions, LayerOptions>;
  static override readonly notImplemented = { ...regularizers('kernel', 'bias'), loraRank: null, loraAlpha: null, quantizationConfig: null };
  readonly units: number;
  readonly activation: activations.ActivationFn;
  readonly useBias: boolean;
  kernel!: Variable;
  bias: Variable | undefined;
  private readonly options: DenseOptions;

  constructor(units: number, options: DenseOptions = {}) {
    super(options);
    if (!Number.isInteger(units) || units <= 0) throw new Error(`Dense: units must be a positive integer, got ${units}`);
    this.units = units;
    this.activation = activations.get(options.activation);
    this.useBias = options.useBias ?? true;
    this.options = options;
    this.supportsMasking = true;
  }

  override build(inputShape: SymbolicShape): void {
    const last = inputShape[inputShape.length - 1];
    if (inputShape.length < 1 || last === null || last === undefined) {
      throw new Error(`needs a known last input dimension, got ${formatKerasShape(inputShape)}`);
    }
    this.kernel = this.addWeight('kernel', [last, this.units], this.options.kernelInitializer ?? 'glorot_uniform');
    if (this.useBias) this.bias = this.addWeight('bias', [this.units], this.options.biasInitializer ?? 'zeros');
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    const last = inputShape[inputShape.length - 1];
    if (this.kernel && last !== this.kernel.shape[0]) {
      throw new Error(`expected input with last dimension ${this.kernel.shape[0]}, got shape ${formatKerasShape(inputShape)}`);
    }
    return [...inputShape.slice(0, -1), this.units];
  }

  call(inputs: Tensor): Tensor {
    const inDim = this.kernel.shape[0];
    if (inputs.shape[inputs.shape.length - 1] !== inDim) {
      throw new Error(`expected input with last dimension ${inDim}, got shape ${formatKerasShape(inputs.shape)}`);
    }
    let y = ops.matmul(inputs, this.kernel);
    if (this.bias) y = ops.add(y, this.bias);
    return this.activation(y);
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), units: this.units, activation: activations.serialize(this.activation), useBias: this.useBias };
  }
}

/** Applies an activation function. */
export class Activation extends Layer {
  readonly activation: activations.ActivationFn;

  constructor(activation: activations.ActivationIdentifier, options: LayerOptions = {}) {
    super(options);
    this.activation = activations.get(activation);
    this.supportsMasking = true;
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    return inputShape;
  }

  call(inputs: Tensor): Tensor {
    return this.activation(inputs);
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), activation: activations.serialize(this.activation) };
  }
}

/** Flattens all but the batch dimension. */
export class Flatten extends Layer {
  static override readonly notImplemented = { dataFormat: null };
  constructor(options: LayerOptions = {}) {
    super(options);
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    const rest = inputShape.slice(1);
    return [inputShape[0] ?? null, rest.includes(null) ? null : sizeOf(rest as number[])];
  }

  call(inputs: Tensor): Tensor {
    return ops.reshape(inputs, [inputs.shape[0]!, sizeOf(inputs.shape.slice(1))]);
  }
}

/** Reshapes each sample to targetShape (one entry may be -1). */
export class Reshape extends Layer {
  readonly targetShape: number[];

  constructor(targetShape: readonly number[], options: LayerOptions = {}) {
    super(options);
    if (!Array.isArray(targetShape) || !targetShape.every((d) => Number.isSafeInteger(d) && d >= -1)) {
      throw new Error(`Reshape: targetShape must be a list of non-negative integers (one may be -1), got ${show(targetShape)}`);
    }
    if (targetShape.filter((d) => d === -1).length > 1) throw new Error('Reshape: at most one dimension may be -1');
    this.targetShape = [...targetShape];
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    const n = inputShape.slice(1);
    if (n.includes(null)) return [inputShape[0] ?? null, ...this.targetShape.map((d) => (d === -1 ? null : d))];
    const total = sizeOf(n as number[]);
    const known = this.targetShape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const out = this.targetShape.map((d) => (d === -1 ? total / known : d));
    if (sizeOf(out) !== total || !out.every(Number.isInteger)) {
      throw new Error(`total size of the new array must be unchanged: input ${formatKerasShape(inputShape)}, target ${formatKerasShape(this.targetShape)}`);
    }
    return [inputShape[0] ?? null, ...out];
  }

  call(inputs: Tensor): Tensor {
    const out = this.computeOutputShape(inputs.shape) as number[];
    return ops.reshape(inputs, [inputs.shape[0]!, ...out.slice(1)]);
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), targetShape: this.targetShape };
  }
}

export interface DropoutOptions extends LayerOptions {
  /** Seed of this layer's counter-based random stream. */
  seed?: number;
}

/**
 * Randomly zeroes a fraction `rate` of inputs while training and scales the rest by 1/(1-rate).
 * The mask comes from Philox keyed by the layer's seed and the step counter, so every target draws the same one.
 */
export class Dropout extends Layer {
  static override readonly optionNames = { seed: true } satisfies OptionNames<DropoutOptions, LayerOptions>;
  static override readonly notImplemented = { noiseShape: null };
  readonly rate: number;
  readonly seed: number;
  private step = 0;

  constructor(rate: number, options: DropoutOptions = {}) {
    super(options);
    if (!(rate >= 0 && rate < 1)) throw new Error(`Dropout: rate must be in [0, 1), got ${rate}`);
    this.rate = rate;
    this.seed = options.seed ?? globalRng.int();
    this.supportsMasking = true;
    this.built = true;
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    return inputShape;
  }

  call(inputs: Tensor, options: CallOptions): Tensor {
    if (!options.training || this.rate === 0) return inputs;
    // drawn by the rows' global index: a rank's share of a data-parallel batch gets the mask of its rows
    const u = apply('random_uniform', rngOperands(this.step++), { seed: this.seed, shape: inputs.shape });
    const keep = ops.greaterEqual(u, this.rate);
    return ops.where(keep, ops.divide(inputs, 1 - this.rate), ops.zerosLike(inputs));
  }

  override getConfig(): Record<string, unknown> {
    return { ...super.getConfig(), rate: this.rate, seed: this.seed };
  }
}
