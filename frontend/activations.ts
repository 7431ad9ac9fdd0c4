// keras.activations: the activation functions by Keras name, and resolution of string / function identifiers.
import * as ops from './ops.js';
import type { Tensor } from './tensor.js';

export type ActivationFn = (x: Tensor) => Tensor;
export type ActivationIdentifier = string | ActivationFn | null | undefined;

export const relu: ActivationFn = (x) => ops.relu(x);
export const relu6: ActivationFn = (x) => ops.relu6(x);
export const sigmoid: ActivationFn = (x) => ops.sigmoid(x);
export const tanh: ActivationFn = (x) => ops.tanh(x);
export const softmax = (x: Tensor, axis = -1): Tensor => ops.softmax(x, axis);
export const logSoftmax = (x: Tensor, axis = -1): Tensor => ops.logSoftmax(x, axis);
export const softplus: ActivationFn = (x) => ops.softplus(x);
export const softsign: ActivationFn = (x) => ops.softsign(x);
export const silu: ActivationFn = (x) => ops.silu(x);
export const swish = silu;
export const elu = (x: Tensor, alpha = 1): Tensor => ops.elu(x, alpha);
export const selu: ActivationFn = (x) => ops.selu(x);
export const gelu = (x: Tensor, approximate = false): Tensor => ops.gelu(x, approximate);
export const leakyRelu = (x: Tensor, negativeSlope = 0.2): Tensor => ops.leakyRelu(x, negativeSlope);
export const hardSigmoid: ActivationFn = (x) => ops.hardSigmoid(x);
export const exponential: ActivationFn = (x) => ops.exp(x);
export const linear: ActivationFn = (x) => x;

const BY_NAME: Record<string, ActivationFn> = {
  relu, relu6, sigmoid, tanh, softmax: (x) => softmax(x), log_softmax: (x) => logSoftmax(x), softplus, softsign,
  silu, swish, elu: (x) => elu(x), selu, gelu: (x) => gelu(x), leaky_relu: (x) => leakyRelu(x),
  hard_sigmoid: hardSigmoid, exponential, linear,
};

/** The Keras name of an activation function, for getConfig and summaries. */
export function serialize(fn: ActivationFn): string {
  for (const [name, f] of Object.entries(BY_NAME)) if (f === fn) return name;
  const alias = Object.entries({ softmax, logSoftmax, elu, gelu, leakyRelu }).find(([, f]) => f === (fn as unknown));
  if (alias) return alias[0].replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return fn.name || 'custom';
}

/** Resolves 'relu', keras.activations.relu, a custom function, or null/undefined (linear). */
export function get(id: ActivationIdentifier): ActivationFn {
  if (id === null || id === undefined) return linear;
  if (typeof id === 'function') return id;
  const fn = BY_NAME[id];
  if (!fn) throw new Error(`unknown activation '${id}'; known: ${Object.keys(BY_NAME).join(', ')}`);
  return fn;
}
