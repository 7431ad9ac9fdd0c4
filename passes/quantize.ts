// quantize: int8 post-training static quantization of Dense and Conv (+ReLU) chains, from calibrated activation ranges.
//
// Weights are per-output-channel symmetric int8 (zero point 0, range ±127), activations per-tensor asymmetric int8
// (min/max over the calibration data, widened to include 0), biases int32 with scale s_in·s_w. A Dense is
// `add(matmul(x, W), broadcast(b))` (a Conv the same with conv: its weights per output channel, the last axis), optionally followed by `max(., 0)` (its ReLU, fused as the clamp's lower bound
// when nothing else reads the pre-activation). Consecutive quantized Denses pass int8 from one to the next; every
// other op (softmax, tanh, other non-linear ops, ...) is computed in float32 on dequantized values, so the graph's
// outputs stay float32.
import { Builder, type Graph, type Node, nodeName, topoSort } from '../ir/graph.js';
import { type Bindings, evalOp } from '../ir/interpreter.js';
import { INT8_MAX, asymmetricParams, quantizeMultiplier, roundHalfEven } from '../ir/quant.js';
import { BINS, type CalibrationMethod, type Histogram, mseRange, percentileRange } from './calibration.js';
import { INT32_MAX, INT32_MIN, type TypedArray, formatType, sizeOf } from '../ir/types.js';
import { splatValue } from './canonicalize.js';

/** The range [min, max] each float32 value is quantized over, chosen from the calibration data. */
export type Ranges = Map<Node, { min: number; max: number }>;

/** Scale and zero point of one quantized tensor: per channel (the last axis) for weights and biases. */
export interface QuantInfo {
  readonly dtype: 'int8' | 'int32';
  readonly scale: number | readonly number[];
  readonly zeroPoint: number;
}

export interface QuantizedGraph {
  readonly graph: Graph;
  /** The value of every param of `graph` by name: int8 kernels, int32 biases, the other params unchanged. */
  readonly params: Map<string, TypedArray>;
  /** Scale and zero point of each quantized tensor: params by name, activations as `<layer>/input` and `<layer>/output`. */
  readonly tensors: Record<string, QuantInfo>;
}

/**
 * Runs g on each calibration batch (bindings of every input; params from `params`) and chooses the range of every
 * float32 value it computes from its finite values (min/max by default; see CalibrationMethod). The histogram methods
 * run the batches twice: once for each value's min and max, once to count its values in bins over them.
 */
export function calibrate(g: Graph, params: Bindings, batches: readonly Bindings[], how: CalibrationMethod = { method: 'minmax' }): Ranges {
  if (batches.length === 0) throw new Error('quantize: no calibration data');
  const ranges: Ranges = new Map();
  eachValue(g, params, batches, (n, data) => {
    const r = ranges.get(n) ?? { min: Infinity, max: -Infinity };
    for (const x of data) if (Number.isFinite(x)) { if (x < r.min) r.min = x; if (x > r.max) r.max = x; }
    ranges.set(n, r);
  });
  if (how.method === 'minmax') return ranges;
  // bins over [lo, hi], the range widened to include 0 as the quantized range is
  const hists = new Map<Node, Histogram>();
  for (const [n, r] of ranges) if (r.min <= r.max) hists.set(n, { lo: Math.min(0, r.min), hi: Math.max(0, r.max), counts: new Float64Array(BINS) });
  eachValue(g, params, batches, (n, data) => {
    const h = hists.get(n);
    if (!h || h.hi === h.lo) return;
    const k = BINS / (h.hi - h.lo);
    for (const x of data) if (Number.isFinite(x)) h.counts[Math.min(BINS - 1, Math.floor((x - h.lo) * k))]!++;
  });
  for (const [n, h] of hists) if (h.hi > h.lo) ranges.set(n, how.method === 'percentile' ? percentileRange(h, how.percentile) : mseRange(h));
  return ranges;
}

