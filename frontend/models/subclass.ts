// Model subclassing: `class MyModel extends keras.Model { constructor() {...} call(x) {...} }`, traced like a
// functional model; its layers are the ones held in its fields, its inputs come from the first data (or build()).
import type { DType } from '../../ir/types.js';
import { Trace, withTrace } from '../engine.js';
import { type AnyLayer, Layer, LayerError, type LayerOptions, isShapeList } from '../layers/layer.js';
import { type SymbolicShape, Tensor } from '../tensor.js';
import { type InputSpec, Model, type ModelInput } from './model.js';
import type { SummaryRow } from './summary.js';
import { type TrainStepFn, tensorArg } from './training.js';
import { type TensorLike, add, multiply } from '../ops.js';

/**
 * The base of user models: define the layers in the constructor and the computation in `call` (ops and layer calls);
 * the first data (fit, predict, model(x)) or `build(shape)` fixes the inputs and builds the layers by tracing `call`.
 * @example
 * class MyModel extends keras.Model {
 *   dense1 = keras.layers.Dense(32, { activation: 'relu' });
 *   dense2 = keras.layers.Dense(10);
 *   call(x: keras.Tensor) { return this.dense2(this.dense1(x)); }
 * }
 */
export abstract class SubclassModel extends Model {
  private specs: InputSpec[] | undefined;
  private shapes: SymbolicShape[] = [];
  private listOut = false;

  constructor(options: LayerOptions = {}) {
    super(options);
  }

  /** The layers in the model's fields (and in arrays held by them), in the order they were assigned. */
  get layers(): AnyLayer[] {
    const out: AnyLayer[] = [];
    const add = (v: unknown): void => {
      if (v instanceof Layer) { if (v !== this && !out.includes(v)) out.push(v); }
      else if (Array.isArray(v)) v.forEach(add);
    };
    Object.values(this).forEach(add);
    return out;
  }

  private requireBuilt(): InputSpec[] {
    if (!this.specs) throw new LayerError(`Model '${this.name}' (${this.className}) is not built yet: call it on data, fit it, or call build(inputShape)`);
    return this.specs;
  }

  get inputSpecs(): InputSpec[] {
    return this.requireBuilt();
  }

  get outputNames(): string[] {
    this.requireBuilt();
    return this.shapes.map((_, i) => `output_${i}`);
  }

  get outputShapes(): SymbolicShape[] {
    this.requireBuilt();
    return this.shapes;
  }

  override get multiOutput(): boolean {
    return this.listOut;
  }

  /** Fixes the input shapes (batch dimension included, as Keras's build) and builds the layers by tracing `call` once. */
  override build(inputShape: SymbolicShape | SymbolicShape[], dtypes: readonly DType[] = []): void {
    const shapes = isShapeList(inputShape) ? inputShape : [inputShape];
    const specs = shapes.map((s, i): InputSpec => ({ name: shapes.length === 1 ? 'input' : `input_${i}`, shape: [null, ...s.slice(1)], dtype: dtypes[i] ?? 'float32' }));
    const tr = new Trace();
    const out = this.wrap('could not be built', () => withTrace(tr, () => {
      const ins = specs.map((s) => tr.input(s.name, s.dtype, s.shape.map((d) => d ?? 1)));
      return this.call(ins.length === 1 ? ins[0]! : ins, {}) as Tensor | Tensor[];
    }));
    const outs = Array.isArray(out) ? out : [out];
    if (outs.length === 0 || !outs.every((t) => t instanceof Tensor)) throw new LayerError(`Model '${this.name}' (${this.className}): call must return a tensor or a list of tensors`);
    this.specs = specs;
    this.shapes = outs.map((t) => [null, ...t.shape.slice(1)]);
    this.listOut = Array.isArray(out);
    this.built = true;
    this.structureVersion++;
  }

  /** The first data builds the model: its shapes (any batch size) and dtypes become the inputs'. */
  override normalizeInputs(x: ModelInput): Tensor[] {
    if (!this.specs) {
      const list = Array.isArray(x) && x.length > 0 && x.every((e) => e instanceof Tensor || ArrayBuffer.isView(e))
        ? (x as TensorLike[]).map((e, i) => tensorArg(e, `Model '${this.name}': input ${i}`)) : [this.normalizeInputsUnchecked(x)];
      this.build(list.map((t) => t.shape), list.map((t) => t.dtype));
    }
    return super.normalizeInputs(x);
  }

  override computeOutputShape(inputShape: SymbolicShape | SymbolicShape[]): SymbolicShape | SymbolicShape[] {
    if (!this.specs) this.build(inputShape);
    return this.listOut ? this.shapes : this.shapes[0]!;
  }

  /**
   * Keras's train_step, when a subclass defines it: fit calls it on each batch, [x, y] (and the batch's sample weights
   * when given), and logs what it returns; validation and evaluate still use the compiled loss and metrics. It is
   * traced into one compiled step per batch shape (models/custom_step.ts) unless it cannot be (it reads values) or
   * compile's runEagerly is set: then it runs eagerly.
   * @example
   * trainStep([x, y]: [keras.Tensor, keras.Tensor]) {
   *   const tape = keras.backend.GradientTape();
   *   const loss = tape.record(() => this.computeLoss(y, this(x, { training: true })));
   *   this.optimizer!.applyGradients(tape.gradient(loss, this.trainableWeights).map((g, i) => [g, this.trainableWeights[i]!]));
   *   return { loss };
   * }
   */
  trainStep?(data: Parameters<TrainStepFn>[0]): ReturnType<TrainStepFn>;

  /** Keras's compute_loss: the compiled losses of the outputs, weighted and summed. */
  computeLoss(y: Tensor | readonly Tensor[], yPred: Tensor | readonly Tensor[]): Tensor {
    const c = this.compiled;
    if (!c) throw new LayerError(`Model '${this.name}': computeLoss needs compile() first`);
    const ys = y instanceof Tensor ? [y] : y, ps = yPred instanceof Tensor ? [yPred] : yPred;
    if (ys.length !== c.losses.length || ps.length !== c.losses.length) {
      throw new LayerError(`Model '${this.name}': computeLoss expects ${c.losses.length} target(s) and prediction(s), got ${ys.length} and ${ps.length}`);
    }
    return c.losses.map((loss, i) => multiply(loss(ys[i]!, ps[i]!), c.lossWeights[i]!)).reduce((a, b) => add(a, b));
  }

  summaryRows(): SummaryRow[] {
    return this.layers.map((layer) => ({ layer, shapes: [] }));
  }
}
