// Quantized graphs every target must run bit for bit as the interpreter: random multipliers and shifts, rounding ties
// and saturation, and a calibrated two-layer MLP (its softmax compared within libm's tolerance).
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { Builder, type Graph, topoSort } from '../../ir/graph.js';
import type { TypedArray } from '../../ir/types.js';
import { calibrate, quantizeGraph } from '../../passes/quantize.js';
import { rng } from '../ir/helpers.js';

export interface QuantCase {
  readonly g: Graph;
  readonly inputs: Record<string, TypedArray>;
  readonly params: Record<string, TypedArray>;
  /** outputs that must equal the interpreter's bit for bit (the others go through expf) */
  readonly exact: readonly string[];
}

/** quantize, qmatmul and dequantize with random multipliers over the int32 range, every shift -31..30, NaN and ±inf inputs. */
function ops(): QuantCase {
  const r = rng(21), [m, k, n] = [6, 33, 64];
  const b = new Builder();
  const x = b.input('x', { dtype: 'float32', shape: [m, k] });
  const w = b.param('w', { dtype: 'int8', shape: [k, n] }), bias = b.param('bias', { dtype: 'int32', shape: [n] });
  const mults = Array.from({ length: n }, (_, j) => (j === 0 ? 2147483647 : j === 1 ? 0 : Math.floor(r() * 2 ** 31)));
  const shifts = Array.from({ length: n }, (_, j) => (j % 62) - 31);
  const xq = b.emit('quantize', [x], { scale: 0.05, zeroPoint: -7 });
  const q = b.emit('qmatmul', [xq, w, bias, b.constant(mults, 'int32', [n]), b.constant(shifts, 'int32', [n])], { xZero: -7, outZero: 3, lo: -100, hi: 120 });
  const g = b.finish('q', [
    { name: 'y', node: b.emit('dequantize', [q], { scale: 0.25, zeroPoint: 3 }) },
    { name: 'xq', node: b.emit('dequantize', [xq], { scale: 0.05, zeroPoint: -7 }) },
  ]);
  const xs = Float32Array.from({ length: m * k }, (_, i) => (i === 0 ? NaN : i === 1 ? Infinity : i === 2 ? -1e30 : i === 3 ? 0.025 : 20 * r() - 10));
  const params = {
    w: Int8Array.from({ length: k * n }, () => Math.floor(r() * 256) - 128),
    bias: Int32Array.from({ length: n }, () => Math.floor(r() * 2 ** 32) - 2 ** 31),
  };
  return { g, inputs: { x: xs }, params, exact: ['y', 'xq'] };
}

/** K = 1 and x at its zero point: the accumulator is the bias, so each channel is one (acc, multiplier, shift) case. */
function ties(): QuantCase {
  const cases: [number, number, number][] = [];
  for (let acc = -300; acc <= 300; acc += acc >= -20 && acc < 20 ? 1 : 7) for (const shift of [0, -1, -2, -3]) cases.push([acc, 2 ** 30, shift]);
  for (const acc of [-2147483648, -1, 1, 2147483647]) for (const mult of [-2147483648, 2147483647, 1, 0]) cases.push([acc, mult, -31], [acc, mult, 0]);
  const r = rng(8);
  for (let i = 0; i < 64; i++) cases.push([Math.floor(r() * 2 ** 32) - 2 ** 31, Math.floor(r() * 2 ** 31), -31 + Math.floor(r() * 8)]);
  cases.push([3, 2 ** 30, 3], [-5, 2 ** 30, 5], [1 << 28, 2 ** 30, 4]); // left shifts, the last one wrapping
  const n = cases.length, b = new Builder();
  const xq = b.emit('quantize', [b.input('x', { dtype: 'float32', shape: [1, 1] })], { scale: 1, zeroPoint: 0 });
  const q = b.emit('qmatmul', [xq, b.param('w', { dtype: 'int8', shape: [1, n] }), b.param('bias', { dtype: 'int32', shape: [n] }),
    b.constant(cases.map((c) => c[1]), 'int32', [n]), b.constant(cases.map((c) => c[2]), 'int32', [n])], { xZero: 0, outZero: 0, lo: -128, hi: 127 });
  const g = b.finish('ties', [{ name: 'y', node: b.emit('dequantize', [q], { scale: 1, zeroPoint: 0 }) }]);
  return { g, inputs: { x: new Float32Array(1) }, params: { w: new Int8Array(n), bias: Int32Array.from(cases.map((c) => c[0])) }, exact: ['y'] };
}

