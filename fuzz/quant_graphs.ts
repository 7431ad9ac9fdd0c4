// Random int8 graphs (--quant): small Dense / Conv (+ReLU) networks with float ops between them, calibrated and
// rewritten by passes/quantize.ts, or quantize / qmatmul / qconv / dequantize chains with random multipliers, shifts,
// zero points and clamps. Every int8 value and its dequantized float must equal the interpreter's bit for bit.
import { Builder, type Graph, type Node, topoSort } from '../ir/graph.js';
import type { Attrs } from '../ir/ops.js';
import { type TypedArray, sizeOf } from '../ir/types.js';
import { calibrate, quantizeGraph } from '../passes/quantize.js';
import { rng } from './random_graphs.js';

type Data = Record<string, TypedArray>;

export interface QuantStep {
  readonly graph: Graph;
  readonly inputs: Data;
  readonly params: Data;
  /** Outputs every target must give bit for bit (int8 values and dequantized ones; the rest went through float ops). */
  readonly exact: readonly string[];
}

/**
 * Seed's int8 graph and data (calibrated networks 1 in 2, raw chains 1 in 4, qconv -> max pooling chains 1 in 8, int8
 * mixed with int32 and float ops otherwise).
 */
export function quantStep(seed: number): QuantStep {
  const r = rng(seed * 7919 + 7);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const floats = (n: number, s: number) => Float32Array.from({ length: n }, () => Math.fround(s * (2 * r() - 1)));
  const k = r();
  return k < 0.5 ? calibrated(r, int, pick, floats) : k < 0.75 ? raw(int, pick) : k < 0.875 ? pooled(int, pick) : mixed(int, pick);
}

type Int = (lo: number, hi: number) => number;
type Pick = <T>(xs: readonly T[]) => T;

/** Conv window attributes over nsp spatial axes. */
function windowAttrs(int: Int, nsp: number, groups: number): Attrs {
  const each = (lo: number, hi: number) => Array.from({ length: nsp }, () => int(lo, hi));
  return { strides: each(1, 2), dilation: each(1, 2), lhsDilation: each(1, 1 + Number(int(0, 3) === 0)), padding: Array.from({ length: nsp }, () => [int(0, 1), int(0, 1)]), groups };
}

/** The graph with every quantized value as an output too: int8 ones now and then, their dequantized floats always. */
function withQuantOutputs(g: Graph, int: Int): { graph: Graph; exact: string[] } {
  const order = topoSort(g), exact: string[] = [];
  const outputs = [...g.outputs];
  order.filter((n) => n.op === 'dequantize').forEach((n, i) => { outputs.push({ name: `dq${i}`, node: n }); exact.push(`dq${i}`); });
  order.filter((n) => n.op === 'qmatmul' || n.op === 'qconv').forEach((n, i) => {
    if (int(0, 2) === 0) { outputs.push({ name: `q${i}`, node: n }); exact.push(`q${i}`); }
  });
  for (const o of g.outputs) if (o.node.op === 'dequantize') exact.push(o.name);
  return { graph: { ...g, outputs }, exact };
}

/**
 * A float network of 1 to 3 Dense or Conv layers (biases and ReLUs now and then, tanh, pooling or a scale between
 * them, a softmax at the end now and then), its params random, calibrated on 1 to 3 batches and quantized; run on
 * data that is sometimes wider than the calibration's (saturation) or holds NaN and infinities.
 */
