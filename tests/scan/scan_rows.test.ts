// Row separability of scan loops (passes/rows.ts): recurrent models keep their rows apart, so their predict artifacts
// take any number of rows; a loop whose steps run along the batch axis, or whose body mixes rows, does not.
import { beforeEach, describe, expect, it } from 'vitest';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { Builder } from '../../ir/graph.js';
import { buildScan } from '../../ir/scan.js';
import { rowSeparability } from '../../passes/rows.js';

beforeEach(() => keras.backend.clearSession());
const L = keras.layers;

describe('row separability of scan loops', () => {
  it.each([
    ['LSTM', () => L.LSTM(4)], ['LSTM returnSequences goBackwards', () => L.LSTM(3, { returnSequences: true, goBackwards: true })],
    ['GRU', () => L.GRU(3)], ['SimpleRNN returnSequences', () => L.SimpleRNN(2, { returnSequences: true })],
  ])('%s after an Embedding is separable at batch 2 and 5', (_n, make) => {
    const m = keras.Sequential([L.Embedding(20, 5, { inputShape: [7] }), make(), L.Dense(2)]);
    for (const batch of [2, 5]) expect(rowSeparability(traceModel(m, batch).graph)).toEqual({ separable: true });
  });

  const loop = (mix: boolean, seqOnBatch: boolean) => {
    const b = new Builder();
    const x = b.input('x', { dtype: 'float32', shape: [3, 4] });
    // steps along axis 0 of x itself (the rows), or of x transposed (the features)
    const seq = seqOnBatch ? x : b.emit('transpose', [x], { perm: [1, 0] });
    const h0 = b.emit('broadcast', [b.constant(0)], { shape: [seq.type.shape[1]!] });
    const { carries, ys } = buildScan(b, (bb, [h], [xt]) => {
      const s = bb.emit('add', [h!, xt!]);
      // mixing: every element gets the sum over the step's slice (the rows, when the slice holds them)
      const v = mix ? bb.emit('broadcast', [bb.emit('reduce_sum', [s], { axes: [0], keepdims: false })], { shape: [...s.type.shape] }) : s;
      return [[v], [v]];
    }, [h0], [seq], []);
    const out = seqOnBatch ? carries[0]! : b.emit('transpose', [ys[0]!], { perm: [1, 0] });
    return rowSeparability(b.finish('g', [{ name: 'y', node: out }]));
  };

  it('a running sum over the features is separable; over the rows, or mixing them, it is not, with the reason', () => {
    expect(loop(false, false)).toEqual({ separable: true });
    expect(loop(false, true)).toEqual({ separable: false, reason: expect.stringMatching(/^scan f32\[4\] runs its steps along the batch axis/) });
    expect(loop(true, false)).toEqual({ separable: false, reason: expect.stringMatching(/reduce_sum f32\[\] reduces over the batch axis 0/) });
  });
});
