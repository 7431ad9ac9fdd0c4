// Reverse-mode autodiff: one backward rule per primitive and one reverse topological walk.
import { Builder, type Graph, type Node, nodeName, topoSort } from '../ir/graph.js';
import { type Attrs, type Op, REDUCE_OPS, attrsOf } from '../ir/ops.js';
import { type Shape, identityOf, isFloat, sizeOf } from '../ir/types.js';
import { scanGrad, scanLoops } from './scan_grad.js';

/** Builder helpers used by the rules: scalars broadcast to a node's shape, and common compositions. */
class G {
  constructor(readonly b: Builder) {}
  e(op: Op, src: Node[], attrs: Attrs = {}): Node { return this.b.emit(op, src, attrs); }
  full(v: number, like: Node): Node {
    const c = this.b.constant(v, like.type.dtype, []);
    return like.type.shape.length ? this.e('broadcast', [c], { shape: [...like.type.shape] }) : c;
  }
  zeros(like: Node): Node { return this.full(0, like); }
  add(a: Node, c: Node): Node { return this.e('add', [a, c]); }
  sub(a: Node, c: Node): Node { return this.e('sub', [a, c]); }
  mul(a: Node, c: Node): Node { return this.e('mul', [a, c]); }
  div(a: Node, c: Node): Node { return this.e('div', [a, c]); }
  neg(a: Node): Node { return this.e('neg', [a]); }
  sel(c: Node, a: Node, d: Node): Node { return this.e('select', [c, a, d]); }
  reshape(a: Node, shape: Shape): Node {
    return a.type.shape.length === shape.length && a.type.shape.every((d, i) => d === shape[i]) ? a : this.e('reshape', [a], { shape: [...shape] });
  }
  transpose(a: Node, perm: number[]): Node { return perm.every((p, i) => p === i) ? a : this.e('transpose', [a], { perm }); }
  /** Swaps the last two axes. */
  mT(a: Node): Node {
    const r = a.type.shape.length;
    return this.transpose(a, [...Array(r - 2).keys(), r - 1, r - 2]);
  }
  sumTo(a: Node, axes: readonly number[], shape: Shape): Node {
    return this.reshape(axes.length ? this.e('reduce_sum', [a], { axes, keepdims: false }) : a, shape);
  }
  /** Broadcasts a reduced value (keepdims=false over `axes`) back to `shape`. */
  unreduce(g: Node, axes: readonly number[], shape: Shape): Node {
    const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
    return this.e('broadcast', [this.reshape(g, kept)], { shape: [...shape] });
  }
  /** Places g (the result of a strided slice) back into a zero tensor of `shape` (the transpose of slice). */
  unslice(g: Node, start: readonly number[], step: readonly number[], shape: Shape): Node {
    let x = g;
    for (let d = 0; d < shape.length; d++) {
      const s = step[d]!, m = x.type.shape[d]!;
      if (s > 1 && m > 0) {
        // interleave s-1 zeros after each element along axis d: [.., m, ..] -> [.., m, s, ..] -> [.., m*s, ..]
        const sh = x.type.shape;
        const expanded = this.reshape(x, [...sh.slice(0, d + 1), 1, ...sh.slice(d + 1)]);
        const padding = expanded.type.shape.map((_, i) => (i === d + 1 ? [0, s - 1] : [0, 0]));
        x = this.reshape(this.e('pad', [expanded], { padding, value: 0 }), [...sh.slice(0, d), m * s, ...sh.slice(d + 1)]);
      }
      const len = x.type.shape[d]!, lo = start[d]!, hi = shape[d]! - lo - len;
      if (hi < 0) {
        const end = x.type.shape.map((n, i) => (i === d ? n + hi : n));
        x = this.e('slice', [x], { start: end.map(() => 0), end, step: end.map(() => 1) });
      }
      if (lo > 0 || hi > 0) {
        x = this.e('pad', [x], { padding: x.type.shape.map((_, i) => (i === d ? [lo, Math.max(0, hi)] : [0, 0])), value: 0 });
      }
    }
    return x;
  }
}

