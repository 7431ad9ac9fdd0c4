// Calibration methods: how an activation's quantization range is chosen from the values calibration saw (a histogram).
import { asymmetricParams, dequantizeValue, quantizeValue } from '../ir/quant.js';

/**
 * How calibration picks each activation's range from the values it saw: `minmax` their min and max; `percentile`
 * cuts (100 - p)/2 % of them off each end of a 2048-bin histogram (ONNX Runtime's HistogramCalibrater
 * 'percentile', asymmetric); `mse` the clipping range whose int8 quantization has the least squared error over the
 * histogram (pytorch-quantization's / TensorRT's 'mse' range search, here over both ends of an asymmetric range).
 */
export type CalibrationMethod = { method: 'minmax' } | { method: 'percentile'; percentile: number } | { method: 'mse' };

/** The calibration methods by name. */
export const CALIBRATION_METHODS = ['minmax', 'percentile', 'mse'] as const;

/**
 * A calibration method as written after --calibrate-method: `minmax`, `mse`, `percentile` (99.99) or
 * `percentile:P`; one line for an unknown method or a percentile outside (0, 100].
 */
export function parseCalibrationMethod(text: string): CalibrationMethod {
  const [method, value, ...more] = text.split(':');
  if (!(CALIBRATION_METHODS as readonly string[]).includes(method!) || more.length || (value !== undefined && method !== 'percentile')) {
    throw new Error(`unknown calibration method '${text}'; choose one of minmax, percentile (or percentile:P, e.g. percentile:99.99), mse`);
  }
  if (method !== 'percentile') return { method } as CalibrationMethod;
  const p = value === undefined ? 99.99 : value.trim() === '' ? NaN : Number(value);
  if (!(p > 0 && p <= 100)) throw new Error(`calibration percentile '${value}' is not a number in (0, 100]`);
  return { method: 'percentile', percentile: p };
}

/** Histogram bins of percentile and mse calibration (ONNX Runtime's default for percentile). */
export const BINS = 2048;

/** Counts of values in BINS equal bins over [lo, hi]. */
export type Histogram = { lo: number; hi: number; counts: Float64Array };

/** The lower edge of bin i. */
const edge = (h: Histogram, i: number): number => h.lo + (h.hi - h.lo) * (i / BINS);

/** ONNX Runtime's asymmetric percentile: the bins where the cumulative count first reaches q and 1 - q, q = (100 - p)/200. */
export function percentileRange(h: Histogram, p: number): { min: number; max: number } {
  const total = h.counts.reduce((a, c) => a + c, 0), cut = (100 - p) / 200;
  let seen = 0, left = -1, right = BINS;
  for (let i = 0; i < BINS; i++) {
    seen += h.counts[i]!;
    if (left < 0 && seen / total >= cut) left = i;
    if (seen / total >= 1 - cut) { right = i; break; }
  }
  // as ORT, each threshold is the lower edge of the bin where the cdf crosses; p = 100 cuts nothing: the min and max
  return p === 100 ? { min: h.lo, max: h.hi } : { min: edge(h, left), max: edge(h, right) };
}

/**
 * The range [min, max] whose int8 quantization (ir/quant.ts asymmetricParams, quantizeValue) has the least squared
 * error over the histogram's bin centres: each end searched over 1/128, 2/128, ... of the full range's, in turn, twice.
 */
export function mseRange(h: Histogram): { min: number; max: number } {
  const centres = Array.from({ length: BINS }, (_, i) => edge(h, i + 0.5)), used = [...h.counts.keys()].filter((i) => h.counts[i]! > 0);
  const error = (min: number, max: number): number => {
    const { scale, zeroPoint } = asymmetricParams(min, max);
    let e = 0;
    for (const i of used) {
      const x = centres[i]!, d = x - dequantizeValue(quantizeValue(x, scale, zeroPoint), scale, zeroPoint);
      e += h.counts[i]! * d * d;
    }
    return e;
  };
  const STEPS = 128;
  let best = { min: h.lo, max: h.hi }, bestError = error(h.lo, h.hi);
  for (let round = 0; round < 2; round++) {
    for (const side of ['max', 'min'] as const) {
      const full = side === 'max' ? h.hi : h.lo;
      if (full === 0) continue;
      for (let s = 1; s < STEPS; s++) {
        const c = { ...best, [side]: full * (s / STEPS) }, e = error(c.min, c.max);
        if (e < bestError) { best = c; bestError = e; }
      }
    }
  }
  return best;
}

