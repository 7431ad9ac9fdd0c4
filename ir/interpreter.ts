// Reference interpreter: runs any graph on typed arrays with exact float32 semantics. The oracle for every target.
import { type Graph, type Node, nodeName, topoSort } from './graph.js';
import { type Op, REDUCE_BINARY, REDUCE_KIND, type ReduceOp, type UnaryOp, attrsOf, treeLevels } from './ops.js';
import { philoxUniform } from './philox.js';
import { dequantizeValue, multiplyByQuantizedMultiplier, quantizeValue } from './quant.js';
import { evalScan } from './scan.js';
import {
  INT32_MAX, INT32_MIN, type Shape, type TensorType, type TypedArray, allocate, formatType, identityOf, sizeOf, stridesOf,
} from './types.js';

export interface Value {
  readonly type: TensorType;
  readonly data: TypedArray;
}

const f = Math.fround;

/** Round half to even, as NumPy and Keras do. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function erf(x: number): number {
  // float64 series / continued fraction accurate far beyond float32 (Abramowitz-Stegun 7.1.26 is not enough)
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = ax, sum = ax;
    for (let n = 1; n < 80; n++) {
      term *= -ax * ax / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * sum * 2 / Math.sqrt(Math.PI);
  }
  if (ax > 6) return Math.sign(x);
  // erfc by continued fraction (Lentz), good for ax >= 2.5
  let fr = ax, c = ax, d = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    d = ax + an * d; d = 1 / d;
    c = ax + an / c;
    const delta = c * d;
    fr *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / fr;
  return Math.sign(x) * (1 - erfc);
}

type Un = (x: number) => number;
const FLOAT_UNARY: Record<Exclude<UnaryOp, 'not'>, Un> = {
  neg: (x) => -x, abs: Math.abs, sign: (x) => (Number.isNaN(x) ? NaN : x > 0 ? 1 : x < 0 ? -1 : 0),
  exp: Math.exp, log: Math.log, log1p: Math.log1p, sqrt: Math.sqrt, rsqrt: (x) => 1 / Math.sqrt(x), tanh: Math.tanh, erf,
  sin: Math.sin, cos: Math.cos, floor: Math.floor, ceil: Math.ceil, round: roundEven, recip: (x) => 1 / x,
};

type Bin = (a: number, b: number) => number;

/** C pow (IEEE 754): 1^y = 1 even for NaN y, and (-1)^±inf = 1, where JS Math.pow gives NaN. */
export function cPow(a: number, b: number): number {
  return a === 1 || (a === -1 && Math.abs(b) === Infinity) ? 1 : Math.pow(a, b);
}
const FLOAT_BINARY: Partial<Record<Op, Bin>> = {
  add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b,
  pow: cPow,
  max: Math.max, min: Math.min,
};

/** Integer power by squaring with wrapping multiplies (Math.pow loses the low bits past 2^53). */
export function intPow(a: number, b: number): number {
  if (b < 0) return 0;
  let r = 1;
  for (; b > 0; b >>>= 1, a = Math.imul(a, a)) if (b & 1) r = Math.imul(r, a);
  return r;
}

const INT_BINARY: Partial<Record<Op, Bin>> = {
  add: (a, b) => (a + b) | 0, sub: (a, b) => (a - b) | 0, mul: Math.imul,
  div: (a, b) => (b === 0 ? 0 : Math.trunc(a / b) | 0), pow: intPow,
  max: Math.max, min: Math.min,
};
const COMPARE: Partial<Record<Op, (a: number, b: number) => boolean>> = {
  eq: (a, b) => a === b, ne: (a, b) => a !== b, lt: (a, b) => a < b, le: (a, b) => a <= b, gt: (a, b) => a > b, ge: (a, b) => a >= b,
  and: (a, b) => a !== 0 && b !== 0, or: (a, b) => a !== 0 || b !== 0,
};