/** Gradient of one op: given the op node, its adjoint g, returns adjoints of its sources (undefined = zero / none). */
type Rule = (g: G, n: Node, dy: Node) => (Node | undefined)[];

const none: Rule = (_g, n) => n.src.map(() => undefined);

const quantized: Rule = (_g, n) => { throw new Error(`autodiff: ${n.op} is an int8 inference op and has no gradient`); };

const RULES: Record<Op, Rule> = {
  input: none, param: none, const: none, iota: none, random_uniform: none, argmax: none, argmin: none,
  // differentiated loop by loop in vjp (scanGrad), never node by node
  scan: () => { throw new Error('autodiff: a scan is differentiated with the other results of its loop'); },
  // post-training quantization rewrites an inference graph; a quantized graph is never trained
  quantize: quantized, dequantize: quantized, qmatmul: quantized, qconv: quantized,
  // y = sum over processes of x_p: the loss is summed over processes too, so dL/dx_p = sum over processes of dL_q/dy
  allreduce: (g, _n, dy) => [g.e('allreduce', [dy])],
  sign: none, floor: none, ceil: none, round: none, not: none,
  eq: none, ne: none, lt: none, le: none, gt: none, ge: none, and: none, or: none,
  neg: (g, _n, dy) => [g.neg(dy)],
  abs: (g, n, dy) => [g.mul(dy, g.e('sign', [n.src[0]!]))],
  exp: (g, n, dy) => [g.mul(dy, n)], // d exp(x) = exp(x)
  log: (g, n, dy) => [g.div(dy, n.src[0]!)],
  log1p: (g, n, dy) => [g.div(dy, g.add(g.full(1, n), n.src[0]!))], // d log(1 + x) = 1 / (1 + x)
  sqrt: (g, n, dy) => [g.div(dy, g.mul(g.full(2, n), n))], // d sqrt(x) = 1 / (2 sqrt(x))
  rsqrt: (g, n, dy) => [g.mul(dy, g.mul(g.full(-0.5, n), g.div(n, n.src[0]!)))], // d x^-1/2 = -1/2 x^-3/2
  tanh: (g, n, dy) => [g.mul(dy, g.sub(g.full(1, n), g.mul(n, n)))],
  erf: (g, n, dy) => {
    const x = n.src[0]!; // d erf(x) = 2/sqrt(pi) exp(-x^2)
    return [g.mul(dy, g.mul(g.full(2 / Math.sqrt(Math.PI), x), g.e('exp', [g.neg(g.mul(x, x))])))];
  },
  sin: (g, n, dy) => [g.mul(dy, g.e('cos', [n.src[0]!]))],
  cos: (g, n, dy) => [g.neg(g.mul(dy, g.e('sin', [n.src[0]!])))],
  recip: (g, n, dy) => [g.neg(g.mul(dy, g.mul(n, n)))], // d 1/x = -1/x^2
  cast: (g, n, dy) => (isFloat(n.src[0]!.type.dtype) ? [g.e('cast', [dy], { dtype: n.src[0]!.type.dtype })] : [undefined]),
  add: (_g, _n, dy) => [dy, dy],
  sub: (g, _n, dy) => [dy, g.neg(dy)],
  mul: (g, n, dy) => [g.mul(dy, n.src[1]!), g.mul(dy, n.src[0]!)],
  div: (g, n, dy) => [g.div(dy, n.src[1]!), g.neg(g.div(g.mul(dy, n), n.src[1]!))], // d a/b: 1/b, -a/b^2 = -(a/b)/b
  pow: (g, n, dy) => {
    const [a, p] = n.src as [Node, Node];
    // d a^p = p a^(p-1); d/dp = a^p log a (taken as 0 where a <= 0)
    const da = g.mul(dy, g.mul(p, g.e('pow', [a, g.sub(p, g.full(1, p))])));
    const pos = g.e('gt', [a, g.zeros(a)]);
    const loga = g.e('log', [g.sel(pos, a, g.full(1, a))]);
    return [da, g.sel(pos, g.mul(dy, g.mul(n, loga)), g.zeros(a))];
  },
  // ties go to the second operand, so relu = max(x, 0) has gradient 0 at 0 as in TensorFlow
  max: (g, n, dy) => {
    const first = g.e('gt', [n.src[0]!, n.src[1]!]);
    return [g.sel(first, dy, g.zeros(dy)), g.sel(first, g.zeros(dy), dy)];
  },
  min: (g, n, dy) => {
    const first = g.e('lt', [n.src[0]!, n.src[1]!]);
    return [g.sel(first, dy, g.zeros(dy)), g.sel(first, g.zeros(dy), dy)];
  },
  select: (g, n, dy) => [undefined, g.sel(n.src[0]!, dy, g.zeros(dy)), g.sel(n.src[0]!, g.zeros(dy), dy)],
  reduce_sum: (g, n, dy) => [g.unreduce(dy, axesOf(n), n.src[0]!.type.shape)],
  reduce_prod: (g, n, dy) => {
    const x = n.src[0]!, axes = axesOf(n);
    return [g.div(g.mul(g.unreduce(dy, axes, x.type.shape), g.unreduce(n, axes, x.type.shape)), x)];
  },
  // the gradient is shared equally among tied extrema, as TensorFlow does
  reduce_max: (g, n, dy) => [extremumGrad(g, n, dy)],
  reduce_min: (g, n, dy) => [extremumGrad(g, n, dy)],
  reshape: (g, n, dy) => [g.reshape(dy, n.src[0]!.type.shape)],
  transpose: (g, n, dy) => {
    const { perm } = attrsOf(n, 'transpose');
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [g.transpose(dy, inv)];
  },
  broadcast: (g, n, dy) => {
    const xs = n.src[0]!.type.shape, os = n.type.shape, off = os.length - xs.length;
    const axes = os.flatMap((d, i) => (i < off || (xs[i - off] === 1 && d !== 1) ? [i] : []));
    // a weight broadcast over a batched matmul's batch axes (x @ W with x [B, T, D]): sum_b A_b @ C_b is one matmul
    // over the B * T rows, not B products summed after (a recurrent layer's input projection: 32 x 200 rows)
    const r = os.length;
    if (dy.op === 'matmul' && r >= 3 && axes.length === r - 2 && axes.every((a, i) => a === i)) {
      const [a, c] = [dy.src[0]!, dy.src[1]!], k = a.type.shape[r - 1]!, rows = os.slice(0, r - 2).reduce((p, d) => p * d, k);
      const at = g.reshape(g.transpose(a, [r - 2, ...axes, r - 1]), [a.type.shape[r - 2]!, rows]);
      return [g.reshape(g.e('matmul', [at, g.reshape(c, [rows, c.type.shape[r - 1]!])]), xs)];
    }
    return [g.sumTo(dy, axes, xs)];
  },
  slice: (g, n, dy) => {
    const { start, step } = attrsOf(n, 'slice');
    return [g.unslice(dy, start, step, n.src[0]!.type.shape)];
  },
  pad: (g, n, dy) => {
    const p = attrsOf(n, 'pad').padding;
    const xs = n.src[0]!.type.shape;
    return [g.e('slice', [dy], { start: p.map((q) => q[0]), end: xs.map((d, i) => p[i]![0] + d), step: xs.map(() => 1) })];
  },
  concat: (g, n, dy) => {
    const { axis } = attrsOf(n, 'concat');
    let at = 0;
    return n.src.map((s) => {
      const start = dy.type.shape.map((_, i) => (i === axis ? at : 0));
      const end = dy.type.shape.map((d, i) => (i === axis ? at + s.type.shape[axis]! : d));
      at += s.type.shape[axis]!;
      return g.e('slice', [dy], { start, end, step: end.map(() => 1) });
    });
  },
  gather: (g, n, dy) => [gatherGrad(g, n, dy), undefined],
  // d scatter_add(src, idx) / d src: each source slice's gradient is the output slice it was added to
  scatter_add: (g, n, dy) => [g.e('gather', [dy, n.src[1]!], { axis: attrsOf(n, 'scatter_add').axis }), undefined],
  matmul: (g, n, dy) => [g.e('matmul', [dy, g.mT(n.src[1]!)]), g.e('matmul', [g.mT(n.src[0]!), dy])],
  conv: (g, n, dy) => convGrads(g, n, dy),
  reduce_window: (g, n, dy) => [attrsOf(n, 'reduce_window').kind === 'sum' ? sumWindowGrad(g, n, dy) : maxWindowGrad(g, n, dy)],
};

