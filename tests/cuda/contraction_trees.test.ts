// Declared trees on contractions (issue 14): a conv's or matmul's long sum with few outputs (weight gradients, summed
// over the batch) as W partials on a block's threads, in the order the graph interpreter follows, so the seed CNN's
// conv weight gradients are no longer one thread per output; bit for bit in both loop orders.
import { describe, expect, it } from 'vitest';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import { launchParts, launchShape, launchShapes } from '../../codegen/loop/gpu.js';
import { printProgram } from '../../codegen/loop/printer.js';
import type { Stmt } from '../../codegen/loop/ir.js';
import { runPipeline } from '../../driver/pipeline.js';
import * as keras from '../../frontend/index.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { type Graph, topoSort } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { expectMatchesGraph } from '../loop/schedules/gpu_helpers.js';

const f = Math.fround;
/** p[0..W) folded by the declared levels (ir/ops.ts treeLevels), in float32. */
const fold = (p: number[]): number => {
  for (let s = p.length >> 1; s >= 1; s >>= 1) for (let i = 0; i < s; i++) p[i] = f(p[i]! + p[i + s]!);
  return p[0]!;
};

const matmulGraph = (K: number, tree?: number) => parseGraph(`graph @m {
  %0 = input {name="a"} : f32[1,${K}]
  %1 = input {name="b"} : f32[${K},1]
  %2 = matmul %0, %1${tree ? ` {tree=${tree}}` : ''} : f32[1,1]
  output "y" = %2
}`);

// a 1-d conv: 5 positions, 1 padded on each side, window 3 of 2 input channels (6 terms, 2 taps skipped at the edges)
const convGraph = (tree?: number) => parseGraph(`graph @c {
  %0 = input {name="x"} : f32[1,5,2]
  %1 = input {name="k"} : f32[3,2,1]
  %2 = conv %0, %1 {strides=[1], dilation=[1], lhsDilation=[1], padding=[[1, 1]], groups=1${tree ? `, tree=${tree}` : ''}} : f32[1,5,1]
  output "y" = %2
}`);

