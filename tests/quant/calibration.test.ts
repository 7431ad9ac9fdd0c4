// Calibration methods (minmax, percentile, mse) against references on the raw values, and calibration of multi-input models.
import { describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { Builder } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { asymmetricParams, dequantizeValue, quantizeValue } from '../../ir/quant.js';
import { BINS, parseCalibrationMethod } from '../../passes/calibration.js';
import { calibrate } from '../../passes/quantize.js';
import { compile, quantize } from '../../compiler.js';
import { expectClose, rng } from '../ir/helpers.js';

/** Heavy-tailed values: Laplace, shifted, a longer tail above (activations before a ReLU look like this). */
function values(n: number): Float32Array {
  const r = rng(17);
  return Float32Array.from({ length: n }, () => {
    const u = r(), m = -Math.log(1 - r());
    return Math.fround(0.5 + (u < 0.5 ? -m : 1.5 * m));
  });
}

/** A graph whose one float value is its input: calibrate's range of x is the method's range of the values. */
function rangeOf(v: Float32Array, method: string): { min: number; max: number } {
  const b = new Builder(), x = b.input('x', { dtype: 'float32', shape: [v.length / 2] });
  const g = b.finish('id', [{ name: 'y', node: b.emit('neg', [x]) }]);
  return calibrate(g, new Map(), [new Map([['x', v.subarray(0, v.length / 2)]]), new Map([['x', v.subarray(v.length / 2)]])], parseCalibrationMethod(method)).get(g.inputs[0]!)!;
}

/** Squared error of quantizing the values over [min, max]. */
function sqError(v: Float32Array, r: { min: number; max: number }): number {
  const { scale, zeroPoint } = asymmetricParams(r.min, r.max);
  return v.reduce((e, x) => e + (x - dequantizeValue(quantizeValue(x, scale, zeroPoint), scale, zeroPoint)) ** 2, 0);
}

describe('calibration methods', () => {
  const v = values(20000), sorted = Float64Array.from(v).sort();

  it('parses minmax, mse, percentile and percentile:P; anything else is one line', () => {
    expect(parseCalibrationMethod('minmax')).toEqual({ method: 'minmax' });
    expect(parseCalibrationMethod('mse')).toEqual({ method: 'mse' });
    expect(parseCalibrationMethod('percentile')).toEqual({ method: 'percentile', percentile: 99.99 });
    expect(parseCalibrationMethod('percentile:99.9')).toEqual({ method: 'percentile', percentile: 99.9 });
    expect(() => parseCalibrationMethod('entropy')).toThrow(/^unknown calibration method 'entropy'; choose one of minmax, percentile \(or percentile:P, e.g. percentile:99.99\), mse$/);
    expect(() => parseCalibrationMethod('mse:3')).toThrow(/^unknown calibration method 'mse:3'/);
    for (const p of ['0', '100.5', 'x', '', '-1']) expect(() => parseCalibrationMethod(`percentile:${p}`)).toThrow(new RegExp(`^calibration percentile '${p}' is not a number in \\(0, 100\\]$`));
  });

  it('minmax is the min and max of every finite value over all batches', () => {
    expect(rangeOf(v, 'minmax')).toEqual({ min: sorted[0], max: sorted[v.length - 1] });
  });

  it('percentile P cuts (100 - P)/2 % of the values off each end, within one histogram bin of the sorted values', () => {
    const bin = (sorted[v.length - 1]! - sorted[0]!) / BINS;
    for (const p of [99, 99.9]) {
      const cut = ((100 - p) / 200) * v.length;
      const r = rangeOf(v, `percentile:${p}`);
      // ORT's threshold: the lower edge of the bin holding the value where the cumulative count reaches the cut
      const lo = sorted[Math.ceil(cut) - 1]!, hi = sorted[Math.ceil(v.length - cut) - 1]!;
      expect(r.min).toBeLessThanOrEqual(lo);
      expect(r.min).toBeGreaterThan(lo - bin);
      expect(r.max).toBeLessThanOrEqual(hi);
      expect(r.max).toBeGreaterThan(hi - bin);
    }
    expect(rangeOf(v, 'percentile:100')).toEqual({ min: sorted[0], max: sorted[v.length - 1] });
  });

  it('mse clips the tails and has less squared error on the values than minmax and the percentiles, near the best clip', () => {
    const mse = rangeOf(v, 'mse'), e = sqError(v, mse);
    expect(mse.max).toBeLessThan(sorted[v.length - 1]!);
    expect(mse.min).toBeGreaterThan(sorted[0]!);
    for (const m of ['minmax', 'percentile:99', 'percentile:99.99']) expect(e).toBeLessThan(sqError(v, rangeOf(v, m)));
    // the best symmetric-around-the-data clip on the raw values, searched finely: mse's asymmetric one is no worse than 2% above
    let best = Infinity;
    for (let t = 1; t <= 400; t++) best = Math.min(best, sqError(v, { min: sorted[0]! * t / 400, max: sorted[v.length - 1]! * t / 400 }));
    expect(e).toBeLessThanOrEqual(best * 1.02);
  });
});

describe('calibration of a multi-input model (the seed title/body model)', () => {
  keras.utils.setRandomSeed(4);
  const title = keras.Input({ shape: [10], name: 'title' }), body = keras.Input({ shape: [20], name: 'body' });
  const t = keras.layers.Dense(8, { activation: 'relu' })(title), bd = keras.layers.Dense(8, { activation: 'relu' })(body);
  const x = keras.layers.concatenate([t, bd]);
  const model = keras.Model({ inputs: [title, body], outputs: [keras.layers.Dense(4, { name: 'department' })(x)] });
  const r = rng(6), rows = 64;
  const data = (n: number) => ({ shape: [rows, n], data: Float32Array.from({ length: rows * n }, () => Math.fround(2 * r() - 1)) });
  const [dt, db] = [data(10), data(20)];

  it('takes one array per input, in order or by name, and the quantized model follows the float one', () => {
    const q = quantize(model, [dt, db], { batchSize: rows });
    expect(q.graph.params.map((p) => p.type.dtype)).toEqual(['int8', 'int32', 'int8', 'int32', 'int8', 'int32']);
    expect(quantize(model, { body: db, title: dt }, { batchSize: rows }).params).toEqual(q.params);
    const inputs = { title: dt.data, body: db.data };
    const [want] = model.predict([keras.ops.reshape(keras.ops.array(dt.data), [rows, 10]), keras.ops.reshape(keras.ops.array(db.data), [rows, 20])]) as keras.Tensor[];
    const got = interpret(q.graph, inputs, q.params).outputs.get('department')!.data;
    expectClose(got, want!.data as Float32Array, 0.05, 0.05);
  });

  it('says in one line what is wrong with the calibration data or method', async () => {
    expect(() => quantize(model, dt)).toThrow(/^quantize: calibration data covers one input, and the model has 2 \(title, body\): give one array per input$/);
    expect(() => quantize(model, [dt])).toThrow(/^quantize: 1 calibration arrays for the model's 2 inputs \(title, body\)$/);
    expect(() => quantize(model, { title: dt })).toThrow(/^quantize: no calibration data for input 'body'$/);
    expect(() => quantize(model, { title: dt, body: db, tilte: dt })).toThrow(/^quantize: calibration data for 'tilte', which is not an input of the model \(title, body\)$/);
    expect(() => quantize(model, [dt, { shape: [3, 20], data: new Float32Array(60) }])).toThrow(/^quantize: calibration data for input 'body' has 3 rows, and for 'title' 64: one row of each input per sample$/);
    expect(() => quantize(model, undefined as never)).toThrow(/^quantize: no calibration data \(give \{ shape, data \} rows of each input\)$/);
    expect(() => quantize(model, [dt, [1, 2] as never])).toThrow(/^quantize: the calibration data of input 'body' is not \{ shape, data \} rows$/);
    expect(() => quantize(model, { title: dt, body: null as never })).toThrow(/^quantize: no calibration data for input 'body'$/);
    expect(() => quantize(model, { title: dt, body: 'x' as never })).toThrow(/^quantize: the calibration data of input 'body' is not \{ shape, data \} rows$/);
    expect(() => quantize(model, [dt, db], { calibrateMethod: 'kl' })).toThrow(/^unknown calibration method 'kl'/);
    expect(() => quantize(model, [dt, db], { batchsize: 2 } as never)).toThrow(/^quantize: unknown option 'batchsize'; options are batchSize, calibrateMethod$/);
    await expect(compile(model, { emit: 'ir', calibrateMethod: 'mse' })).rejects.toThrow(/^calibrateMethod 'mse' is for quantize: 'int8', which is missing$/);
  });

  it('percentile and mse calibrate it too, each to its own ranges', () => {
    const scales = (m: string) => quantize(model, [dt, db], { batchSize: rows, calibrateMethod: m }).tensors['department/input']!.scale as number;
    const [minmax, pct, mse] = ['minmax', 'percentile:99', 'mse'].map(scales) as [number, number, number];
    expect(pct).toBeLessThan(minmax);
    expect(mse).toBeLessThan(minmax);
  });
});