/** out[i] = src[base + Σ idx_d · strides_d] over the multi-index of outShape (a strided view). */
function gatherStrided(src: TypedArray, out: TypedArray, outShape: Shape, strides: readonly number[], base: number): void {
  const r = outShape.length, n = out.length;
  if (n === 0) return;
  const idx = new Array<number>(r).fill(0);
  let off = base;
  for (let i = 0; i < n; i++) {
    out[i] = src[off]!;
    for (let d = r - 1; d >= 0; d--) {
      idx[d]!++;
      off += strides[d]!;
      if (idx[d]! < outShape[d]!) break;
      off -= strides[d]! * outShape[d]!;
      idx[d] = 0;
    }
  }
}

/** Visits every multi-index of shape in row-major order with its flat position. */
function forEachIndex(shape: Shape, fn: (idx: readonly number[], flat: number) => void): void {
  const n = sizeOf(shape), r = shape.length;
  const idx = new Array<number>(r).fill(0);
  for (let i = 0; i < n; i++) {
    fn(idx, i);
    for (let d = r - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
}

function reduce(node: Pick<Node, 'op' | 'attrs'>, op: ReduceOp, x: Value, type: TensorType): TypedArray {
  const { axes, tree } = attrsOf(node, op);
  const inShape = x.type.shape;
  const outStrides = stridesOf(inShape.map((d, i) => (axes.includes(i) ? 1 : d)));
  // partials of a declared tree (treeLevels): element k of the reduced axes (row-major) goes to partial k % W
  const W = tree ?? 1, red = axes.slice().sort((a, b) => a - b), redStrides = stridesOf(red.map((d) => inShape[d]!));
  const out = allocate(type.dtype, sizeOf(type.shape) * W);
  out.fill(identityOf(REDUCE_KIND[op], type.dtype));
  const comb = (x.type.dtype === 'int32' ? INT_BINARY : FLOAT_BINARY)[REDUCE_BINARY[REDUCE_KIND[op]]]!;
  forEachIndex(inShape, (idx, flat) => {
    let o = 0, k = 0;
    for (let d = 0; d < idx.length; d++) if (!axes.includes(d)) o += idx[d]! * outStrides[d]!;
    red.forEach((d, i) => { k += idx[d]! * redStrides[i]!; });
    const at = o * W + (k % W);
    out[at] = comb(out[at]!, x.data[flat]!); // stored into float32 storage: rounded after every step
  });
  if (W === 1) return out;
  const res = allocate(type.dtype, sizeOf(type.shape));
  for (let o = 0; o < res.length; o++) {
    for (const s of treeLevels(W)) for (let i = 0; i < s; i++) out[o * W + i] = comb(out[o * W + i]!, out[o * W + i + s]!);
    res[o] = out[o * W]!;
  }
  return res;
}

function argReduce(node: Pick<Node, 'op' | 'attrs'>, op: 'argmax' | 'argmin', x: Value, type: TensorType): TypedArray {
  const { axis } = attrsOf(node, op);
  const shape = x.type.shape, n = shape[axis]!;
  const inner = sizeOf(shape.slice(axis + 1)), outer = sizeOf(shape.slice(0, axis));
  const out = allocate('int32', sizeOf(type.shape));
  const better = op === 'argmax' ? (a: number, b: number) => a > b : (a: number, b: number) => a < b;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = 0, bv = x.data[o * n * inner + i]!;
      for (let k = 1; k < n && !Number.isNaN(bv); k++) {
        const v = x.data[(o * n + k) * inner + i]!;
        if (better(v, bv) || Number.isNaN(v)) { best = k; bv = v; }
      }
      out[o * inner + i] = best;
    }
  }
  return out;
}

/** Folds the W partials of a declared tree (treeLevels) in place; the result is p[0]. */
function treeFold(p: Float32Array): number {
  for (const s of treeLevels(p.length)) for (let i = 0; i < s; i++) p[i] = p[i]! + p[i + s]!;
  return p[0]!;
}