/** Calls f with each float32 value g computes on each batch. */
function eachValue(g: Graph, params: Bindings, batches: readonly Bindings[], f: (n: Node, data: TypedArray) => void): void {
  const get = (b: Bindings, name: string): TypedArray | undefined => (b instanceof Map ? b.get(name) : (b as Record<string, TypedArray>)[name]);
  for (const batch of batches) {
    const values = new Map<Node, { type: Node['type']; data: TypedArray }>();
    for (const n of topoSort(g)) {
      let data: TypedArray;
      if (n.op === 'input' || n.op === 'param') {
        const v = get(n.op === 'input' ? batch : params, nodeName(n));
        if (!v || v.length !== sizeOf(n.type.shape)) throw new Error(`quantize: calibration needs ${n.op} '${nodeName(n)}' (${formatType(n.type)})`);
        data = v;
      } else data = evalOp(n, n.src.map((s) => values.get(s)!));
      values.set(n, { type: n.type, data });
      if (n.type.dtype === 'float32') f(n, data);
    }
  }
}

/** A Dense (or Conv) found in the float graph: out = [relu](x @ kernel + bias), or conv(x, kernel) + bias. */
interface Dense {
  /** the conv node of a convolution (its window attributes), undefined for a matmul */
  readonly conv?: Node;
  readonly x: Node;
  readonly kernel: Node;
  readonly bias: Node | undefined;
  readonly relu: boolean;
  /** The node whose value the quantized Dense produces (the max of the ReLU, or the add/matmul). */
  readonly head: Node;
}

/** The Denses of g with a param kernel (and bias), keyed by head. */
function findDenses(g: Graph, params: Bindings): Map<Node, Dense> {
  const order = topoSort(g), users = new Map<Node, number>();
  for (const n of order) for (const s of n.src) users.set(s, (users.get(s) ?? 0) + 1);
  for (const o of g.outputs) users.set(o.node, (users.get(o.node) ?? 0) + 1);
  const has = (n: Node): boolean => n.op === 'param' && (params instanceof Map ? params.has(nodeName(n)) : Object.hasOwn(params, nodeName(n)));
  const out = new Map<Node, Dense>();
  const claimed = new Set<Node>();
  // a kernel or bias read elsewhere too (a shared layer) stays float32: its int8 form would depend on each input's scale
  const dense = (head: Node, mm: Node, bias: Node | undefined): void => {
    if ((mm.op === 'matmul' && mm.type.shape.length !== 2) || !has(mm.src[1]!) || mm.src[0]!.type.dtype !== 'float32') return;
    if (users.get(mm.src[1]!) !== 1 || (bias && (users.get(bias) !== 1 || bias.type.shape[0] !== mm.type.shape[mm.type.shape.length - 1]))) return;
    claimed.add(mm);
    out.set(head, { x: mm.src[0]!, kernel: mm.src[1]!, bias, relu: false, head, ...(mm.op === 'conv' ? { conv: mm } : {}) });
  };
  const linear = (n: Node) => n.op === 'matmul' || n.op === 'conv';
  for (const n of order) {
    if (n.op !== 'add') continue;
    const [a, b] = n.src as [Node, Node];
    const [m, bc] = linear(a) ? [a, b] : [b, a];
    if (linear(m) && bc.op === 'broadcast' && has(bc.src[0]!) && bc.src[0]!.type.shape.length === 1 && users.get(m) === 1) dense(n, m, bc.src[0]!);
  }
  for (const n of order) if (linear(n) && !claimed.has(n)) dense(n, n, undefined);
  // fuse a ReLU `max(pre, 0)` when it is the pre-activation's only user
  for (const n of order) {
    if (n.op !== 'max') continue;
    const [a, b] = n.src as [Node, Node];
    const [pre, zero] = out.has(a) ? [a, b] : [b, a];
    const d = out.get(pre);
    if (!d || splatValue(zero) !== 0 || users.get(pre) !== 1) continue;
    out.delete(pre);
    out.set(n, { ...d, relu: true, head: n });
  }
  return out;
}

/**
 * A pooling on int8 (findPools): max pooling is exact on int8 (quantization is monotonic), average pooling sums in
 * int32 and divides rounding half away from zero (TFLite's reference AveragePool); the output keeps x's scale and
 * zero point.
 */
interface Pool {
  readonly kind: 'max' | 'avg' | 'reshape';
  /** the float input pooled */
  readonly x: Node;
  /** the reduce_window, reduce_* or reshape node (its attributes), and for avg the count divided by */
  readonly reduce: Node;
  readonly count: number;
}

/**
 * The poolings of g that can run on int8, keyed by the node whose value they give: reduce_window max and reduce_max
 * (MaxPooling, GlobalMaxPooling), reshape (Flatten), and `div(reduce_window sum, n)` with n the whole window (AveragePooling, valid
 * padding) or `div(reduce_sum, n)` with n the elements reduced (GlobalAveragePooling). Average pooling with 'same'
 * padding divides by a count per position and stays float32.
 */