function calibrated(r: () => number, int: Int, pick: Pick, floats: (n: number, s: number) => Float32Array): QuantStep {
  const b = new Builder(), params = new Map<string, TypedArray>();
  const batch = int(1, 4), rank = int(2, 4);
  const shape = [batch, ...Array.from({ length: rank - 1 }, () => int(1, 5))];
  const x = b.input('x', { dtype: 'float32', shape });
  const param = (name: string, s: number[]) => {
    params.set(name, floats(sizeOf(s), pick([0.3, 1, 2])));
    return b.param(name, { dtype: 'float32', shape: s });
  };
  const withBias = (y: Node, name: string) => {
    const n = y.type.shape[y.type.shape.length - 1]!;
    const z = r() < 0.8 ? b.emit('add', [y, b.emit('broadcast', [param(`${name}/bias`, [n])], { shape: y.type.shape })]) : y;
    return r() < 0.5 ? b.emit('max', [z, b.constant(0, 'float32', z.type.shape)]) : z;
  };
  let v: Node = x;
  const layers = int(1, 3);
  for (let i = 0; i < layers; i++) {
    const s = v.type.shape;
    if (s.length >= 3 && r() < 0.6) {
      const nsp = s.length - 2, c = s[s.length - 1]!, groups = c % 2 === 0 && r() < 0.3 ? 2 : 1;
      const k = param(`conv${i}/kernel`, [...Array.from({ length: nsp }, () => int(1, 3)), c / groups, groups * int(1, 3)]);
      try {
        v = withBias(b.emit('conv', [v, k], windowAttrs(int, nsp, groups)), `conv${i}`);
      } catch {
        v = withBias(b.emit('conv', [v, k], { strides: s.slice(1, -1).map(() => 1), dilation: s.slice(1, -1).map(() => 1), lhsDilation: s.slice(1, -1).map(() => 1), padding: s.slice(1, -1).map(() => [1, 1]), groups }), `conv${i}`);
      }
    } else {
      const flat = s.length === 2 ? v : b.emit('reshape', [v], { shape: [s[0]!, sizeOf(s) / s[0]!] });
      v = withBias(b.emit('matmul', [flat, param(`dense${i}/kernel`, [flat.type.shape[1]!, int(1, 6)])]), `dense${i}`);
    }
    // float ops between layers: the next layer's input is quantized from their result
    const t = v.type.shape;
    const k = int(0, 5);
    if (k === 0) v = b.emit('tanh', [v]);
    else if (k === 1) v = b.emit('mul', [v, b.constant(pick([0.5, 3, -1]), 'float32', t)]);
    else if (k === 2 && t.length >= 3) v = b.emit('reduce_window', [v], { kind: pick(['max', 'sum']), window: t.slice(1, -1).map(() => int(1, 2)), strides: t.slice(1, -1).map(() => 1), padding: t.slice(1, -1).map(() => [0, 0]) });
  }
  const outs = [{ name: 'y', node: v }];
  if (r() < 0.3) {
    // a softmax over the last axis, in float (libm's expf: compared within tolerance)
    const t = v.type.shape, axis = t.length - 1, e = b.emit('exp', [b.emit('sub', [v, b.emit('broadcast', [b.emit('reduce_max', [v], { axes: [axis], keepdims: true })], { shape: t })])]);
    outs.push({ name: 'p', node: b.emit('div', [e, b.emit('broadcast', [b.emit('reduce_sum', [e], { axes: [axis], keepdims: true })], { shape: t })]) });
  }
  const g = b.finish('quant', outs);
  const batches = Array.from({ length: int(1, 3) }, () => new Map([['x', floats(sizeOf(shape), 2)]]));
  const q = quantizeGraph(g, params, calibrate(g, params, batches));
  const input = floats(sizeOf(shape), pick([1, 2, 4]));
  if (r() < 0.15) input[int(0, input.length - 1)] = pick([NaN, Infinity, -Infinity, 1e30]);
  const { graph, exact } = withQuantOutputs(q.graph, int);
  return { graph, inputs: { x: input }, params: Object.fromEntries(q.params), exact };
}

/**
 * quantize (or an int8 input, 1 in 4), then 1 or 2 qmatmuls or qconvs with random weights, biases, multipliers,
 * shifts, zero points and clamps.
 */