function axesOf(n: Node): readonly number[] {
  return attrsOf(n, REDUCE_OPS).axes;
}

function extremumGrad(g: G, n: Node, dy: Node): Node {
  const x = n.src[0]!, { axes, keepdims: keep } = attrsOf(n, REDUCE_OPS);
  const y = keep ? g.e('broadcast', [n], { shape: [...x.type.shape] }) : g.unreduce(n, axes, x.type.shape);
  const mask = g.e('cast', [g.e('eq', [x, y])], { dtype: x.type.dtype });
  const count = g.unreduce(g.e('reduce_sum', [mask], { axes, keepdims: false }), axes, x.type.shape);
  const dyb = keep ? g.e('broadcast', [dy], { shape: [...x.type.shape] }) : g.unreduce(dy, axes, x.type.shape);
  return g.div(g.mul(dyb, mask), count);
}

/**
 * d gather(x, idx) / dx: dy's slices added at the (clamped, as the forward op reads) indices they were read from,
 * in increasing order of their position in idx (ir/ops.ts scatter_add).
 */
function gatherGrad(g: G, n: Node, dy: Node): Node {
  const [x, idx] = n.src as [Node, Node];
  const { axis } = attrsOf(n, 'gather');
  return g.e('scatter_add', [dy, idx], { axis, size: x.type.shape[axis]! });
}

