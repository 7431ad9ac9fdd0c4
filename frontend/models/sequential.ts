// keras.Sequential: a linear stack of layers, built from the first layer's inputShape or from the first call.
import { InputLayer } from '../layers/core.js';
import { type AnyLayer, type CallOptions, KerasTensor, LayerError, uniqueName } from '../layers/layer.js';
import type { SymbolicShape, Tensor } from '../tensor.js';
import { type InputSpec, Model } from './model.js';
import type { SummaryRow } from './summary.js';
import { describe } from '../errors.js';
import { type OptionNames, checkOptions } from '../options.js';

export interface SequentialOptions {
  name?: string;
  trainable?: boolean;
}

/**
 * A plain stack of layers, one input and one output.
 * @example const model = keras.Sequential([keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }), keras.layers.Dense(10)]);
 */
export class Sequential extends Model<Tensor> {
  private readonly stack: AnyLayer[] = [];
  private inputLayer: InputLayer | undefined;
  /** Output shape after each layer, once built. */
  private shapes: SymbolicShape[] = [];

  constructor(layers: readonly (AnyLayer | KerasTensor)[] = [], options: SequentialOptions = {}) {
    checkOptions(options, { name: true, trainable: true } satisfies OptionNames<SequentialOptions>, 'Sequential');
    if (!Array.isArray(layers)) throw new LayerError(`Sequential: expects a list of layers, got ${describe(layers)}`);
    super({ name: options.name ?? uniqueName('sequential'), trainable: options.trainable });
    for (const l of layers) this.add(l);
  }

  /** Appends a layer (or a keras.Input as the first element). */
  add(layer: AnyLayer | KerasTensor): void {
    if (layer instanceof KerasTensor) {
      if (!(layer.history?.layer instanceof InputLayer) || this.stack.length || this.inputLayer) {
        throw new LayerError(`Sequential '${this.name}': only a keras.Input may be given as a tensor, and only first`);
      }
      this.inputLayer = layer.history.layer;
      return;
    }
    if (typeof layer !== 'function' || !('__call__' in layer)) throw new LayerError(`Sequential '${this.name}': add() expects a layer, got ${String(layer)}`);
    if (this.stack.includes(layer)) throw new LayerError(`Sequential '${this.name}': layer '${layer.name}' is already in the model`);
    if (this.stack.some((l) => l.name === layer.name)) throw new LayerError(`Sequential '${this.name}': another layer is already named '${layer.name}'; layer names must be unique in a model`);
    this.stack.push(layer);
    if (!this.inputLayer && this.stack.length === 1 && layer.batchInputShape) {
      this.inputLayer = new InputLayer({ shape: layer.batchInputShape.slice(1), batchSize: layer.batchInputShape[0] ?? undefined });
    }
    if (this.inputLayer) this.buildFrom(this.inputLayer.output);
  }

  /** Removes the last layer. */
  pop(): void {
    if (!this.stack.length) throw new LayerError(`Sequential '${this.name}' has no layers to pop`);
    this.stack.pop();
    if (this.inputLayer) this.buildFrom(this.inputLayer.output);
  }

  private buildFrom(input: KerasTensor): void {
    let x = input;
    const shapes: SymbolicShape[] = [];
    for (const l of this.stack) {
      x = l(x) as KerasTensor;
      shapes.push(x.shape);
    }
    this.shapes = shapes;
    this.built = true;
    this.structureVersion++;
  }

  get layers(): AnyLayer[] {
    return [...this.stack];
  }

  private requireBuilt(): InputLayer {
    if (!this.inputLayer) {
      throw new LayerError(`Sequential model '${this.name}' has no input shape yet: give inputShape to its first layer, start it with keras.Input, or call it on data`);
    }
    return this.inputLayer;
  }

  get inputSpecs(): InputSpec[] {
    const il = this.requireBuilt();
    return [{ name: il.name, shape: il.output.shape, dtype: il.output.dtype }];
  }

  get outputNames(): string[] {
    this.requireBuilt();
    return [this.stack[this.stack.length - 1]?.name ?? this.inputLayer!.name];
  }

  get outputShapes(): SymbolicShape[] {
    this.requireBuilt();
    return [this.shapes[this.shapes.length - 1] ?? this.inputLayer!.output.shape];
  }

  override get multiOutput(): boolean {
    return false;
  }

  /** Builds from an input shape (batch dimension included), as Keras's model.build. */
  override build(inputShape: SymbolicShape): void {
    if (this.inputLayer) return;
    this.inputLayer = new InputLayer({ shape: inputShape.slice(1) });
    this.buildFrom(this.inputLayer.output);
  }

  override normalizeInputs(x: Parameters<Model['normalizeInputs']>[0]) {
    if (!this.inputLayer) {
      const first = super.normalizeInputsUnchecked(x);
      this.build([null, ...first.shape.slice(1)]);
    }
    return super.normalizeInputs(x);
  }

  override computeOutputShape(inputShape: SymbolicShape): SymbolicShape {
    if (!this.inputLayer) this.build(inputShape);
    return this.outputShapes[0]!;
  }

  call(inputs: Tensor | Tensor[], options: CallOptions): Tensor {
    let x = inputs as Tensor;
    for (const l of this.stack) x = l.__call__(x, options) as Tensor;
    return x;
  }

  summaryRows(): SummaryRow[] {
    return this.stack.map((layer, i) => ({ layer, shapes: this.shapes[i] ? [this.shapes[i]!] : [] }));
  }
}