/** The seed CNN (examples/seed/cnn.ts) and its Adam training step at `batch`. */
function seedCnnStep(batch: number): Graph {
  const model = keras.Sequential([
    keras.layers.Conv2D(8, 3, { activation: 'relu', padding: 'same', inputShape: [28, 28, 1] }),
    keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(16, 3, { activation: 'relu' }),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
  const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  return traceTrainStep(model, c, [[batch, 28, 28, 1]], [[batch]]).graph;
}

/** The seed MLP (examples/seed/losses.ts) and its Adam training step at `batch`. */
function seedMlpStep(batch: number): Graph {
  const model = keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
  const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  return traceTrainStep(model, c, [[batch, 784]], [[batch]]).graph;
}

describe('declared trees on contractions: the graph interpreter', () => {
  it('a matmul sums term p into partial p % W, then the declared levels', () => {
    const K = 16, a = Float32Array.from({ length: K }, (_, i) => (i % 3 ? 1e7 : 1.25) * (i % 2 ? -1 : 1) + i), b = Float32Array.from({ length: K }, (_, i) => 1 + i * 0.01);
    const run = (tree?: number) => interpret(matmulGraph(K, tree), { a, b }, {}).outputs.get('y')!.data[0]!;
    const terms = Array.from(a, (x, i) => f(x * b[i]!));
    const p = [0, 1, 2, 3].map((i) => terms.filter((_, k) => k % 4 === i).reduce((s, t) => f(s + t), 0));
    expect(run(4)).toBe(fold(p));
    expect(run()).toBe(terms.reduce((s, t) => f(s + t), 0));
    expect(run(4)).not.toBe(run()); // the orders differ on this data
  });

  it('a conv numbers its terms window position first, then input channel, and skips taps outside the input', () => {
    const x = Float32Array.from([1e8, 3, -1e8, 7, 0.5, 2, 1e-3, -4, 5, 1e8]), k = Float32Array.from([1, 0.5, -1, 2, 0.25, 3]);
    const y = interpret(convGraph(2), { x, k }, {}).outputs.get('y')!.data;
    for (let o = 0; o < 5; o++) {
      const p = [0, 0];
      for (let w = 0; w < 3; w++) for (let ci = 0; ci < 2; ci++) {
        const at = o + w - 1;
        if (at >= 0 && at < 5) p[(w * 2 + ci) % 2] = f(p[(w * 2 + ci) % 2]! + f(x[at * 2 + ci]! * k[w * 2 + ci]!));
      }
      expect(y[o], `output ${o}`).toBe(fold(p));
    }
    expect(() => convGraph(4)).toThrow(/conv: tree 4 must be a power of two dividing the 6 reduced elements/);
    expect(() => matmulGraph(12, 8)).toThrow(/matmul: tree 8 must be a power of two dividing the 12 reduced elements/);
  });
});

describe('declared trees on contractions: the CUDA schedule', () => {
  it('the seed CNN at batch 1024: each conv weight gradient runs its sum on blocks of threads, not one thread per output', () => {
    const p = runPipeline(seedCnnStep(1024), { caps: CUDA_CAPS }).program;
    const ls = launchShapes(p);
    // each launch's nests (schedules/horizontal.ts runs independent ones side by side in one launch)
    const nests = p.kernels.flatMap((k) => k.body.map((top) => launchParts(top as Extract<Stmt, { k: 'for' }>).map((n) => launchShape(k.name, n))));
    // conv1's kernel gradient: 3x3x1x8 = 72 outputs, each a sum of 1024 x 28 x 28 terms (was 3 blocks of 24 threads,
    // 25.7M cycles estimated; then 2048 partials an output on 8 blocks of 256 threads and a launch combining them on
    // one thread an output): now a split-K GEMM of 512 partials, a block of 72 threads a partial (its 9 x 8 tile), and
    // a launch combining them, a block of 256 threads an output (gpu_split_k.ts: past MAX_SPLIT the combine is a tree)
    const at = nests.findIndex((l) => /conv/.test(l[0]!.kernel) && l.some((n) => n.grid === 72 && n.block === 256));
    expect(at, JSON.stringify(ls)).toBeGreaterThanOrEqual(0);
    const kernel = nests[at]![0]!.kernel, partials = nests.slice(0, at).findIndex((l) => l.some((n) => n.kernel === kernel && n.grid === 512 && n.block === 72));
    expect(partials, JSON.stringify(ls)).toBeGreaterThanOrEqual(0);
    expect(ls[partials]!.cycles).toBeLessThan(250_000); // the estimate was 25.7M cycles for the 3 x 24 launch
    // no launch of the step is left with fewer than 32 threads doing a long sum
    for (const l of ls) expect(l.grid * l.block > 32 || l.cycles < 10_000, JSON.stringify(l)).toBe(true);
  });

  it('the seed CNN training step at batch 1: trees on its two conv kernel gradients, bit for bit in both loop orders', () => {
    const graph = seedCnnStep(1);
    const pl = runPipeline(graph, { caps: CUDA_CAPS });
    const trees = topoSort(pl.graph).filter((n) => (n.op === 'conv' || n.op === 'matmul') && n.attrs['tree'] !== undefined);
    expect(trees.map((n) => n.op).sort()).toEqual(['conv', 'conv']);
    expect(printProgram(pl.program)).toMatch(/local part\w*: f32\[\d+\] shared/);
    expectMatchesGraph(graph, pl.program, 1);
  }, 120_000);

  it('the seed MLP training step at batch 32: the second layer\'s kernel gradient (K = batch) as a tree, bit for bit', () => {
    const g = seedMlpStep(32);
    const pl = runPipeline(g, { caps: CUDA_CAPS });
    expect(topoSort(pl.graph).filter((n) => n.op === 'matmul' && n.attrs['tree'] !== undefined).map((n) => n.type.shape)).toEqual([[64, 10]]);
    expectMatchesGraph(g, pl.program, 6);
  }, 120_000);
});

describe('--dump-after schedule for cuda', () => {
  it('shows each launch\'s register arrays (a matmul\'s accumulator tile) beside grid, block, shared bytes and estimate', () => {
    let out = '';
    runPipeline(parseGraph(`graph @mm {
  %0 = input {name="a"} : f32[256,32]
  %1 = input {name="b"} : f32[32,256]
  %2 = matmul %0, %1 : f32[256,256]
  output "y" = %2
}`), { caps: CUDA_CAPS, dumpAfter: 'schedule', dump: (t) => { out = t; } });
    const m = /# launch k0_matmul: grid \d+ x block \d+, \d+ B shared, register arrays of (\d+) a thread, estimate \d+ cycles\n/.exec(out);
    expect(m, out.slice(-400)).not.toBeNull();
    // the tile is the accumulator array the schedule declares in the launch
    expect(out).toMatch(new RegExp(`local acc\\w*: f32\\[${m![1]}\\] register`));
  });
});