/** Reverses the given axes of a tensor (gather with constant reversed indices). */
function reverse(g: G, x: Node, axes: number[]): Node {
  let r = x;
  for (const a of axes) {
    const d = r.type.shape[a]!;
    if (d > 1) r = g.e('gather', [r, g.b.constant(Array.from({ length: d }, (_, i) => d - 1 - i), 'int32', [d])], { axis: a });
  }
  return r;
}

function sliceChannels(g: G, x: Node, from: number, to: number): Node {
  const s = x.type.shape, last = s.length - 1;
  return g.e('slice', [x], { start: s.map((_, i) => (i === last ? from : 0)), end: s.map((d, i) => (i === last ? to : d)), step: s.map(() => 1) });
}

/**
 * Gradients of conv (lhsDilation 1) for both operands, with the classic transposed-convolution identities;
 * grouped convolutions are split into one convolution per group.
 */
function convGrads(g: G, n: Node, dy: Node): [Node, Node] {
  const [x, k] = n.src as [Node, Node];
  const a = attrsOf(n, 'conv'), { groups } = a;
  const nsp = x.type.shape.length - 2;
  if (a.lhsDilation.some((d) => d !== 1)) throw new Error('autodiff: conv with lhsDilation has no gradient rule (it is itself a gradient)');
  if (groups > 1) {
    const cin = k.type.shape[nsp]!, coutG = k.type.shape[nsp + 1]! / groups;
    const dxs: Node[] = [], dks: Node[] = [];
    for (let q = 0; q < groups; q++) {
      const xq = sliceChannels(g, x, q * cin, (q + 1) * cin), kq = sliceChannels(g, k, q * coutG, (q + 1) * coutG);
      const yq = g.e('conv', [xq, kq], { ...n.attrs, groups: 1 });
      const [dx, dk] = convGrads(g, yq, sliceChannels(g, dy, q * coutG, (q + 1) * coutG));
      dxs.push(dx);
      dks.push(dk);
    }
    return [g.e('concat', dxs, { axis: nsp + 1 }), g.e('concat', dks, { axis: nsp + 1 })];
  }
  const { strides, dilation: dil, padding: pad } = a;
  const xs = x.type.shape, ks = k.type.shape, ys = dy.type.shape;
  const spatial = [...Array(nsp).keys()];
  // dx = conv(dy dilated by the strides, kernel flipped with in/out channels swapped)
  const kFlip = g.transpose(reverse(g, k, spatial), [...spatial, nsp + 1, nsp]);
  const dxPad = spatial.map((d) => {
    const kEff = (ks[d]! - 1) * dil[d]! + 1, lo = kEff - 1 - pad[d]![0];
    const gdLen = (ys[d + 1]! - 1) * strides[d]! + 1;
    return [lo, xs[d + 1]! + kEff - 1 - gdLen - lo];
  });
  const dx = g.e('conv', [dy, kFlip], { strides: spatial.map(() => 1), padding: dxPad, dilation: dil, lhsDilation: strides, groups: 1 });
  // dk = conv over the batch: x with batch and channels swapped, dy as the kernel, strides becoming dilation
  const xT = g.transpose(x, [nsp + 1, ...spatial.map((d) => d + 1), 0]);
  const dyK = g.transpose(dy, [...spatial.map((d) => d + 1), 0, nsp + 1]);
  const dkPad = spatial.map((d) => {
    const lo = pad[d]![0];
    const nIn = xs[d + 1]!, kEff = (ys[d + 1]! - 1) * strides[d]! + 1;
    // output length must be ks[d] with stride dil[d]: (nIn + lo + hi - kEff) / dil + 1 = ks
    return [lo, (ks[d]! - 1) * dil[d]! + kEff - nIn - lo];
  });
  const dkT = g.e('conv', [xT, dyK], { strides: dil, padding: dkPad, dilation: strides, lhsDilation: spatial.map(() => 1), groups: 1 });
  const dk = g.transpose(dkT, [...spatial.map((d) => d + 1), 0, nsp + 1]);
  return [dx, dk];
}

