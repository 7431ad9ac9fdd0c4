// The gradient of a weight broadcast over a batched matmul (a recurrent layer's input projection x @ W, x [B, T, D]):
// one matmul over the B * T rows, equal to the sum of the B per-batch products.
import { describe, expect, it } from 'vitest';
import { Builder, topoSort } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { gradients } from '../../passes/autodiff.js';

describe('gradient of a broadcast weight of a batched matmul', () => {
  it('is one matmul over the batch rows, and equals sum_b x_b^T @ dy_b', () => {
    const [B, T, D, N] = [3, 5, 4, 6];
    const b = new Builder();
    const x = b.input('x', { dtype: 'float32', shape: [B, T, D] }), w = b.input('w', { dtype: 'float32', shape: [D, N] });
    const y = b.emit('matmul', [x, b.emit('broadcast', [w], { shape: [B, D, N] })]);
    const dyv = Array.from({ length: B * T * N }, (_, i) => Math.sin(i * 0.7));
    const loss = b.emit('reduce_sum', [b.emit('mul', [y, b.constant(dyv, 'float32', [B, T, N])])], { axes: [0, 1, 2] });
    const [, dw] = gradients(b, loss, [x, w]);
    const g = b.finish('proj', [{ name: 'dw', node: dw! }]);
    const mms = topoSort(g).filter((n) => n.op === 'matmul').map((n) => n.type.shape.join('x'));
    expect(mms).toEqual([`${D}x${N}`]);
    const xv = Float32Array.from({ length: B * T * D }, (_, i) => Math.cos(i * 1.3));
    const got = interpret(g, new Map([['x', xv], ['w', new Float32Array(D * N)]])).outputs.get('dw')!.data;
    const want = new Float64Array(D * N);
    for (let bi = 0; bi < B; bi++) for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) for (let n = 0; n < N; n++) {
      want[d * N + n]! += xv[(bi * T + t) * D + d]! * Math.fround(dyv[(bi * T + t) * N + n]!);
    }
    want.forEach((v, i) => expect(got[i]!).toBeCloseTo(v, 5));
  });
});
