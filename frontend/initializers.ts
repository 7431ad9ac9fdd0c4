// keras.initializers: weight initializers by Keras name, drawing from the global seedable generator.
import { type DType, type Shape, sizeOf, toTyped } from '../ir/types.js';
import { globalRng } from './engine.js';

export type Initializer = (shape: Shape, dtype: DType) => Float32Array | Int32Array | Uint8Array;
export type InitializerIdentifier = string | Initializer;

/** fan_in and fan_out as Keras computes them (receptive field times channels for convolution kernels). */
export function computeFans(shape: Shape): [number, number] {
  if (shape.length === 0) return [1, 1];
  if (shape.length === 1) return [shape[0]!, shape[0]!];
  if (shape.length === 2) return [shape[0]!, shape[1]!];
  const receptive = sizeOf(shape.slice(0, -2));
  return [shape[shape.length - 2]! * receptive, shape[shape.length - 1]! * receptive];
}

export function constant(value: number): Initializer {
  return (shape, dtype) => toTyped(dtype, new Array<number>(sizeOf(shape)).fill(value));
}

export const zeros = constant(0);
export const ones = constant(1);

export function randomUniform(minval = -0.05, maxval = 0.05): Initializer {
  return (shape, dtype) => toTyped(dtype, Array.from(globalRng.uniform(sizeOf(shape)), (u) => minval + (maxval - minval) * u));
}

export function randomNormal(mean = 0, stddev = 0.05): Initializer {
  return (shape, dtype) => toTyped(dtype, Array.from(globalRng.normal(sizeOf(shape)), (z) => mean + stddev * z));
}

/** Normal truncated at two standard deviations (resampled), as Keras's TruncatedNormal. */
export function truncatedNormal(mean = 0, stddev = 0.05): Initializer {
  return (shape, dtype) => {
    const out: number[] = [];
    while (out.length < sizeOf(shape)) for (const z of globalRng.normal(sizeOf(shape))) if (Math.abs(z) <= 2 && out.length < sizeOf(shape)) out.push(mean + stddev * z);
    return toTyped(dtype, out);
  };
}

type Mode = 'fan_in' | 'fan_out' | 'fan_avg';

/** Keras VarianceScaling: the family behind glorot, he and lecun initializers. */
export function varianceScaling(scale: number, mode: Mode, distribution: 'uniform' | 'truncated_normal' | 'untruncated_normal'): Initializer {
  return (shape, dtype) => {
    const [fanIn, fanOut] = computeFans(shape);
    const n = mode === 'fan_in' ? fanIn : mode === 'fan_out' ? fanOut : (fanIn + fanOut) / 2;
    const s = scale / Math.max(1, n);
    if (distribution === 'uniform') {
      const limit = Math.sqrt(3 * s);
      return randomUniform(-limit, limit)(shape, dtype);
    }
    if (distribution === 'untruncated_normal') return randomNormal(0, Math.sqrt(s))(shape, dtype);
    // 0.879... is the stddev of a unit normal truncated to [-2, 2]
    return truncatedNormal(0, Math.sqrt(s) / 0.87962566103423978)(shape, dtype);
  };
}

export const glorotUniform = (): Initializer => varianceScaling(1, 'fan_avg', 'uniform');
export const glorotNormal = (): Initializer => varianceScaling(1, 'fan_avg', 'truncated_normal');
export const heUniform = (): Initializer => varianceScaling(2, 'fan_in', 'uniform');
export const heNormal = (): Initializer => varianceScaling(2, 'fan_in', 'truncated_normal');
export const lecunUniform = (): Initializer => varianceScaling(1, 'fan_in', 'uniform');
export const lecunNormal = (): Initializer => varianceScaling(1, 'fan_in', 'truncated_normal');

const BY_NAME: Record<string, () => Initializer> = {
  zeros: () => zeros, ones: () => ones, glorot_uniform: glorotUniform, glorot_normal: glorotNormal,
  he_uniform: heUniform, he_normal: heNormal, lecun_uniform: lecunUniform, lecun_normal: lecunNormal,
  random_uniform: () => randomUniform(), random_normal: () => randomNormal(), truncated_normal: () => truncatedNormal(),
};

export function get(id: InitializerIdentifier): Initializer {
  if (typeof id === 'function') return id;
  const f = BY_NAME[id];
  if (!f) throw new Error(`unknown initializer '${id}'; known: ${Object.keys(BY_NAME).join(', ')}`);
  return f();
}