function matmul(a: Value, b: Value, type: TensorType, tree = 1): TypedArray {
  const as = a.type.shape, r = as.length;
  const m = as[r - 2]!, k = as[r - 1]!, n = b.type.shape[r - 1]!;
  const batch = sizeOf(as.slice(0, r - 2));
  const out = allocate(type.dtype, batch * m * n);
  const isInt = type.dtype === 'int32';
  if (tree > 1 && !isInt) {
    // a declared tree over K: term p into partial p % W
    const part = new Float32Array(tree);
    for (let t = 0; t < batch; t++) {
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          part.fill(0);
          for (let p = 0; p < k; p++) part[p % tree] = part[p % tree]! + f(a.data[(t * m + i) * k + p]! * b.data[(t * k + p) * n + j]!);
          out[(t * m + i) * n + j] = treeFold(part);
        }
      }
    }
    return out;
  }
  for (let t = 0; t < batch; t++) {
    const ao = t * m * k, bo = t * k * n, oo = t * m * n;
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) {
        const av = a.data[ao + i * k + p]!;
        const row = bo + p * n, orow = oo + i * n;
        if (isInt) for (let j = 0; j < n; j++) out[orow + j] = (out[orow + j]! + Math.imul(av, b.data[row + j]!)) | 0;
        else for (let j = 0; j < n; j++) out[orow + j] = out[orow + j]! + f(av * b.data[row + j]!);
      }
    }
  }
  return out;
}

/** Window position -> input coordinate of a (possibly lhs-dilated, padded) input, or -1 when it lands in a hole or padding. */
function windowCoord(o: number, w: number, stride: number, lo: number, dil: number, ldil: number, n: number): number {
  const p = o * stride + w * dil - lo;
  if (p < 0 || p % ldil !== 0) return -1;
  const q = p / ldil;
  return q < n ? q : -1;
}

function conv(node: Pick<Node, 'op' | 'attrs'>, x: Value, k: Value, type: TensorType, q?: readonly Value[]): TypedArray {
  const xs = x.type.shape, ks = k.type.shape, os = type.shape;
  const nsp = xs.length - 2;
  const { strides, dilation: dil, lhsDilation: ldil, padding: pad, groups } = attrsOf(node, ['conv', 'qconv']);
  // qconv (ir/ops.ts): int32 accumulation from the bias of (x - xZero)·k, wrapping, then qmatmul's requantization
  const qa = q && attrsOf(node, 'qconv'), xZero = qa?.xZero ?? 0;
  const cin = ks[nsp]!, cout = ks[nsp + 1]!, coutG = cout / groups;
  const xStr = stridesOf(xs), kStr = stridesOf(ks);
  const win = ks.slice(0, nsp);
  const out = q ? new Int8Array(sizeOf(os)) : new Float32Array(sizeOf(os));
  // a declared tree (float conv only): term ci at window position w (row-major) is element w * cin + ci, into
  // partial (w * cin + ci) % W
  const W = q ? 1 : attrsOf(node, 'conv').tree ?? 1, part = new Float32Array(W);
  forEachIndex(os, (oi, flat) => {
    const nb = oi[0]!, co = oi[nsp + 1]!, g = Math.floor(co / coutG);
    let acc = q ? q[0]!.data[co]! : 0;
    part.fill(0);
    forEachIndex(win, (wi, w) => {
      let xo = nb * xStr[0]!, ko = co;
      for (let d = 0; d < nsp; d++) {
        const c = windowCoord(oi[d + 1]!, wi[d]!, strides[d]!, pad[d]![0], dil[d]!, ldil[d]!, xs[d + 1]!);
        if (c < 0) return;
        xo += c * xStr[d + 1]!;
        ko += wi[d]! * kStr[d]!;
      }
      if (q) for (let ci = 0; ci < cin; ci++) acc = (acc + (x.data[xo + g * cin + ci]! - xZero) * k.data[ko + ci * kStr[nsp]!]!) | 0;
      else if (W > 1) {
        for (let ci = 0; ci < cin; ci++) {
          const at = (w * cin + ci) % W;
          part[at] = part[at]! + f(x.data[xo + g * cin + ci]! * k.data[ko + ci * kStr[nsp]!]!);
        }
      } else for (let ci = 0; ci < cin; ci++) acc = f(acc + f(x.data[xo + g * cin + ci]! * k.data[ko + ci * kStr[nsp]!]!));
    });
    out[flat] = q ? Math.max(qa!.lo, Math.min(qa!.hi, (multiplyByQuantizedMultiplier(acc, q[1]!.data[co]!, q[2]!.data[co]!) + qa!.outZero) | 0)) : W > 1 ? treeFold(part) : acc;
  });
  return out;
}

