// Model: a layer of layers, with predict/summary; Functional: a DAG of layer calls from keras.Input to outputs.
import type { DType } from '../../ir/types.js';
import { type TensorLike, cast } from '../ops.js';
import { describe } from '../errors.js';
import { type SymbolicShape, Tensor, formatKerasShape } from '../tensor.js';
import {
  type AnyLayer, type CallOptions, KerasTensor, Layer, LayerError, type LayerCall, type LayerInput, type LayerOptions, uniqueName,
} from '../layers/layer.js';
import { InputLayer } from '../layers/core.js';
import { type PredictOptions, predict } from './executor.js';
import { type OptionNames, checkOptions } from '../options.js';
import { type SummaryRow, summary } from './summary.js';
import {
  type CompileOptions, type Compiled, type EvaluateOptions, type FitOptions, History, checkCompileOptions, compileModel, evaluateModel, fitModel, tensorArg,
} from './training.js';

/** One model input as the compiler and executors see it. */
export interface InputSpec {
  readonly name: string;
  readonly shape: SymbolicShape;
  readonly dtype: DType;
}

/** Model inputs: one tensor, a list in input order, or a record by input name. */
export type ModelInput = TensorLike | readonly TensorLike[] | Readonly<Record<string, TensorLike>>;

/** A model: layers plus training and inference APIs. Subclasses define the graph. */
export abstract class Model<Out extends Tensor | Tensor[] = Tensor | Tensor[]> extends Layer<Out> {
  static override readonly callNotImplemented = { mask: null };
  /** Layers in Keras order. */
  abstract get layers(): AnyLayer[];

  /** Input specs in order (name, shape with null batch, dtype). */
  abstract get inputSpecs(): InputSpec[];

  /** Output names in order (the names of the layers that produce them). */
  abstract get outputNames(): string[];

  /** Output shapes in order, with null batch. */
  abstract get outputShapes(): SymbolicShape[];

  /** Bumped whenever the model's structure changes (Sequential add/pop/build), so cached traces are dropped. */
  structureVersion = 0;

  /** Whether the model returns a list (several outputs). */
  get multiOutput(): boolean {
    return this.outputNames.length > 1;
  }

  override get weights() {
    return dedupe(this.layers.flatMap((l) => l.weights));
  }

  override get trainableWeights() {
    return this.trainable ? dedupe(this.layers.flatMap((l) => l.trainableWeights)) : [];
  }

  override get nonTrainableWeights() {
    return this.trainable ? dedupe(this.layers.flatMap((l) => l.nonTrainableWeights)) : this.weights;
  }

  getLayer(name: string): AnyLayer {
    const l = this.layers.find((x) => x.name === name);
    if (!l) throw new LayerError(`Model '${this.name}' has no layer named '${name}'; layers: ${this.layers.map((x) => x.name).join(', ')}`);
    return l;
  }

  /** The first input as a tensor, before the model knows its input specs (Sequential builds from it). */
  protected normalizeInputsUnchecked(x: ModelInput): Tensor {
    if (Array.isArray(x) && x.length === 1 && x[0] instanceof Tensor) return x[0];
    if (typeof x === 'object' && !(x instanceof Tensor) && !ArrayBuffer.isView(x) && !Array.isArray(x)) {
      throw new LayerError(`Model '${this.name}': inputs by name need a built model`);
    }
    return tensorArg(x as TensorLike, `Model '${this.name}': input`);
  }

  /** Orders model inputs given as one tensor, a list, or a record by name; checks shapes. */
  normalizeInputs(x: ModelInput): Tensor[] {
    const specs = this.inputSpecs;
    let list: TensorLike[];
    if (!isPlainObject(x) && !(x instanceof Tensor) && !ArrayBuffer.isView(x) && !Array.isArray(x) && typeof x !== 'number') {
      throw new LayerError(`Model '${this.name}': inputs must be a tensor, a typed array or nested arrays of numbers, a list of them (one per input) or a record by input name; got ${describe(x)}`);
    }
    if (x instanceof Tensor || ArrayBuffer.isView(x) || typeof x === 'number') list = [x as TensorLike];
    else if (Array.isArray(x)) {
      // a list of tensors (or typed arrays) is one entry per input; a nested list of numbers is one input
      const perInput = x.every((e) => e instanceof Tensor || ArrayBuffer.isView(e)) || (specs.length > 1 && x.length === specs.length && !x.every((e) => typeof e === 'number'));
      list = perInput ? [...x] as TensorLike[] : [x as TensorLike];
    }
    else {
      const rec = x as Record<string, TensorLike>;
      list = specs.map((s) => {
        if (!(s.name in rec)) throw new LayerError(`Model '${this.name}': missing input '${s.name}'; inputs are ${specs.map((q) => q.name).join(', ')}`);
        return rec[s.name]!;
      });
    }
    if (list.length !== specs.length) {
      throw new LayerError(`Model '${this.name}' expects ${specs.length} input(s) (${specs.map((s) => s.name).join(', ')}), got ${list.length}`);
    }
    return list.map((v, i) => {
      const s = specs[i]!;
      const t = cast(tensorArg(v, `Model '${this.name}': input '${s.name}'`), s.dtype); // Keras casts inputs to the input's dtype
      const ok = t.shape.length === s.shape.length && s.shape.every((d, j) => d === null || d === t.shape[j]);
      if (!ok) throw new LayerError(`Model '${this.name}': input '${s.name}' expects shape ${formatKerasShape(s.shape)}, got ${formatKerasShape(t.shape)}`);
      return t;
    });
  }

