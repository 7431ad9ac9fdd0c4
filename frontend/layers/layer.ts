// The Layer base: config -> build (weights from the input shape) -> call (ops only); callable, with or without `new`.
import { type DType, type Shape, isDType } from '../../ir/types.js';
import { NotTraceableError, Trace, withTrace } from '../engine.js';
import { CallableObject } from '../callable.js';
import * as activations from '../activations.js';
import * as initializers from '../initializers.js';
import { type TensorLike, convertToTensor } from '../ops.js';
import { type NotImplemented, type OptionNames, checkOptions } from '../options.js';
import { show } from '../errors.js';
import { type SymbolicShape, Tensor, Variable, formatKerasShape } from '../tensor.js';

export interface LayerOptions {
  /** Unique layer name; Keras-style default from the class name ("dense", "dense_1", ...). */
  name?: string;
  /** Shape of one sample (without the batch dimension); makes a Sequential model build at once. */
  inputShape?: SymbolicShape;
  /** Fixed batch size for the input, with inputShape. */
  batchSize?: number;
  /** Weight dtype (float32). */
  dtype?: DType;
  /** Whether the layer's weights are updated by training. */
  trainable?: boolean;
}

export interface CallOptions {
  /** Training mode: dropout active, batch statistics used. */
  training?: boolean;
  /**
   * Keras's `mask`: which steps of a [batch, time, ...] input are real (bool [batch, time]), one per input for a list;
   * only layers that use masks take it. Layers find it on their inputs without it (Embedding maskZero, Masking).
   */
  mask?: Tensor | readonly (Tensor | undefined)[];
}

/** Input or output masks: one, or one per tensor of a list. */
export type Mask = Tensor | readonly (Tensor | undefined)[] | undefined;

// Keras keeps a tensor's mask on the tensor (`_keras_mask`); kiln keeps it beside, for eager and traced tensors alike
const masks = new WeakMap<Tensor, Tensor>();

/** The mask a layer attached to this tensor (Embedding maskZero, Masking, and layers that pass masks on). */
export function getMask(t: Tensor): Tensor | undefined {
  return masks.get(t);
}

/** Attaches a mask to a tensor, as a layer's output would carry it (a compiled model's outputs, run, get theirs back). */
export function setMask(t: Tensor, mask: Tensor): void {
  masks.set(t, mask);
}

function attachMasks(out: Tensor | Tensor[], mask: Mask): void {
  const outs = Array.isArray(out) ? out : [out];
  const ms = mask instanceof Tensor || mask === undefined ? [mask] : mask;
  outs.forEach((t, i) => {
    const m = ms[i];
    if (m) masks.set(t, m);
  });
}

const LAYER_OPTIONS = { name: true, inputShape: true, batchSize: true, dtype: true, trainable: true } satisfies OptionNames<LayerOptions>;
const CALL_OPTIONS = { training: true } satisfies OptionNames<Omit<CallOptions, 'mask'>>;
/** Keras's options of every layer that kiln does not implement. */
const LAYER_NOT_IMPLEMENTED: NotImplemented = { activityRegularizer: null, autocast: true, inputDim: null };

/**
 * Checks the dtype, and resolves named activations and initializers now (as Keras does), so that a misspelt name is
 * an error naming the layer and the option rather than one at build time.
 */
function checkNames(options: LayerOptions, where: string): void {
  if (options.dtype !== undefined && !isDType(options.dtype)) throw new Error(`${where}: unknown dtype ${show(options.dtype)}`);
  for (const [k, v] of Object.entries(options)) {
    if (typeof v !== 'string' || !(k.endsWith('Initializer') || k === 'activation' || k === 'recurrentActivation')) continue;
    try {
      if (k.endsWith('Initializer')) initializers.get(v);
      else activations.get(v as activations.ActivationIdentifier);
    } catch (e) {
      throw new Error(`${where}: option '${k}': ${(e as Error).message}`);
    }
  }
}

/** One application of a layer in a functional graph. */
export interface LayerCall {
  readonly layer: AnyLayer;
  readonly inputs: readonly KerasTensor[];
  readonly outputs: readonly KerasTensor[];
  /** Whether the layer was given a list (vs one tensor) and returned a list. */
  readonly listIn: boolean;
  readonly listOut: boolean;
  readonly options: CallOptions;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyLayer = Layer<any>;

/** A symbolic tensor of the functional API: a shape with unknown (null) batch dimension and where it came from. */
export class KerasTensor {
  constructor(
    readonly shape: SymbolicShape,
    readonly dtype: DType,
    readonly history: LayerCall | undefined,
    readonly name: string,
  ) {}

