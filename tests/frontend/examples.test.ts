// The seed examples in examples/seed/, imported from the build (they import 'kiln' by package name).
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { type TensorData, copyWeights, expectClose, tf, toTf, uniform } from './helpers.js';
import { activationArguments, activationLayers, functionalMlp, type ModelCase, seedMlp, titleBody } from './seed_models.js';
import { ensureBuilt } from '../built.js';


/** Imports a built example, returning its module and what it printed. */
async function run(name: string): Promise<{ mod: Record<string, unknown>; lines: string[] }> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    const mod = (await import(`../../dist/examples/seed/${name}.js`)) as Record<string, unknown>;
    return { mod, lines: log.mock.calls.map((c) => c.map(String).join(' ')) };
  } finally {
    log.mockRestore();
  }
}

beforeAll(ensureBuilt, 60_000);

describe('examples/seed/tensors (张量操作, 常用张量操作)', () => {
  it('prints what Keras with NumPy prints', async () => {
    const { lines } = await run('tensors');
    expect(lines).toEqual([
      '形状: 2,3', // keras.ops.shape gives [2, 3]; Keras prints the tuple (2, 3)
      '数据类型: int32',
      '维度: 2',
      '重塑后: [[1 2]\n [3 4]\n [5 6]]',
      '转置后: [[1 4]\n [2 5]\n [3 6]]',
      '[[19 22]\n [43 50]]', // [[1*5+2*7, 1*6+2*8], [3*5+4*7, 3*6+4*8]]
      '[[ 6  8]\n [10 12]]',
      '2.5',
      '[4 6]',
    ]);
  });
});

describe('examples/seed/dense (Dense 层详解)', () => {
  it('prints kernel [32, 64], bias [64] and 32*64+64 parameters', async () => {
    const { lines, mod } = await run('dense');
    expect(lines).toEqual(['权重形状: 32,64', '偏置形状: 64', `总参数: ${32 * 64 + 64}`]);
    expect((mod['default'] as { countParams(): number }).countParams()).toBe(2112);
  });
});

interface BuiltModel {
  countParams(): number;
  getWeights(): TensorData[];
  predict(x: unknown): TensorData | TensorData[];
}

describe.each([
  ['sequential', 'default', seedMlp, 50_890],
  ['functional', 'default', functionalMlp, 50_890],
  ['multi_io', 'default', titleBody, 39_173],
  ['activations', 'byArgument', activationArguments, 55_050],
  ['activations', 'byLayer', activationLayers, 50_890],
] as [string, string, ModelCase, number][])('examples/seed/%s %s', (file, name, c, params) => {
  it(`has ${params} parameters and matches TF.js`, async () => {
    const model = (await run(file)).mod[name] as BuiltModel;
    expect(model.countParams()).toBe(params);
    const ref = c.tf();
    copyWeights(model, ref);
    // the built package has its own Tensor class: hand it nested arrays
    const xs = c.inputs.map((s, i) => uniform([3, ...s], 40 + i));
    const got = model.predict(xs.length === 1 ? xs[0]!.toArray() : xs.map((x) => x.toArray()));
    const want = ref.predict(xs.length === 1 ? toTf(xs[0]!) : xs.map(toTf)) as tf.Tensor | tf.Tensor[];
    const [g, w] = [Array.isArray(got) ? got : [got], Array.isArray(want) ? want : [want]];
    expect(g.length).toBe(w.length);
    g.forEach((t, i) => expectClose(t, w[i]!));
  });
});

describe('examples/seed/sequence and transformer (循环层, 注意力层)', () => {
  it.each([
    // embedding; LSTM kernel, recurrent kernel, bias (4 gates); GRU with reset_after's two bias rows (3 gates); head
    ['sequence', 1000 * 32 + (32 * 128 + 32 * 128 + 128) + (32 * 48 + 16 * 48 + 2 * 48) + (16 * 4 + 4), [20], 4],
    // attention: query, key, value [32, 4, 8] + [4, 8], output [4, 8, 32] + [32]; two layer norms; feed-forward; head
    ['transformer', 3 * (32 * 4 * 8 + 4 * 8) + (4 * 8 * 32 + 32) + 2 * (32 + 32) + (32 * 64 + 64) + (64 * 32 + 32) + (32 * 3 + 3), [16, 32], 3],
  ] as [string, number, number[], number][])('%s: has the Keras parameter count and predicts distributions', async (file, params, shape, classes) => {
    const model = (await run(file)).mod['default'] as BuiltModel;
    expect(model.countParams()).toBe(params);
    const x = file === 'sequence'
      ? [0, 1].map((r) => Array.from({ length: 20 }, (_, i) => ((r * 20 + i) * 37) % 1000)) // word ids
      : uniform([2, ...shape], 3).toArray();
    const y = model.predict(x) as TensorData;
    expect(y.shape).toEqual([2, classes]);
    for (let r = 0; r < 2; r++) expect(Math.abs([...y.data.slice(r * classes, (r + 1) * classes)].reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-5);
  });
});