/** A calibrated two-layer Dense MLP: ReLU fused, logits dequantized (exact), softmax in float (libm's expf). */
function mlp(): QuantCase {
  const r = rng(5), [bs, d, h, o] = [8, 50, 32, 10];
  const b = new Builder();
  const x = b.input('x', { dtype: 'float32', shape: [bs, d] });
  const dense = (v: ReturnType<Builder['input']>, name: string, i: number, j: number) =>
    b.emit('add', [b.emit('matmul', [v, b.param(`${name}/kernel`, { dtype: 'float32', shape: [i, j] })]),
      b.emit('broadcast', [b.param(`${name}/bias`, { dtype: 'float32', shape: [j] })], { shape: [bs, j] })]);
  const hid = b.emit('max', [dense(x, 'dense', d, h), b.constant(0, 'float32', [bs, h])]);
  const logits = dense(hid, 'dense_1', h, o);
  const e = b.emit('exp', [logits]);
  const g = b.finish('mlp', [{ name: 'logits', node: logits }, { name: 'y', node: b.emit('div', [e, b.emit('broadcast', [b.emit('reduce_sum', [e], { axes: [1], keepdims: true })], { shape: [bs, o] })]) }]);
  const rand = (len: number, s: number) => Float32Array.from({ length: len }, () => Math.fround(s * (2 * r() - 1)));
  const params = new Map([['dense/kernel', rand(d * h, 0.3)], ['dense/bias', rand(h, 0.1)], ['dense_1/kernel', rand(h * o, 0.3)], ['dense_1/bias', rand(o, 0.1)]]);
  const batches = [0, 1, 2].map(() => new Map([['x', rand(bs * d, 1)]]));
  const q = quantizeGraph(g, params, calibrate(g, params, batches));
  if (q.graph.outputs[0]!.node.op !== 'dequantize') throw new Error('the logits are not quantized');
  return { g: q.graph, inputs: { x: rand(bs * d, 1.2) }, params: Object.fromEntries(q.params), exact: ['logits'] };
}

/** The seed CNN (Conv2D same + ReLU, MaxPooling2D, Conv2D valid + ReLU, GlobalAveragePooling2D, Dense softmax), seeded weights, calibrated. */
function cnn(): QuantCase {
  keras.utils.setRandomSeed(3);
  const model = keras.Sequential([
    keras.layers.Conv2D(8, 3, { activation: 'relu', padding: 'same', inputShape: [12, 12, 1] }),
    keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(16, 3, { activation: 'relu' }),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
  const { graph, variables } = traceModel(model, 2);
  const params = new Map(variables.map((v) => [v.path, v.data]));
  const r = rng(9), rand = () => Float32Array.from({ length: 2 * 144 }, () => Math.fround(r()));
  const q = quantizeGraph(graph, params, calibrate(graph, params, [0, 1, 2, 3].map(() => new Map([['input_layer', rand()]]))));
  const ops = q.graph.outputs.length && topoSort(q.graph).map((n) => n.op);
  if (!ops || ops.filter((o) => o === 'qconv').length !== 2 || !ops.includes('qmatmul')) throw new Error(`the CNN quantizes to ${String(ops)}`);
  // the output is the softmax (expf): the convolutions' exactness shows through the dequantized pooling inputs
  const g: Graph = { ...q.graph, outputs: [...q.graph.outputs, ...topoSort(q.graph).filter((n) => n.op === 'dequantize').map((n, i) => ({ name: `dq${i}`, node: n }))] };
  return { g, inputs: { input_layer: rand() }, params: Object.fromEntries(q.params), exact: g.outputs.slice(1).map((o) => o.name) };
}

/**
 * quantize alone at awkward scales (1/255, a significand of all ones, 0.1, 3; 2^-70 and 2^70, which the llvm renderer
 * divides as it is; 2^-100, 1e36; 1e37, for which ir/quant.ts quantizeBounds finds no float clamp: 255·scale
 * overflows; not a scale near the subnormals, which model_main flushes to zero), on x at and one or two floats either
 * side of every (n + 1/2)·scale, |n| <= 300, where round half to even decides, and ±0, subnormals, ±(1024 ± 1)·scale,
 * ±FLT_MAX, ±inf and NaN; each scale with a zero point of its own, and the first three also with -128 and 127
 * (where the clamp's end at 0 also maps NaN).
 */
function rows(): QuantCase {
  const scales = [Math.fround(1 / 255), (2 - 2 ** -23) * 2 ** -8, 0.1, 3, 2 ** -70, 2 ** 70, 2 ** -100, 1e36, 1e37];
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  const step = (x: number, d: number) => { f[0] = x; u[0] = (u[0]! + (x < 0 ? -d : d)) >>> 0; return f[0]!; };
  const xs: number[] = [];
  for (const s of scales) {
    const sf = Math.fround(s);
    for (let n = -300; n <= 300; n++) for (const d of [-2, -1, 0, 1, 2]) xs.push(step(Math.fround((n + 0.5) * sf), d));
    for (const m of [1023, 1024, 1025]) xs.push(Math.fround(m * sf), -Math.fround(m * sf));
  }
  xs.push(0, -0, 1e-45, -1e-45, 1e-39, -1e-39, 3.4028234663852886e38, -3.4028234663852886e38, Infinity, -Infinity, NaN);
  const b = new Builder(), x = b.input('x', { dtype: 'float32', shape: [1, xs.length] });
  const outs = scales.flatMap((scale, i) => [(i * 40 - 100) % 128, ...(i < 3 ? [-128, 127] : [])].map((zeroPoint, j) =>
    ({ name: `q${i}_${j}`, node: b.emit('dequantize', [b.emit('quantize', [x], { scale, zeroPoint })], { scale: 1, zeroPoint: 0 }) })));
  return { g: b.finish('rows', outs), inputs: { x: Float32Array.from(xs) }, params: {}, exact: outs.map((o) => o.name) };
}

export const QUANT_CASES: Readonly<Record<string, () => QuantCase>> = { ops, ties, rows, mlp, cnn };