  toString(): string {
    return `<KerasTensor shape=${formatKerasShape(this.shape)}, dtype=${this.dtype}, name=${this.name}>`;
  }
}

/** Error raised inside a layer, naming the layer; keeps the message of the cause. */
export class LayerError extends Error {
  override name = 'LayerError';
}

const nameCounts = new Map<string, number>();

/** Keras-style unique names: dense, dense_1, dense_2, ... */
export function uniqueName(base: string): string {
  const n = nameCounts.get(base) ?? 0;
  nameCounts.set(base, n + 1);
  return n === 0 ? base : `${base}_${n}`;
}

export function snakeCase(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2').toLowerCase();
}

/** Resets the name counters (tests, and Keras's clear_session). */
export function clearSession(): void {
  nameCounts.clear();
}

export type LayerInput = TensorLike | KerasTensor | readonly (TensorLike | KerasTensor)[] | Readonly<Record<string, TensorLike>>;

/** Symbolic counterpart of a layer's eager output type. */
export type SymbolicOut<Out> = Out extends readonly Tensor[] ? KerasTensor[] : KerasTensor;

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface Layer<Out extends Tensor | Tensor[] = Tensor> {
  (inputs: KerasTensor | readonly KerasTensor[], options?: CallOptions): SymbolicOut<Out>;
  (inputs: TensorLike | readonly TensorLike[] | Readonly<Record<string, TensorLike>>, options?: CallOptions): Out;
}

/**
 * A layer: the constructor validates its configuration, `build` creates weights from the input shape,
 * `call` computes with ops only. Called on KerasTensors it records a functional-graph node.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export abstract class Layer<Out extends Tensor | Tensor[] = Tensor> extends CallableObject {
  name: string;
  trainable: boolean;
  built = false;
  readonly dtype: DType;
  readonly batchInputShape: SymbolicShape | undefined;
  /** Keras class name, e.g. "Dense". */
  readonly className: string;
  protected readonly ownWeights: Variable[] = [];
  protected readonly sublayers: Layer<Tensor | Tensor[]>[] = [];
  /** Functional-graph applications of this layer (one per call on KerasTensors). */
  readonly calls: LayerCall[] = [];

  /** Names of the options a layer class takes beyond LayerOptions'; any other key is an error. */
  static readonly optionNames: Readonly<Record<string, true>> = {};
  /** The options of the Keras class that kiln does not implement, with their Keras defaults (see options.ts). */
  static readonly notImplemented: NotImplemented = {};
  /** The same for the options of its call (Keras's `mask`, `initial_state`, ... where its call takes them). */
  static readonly callNotImplemented: NotImplemented = {};
  /** Names of call options beyond `training` and `mask` (MultiHeadAttention's attentionMask, useCausalMask). */
  static readonly callOptionNames: Readonly<Record<string, true>> = {};
  /** Whether `call` takes a `mask` option (Keras's call signature with `mask`): RNNs, pooling, wrappers. */
  static readonly takesMask: boolean = false;
  /** Keras's supports_masking: the layer passes its input's mask on unchanged (Dense, Dropout, ...). */
  supportsMasking = false;

  constructor(options: LayerOptions = {}) {
    super();
    this.className = new.target.name.replace(/^_+/, '');
    const cls = new.target as unknown as typeof Layer;
    checkOptions(options, { ...LAYER_OPTIONS, ...cls.optionNames }, this.describe(options?.name), { ...LAYER_NOT_IMPLEMENTED, ...cls.notImplemented });
    checkNames(options, this.describe(options.name));
    this.name = options.name ?? uniqueName(snakeCase(this.className));
    this.trainable = options.trainable ?? true;
    this.dtype = options.dtype ?? 'float32';
    this.batchInputShape = options.inputShape ? [options.batchSize ?? null, ...options.inputShape] : undefined;
  }

  /** "Dense 'dense_1'" (before the layer has its name, "Dense"): how errors name the layer. */
  private describe(name = this.name): string {
    return name === undefined ? this.className : `${this.className} '${name}'`;
  }

  /** Creates the layer's weights for an input shape (batch dimension included). */
  build(_inputShape: SymbolicShape | SymbolicShape[]): void {
    this.built = true;
  }