/** Sum pooling is a depthwise convolution with a ones kernel; its gradient is that convolution's. */
function sumWindowGrad(g: G, n: Node, dy: Node): Node {
  const x = n.src[0]!, nsp = x.type.shape.length - 2, c = x.type.shape[nsp + 1]!;
  const { window: win, strides, padding } = attrsOf(n, 'reduce_window');
  const ones = g.b.constant(1, x.type.dtype, [...win, 1, c]);
  const asConv = g.e('conv', [x, ones], { strides, padding, dilation: win.map(() => 1), lhsDilation: win.map(() => 1), groups: c });
  return convGrads(g, asConv, dy)[0];
}

/** Max pooling: each output's gradient goes to the first position in its window that holds the maximum. */
function maxWindowGrad(g: G, n: Node, dy: Node): Node {
  const x = n.src[0]!, nsp = x.type.shape.length - 2;
  const { window: win, strides, padding: pad } = attrsOf(n, 'reduce_window');
  const fullPad: (readonly [number, number])[] = [[0, 0], ...pad, [0, 0]];
  // padding holds max's identity (the lowest value), so it is never the maximum
  const xp = g.e('pad', [x], { padding: fullPad, value: identityOf('max', x.type.dtype) });
  const ps = xp.type.shape, ys = n.type.shape;
  let taken: Node = g.e('broadcast', [g.b.constant(0, 'bool')], { shape: [...ys] });
  let acc: Node | undefined;
  const offsets: number[][] = [[]];
  for (const w of win) offsets.splice(0, offsets.length, ...offsets.flatMap((o) => Array.from({ length: w }, (_, i) => [...o, i])));
  for (const off of offsets) {
    const start = [0, ...off, 0], step = [1, ...strides, 1];
    const end = ps.map((d, i) => (i === 0 || i === nsp + 1 ? d : start[i]! + (ys[i]! - 1) * step[i]! + 1));
    const xw = g.e('slice', [xp], { start, end, step });
    const hit = g.e('and', [g.e('eq', [xw, n]), g.e('not', [taken])]);
    taken = g.e('or', [taken, hit]);
    const part = g.unslice(g.sel(hit, dy, g.zeros(dy)), start, step, ps);
    acc = acc ? g.add(acc, part) : part;
  }
  return g.e('slice', [acc!], { start: fullPad.map((p) => p[0]), end: x.type.shape.map((d, i) => fullPad[i]![0] + d), step: x.type.shape.map(() => 1) });
}

/**
 * Adds the backward graph of scalar `loss` to builder `b` (which built the forward nodes) and returns
 * d loss / d each of `wrt` (zeros for values the loss does not depend on).
 */
