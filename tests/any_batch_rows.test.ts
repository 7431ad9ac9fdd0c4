// Row separability (passes/rows.ts): every example and seed model keeps its rows apart; cross-row ops do not.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type * as kerasT from '../frontend/index.js';
import * as keras from '../frontend/index.js';
import type { traceModel as traceT } from '../frontend/models/executor.js';
import { traceModel } from '../frontend/models/executor.js';
import { Builder, type Graph } from '../ir/graph.js';
import { rowSeparability } from '../passes/rows.js';
import { ensureBuilt, root } from './built.js';

/** Every model the examples export (they import 'kiln', so they come from dist/), by `file name`. */
const models = new Map<string, kerasT.Model>();
let distTrace: typeof traceT;

beforeAll(async () => {
  ensureBuilt();
  const dk = (await import('../dist/frontend/index.js')) as unknown as typeof kerasT;
  distTrace = ((await import('../dist/frontend/models/executor.js')) as unknown as { traceModel: typeof traceT }).traceModel;
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  process.env['KILN_EPOCHS'] = '0';
  try {
    for (const dir of ['examples', 'examples/seed']) {
      for (const f of readdirSync(path.join(root, dir)).filter((x) => x.endsWith('.ts'))) {
        const mod = (await import(/* @vite-ignore */ pathToFileURL(path.join(root, 'dist', dir, `${f.slice(0, -3)}.js`)).href)) as Record<string, unknown>;
        for (const [name, v] of Object.entries(mod)) if (v instanceof dk.Model) models.set(`${dir}/${f} ${name}`, v);
      }
    }
  } finally {
    log.mockRestore();
  }
}, 300_000);

/** One graph: x [3, 4] through `f`. */
function graph(f: (b: Builder, x: ReturnType<Builder['input']>) => ReturnType<Builder['input']>, shape = [3, 4]): Graph {
  const b = new Builder();
  const x = b.input('x', { dtype: 'float32', shape });
  return b.finish('g', [{ name: 'y', node: f(b, x) }]);
}