  /** The computation, with ops only. */
  abstract call(inputs: Tensor | Tensor[], options: CallOptions): Tensor | Tensor[];

  /** Output shape for an input shape; the default traces `call` on a placeholder batch. */
  computeOutputShape(inputShape: SymbolicShape | SymbolicShape[]): SymbolicShape | SymbolicShape[] {
    const list = isShapeList(inputShape) ? inputShape : [inputShape];
    const tr = new Trace();
    const out = withTrace(tr, () => {
      const ins = list.map((s, i) => tr.input(`x${i}`, 'float32', s.map((d) => d ?? 1)));
      return this.call(isShapeList(inputShape) ? ins : ins[0]!, {});
    });
    const unknownBatch = list[0]?.[0] === null;
    const toSym = (t: Tensor): SymbolicShape => t.shape.map((d, i) => (i === 0 && unknownBatch ? null : d));
    return Array.isArray(out) ? out.map(toSym) : toSym(out);
  }

  /**
   * The mask of the outputs for the inputs and their mask (Keras's compute_mask): by default the input's mask where
   * the layer supports masking, else none (Keras 3 drops it).
   */
  computeMask(_inputs: Tensor | Tensor[], mask: Mask): Mask {
    return this.supportsMasking && (mask === undefined || mask instanceof Tensor) ? mask : undefined;
  }

  /** Output dtype for input dtypes (float32 unless a layer says otherwise). */
  computeOutputDtype(_inputDtypes: DType[]): DType {
    return this.dtype;
  }

  /** Adds a weight; Keras names it "<layer>/<name>". */
  addWeight(name: string, shape: Shape, initializer: initializers.InitializerIdentifier = 'glorot_uniform', trainable = true): Variable {
    const init = initializers.get(initializer);
    const v = new Variable(name, this.dtype, shape, init(shape, this.dtype), trainable, `${this.name}/${name}`);
    this.ownWeights.push(v);
    return v;
  }

  /** Registers a nested layer so its weights count as this layer's. */
  protected track<L extends AnyLayer>(layer: L): L {
    this.sublayers.push(layer);
    return layer;
  }

  /** All weights: own first, then nested layers', without repeats (shared layers count once). */
  get weights(): Variable[] {
    const seen = new Set<Variable>();
    const out: Variable[] = [];
    for (const w of [...this.ownWeights, ...this.sublayers.flatMap((l) => l.weights)]) {
      if (!seen.has(w)) { seen.add(w); out.push(w); }
    }
    return out;
  }

  get trainableWeights(): Variable[] {
    return this.trainable ? this.weights.filter((w) => w.trainable) : [];
  }

  get nonTrainableWeights(): Variable[] {
    return this.trainable ? this.weights.filter((w) => !w.trainable) : this.weights;
  }

  get variables(): Variable[] {
    return this.weights;
  }

  countParams(): number {
    if (!this.built) throw new LayerError(`Layer '${this.name}' (${this.className}) is not built yet: call it on an input or give inputShape`);
    return this.weights.reduce((n, w) => n + w.size, 0);
  }

  /** Weight values as tensors, in Keras order. */
  getWeights(): Tensor[] {
    return this.weights.map((w) => new Tensor(w.dtype, w.shape, w.data.slice()));
  }

  /** Sets weight values in Keras order and shapes, casting to each weight's dtype. */
  setWeights(values: readonly TensorLike[]): void {
    const ws = this.weights;
    if (values.length !== ws.length) {
      throw new LayerError(`Layer '${this.name}': setWeights expects ${ws.length} arrays (${ws.map((w) => w.path).join(', ')}), got ${values.length}`);
    }
    ws.forEach((w, i) => {
      const t = convertToTensor(values[i]!);
      if (t.shape.length !== w.shape.length || t.shape.some((d, j) => d !== w.shape[j])) {
        throw new LayerError(`Layer '${this.name}': weight '${w.path}' has shape ${formatKerasShape(w.shape)}, got ${formatKerasShape(t.shape)}`);
      }
      w.assign(t);
    });
  }

  getConfig(): Record<string, unknown> {
    return { name: this.name, trainable: this.trainable, dtype: this.dtype };
  }