function reduceWindow(node: Pick<Node, 'op' | 'attrs'>, x: Value, type: TensorType): TypedArray {
  const xs = x.type.shape, nsp = xs.length - 2;
  const { kind, window: win, strides, padding: pad } = attrsOf(node, 'reduce_window');
  const isInt = type.dtype === 'int32';
  const xStr = stridesOf(xs);
  const out = allocate(type.dtype, sizeOf(type.shape));
  forEachIndex(type.shape, (oi, flat) => {
    let acc = identityOf(kind, type.dtype);
    forEachIndex(win, (wi) => {
      let xo = oi[0]! * xStr[0]! + oi[nsp + 1]!;
      for (let d = 0; d < nsp; d++) {
        const c = windowCoord(oi[d + 1]!, wi[d]!, strides[d]!, pad[d]![0], 1, 1, xs[d + 1]!);
        if (c < 0) return; // padding: the lowest value for max, 0 for sum
        xo += c * xStr[d + 1]!;
      }
      acc = kind === 'max' ? Math.max(acc, x.data[xo]!) : isInt ? (acc + x.data[xo]!) | 0 : f(acc + x.data[xo]!);
    });
    out[flat] = acc;
  });
  return out;
}

function constData(n: Pick<Node, 'op' | 'type' | 'attrs'>): TypedArray {
  const vals = attrsOf(n, 'const').value;
  const out = allocate(n.type.dtype, sizeOf(n.type.shape));
  if (vals.length === 1) out.fill(vals[0]!);
  else out.set(vals);
  return out;
}

/** qmatmul (ir/ops.ts): int32 accumulation wrapping as the targets' 32-bit adds, then TFLite's requantization. */
function qmatmul(node: Pick<Node, 'op' | 'attrs'>, [x, w, bias, multiplier, shift]: readonly Value[]): TypedArray {
  const { xZero, outZero, lo, hi } = attrsOf(node, 'qmatmul');
  const [m, k] = x!.type.shape as [number, number], n = w!.type.shape[1]!;
  const [xd, wd, bd] = [x!.data, w!.data, bias!.data];
  const out = new Int8Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = bd[j]!;
      for (let p = 0; p < k; p++) acc = (acc + (xd[i * k + p]! - xZero) * wd[p * n + j]!) | 0;
      // + outZero is a 32-bit add on every target: it wraps too (a left-shifted value near INT32_MIN)
      const v = (multiplyByQuantizedMultiplier(acc, multiplier!.data[j]!, shift!.data[j]!) + outZero) | 0;
      out[i * n + j] = Math.max(lo, Math.min(hi, v));
    }
  }
  return out;
}

