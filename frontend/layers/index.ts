// keras.layers: every layer class, constructible with or without `new`.
import * as core from './core.js';
import { callableClass } from './layer.js';
import * as merging from './merging.js';

export { Layer, KerasTensor, LayerError } from './layer.js';
export type { CallOptions, LayerOptions } from './layer.js';
export type { DenseOptions, DropoutOptions, InputOptions } from './core.js';
export type { ConcatenateOptions } from './merging.js';
export { Input } from './core.js';
export { concatenate, add, subtract, multiply, average, maximum, minimum } from './merging.js';

export const InputLayer = callableClass(core.InputLayer);
export const Dense = callableClass(core.Dense);
export const Activation = callableClass(core.Activation);
export const Flatten = callableClass(core.Flatten);
export const Reshape = callableClass(core.Reshape);
export const Dropout = callableClass(core.Dropout);
export const Add = callableClass(merging.Add);
export const Subtract = callableClass(merging.Subtract);
export const Multiply = callableClass(merging.Multiply);
export const Average = callableClass(merging.Average);
export const Maximum = callableClass(merging.Maximum);
export const Minimum = callableClass(merging.Minimum);
export const Concatenate = callableClass(merging.Concatenate);