  /** Wraps an error from build/call so it names this layer. */
  protected wrap<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      // (a traced custom trainStep that must run eagerly instead is not the layer's error)
      if (e instanceof LayerError || e instanceof NotTraceableError) throw e;
      const err = new LayerError(`Layer '${this.name}' (${this.className}) ${what}: ${(e as Error).message}`);
      err.stack = `${err.name}: ${err.message}\n${((e as Error).stack ?? '').split('\n').slice(1).join('\n')}`;
      throw err;
    }
  }

  protected maybeBuild(shapes: SymbolicShape[], list: boolean): void {
    if (this.built) return;
    this.wrap('could not be built', () => this.build(list ? shapes : shapes[0]!));
    this.built = true;
  }

  /** `layer(x)`: records a functional node for KerasTensors, computes for tensors. */
  __call__(inputs: LayerInput, options: CallOptions = {}): KerasTensor | KerasTensor[] | Tensor | Tensor[] {
    this.checkCallOptions(options);
    // a nested array of numbers is one input (layer([[1, 2]])), any other array a list of inputs
    const list = Array.isArray(inputs) && !isNumericArray(inputs);
    if (!list && !Array.isArray(inputs) && typeof inputs === 'object' && !(inputs instanceof Tensor) && !(inputs instanceof KerasTensor) && !ArrayBuffer.isView(inputs)) {
      throw new LayerError(`Layer '${this.name}' (${this.className}): inputs given by name are only accepted by models`);
    }
    const flat = (list ? inputs : [inputs]) as (TensorLike | KerasTensor)[];
    if (flat.length > 0 && flat.every((x) => x instanceof KerasTensor)) return this.symbolicCall(flat as KerasTensor[], list, options);
    if (flat.some((x) => x instanceof KerasTensor)) {
      throw new LayerError(`Layer '${this.name}' (${this.className}): cannot mix symbolic KerasTensors and concrete tensors in one call`);
    }
    const tensors = flat.map((x) => convertToTensor(x as TensorLike));
    this.maybeBuild(tensors.map((t) => t.shape), list);
    const x = list ? tensors : tensors[0]!;
    // an explicit mask, else the masks its inputs carry
    const found = list ? tensors.map(getMask) : getMask(tensors[0]!);
    const mask = options.mask ?? (Array.isArray(found) ? (found.some(Boolean) ? found : undefined) : found);
    const { mask: _, ...rest } = options;
    const takes = (this.constructor as typeof Layer).takesMask;
    const out = this.wrap('failed', () => this.call(x, takes && mask ? { ...rest, mask } : rest));
    attachMasks(out, this.wrap('failed', () => this.computeMask(x, mask)));
    return out;
  }

  /** Call options are `{ training }` (and `mask` where the layer takes one); other Keras call options are errors. */
  protected checkCallOptions(options: CallOptions | undefined): void {
    const cls = this.constructor as typeof Layer;
    const known = { ...CALL_OPTIONS, ...cls.callOptionNames, ...(cls.takesMask ? { mask: true as const } : {}) };
    checkOptions(options, known, `${this.describe()} call`, cls.callNotImplemented);
  }

  private symbolicCall(inputs: KerasTensor[], list: boolean, options: CallOptions): KerasTensor | KerasTensor[] {
    const shapes = inputs.map((k) => k.shape);
    this.maybeBuild(shapes, list);
    const outShape = this.wrap('failed', () => this.computeOutputShape(list ? shapes : shapes[0]!));
    const listOut = isShapeList(outShape);
    const outShapes = listOut ? outShape : [outShape];
    const dtype = this.computeOutputDtype(inputs.map((k) => k.dtype));
    const outputs: KerasTensor[] = [];
    const call: LayerCall = { layer: this, inputs, outputs, listIn: list, listOut, options };
    outShapes.forEach((s, i) => outputs.push(new KerasTensor(s, dtype, call, outShapes.length > 1 ? `${this.name}_${i}` : this.name)));
    this.calls.push(call);
    return listOut ? outputs : outputs[0]!;
  }
}

function isNumericArray(v: unknown): boolean {
  return Array.isArray(v) && v.every((e) => typeof e === 'number' || typeof e === 'boolean' || isNumericArray(e));
}

/** Tells a list of shapes from one shape. */
export function isShapeList(s: SymbolicShape | SymbolicShape[] | readonly SymbolicShape[]): s is SymbolicShape[] {
  return s.length > 0 && Array.isArray(s[0]);
}

export { callableClass } from '../callable.js';