function raw(int: Int, pick: Pick): QuantStep {
  const b = new Builder(), params: Data = {};
  const i8 = () => int(-128, 127);
  const conv = int(0, 1) === 1, batch = int(1, 3);
  const shape = conv ? [batch, ...Array.from({ length: int(1, 2) }, () => int(2, 5)), int(1, 4)] : [batch, int(1, 40)];
  const int8Input = int(0, 3) === 0, x = b.input('x', { dtype: int8Input ? 'int8' : 'float32', shape });
  let zero = i8();
  let v = int8Input ? x : b.emit('quantize', [x], { scale: pick([0.05, 0.25, 1, 3.5]), zeroPoint: zero });
  const layers = int(1, 2);
  for (let i = 0; i < layers; i++) {
    const s = v.type.shape, c = s[s.length - 1]!, nsp = s.length - 2;
    const groups = conv && c % 2 === 0 && int(0, 2) === 0 ? 2 : 1, cout = groups * int(1, conv ? 3 : 20);
    const kShape = conv ? [...Array.from({ length: nsp }, () => int(1, 3)), c / groups, cout] : [c, cout];
    const w = b.param(`w${i}`, { dtype: 'int8', shape: kShape }), bias = b.param(`b${i}`, { dtype: 'int32', shape: [cout] });
    params[`w${i}`] = Int8Array.from({ length: sizeOf(kShape) }, () => (int(0, 9) === 0 ? pick([-128, 127]) : i8()));
    params[`b${i}`] = Int32Array.from({ length: cout }, () => (int(0, 1) ? int(-1000, 1000) : Math.floor(2 ** 32 * int(0, 1e6) / 1e6) - 2 ** 31));
    const mults = Array.from({ length: cout }, () => pick([0, 1, 2 ** 30, 2147483647, Math.floor(2 ** 31 * int(0, 1e6) / 1e6) >>> 0]) % 2 ** 31);
    const shifts = Array.from({ length: cout }, () => (int(0, 3) === 0 ? int(-31, 30) : int(-12, 0)));
    const lo = int(-128, 0), out = i8();
    const attrs = { xZero: zero, outZero: out, lo, hi: int(lo, 127) };
    const src = [v, w, bias, b.constant(mults, 'int32', [cout]), b.constant(shifts, 'int32', [cout])];
    try {
      v = conv ? b.emit('qconv', src, { ...windowAttrs(int, nsp, groups), ...attrs }) : b.emit('qmatmul', src, attrs);
    } catch {
      break; // a window larger than the input: the chain stops here
    }
    zero = out;
  }
  const g = b.finish('qraw', [{ name: 'y', node: b.emit('dequantize', [v], { scale: pick([0.1, 1, 0.007]), zeroPoint: zero }) }]);
  const input = int8Input ? Int8Array.from({ length: sizeOf(shape) }, () => (int(0, 9) === 0 ? pick([-128, 127]) : i8()))
    : Float32Array.from({ length: sizeOf(shape) }, () => Math.fround(20 * (int(0, 1e6) / 1e6) - 10));
  if (!int8Input && int(0, 5) === 0) input[int(0, input.length - 1)] = pick([NaN, Infinity, -Infinity]);
  const { graph, exact } = withQuantOutputs(g, int);
  return { graph, inputs: { x: input }, params, exact };
}

/**
 * quantize, then 1 or 2 qconvs each followed by a max reduce_window (fuse.ts pooledQconv computes them as one kernel,
 * pooling the accumulators before requantizing): u8 rows (zero point -128) mostly, ReLU outputs (zero point and low
 * clamp -128) mostly, odd sizes, 'same' and valid convs of strides 1 and 2, windows 2x2/2, 3x3/3, non-square ones,
 * padded now and then; multipliers >= 0 with shifts <= 0 (fused) but now and then a left shift or a window of padding
 * alone (not fused: pooling first would differ); overlapping windows, 3x3/2 and stride-1 ones (not fused either).
 */
