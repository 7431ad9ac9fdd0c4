// The `kiln` package: the Keras namespace (`import * as keras from 'kiln'`).
import type { KerasTensor } from './layers/layer.js';
import { type FunctionalArgs, Functional, Model as ModelBase } from './models/model.js';
import { Sequential as SequentialClass } from './models/sequential.js';
import { SubclassModel } from './models/subclass.js';
import type { LayerOptions } from './layers/layer.js';
import { callableClass } from './layers/layer.js';
import type { Tensor } from './tensor.js';

export * as ops from './ops.js';
export * as activations from './activations.js';
export * as initializers from './initializers.js';
export * as layers from './layers/index.js';
export * as backend from './backend.js';
export * as utils from './utils.js';
export * as config from './config.js';
export * as losses from './losses.js';
export * as metrics from './metrics.js';
export * as optimizers from './optimizers.js';
export * as callbacks from './callbacks.js';
export * as datasets from './datasets.js';
export * as saving from './saving/api.js';
export { History } from './models/training.js';
export type { CompileOptions, FitOptions, EvaluateOptions } from './models/training.js';
export { Input } from './layers/core.js';
export { Tensor, Variable } from './tensor.js';
export type { KerasTensor } from './layers/layer.js';
export type { DType } from '../ir/types.js';
export { Functional } from './models/model.js';
export { SubclassModel } from './models/subclass.js';
export type { ModelInput, InputSpec } from './models/model.js';

/** Output type of a functional model: a list when `outputs` was a list. */
export type OutputsOf<K> = K extends readonly KerasTensor[] ? Tensor[] : Tensor;

export interface ModelConstructor {
  /** keras.Model({ inputs, outputs, name }): a functional model. */
  new <K extends KerasTensor | readonly KerasTensor[]>(args: FunctionalArgs<K>): Functional<OutputsOf<K>>;
  /** `class MyModel extends keras.Model { ... call(x) {...} }`: a subclassed model (see SubclassModel). */
  new (options?: LayerOptions): SubclassModel;
  <K extends KerasTensor | readonly KerasTensor[]>(args: FunctionalArgs<K>): Functional<OutputsOf<K>>;
  readonly prototype: SubclassModel;
}

/**
 * keras.Model: builds a functional model from inputs and outputs, with or without `new`; as a base class, a subclassed
 * model. Every model (Sequential and functional too) is an `instanceof keras.Model`.
 */
export const Model: ModelConstructor = new Proxy(SubclassModel, {
  apply: (_target, _this, args: [FunctionalArgs<KerasTensor>]) => new Functional(...args),
  construct: (target, args: [FunctionalArgs<KerasTensor>], newTarget) => (newTarget === Model ? new Functional(...args) : Reflect.construct(target, args, newTarget)),
  get: (target, key, receiver) => (key === Symbol.hasInstance ? (v: unknown) => v instanceof ModelBase : Reflect.get(target, key, receiver)),
}) as unknown as ModelConstructor;

/** keras.Sequential(layers?, { name }), with or without `new`. */
export const Sequential = callableClass(SequentialClass);
export type Sequential = SequentialClass;
export type Model = ModelBase;