describe('row separability', () => {
  it('every example and seed model is separable, at batch 2 and 5', () => {
    expect(models.size).toBeGreaterThanOrEqual(12);
    for (const [name, m] of models) {
      for (const batch of [2, 5]) expect(rowSeparability(distTrace(m, batch).graph), `${name} at ${batch}`).toEqual({ separable: true });
    }
  });

  it('a model that centres each column over the batch is not, and the reason names the op', () => {
    class BatchCenter extends keras.layers.Layer {
      call(x: kerasT.Tensor): kerasT.Tensor {
        return keras.ops.subtract(x, keras.ops.mean(x, { axis: 0, keepdims: true }));
      }
    }
    const model = keras.Sequential([keras.layers.Dense(4, { inputShape: [3] }), new BatchCenter()]);
    const r = rowSeparability(traceModel(model, 4).graph);
    expect(r).toMatchObject({ separable: false });
    expect(r.separable === false && r.reason).toMatch(/^reduce_sum f32\[1,4\] reduces over the batch axis 0$/);
  });

  it('exact rules on graphs: movement that keeps rows whole is separable, anything that mixes them is not', () => {
    const ok: [string, Graph][] = [
      ['reshape keeping dim 0', graph((b, x) => b.emit('reshape', [x], { shape: [3, 2, 2] }))],
      ['transpose and back', graph((b, x) => b.emit('transpose', [b.emit('exp', [b.emit('transpose', [x], { perm: [1, 0] })])], { perm: [1, 0] }))],
      ['reshape of a transposed value keeping the rows', graph((b, x) => b.emit('transpose', [b.emit('reshape', [b.emit('transpose', [x], { perm: [1, 0] })], { shape: [2, 2, 3] })], { perm: [2, 0, 1] }), [3, 4])],
      ['a bias broadcast over the rows', graph((b, x) => b.emit('add', [x, b.emit('broadcast', [b.constant([1, 2, 3, 4], 'float32', [4])], { shape: [3, 4] })]))],
      ['iota along the features', graph((b, x) => b.emit('add', [x, b.emit('cast', [b.iota([3, 4], 1)], { dtype: 'float32' })]))],
      ['a row-uniform constant', graph((b, x) => b.emit('mul', [x, b.constant([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4], 'float32', [3, 4])]))],
      ['a reduction over the features', graph((b, x) => b.emit('reduce_max', [x], { axes: [1], keepdims: false }))],
      ['a slice of the features', graph((b, x) => b.emit('slice', [x], { start: [0, 1], end: [3, 3], step: [1, 1] }))],
      // TimeDistributed: the batch merged with the time axis, a matmul on the merged rows, and split back
      ['rows merged with the axes after them and split back', graph((b, x) => {
        const m = b.emit('matmul', [b.emit('reshape', [x], { shape: [6, 2] }), b.constant([1, 2, 3, 4, 5, 6], 'float32', [2, 3])]);
        return b.emit('reshape', [b.emit('exp', [m])], { shape: [3, 6] });
      }, [3, 2, 2])],
      ['rows merged twice, then split back', graph((b, x) => b.emit('reshape', [b.emit('reshape', [b.emit('reshape', [x], { shape: [6, 2] })], { shape: [12] })], { shape: [3, 4] }), [3, 2, 2])],
    ];
    for (const [name, g] of ok) expect(rowSeparability(g), name).toEqual({ separable: true });
    const bad: [string, Graph, RegExp][] = [
      ['a sum over the rows', graph((b, x) => b.emit('reduce_sum', [x], { axes: [0, 1], keepdims: false })), /reduces over the batch axis 0/],
      ['flattening the rows', graph((b, x) => b.emit('reshape', [x], { shape: [12] })), /^output 'y' f32\[12\] has its rows merged with the axes after them$/],
      ['splitting the rows', graph((b, x) => b.emit('reshape', [x], { shape: [3, 2, 2] }), [6, 2]), /splits the batch axis or merges it with the axes before it/],
      ['merging the rows with the axes before them', graph((b, x) => b.emit('reshape', [b.emit('transpose', [x], { perm: [1, 0] })], { shape: [12] })), /splits the batch axis or merges it with the axes before it/],
      ['a sum over merged rows', graph((b, x) => b.emit('reduce_sum', [b.emit('reshape', [x], { shape: [6, 2] })], { axes: [0], keepdims: false }), [3, 2, 2]), /reduces over the batch axis 0/],
      ['a slice across merged rows', graph((b, x) => b.emit('reshape', [b.emit('slice', [b.emit('reshape', [x], { shape: [6, 2] })], { start: [1, 0], end: [6, 2], step: [1, 1] })], { shape: [5, 2] }), [3, 2, 2]), /slices the batch axis/],
      ['iota along the rows', graph((b, x) => b.emit('add', [x, b.emit('cast', [b.iota([3, 4], 0)], { dtype: 'float32' })])), /differs along the batch axis/],
      ['a constant that differs per row', graph((b, x) => b.emit('mul', [x, b.constant([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3], 'float32', [3, 4])])), /differs along the batch axis/],
      ['x x^T', graph((b, x) => b.emit('matmul', [x, b.emit('transpose', [x], { perm: [1, 0] })])), /contracts over the batch axis/],
      ['a slice of the rows', graph((b, x) => b.emit('slice', [x], { start: [1, 0], end: [3, 4], step: [1, 1] })), /slices the batch axis/],
      ['rows moved off axis 0', graph((b, x) => b.emit('transpose', [x], { perm: [1, 0] })), /has its rows on axis 1, not 0/],
      ['concat of rows', graph((b, x) => b.emit('concat', [x, x], { axis: 0 })), /concatenates along the batch axis/],
    ];
    for (const [name, g, why] of bad) {
      const r = rowSeparability(g);
      expect(r.separable, name).toBe(false);
      expect(r.separable === false && r.reason, name).toMatch(why);
    }
  });

  it('needs a graph traced at batch 2 or more', () => {
    expect(() => rowSeparability(graph((_b, x) => x, [1, 4]))).toThrow(/batch 2 or more/);
  });
});