function findPools(g: Graph): Map<Node, Pool> {
  const order = topoSort(g), users = new Map<Node, number>(), out = new Map<Node, Pool>();
  for (const n of order) for (const s of n.src) users.set(s, (users.get(s) ?? 0) + 1);
  for (const o of g.outputs) users.set(o.node, (users.get(o.node) ?? 0) + 1);
  const f32 = (n: Node) => n.type.dtype === 'float32';
  for (const n of order) {
    if (!f32(n)) continue;
    if ((n.op === 'reduce_window' && n.attrs['kind'] === 'max') || n.op === 'reduce_max') out.set(n, { kind: 'max', x: n.src[0]!, reduce: n, count: 1 });
    if (n.op === 'reshape') out.set(n, { kind: 'reshape', x: n.src[0]!, reduce: n, count: 1 }); // Flatten: moves int8 as it is
    if (n.op !== 'div') continue;
    const [sum, c] = n.src as [Node, Node], count = splatValue(c);
    if (users.get(sum) !== 1 || count === undefined) continue;
    if (sum.op === 'reduce_window' && sum.attrs['kind'] === 'sum') {
      const { window, padding } = sum.attrs as { window: number[]; padding: number[][] };
      if (padding.flat().every((p) => p === 0) && count === window.reduce((a, w) => a * w, 1)) out.set(n, { kind: 'avg', x: sum.src[0]!, reduce: sum, count });
    } else if (sum.op === 'reduce_sum') {
      const axes = sum.attrs['axes'] as number[];
      if (count === axes.reduce((a, i) => a * sum.src[0]!.type.shape[i]!, 1) && count > 0) out.set(n, { kind: 'avg', x: sum.src[0]!, reduce: sum, count });
    }
  }
  return out;
}

/** int8 pooling of xq (see Pool): the same op on int8 for max and reshape; for avg an int32 sum, then (sum ± count/2) / count truncated. */
function emitPool(b: Builder, p: Pool, xq: Node): Node {
  if (p.kind !== 'avg') return b.emit(p.reduce.op, [xq], p.reduce.attrs);
  const sum = b.emit(p.reduce.op, [b.emit('cast', [xq], { dtype: 'int32' })], p.reduce.attrs), shape = sum.type.shape;
  const half = b.constant(Math.floor(p.count / 2), 'int32', shape);
  const rounded = b.emit('select', [b.emit('gt', [sum, b.constant(0, 'int32', shape)]), b.emit('add', [sum, half]), b.emit('sub', [sum, half])]);
  return b.emit('cast', [b.emit('div', [rounded, b.constant(p.count, 'int32', shape)])], { dtype: 'int8' });
}

/** Per-output-channel symmetric int8 weights [K, N]: scales s[n] = max|W[:, n]| / 127. */
function quantizeKernel(w: TypedArray, k: number, n: number): { q: Int8Array; scales: number[] } {
  const scales = Array.from({ length: n }, (_, j) => {
    let m = 0;
    for (let i = 0; i < k; i++) m = Math.max(m, Math.abs(w[i * n + j]!));
    return m > 0 ? Math.fround(m / INT8_MAX) : 1;
  });
  const q = new Int8Array(k * n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) q[i * n + j] = Math.max(-INT8_MAX, Math.min(INT8_MAX, roundHalfEven(w[i * n + j]! / scales[j]!)));
  return { q, scales };
}

/** The layer name of a Dense: its kernel's path without the last part ('dense/kernel' -> 'dense'). */
const layerOf = (d: Dense): string => nodeName(d.kernel).replace(/\/[^/]*$/, '');