function pooled(int: Int, pick: Pick): QuantStep {
  const b = new Builder(), params: Data = {};
  const i8 = () => int(-128, 127);
  const shape = [int(1, 2), int(3, 13), int(3, 13), pick([1, 1, 2, 3, 4, 8])];
  const x = b.input('x', { dtype: 'float32', shape });
  let zero = pick([-128, -128, i8()]);
  let v = b.emit('quantize', [x], { scale: pick([0.01, 0.05, 0.25]), zeroPoint: zero });
  const layers = int(1, 2);
  for (let i = 0; i < layers; i++) {
    const s = v.type.shape, c = s[3]!, cout = pick([1, 3, 8, 8, 16]), k = pick([1, 3, 3, 5]);
    const w = b.param(`w${i}`, { dtype: 'int8', shape: [k, k, c, cout] }), bias = b.param(`b${i}`, { dtype: 'int32', shape: [cout] });
    params[`w${i}`] = Int8Array.from({ length: k * k * c * cout }, () => (int(0, 9) === 0 ? pick([-128, 127]) : i8()));
    params[`b${i}`] = Int32Array.from({ length: cout }, () => int(-3000, 3000));
    const mults = Array.from({ length: cout }, () => pick([0, 2 ** 30, 2147483647, int(2 ** 28, 2 ** 31 - 1)]));
    // a left shift in 1 layer of 8 (one channel's: the layer is not fused)
    const left = int(0, 7) === 0 ? int(0, cout - 1) : -1, shifts = Array.from({ length: cout }, (_, j) => (j === left ? int(1, 12) : int(-12, 0)));
    const relu = int(0, 2) > 0, out = relu ? -128 : i8(), lo = relu ? -128 : int(-128, 0);
    const p = pick([0, k >> 1]), st = pick([1, 1, 2]);
    try {
      v = b.emit('qconv', [v, w, bias, b.constant(mults, 'int32', [cout]), b.constant(shifts, 'int32', [cout])],
        { strides: [st, st], dilation: [1, 1], lhsDilation: [1, 1], padding: [[p, p], [p, p]], groups: 1, xZero: zero, outZero: out, lo, hi: int(Math.max(lo, 0), 127) });
    } catch {
      break; // a kernel larger than the input
    }
    zero = out;
    const [win, stride] = pick([[[2, 2], [2, 2]], [[2, 2], [2, 2]], [[3, 3], [3, 3]], [[3, 3], [2, 2]], [[2, 2], [1, 1]], [[3, 3], [1, 1]], [[1, 2], [1, 2]], [[3, 2], [3, 2]], [[3, 2], [2, 1]], [[1, 1], [3, 3]]] as const);
    const pad = win.map((d) => (int(0, 3) === 0 ? [int(0, d), int(0, d)] : [0, 0]));
    try {
      v = b.emit('reduce_window', [v], { kind: 'max', window: [...win], strides: [...stride], padding: pad });
    } catch {
      break; // a window larger than the conv's output
    }
  }
  const g = b.finish('qpool', [{ name: 'y', node: b.emit('dequantize', [v], { scale: pick([0.1, 0.007]), zeroPoint: zero }) }]);
  const input = Float32Array.from({ length: sizeOf(shape) }, () => Math.fround(4 * (int(0, 1e6) / 1e6) - 1));
  const { graph, exact } = withQuantOutputs(g, int);
  return { graph, inputs: { x: input }, params, exact };
}

/** A qmatmul of v [M, K] with random weights (returned too), bias, multipliers, shifts and zero points, to [M, cout]. */
function qmatmulOf(b: Builder, params: Data, int: Int, pick: Pick, v: Node, xZero: number, name: string, cout: number): [Node, Node] {
  const i8 = () => int(-128, 127), c = v.type.shape[1]!;
  const w = b.param(`w${name}`, { dtype: 'int8', shape: [c, cout] }), bias = b.param(`b${name}`, { dtype: 'int32', shape: [cout] });
  params[`w${name}`] = Int8Array.from({ length: c * cout }, () => (int(0, 9) === 0 ? pick([-128, 127]) : i8()));
  params[`b${name}`] = Int32Array.from({ length: cout }, () => int(-1000, 1000));
  const mults = Array.from({ length: cout }, () => pick([1, 2 ** 30, 2147483647, Math.floor(2 ** 31 * int(0, 1e6) / 1e6) % 2 ** 31]));
  const shifts = Array.from({ length: cout }, () => int(-12, 0));
  const lo = int(-128, 0);
  return [b.emit('qmatmul', [v, w, bias, b.constant(mults, 'int32', [cout]), b.constant(shifts, 'int32', [cout])], { xZero, outZero: i8(), lo, hi: int(lo, 127) }), w];
}