  /** `model(x)`: symbolic on KerasTensors (nesting a model as a layer), else computes on the given inputs. */
  override __call__(inputs: LayerInput, options?: CallOptions): KerasTensor | KerasTensor[] | Tensor | Tensor[] {
    this.checkCallOptions(options);
    if (inputs instanceof KerasTensor || (Array.isArray(inputs) && inputs.length > 0 && inputs.every((x) => x instanceof KerasTensor))) {
      return super.__call__(inputs, options);
    }
    const list = this.normalizeInputs(inputs as ModelInput);
    return this.wrap('failed', () => this.call(list.length === 1 ? list[0]! : list, options ?? {}));
  }

  /** Rows of the summary table: each layer with its output shape and, for functional models, its inbound tensors. */
  abstract summaryRows(): SummaryRow[];

  private compileOptions: CompileOptions | undefined;
  private resolved: Compiled | undefined;

  /**
   * What compile() resolved (optimizer, per-output losses and metrics); undefined until compiled, and for a
   * Sequential model without an input shape until its first data builds it (as Keras).
   */
  get compiled(): Compiled | undefined {
    if (!this.resolved && this.compileOptions && this.built) this.resolved = compileModel(this, this.compileOptions);
    return this.resolved;
  }

  /**
   * Configures training, as Keras.
   * @example model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] })
   */
  compile(options: CompileOptions): void {
    checkCompileOptions(this, options);
    this.compileOptions = options;
    this.resolved = this.built ? compileModel(this, options) : undefined;
  }

  get optimizer() {
    return this.compiled?.optimizer;
  }

  /** Set by a callback (EarlyStopping, TerminateOnNaN, your own) to end fit after the current batch or epoch. */
  stopTraining = false;

  /** The History of the last fit, as Keras's model.history. */
  history: History | undefined;

  /** Trains for a number of epochs; returns the History of per-epoch losses and metrics. */
  fit(x: ModelInput, y: ModelInput, options: FitOptions = {}): History {
    if (!this.built) this.normalizeInputs(x); // builds a Sequential model from its first data
    return (this.history = fitModel(this, this.compiled, x, y, options));
  }

  /**
   * Loss and metrics on data: [loss, ...metrics], or with { returnDict: true } (Keras's return_dict) a record by name.
   * @example const [loss, acc] = model.evaluate(x, y); const { loss } = model.evaluate(x, y, { returnDict: true });
   */
  evaluate(x: ModelInput, y: ModelInput, options: EvaluateOptions & { returnDict: true }): Record<string, number>;
  evaluate(x: ModelInput, y: ModelInput, options?: EvaluateOptions & { returnDict?: false }): number[];
  evaluate(x: ModelInput, y: ModelInput, options?: EvaluateOptions): number[] | Record<string, number>;
  evaluate(x: ModelInput, y: ModelInput, options: EvaluateOptions = {}): number[] | Record<string, number> {
    if (!this.built) this.normalizeInputs(x);
    return evaluateModel(this, this.compiled, x, y, options);
  }

  /** Runs inference in batches on the reference interpreter (or a compiled backend, once selected). */
  predict(x: ModelInput, options: PredictOptions = {}): Out {
    return predict(this, x, options) as Out;
  }

  /**
   * Saves the weights: `.weights.h5` in Keras 3's HDF5 layout, or `.safetensors` keyed by Keras weight paths.
   * @example await model.saveWeights('model.weights.h5');
   */
  async saveWeights(file: string): Promise<void> {
    return (await import('../saving/index.js')).saveWeights(this, file);
  }

  /**
   * Loads weights saved by Keras 3 (`.weights.h5`) or kiln (`.weights.h5`, `.safetensors`, `model_train`'s output).
   * @example await model.loadWeights('model.weights.h5');
   */
  async loadWeights(file: string): Promise<void> {
    return (await import('../saving/index.js')).loadWeights(this, file);
  }

  /**
   * Saves the model as a Keras 3 `.keras` file (config, metadata and weights), loadable by `keras.saving.loadModel`
   * and by Python Keras 3.
   * @example await model.save('model.keras');
   */
  async save(file: string): Promise<void> {
    return (await import('../saving/index.js')).saveModel(this, file);
  }

  /** Prints Keras's summary table (or passes each line to printFn). */
  summary(printFn: (line: string) => void = console.log): void {
    for (const line of summary(this).split('\n')) printFn(line);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null);
}

function dedupe<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

/** Arguments of keras.Model({ inputs, outputs, name }). */
export interface FunctionalArgs<K extends KerasTensor | readonly KerasTensor[]> {
  inputs: KerasTensor | readonly KerasTensor[] | Readonly<Record<string, KerasTensor>>;
  outputs: K;
  name?: string;
}

