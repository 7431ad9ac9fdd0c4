// im2col: convolutions become slices + one matmul with bit-identical results, and run on the matmul kernels.
import { describe, expect, it } from 'vitest';
import { Builder } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import type { Attrs } from '../../ir/ops.js';
import { im2colPass } from '../../passes/im2col.js';
import { runPipeline } from '../../passes/pipeline.js';
import { verify } from '../../ir/verifier.js';
import { randomBindings } from './random_graphs.js';

function convGraph(xs: number[], ks: number[], attrs: Attrs) {
  const b = new Builder();
  const x = b.input('x', { dtype: 'float32', shape: xs });
  const k = b.param('k', { dtype: 'float32', shape: ks });
  return b.finish('c', [{ name: 'y', node: b.emit('conv', [x, k], attrs) }]);
}

const CASES: [string, number[], number[], Attrs][] = [
  ['2d same, stride 1', [2, 6, 5, 3], [3, 3, 3, 4], { strides: [1, 1], padding: [[1, 1], [1, 1]], dilation: [1, 1], lhsDilation: [1, 1], groups: 1 }],
  ['2d strided, dilated, asymmetric padding', [1, 9, 8, 2], [2, 3, 2, 5], { strides: [2, 1], padding: [[0, 1], [2, 0]], dilation: [2, 1], lhsDilation: [1, 1], groups: 1 }],
  ['1d', [3, 10, 4], [5, 4, 2], { strides: [2], padding: [[2, 2]], dilation: [1], lhsDilation: [1], groups: 1 }],
  ['3d', [1, 4, 4, 4, 2], [2, 2, 2, 2, 3], { strides: [1, 2, 1], padding: [[0, 0], [1, 0], [0, 1]], dilation: [1, 1, 1], lhsDilation: [1, 1, 1], groups: 1 }],
];

describe('im2col', () => {
  it.each(CASES)('%s: same values as the direct convolution, bit for bit', (_name, xs, ks, attrs) => {
    const g = convGraph(xs, ks, attrs);
    const r = verify(im2colPass(g));
    expect(JSON.stringify(r)).not.toMatch(/"op":"conv"/);
    const [inputs, params] = randomBindings(g, 3);
    const want = interpret(g, inputs, params).outputs.get('y')!.data;
    const got = interpret(r, inputs, params).outputs.get('y')!.data;
    expect(Array.from(got)).toEqual(Array.from(want));
    const c = runPipeline(g);
    expect(c.program.kernels.some((k) => k.ops.includes('matmul'))).toBe(true);
  });

  it('leaves grouped and input-dilated convolutions alone', () => {
    const g = convGraph([1, 5, 4], [3, 2, 4], { strides: [1], padding: [[1, 1]], dilation: [1], lhsDilation: [1], groups: 2 });
    expect(im2colPass(g).outputs[0]!.node.op).toBe('conv');
  });
});