/** Evaluates one op on concrete operands. `node` supplies op, result type and attributes. */
export function evalOp(node: Pick<Node, 'op' | 'type' | 'attrs'>, src: readonly Value[]): TypedArray {
  const { op, type } = node;
  const n = sizeOf(type.shape);
  const x = src[0]!;
  switch (op) {
    case 'input': case 'param':
      throw new Error(`${op} '${attrsOf(node, op).name}' has no value bound`);
    case 'const':
      return constData(node);
    case 'iota': {
      const out = allocate('int32', n);
      const { axis } = attrsOf(node, op);
      forEachIndex(type.shape, (idx, flat) => { out[flat] = idx[axis]!; });
      return out;
    }
    case 'neg': case 'abs': case 'sign': case 'exp': case 'log': case 'log1p': case 'sqrt': case 'rsqrt': case 'tanh': case 'erf':
    case 'sin': case 'cos': case 'floor': case 'ceil': case 'round': case 'recip': {
      const fn = FLOAT_UNARY[op]!;
      const out = allocate(type.dtype, n);
      if (type.dtype === 'int32') for (let i = 0; i < n; i++) out[i] = fn(x.data[i]!) | 0;
      else for (let i = 0; i < n; i++) out[i] = fn(x.data[i]!);
      return out;
    }
    case 'not': {
      const out = allocate('bool', n);
      for (let i = 0; i < n; i++) out[i] = x.data[i] ? 0 : 1;
      return out;
    }
    case 'cast': {
      const out = allocate(type.dtype, n);
      for (let i = 0; i < n; i++) {
        const v = x.data[i]!;
        out[i] = type.dtype === 'bool' ? (v !== 0 ? 1 : 0) : type.dtype === 'int32' ? (Number.isNaN(v) ? 0 : Math.max(INT32_MIN, Math.min(INT32_MAX, Math.trunc(v)))) : v;
      }
      return out;
    }
    case 'add': case 'sub': case 'mul': case 'div': case 'pow': case 'max': case 'min': {
      const fn = (x.type.dtype === 'int32' ? INT_BINARY : FLOAT_BINARY)[op]!;
      const out = allocate(type.dtype, n), a = x.data, b = src[1]!.data;
      for (let i = 0; i < n; i++) out[i] = fn(a[i]!, b[i]!);
      return out;
    }
    case 'eq': case 'ne': case 'lt': case 'le': case 'gt': case 'ge': case 'and': case 'or': {
      const fn = COMPARE[op]!;
      const out = allocate('bool', n), a = x.data, b = src[1]!.data;
      for (let i = 0; i < n; i++) out[i] = fn(a[i]!, b[i]!) ? 1 : 0;
      return out;
    }
    case 'select': {
      const out = allocate(type.dtype, n), c = x.data, a = src[1]!.data, b = src[2]!.data;
      for (let i = 0; i < n; i++) out[i] = c[i] ? a[i]! : b[i]!;
      return out;
    }
    case 'reduce_sum': case 'reduce_max': case 'reduce_min': case 'reduce_prod':
      return reduce(node, op, x, type);
    case 'argmax': case 'argmin':
      return argReduce(node, op, x, type);
    case 'reshape':
      return x.data.slice();
    case 'transpose': {
      const { perm } = attrsOf(node, op);
      const st = stridesOf(x.type.shape);
      const out = allocate(type.dtype, n);
      gatherStrided(x.data, out, type.shape, perm.map((p) => st[p]!), 0);
      return out;
    }
    case 'broadcast': {
      const st = stridesOf(x.type.shape), off = type.shape.length - x.type.shape.length;
      const strides = type.shape.map((_, i) => (i < off || x.type.shape[i - off] === 1 ? 0 : st[i - off]!));
      const out = allocate(type.dtype, n);
      if (x.data.length === 1) out.fill(x.data[0]!); // a scalar's broadcast (as relu's zero when eager)
      else gatherStrided(x.data, out, type.shape, strides, 0);
      return out;
    }
    case 'slice': {
      const { start, step } = attrsOf(node, op);
      const st = stridesOf(x.type.shape);
      const out = allocate(type.dtype, n);
      gatherStrided(x.data, out, type.shape, st.map((s, i) => s * step[i]!), start.reduce((acc, s, i) => acc + s * st[i]!, 0));
      return out;
    }
    case 'pad': {
      const { padding: p, value } = attrsOf(node, op);
      const out = allocate(type.dtype, n).fill(value);
      const ost = stridesOf(type.shape);
      forEachIndex(x.type.shape, (idx, flat) => {
        let o = 0;
        for (let d = 0; d < idx.length; d++) o += (idx[d]! + p[d]![0]) * ost[d]!;
        out[o] = x.data[flat]!;
      });
      return out;
    }
    case 'concat': {
      const { axis } = attrsOf(node, op);
      const out = allocate(type.dtype, n);
      const outer = sizeOf(type.shape.slice(0, axis)), inner = sizeOf(type.shape.slice(axis + 1));
      const rowLen = type.shape[axis]! * inner;
      let at = 0;
      for (const s of src) {
        const len = s.type.shape[axis]! * inner;
        for (let o = 0; o < outer; o++) out.set(s.data.subarray(o * len, (o + 1) * len), o * rowLen + at);
        at += len;
      }
      return out;
    }
    case 'gather': {
      // indices are clamped into range, as XLA does, so every target agrees and none reads out of bounds
      const { axis } = attrsOf(node, op), idx = src[1]!;
      const dim = x.type.shape[axis]!;
      const outer = sizeOf(x.type.shape.slice(0, axis)), inner = sizeOf(x.type.shape.slice(axis + 1));
      const m = idx.data.length;
      const out = allocate(type.dtype, n);
      for (let o = 0; o < outer; o++) {
        for (let j = 0; j < m; j++) {
          const k = Math.max(0, Math.min(dim - 1, idx.data[j]!));
          out.set(x.data.subarray((o * dim + k) * inner, (o * dim + k + 1) * inner), (o * m + j) * inner);
        }
      }
      return out;
    }
    case 'scatter_add': {
      // the order every target follows: each output element sums its rows in increasing j (row-major over idx),
      // from +0, each add rounded to float32 (wrapping on int32) by the typed array's store
      const { axis, size } = attrsOf(node, op), idx = src[1]!, m = idx.data.length;
      const outer = sizeOf(x.type.shape.slice(0, axis)), inner = sizeOf(type.shape.slice(axis + 1));
      const out = allocate(type.dtype, n);
      for (let o = 0; o < outer; o++) {
        for (let j = 0; j < m; j++) {
          const to = (o * size + Math.max(0, Math.min(size - 1, idx.data[j]!))) * inner, from = (o * m + j) * inner;
          for (let i = 0; i < inner; i++) out[to + i] = out[to + i]! + x.data[from + i]!;
        }
      }
      return out;
    }
    case 'matmul':
      return matmul(x, src[1]!, type, attrsOf(node, 'matmul').tree);
    case 'conv':
      return conv(node, x, src[1]!, type);
    case 'reduce_window':
      return reduceWindow(node, x, type);
    case 'random_uniform':
      return philoxUniform(n, attrsOf(node, op).seed, x.data[0]!, src[1] ? src[1].data[0]! * (n / type.shape[0]!) : 0);
    case 'scan':
      return evalScan(node.attrs, src);
    case 'allreduce':
      return x.data.slice(); // one process: the sum over processes is its own value
    case 'quantize': case 'dequantize': {
      const { scale, zeroPoint } = attrsOf(node, op), fn = op === 'quantize' ? quantizeValue : dequantizeValue;
      const out = allocate(type.dtype, n);
      for (let i = 0; i < n; i++) out[i] = fn(x.data[i]!, scale, zeroPoint);
      return out;
    }
    case 'qmatmul':
      return qmatmul(node, src);
    case 'qconv':
      return conv(node, x, src[1]!, type, src.slice(2));
    default: {
      const never: never = op;
      throw new Error(`interpreter: unknown op ${String(never)}`);
    }
  }
}