/**
 * int8 next to plain int32 and float ops, fusable into one kernel: a qmatmul's result widened to int32, scaled past
 * int16 and combined with the widened int8 operands' own int32 matmul (qmatmul's pattern in plain ops, whose values
 * need not fit the int8 pair dot products), another int32 matmul on that; and its dequantized float added to a
 * float matmul of the input, or through a leaky ReLU requantized into a second qmatmul. Sizes 1, 3 and odd ones up to 41.
 */
function mixed(int: Int, pick: Pick): QuantStep {
  const b = new Builder(), params: Data = {};
  const batch = pick([1, 3, int(1, 5)]), k = pick([1, 3, int(2, 41)]), n = pick([1, 3, int(2, 23)]);
  const x = b.input('x', { dtype: 'float32', shape: [batch, k] });
  const zero = int(-128, 127), scale = pick([0.05, 0.25, 1]);
  const q = b.emit('quantize', [x], { scale, zeroPoint: zero });
  const [y8, w8] = qmatmulOf(b, params, int, pick, q, zero, '0', n);
  const outs: { name: string; node: Node }[] = [], exact: string[] = [];
  const out = (name: string, node: Node, isExact = true) => { outs.push({ name, node }); if (isExact) exact.push(name); };
  const i32 = (v: number | number[], shape: number[]) => b.constant(v, 'int32', shape);
  // int32: (y8 * c + bias) op (q32 @ w32), sometimes then @ an int32 param with values past int16
  let v = b.emit('mul', [b.emit('cast', [y8], { dtype: 'int32' }), i32(pick([1, 3, 300, 40000]), [batch, n])]);
  if (int(0, 1)) v = b.emit('add', [v, b.emit('broadcast', [i32(Array.from({ length: n }, () => int(-70000, 70000)), [n])], { shape: [batch, n] })]);
  if (int(0, 1)) {
    const w32 = b.emit('cast', [w8], { dtype: 'int32' });
    const dot = b.emit('matmul', [b.emit('cast', [q], { dtype: 'int32' }), w32]);
    v = b.emit(pick(['add', 'sub', 'max'] as const), [v, dot]);
  }
  if (int(0, 2) === 0) {
    const m = pick([1, 3, int(2, 7)]);
    params['m32'] = Int32Array.from({ length: n * m }, () => int(-40, 40) * pick([1, 1, 700]));
    v = b.emit('matmul', [v, b.param('m32', { dtype: 'int32', shape: [n, m] })]);
  }
  out('i', v);
  if (int(0, 1)) out('i8', y8);
  // float: the dequantized result plus a float matmul of the input, requantized into a second qmatmul now and then
  const dq = b.emit('dequantize', [y8], { scale: pick([0.1, 1, 0.007]), zeroPoint: y8.attrs['outZero'] as number });
  out('dq', dq);
  if (int(0, 1)) {
    // a leaky ReLU (one rounding per op on every target: the second quantize's input is exact) into a second qmatmul
    const f = b.emit('max', [dq, b.emit('mul', [dq, b.constant(0.1, 'float32', dq.type.shape)])]);
    const z = int(-128, 127), q2 = b.emit('quantize', [f], { scale: pick([0.1, 0.5]), zeroPoint: z });
    const [y2] = qmatmulOf(b, params, int, pick, q2, z, '1', pick([1, 3, int(2, 9)]));
    out('y', b.emit('dequantize', [y2], { scale: 0.25, zeroPoint: y2.attrs['outZero'] as number }));
  } else {
    params['f'] = Float32Array.from({ length: k * n }, () => Math.fround((int(0, 2000) - 1000) / 500));
    out('y', b.emit('add', [dq, b.emit('matmul', [x, b.param('f', { dtype: 'float32', shape: [k, n] })])]), false);
  }
  return { graph: b.finish('qmixed', outs), inputs: { x: Float32Array.from({ length: batch * k }, () => Math.fround(20 * (int(0, 1e6) / 1e6) - 10)) }, params, exact };
}
