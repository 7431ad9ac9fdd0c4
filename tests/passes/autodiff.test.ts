// Every primitive's gradient against central finite differences of the reference interpreter.
import { describe, expect, it } from 'vitest';
import { Builder, type Node } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import type { Attrs, Op } from '../../ir/ops.js';
import { sizeOf } from '../../ir/types.js';
import { autodiff } from '../../passes/autodiff.js';
import { verify } from '../../ir/verifier.js';

/** Deterministic values in ±[lo, hi], away from kinks at 0. */
function values(n: number, seed: number, lo = 0.2, hi = 1.5): Float32Array {
  let s = seed * 7919 + 17;
  return Float32Array.from({ length: n }, (_, i) => {
    s = (s * 16807) % 2147483647;
    const u = s / 2147483647;
    return (i % 2 ? -1 : 1) * (lo + (hi - lo) * u);
  });
}

type Case = [name: string, shapes: number[][], fn: (b: Builder, xs: Node[]) => Node, opts?: { lo?: number; hi?: number; positive?: boolean }];

const e = (b: Builder, op: Op, src: Node[], attrs: Attrs = {}) => b.emit(op, src, attrs);

const CASES: Case[] = [
  ...(['neg', 'abs', 'exp', 'tanh', 'erf', 'sin', 'cos'] as Op[]).map((op): Case => [op, [[2, 3]], (b, [x]) => e(b, op, [x!])]),
  ...(['log', 'log1p', 'sqrt', 'rsqrt', 'recip'] as Op[]).map((op): Case => [op, [[2, 3]], (b, [x]) => e(b, op, [x!]), { positive: true }]),
  ...(['add', 'sub', 'mul', 'div', 'max', 'min'] as Op[]).map((op): Case => [op, [[3, 2], [3, 2]], (b, [x, y]) => e(b, op, [x!, y!])]),
  ['pow', [[2, 3], [2, 3]], (b, [x, y]) => e(b, 'pow', [x!, y!]), { positive: true }],
  ['select', [[2, 3], [2, 3], [2, 3]], (b, [c, x, y]) => e(b, 'select', [e(b, 'gt', [c!, x!]), x!, y!])],
  ['cast', [[4]], (b, [x]) => e(b, 'cast', [x!], { dtype: 'float32' })],
  ['reduce_sum', [[2, 3, 4]], (b, [x]) => e(b, 'reduce_sum', [x!], { axes: [0, 2], keepdims: false })],
  ['reduce_sum keepdims', [[2, 3, 4]], (b, [x]) => e(b, 'reduce_sum', [x!], { axes: [1], keepdims: true })],
  ['reduce_max', [[2, 3, 4]], (b, [x]) => e(b, 'reduce_max', [x!], { axes: [1, 2], keepdims: false })],
  ['reduce_min keepdims', [[3, 4]], (b, [x]) => e(b, 'reduce_min', [x!], { axes: [0], keepdims: true })],
  ['reduce_prod', [[2, 3]], (b, [x]) => e(b, 'reduce_prod', [x!], { axes: [1], keepdims: false })],
  ['reshape', [[2, 6]], (b, [x]) => e(b, 'reshape', [x!], { shape: [3, 4] })],
  ['transpose', [[2, 3, 4]], (b, [x]) => e(b, 'transpose', [x!], { perm: [2, 0, 1] })],
  ['broadcast', [[3, 1]], (b, [x]) => e(b, 'broadcast', [x!], { shape: [2, 3, 4] })],
  ['slice strided', [[5, 7]], (b, [x]) => e(b, 'slice', [x!], { start: [1, 0], end: [5, 7], step: [2, 3] })],
  ['pad', [[2, 3]], (b, [x]) => e(b, 'pad', [x!], { padding: [[1, 0], [2, 1]], value: 0.5 })],
  ['concat', [[2, 3], [2, 1], [2, 2]], (b, xs) => e(b, 'concat', xs, { axis: 1 })],
  ['gather', [[4, 3]], (b, [x]) => e(b, 'gather', [x!, b.constant([3, 0, 3, 1], 'int32', [2, 2])], { axis: 0 })],
  ['gather axis 1', [[2, 4, 3]], (b, [x]) => e(b, 'gather', [x!, b.constant([2, 2, 0], 'int32', [3])], { axis: 1 })],
  ['matmul', [[3, 4], [4, 2]], (b, [x, y]) => e(b, 'matmul', [x!, y!])],
  ['matmul batched', [[2, 3, 4], [2, 4, 2]], (b, [x, y]) => e(b, 'matmul', [x!, y!])],
  ...([
    ['conv 1d', [[2, 7, 3], [3, 3, 2]], { strides: [1], padding: [[1, 1]], dilation: [1], lhsDilation: [1], groups: 1 }],
    ['conv 2d strided', [[1, 6, 5, 2], [3, 2, 2, 3]], { strides: [2, 2], padding: [[1, 1], [0, 1]], dilation: [1, 1], lhsDilation: [1, 1], groups: 1 }],
    ['conv 2d dilated', [[1, 7, 6, 2], [2, 2, 2, 2]], { strides: [1, 2], padding: [[0, 0], [1, 0]], dilation: [2, 2], lhsDilation: [1, 1], groups: 1 }],
    ['conv grouped', [[2, 5, 4], [3, 2, 6]], { strides: [2], padding: [[1, 2]], dilation: [1], lhsDilation: [1], groups: 2 }],
  ] as [string, number[][], Attrs][]).map(([name, shapes, attrs]): Case => [name, shapes, (b, [x, k]) => e(b, 'conv', [x!, k!], attrs)]),
  ['reduce_window max', [[1, 5, 5, 2]], (b, [x]) => e(b, 'reduce_window', [x!], { kind: 'max', window: [2, 3], strides: [2, 1], padding: [[0, 1], [1, 1]] })],
  ['reduce_window sum', [[2, 5, 3]], (b, [x]) => e(b, 'reduce_window', [x!], { kind: 'sum', window: [3], strides: [2], padding: [[1, 1]] })],
  ['allreduce (one process)', [[2, 3]], (b, [x]) => e(b, 'allreduce', [e(b, 'mul', [x!, x!])])],
];