/** A model defined by calling layers on keras.Input tensors: any DAG, several inputs/outputs, shared layers. */
export class Functional<Out extends Tensor | Tensor[] = Tensor | Tensor[]> extends Model<Out> {
  readonly inputs: KerasTensor[];
  readonly outputs: KerasTensor[];
  private readonly listOutputs: boolean;
  /** Layer calls in topological order (excluding inputs). */
  readonly nodes: LayerCall[];
  private readonly layerList: AnyLayer[];

  constructor(args: FunctionalArgs<KerasTensor | readonly KerasTensor[]>, options: LayerOptions = {}) {
    if (!args || typeof args !== 'object') throw new LayerError('keras.Model needs { inputs, outputs }');
    checkOptions(args, { inputs: true, outputs: true, name: true } satisfies OptionNames<FunctionalArgs<KerasTensor>>, 'keras.Model');
    super({ ...options, name: args.name ?? options.name ?? uniqueName('functional') });
    const ins = args.inputs instanceof KerasTensor ? [args.inputs] : Array.isArray(args.inputs) ? [...args.inputs] : Object.values(args.inputs);
    const outs = Array.isArray(args.outputs) ? [...args.outputs] : [args.outputs as KerasTensor];
    for (const t of [...ins, ...outs]) {
      if (!(t instanceof KerasTensor)) throw new LayerError(`keras.Model: inputs and outputs must be KerasTensors from keras.Input and layer calls, got ${String(t)}`);
    }
    for (const t of ins) {
      if (!(t.history?.layer instanceof InputLayer)) throw new LayerError(`keras.Model: input ${t.name} is not a keras.Input`);
    }
    this.inputs = ins;
    this.outputs = outs;
    this.listOutputs = Array.isArray(args.outputs);
    // walk back from the outputs: every call reached must lead to the declared inputs
    const order: LayerCall[] = [];
    const state = new Map<LayerCall, boolean>();
    const visit = (kt: KerasTensor): void => {
      const call = kt.history!;
      if (call.layer instanceof InputLayer) {
        if (!ins.includes(kt)) throw new LayerError(`keras.Model: output depends on input '${kt.name}', which is not among the model's inputs`);
        return;
      }
      if (state.get(call)) return;
      state.set(call, true);
      for (const i of call.inputs) visit(i);
      order.push(call);
    };
    for (const o of outs) visit(o);
    this.nodes = order;
    const layers: AnyLayer[] = ins.map((k) => k.history!.layer);
    for (const c of order) if (!layers.includes(c.layer)) layers.push(c.layer);
    const dup = layers.find((l, i) => layers.findIndex((m) => m.name === l.name) !== i);
    if (dup) throw new LayerError(`keras.Model: two different layers are named '${dup.name}'; layer names must be unique in a model`);
    this.layerList = layers;
    this.built = true;
  }

  get layers(): AnyLayer[] {
    return [...this.layerList];
  }

  get inputSpecs(): InputSpec[] {
    return this.inputs.map((k) => ({ name: k.name, shape: k.shape, dtype: k.dtype }));
  }

  /** Output names in order: the producing layers' names, made unique (a layer may produce several outputs). */
  get outputNames(): string[] {
    const seen = new Map<string, number>();
    return this.outputs.map((k) => {
      const n = seen.get(k.name) ?? 0;
      seen.set(k.name, n + 1);
      return n === 0 ? k.name : `${k.name}_${n}`;
    });
  }

  get outputShapes(): SymbolicShape[] {
    return this.outputs.map((k) => k.shape);
  }

  override get multiOutput(): boolean {
    return this.listOutputs;
  }

  summaryRows(): SummaryRow[] {
    return this.layerList.map((layer) => {
      const calls = layer instanceof InputLayer ? [layer.output.history!] : this.nodes.filter((c) => c.layer === layer);
      const shapes = calls[0]!.outputs.map((k) => k.shape);
      const connectedTo = calls.flatMap((c) => c.inputs.map((k) => {
        const src = k.history!;
        return `${src.layer.name}[${Math.max(0, src.layer.calls.indexOf(src))}][${src.outputs.indexOf(k)}]`;
      }));
      return { layer, shapes, connectedTo };
    });
  }

  override computeOutputShape(): SymbolicShape | SymbolicShape[] {
    return this.listOutputs ? this.outputShapes : this.outputShapes[0]!;
  }

  call(inputs: Tensor | Tensor[], options: CallOptions): Out {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    const values = new Map<KerasTensor, Tensor>();
    this.inputs.forEach((k, i) => values.set(k, list[i]!));
    for (const node of this.nodes) {
      const args = node.inputs.map((k) => values.get(k)!);
      const out = node.layer.__call__(node.listIn ? args : args[0]!, { ...node.options, ...options }) as Tensor | Tensor[];
      const outs = Array.isArray(out) ? out : [out];
      node.outputs.forEach((k, i) => values.set(k, outs[i]!));
    }
    const results = this.outputs.map((k) => values.get(k)!);
    return (this.listOutputs ? results : results[0]!) as Out;
  }
}