/** Rewrites g's Dense (+ReLU) chains to qmatmul with the calibrated ranges; see the file comment. */
export function quantizeGraph(g: Graph, params: Bindings, ranges: Ranges): QuantizedGraph {
  const get = (name: string): TypedArray => (params instanceof Map ? params.get(name) : (params as Record<string, TypedArray>)[name])!;
  const denses = findDenses(g, params), pools = findPools(g);
  // a pooling runs on int8 where its input is int8 anyway: a quantized layer's output, or another such pooling
  const intPool = (n: Node): Pool | undefined => {
    const p = pools.get(n);
    return p && (denses.has(p.x) || intPool(p.x)) ? p : undefined;
  };
  const b = new Builder();
  const newParams = new Map<string, TypedArray>(), tensors: Record<string, QuantInfo> = {};
  const range = (n: Node): { scale: number; zeroPoint: number } => {
    const r = ranges.get(n);
    if (!r) throw new Error(`quantize: no calibrated range for %${n.id} ${n.op} (${formatType(n.type)})`);
    return asymmetricParams(r.min, r.max);
  };
  const floats = new Map<Node, Node>(), ints = new Map<Node, { q: Node; scale: number; zeroPoint: number }>();
  for (const n of [...g.inputs]) floats.set(n, b.leaf(n));
  const floatOf = (n: Node): Node => {
    let r = floats.get(n);
    if (r) return r;
    if (denses.has(n) || intPool(n)) {
      const q = intOf(n);
      r = b.emit('dequantize', [q.q], { scale: q.scale, zeroPoint: q.zeroPoint });
    } else if (n.op === 'param') {
      r = b.leaf(n);
      newParams.set(nodeName(n), get(nodeName(n)));
    } else r = n.src.length ? b.emit(n.op, n.src.map(floatOf), n.attrs) : b.leaf(n);
    floats.set(n, r);
    return r;
  };
  const intOf = (n: Node): { q: Node; scale: number; zeroPoint: number } => {
    let r = ints.get(n);
    if (r) return r;
    const d = denses.get(n), pool = intPool(n);
    if (pool) {
      const x = intOf(pool.x);
      r = { ...x, q: emitPool(b, pool, x.q) };
    } else if (!d) {
      const p = range(n);
      r = { q: b.emit('quantize', [floatOf(n)], p), ...p };
    } else {
      const x = intOf(d.x), layer = layerOf(d);
      const m = d.kernel.type.shape[d.kernel.type.shape.length - 1]!, k = sizeOf(d.kernel.type.shape) / m;
      const { q: wq, scales } = quantizeKernel(get(nodeName(d.kernel)), k, m);
      const out = range(n);
      const bias = new Int32Array(m);
      const bf = d.bias ? get(nodeName(d.bias)) : undefined;
      const biasScales = scales.map((s) => x.scale * s);
      for (let j = 0; j < m; j++) bias[j] = bf ? Math.max(INT32_MIN, Math.min(INT32_MAX, roundHalfEven(bf[j]! / biasScales[j]!))) : 0;
      const mults = biasScales.map((s) => quantizeMultiplier(s / out.scale));
      const kName = nodeName(d.kernel), bName = d.bias ? nodeName(d.bias) : `${layer}/bias`;
      const kp = b.param(kName, { dtype: 'int8', shape: d.kernel.type.shape }), bp = b.param(bName, { dtype: 'int32', shape: [m] });
      newParams.set(kName, wq); newParams.set(bName, bias);
      tensors[kName] = { dtype: 'int8', scale: scales, zeroPoint: 0 };
      tensors[bName] = { dtype: 'int32', scale: biasScales, zeroPoint: 0 };
      tensors[`${layer}/input`] = { dtype: 'int8', scale: x.scale, zeroPoint: x.zeroPoint };
      tensors[`${layer}/output`] = { dtype: 'int8', scale: out.scale, zeroPoint: out.zeroPoint };
      const mult = b.constant(mults.map((v) => v[0]), 'int32', [m]), shift = b.constant(mults.map((v) => v[1]), 'int32', [m]);
      const attrs = { xZero: x.zeroPoint, outZero: out.zeroPoint, lo: d.relu ? Math.max(-128, out.zeroPoint) : -128, hi: 127 };
      const q = d.conv ? b.emit('qconv', [x.q, kp, bp, mult, shift], { ...d.conv.attrs, ...attrs }) : b.emit('qmatmul', [x.q, kp, bp, mult, shift], attrs);
      r = { q, ...out };
    }
    ints.set(n, r);
    return r;
  };
  if (g.updates.length) throw new Error(`quantize: graph '${g.name}' updates params (a training step); quantize an inference graph`);
  const outputs = g.outputs.map((o) => ({ name: o.name, node: floatOf(o.node) }));
  if (denses.size === 0) throw new Error(`quantize: graph '${g.name}' has no Dense layer (matmul by a param kernel) to quantize`);
  return { graph: b.finish(g.name, outputs), params: newParams, tensors };
}