export function gradients(b: Builder, loss: Node, wrt: readonly Node[], seed?: Node): Node[] {
  if (sizeOf(loss.type.shape) !== 1 || !isFloat(loss.type.dtype)) {
    throw new Error(`autodiff: the loss must be a float scalar, got ${loss.type.dtype}[${loss.type.shape.join(',')}]`);
  }
  return vjp(b, [[loss, seed ?? new G(b).full(1, loss)]], wrt);
}

/**
 * Vector-Jacobian product: adds to `b` the backward graph of the values `seeds` names, each with its cotangent,
 * and returns the cotangent of each of `wrt` (zeros for values none of them depends on). The results of one scan
 * loop (ir/scan.ts) are differentiated together, by one reverse scan (passes/scan_grad.ts), when the first of them
 * in topological order is reached: every user of every one of them comes later, so their adjoints are complete.
 */
export function vjp(b: Builder, seeds: readonly (readonly [Node, Node])[], wrt: readonly Node[]): Node[] {
  const g = new G(b);
  const adj = new Map<Node, Node>();
  const accumulate = (s: Node, d: Node) => {
    const prev = adj.get(s);
    adj.set(s, prev ? g.add(prev, d) : d);
  };
  for (const [n, d] of seeds) accumulate(n, d);
  const order = topoSort({ name: 'loss', inputs: [], params: [], outputs: seeds.map(([n], i) => ({ name: `${i}`, node: n })), updates: [] });
  // only nodes on a path to some wrt value need adjoints
  const needed = new Set<Node>(wrt);
  for (const n of order) if (n.src.some((s) => needed.has(s))) needed.add(n);
  const loops = scanLoops(order);
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!;
    if (n.src.length === 0) continue;
    let ds: (Node | undefined)[];
    if (n.op === 'scan') {
      const loop = loops.get(n)!;
      if (loop[0] !== n || !loop.some((m) => adj.has(m))) continue;
      ds = scanGrad(b, loop, loop.map((m) => adj.get(m)));
    } else {
      const dy = adj.get(n);
      if (!dy) continue;
      ds = RULES[n.op](g, n, dy);
    }
    n.src.forEach((s, j) => {
      const d = ds[j];
      if (d && needed.has(s) && isFloat(s.type.dtype)) accumulate(s, d);
    });
  }
  return wrt.map((w) => adj.get(w) ?? g.zeros(w));
}

export interface AutodiffOptions {
  /** Name of the scalar output to differentiate. */
  loss: string;
  /** Names of the params (or inputs) to differentiate with respect to; all float params when omitted. */
  wrt?: readonly string[];
}

/** Pass: appends outputs "grad/<name>" holding d loss / d each wrt value. */
export function autodiff(graph: Graph, options: AutodiffOptions): Graph {
  const b = new Builder();
  const map = new Map<Node, Node>();
  for (const n of [...graph.inputs, ...graph.params]) map.set(n, b.leaf(n));
  for (const n of topoSort(graph)) {
    if (!map.has(n)) map.set(n, n.src.length ? b.emit(n.op, n.src.map((s) => map.get(s)!), n.attrs) : b.leaf(n));
  }
  const out = graph.outputs.find((o) => o.name === options.loss);
  if (!out) throw new Error(`autodiff: graph ${graph.name} has no output '${options.loss}'`);
  const leaves = [...graph.params, ...graph.inputs];
  const wrt = options.wrt
    ? options.wrt.map((name) => {
      const n = leaves.find((l) => nodeName(l) === name);
      if (!n) throw new Error(`autodiff: graph ${graph.name} has no param or input '${name}'`);
      return n;
    })
    : graph.params.filter((p) => isFloat(p.type.dtype));
  const grads = gradients(b, map.get(out.node)!, wrt.map((w) => map.get(w)!));
  return b.finish(graph.name, [
    ...graph.outputs.map((o) => ({ name: o.name, node: map.get(o.node)! })),
    ...wrt.map((w, i) => ({ name: `grad/${nodeName(w)}`, node: grads[i]! })),
  ], graph.updates.map((u) => ({ param: map.get(u.param)!, value: map.get(u.value)! })));
}
