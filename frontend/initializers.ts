// keras.initializers: weight initializers by Keras name, drawing from the global seedable generator.
import { type DType, type Shape, type TypedArray, sizeOf, toTyped } from '../ir/types.js';
import { globalRng } from './engine.js';

export type Initializer = (shape: Shape, dtype: DType) => TypedArray;
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

/**
 * Keras Orthogonal: a normal matrix of [prod(shape[:-1]), shape[-1]] made orthogonal (Q of its QR decomposition,
 * by Gram-Schmidt on the columns of the taller orientation, signs as Keras's q * sign(diag(r))), times gain.
 */
export function orthogonal(gain = 1): Initializer {
  return (shape, dtype) => {
    const cols = shape.length ? shape[shape.length - 1]! : 1, rows = Math.max(1, sizeOf(shape) / Math.max(1, cols));
    const [n, m] = rows < cols ? [cols, rows] : [rows, cols]; // orthonormal columns of an n x m matrix, n >= m
    const z = Array.from(globalRng.normal(n * m));
    const q: number[][] = [];
    for (let j = 0; j < m; j++) {
      const v = Array.from({ length: n }, (_, i) => z[i * m + j]!);
      for (const u of q) {
        const d = u.reduce((a, ui, i) => a + ui * v[i]!, 0);
        for (let i = 0; i < n; i++) v[i]! -= d * u[i]!;
      }
      const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0)) || 1;
      q.push(v.map((x) => x / norm));
    }
    // q[j] is column j of Q (n x m); the result is Q, or its transpose when the shape is wide
    const out = new Array<number>(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = gain * (rows < cols ? q[r]![c]! : q[c]![r]!);
    return toTyped(dtype, out);
  };
}

const BY_NAME: Record<string, () => Initializer> = {
  zeros: () => zeros, ones: () => ones, glorot_uniform: glorotUniform, glorot_normal: glorotNormal,
  he_uniform: heUniform, he_normal: heNormal, lecun_uniform: lecunUniform, lecun_normal: lecunNormal,
  random_uniform: () => randomUniform(), random_normal: () => randomNormal(), truncated_normal: () => truncatedNormal(),
  orthogonal: () => orthogonal(),
};

export function get(id: InitializerIdentifier): Initializer {
  if (typeof id === 'function') return id;
  const f = BY_NAME[id];
  if (!f) throw new Error(`unknown initializer '${id}'; known: ${Object.keys(BY_NAME).join(', ')}`);
  return f();
}