export interface RunResult {
  /** Output values by output name, in the graph's order. */
  readonly outputs: Map<string, Value>;
  /** New parameter values by parameter name (the in-place updates). */
  readonly updates: Map<string, Value>;
}

export type Bindings = ReadonlyMap<string, TypedArray> | Readonly<Record<string, TypedArray>>;

function lookup(b: Bindings, name: string): TypedArray | undefined {
  // own keys only: a value may be named 'constructor' or 'toString'
  return b instanceof Map ? b.get(name) : Object.hasOwn(b, name) ? (b as Record<string, TypedArray>)[name] : undefined;
}

/** Runs a graph: inputs and params bound by name. Throws a clear error for a missing or ill-typed binding. */
export function interpret(g: Graph, inputs: Bindings, params: Bindings = new Map()): RunResult {
  const values = new Map<Node, Value>();
  for (const [kind, nodes, bind] of [['input', g.inputs, inputs], ['param', g.params, params]] as const) {
    for (const n of nodes) {
      const name = nodeName(n);
      const data = lookup(bind, name);
      if (!data) throw new Error(`${g.name}: no value given for ${kind} '${name}' (${formatType(n.type)})`);
      if (data.length !== sizeOf(n.type.shape) || allocate(n.type.dtype, 0).constructor !== data.constructor) {
        throw new Error(`${g.name}: ${kind} '${name}' expects ${formatType(n.type)}, got ${data.constructor.name} of ${data.length} elements`);
      }
      values.set(n, { type: n.type, data });
    }
  }
  for (const n of topoSort(g)) {
    if (values.has(n)) continue;
    values.set(n, { type: n.type, data: evalOp(n, n.src.map((s) => values.get(s)!)) });
  }
  return {
    outputs: new Map(g.outputs.map((o) => [o.name, values.get(o.node)!])),
    updates: new Map(g.updates.map((u) => [nodeName(u.param), values.get(u.value)!])),
  };
}