describe('autodiff matches central finite differences', () => {
  it.each(CASES)('%s', (_name, shapes, fn, opts = {}) => {
    const b = new Builder();
    const xs = shapes.map((s, i) => b.input(`x${i}`, { dtype: 'float32', shape: s }));
    const y = fn(b, xs);
    // weight the output so every element's gradient differs: loss = sum(y * w)
    const w = b.constant(Array.from(values(sizeOf(y.type.shape), 99, 0.5, 1.5)), 'float32', y.type.shape);
    const loss = b.emit('reduce_sum', [b.emit('mul', [y, w])], { axes: y.type.shape.map((_, i) => i), keepdims: false });
    const g = verify(autodiff(b.finish('f', [{ name: 'loss', node: loss }]), { loss: 'loss', wrt: xs.map((_, i) => `x${i}`) }));
    const inputs: Record<string, Float32Array> = {};
    shapes.forEach((s, i) => {
      const v = values(sizeOf(s), i + 1, opts.lo ?? 0.2, opts.hi ?? 1.5);
      inputs[`x${i}`] = opts.positive ? v.map(Math.abs) : v;
    });
    const res = interpret(g, inputs);
    const lossAt = (inp: Record<string, Float32Array>) => interpret(g, inp).outputs.get('loss')!.data[0]!;
    shapes.forEach((_, i) => {
      const analytic = res.outputs.get(`grad/x${i}`)!.data;
      const x = inputs[`x${i}`]!;
      for (let j = 0; j < x.length; j++) {
        const h = 1e-2 * Math.max(1, Math.abs(x[j]!)) * 0.25;
        const plus = { ...inputs, [`x${i}`]: x.slice() }, minus = { ...inputs, [`x${i}`]: x.slice() };
        plus[`x${i}`]![j] = x[j]! + h;
        minus[`x${i}`]![j] = x[j]! - h;
        const numeric = (lossAt(plus) - lossAt(minus)) / (2 * h);
        expect(Math.abs(analytic[j]! - numeric), `d loss / d x${i}[${j}]: ${analytic[j]} vs ${numeric}`).toBeLessThanOrEqual(3e-3 * Math.max(1, Math.abs(numeric)));
      }
    });
  });
});
