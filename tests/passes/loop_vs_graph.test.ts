// Differential testing: the loop program (fuse, lower, simplify, schedule) run by the loop interpreter equals the graph interpreter,
// on every seed example model and a few more (inference and training steps), and on seeded random graphs.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { lower } from '../../codegen/loop/lower.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { Builder, type Graph, type Node } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import type { Attrs, Op } from '../../ir/ops.js';
import { parseGraph } from '../../ir/parser.js';
import { gradients } from '../../passes/autodiff.js';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import type { TargetCaps } from '../../codegen/loop/schedule.js';
import { fuse } from '../../passes/fuse.js';
import { type Data, differences, modelInputs, runBoth } from './differential.js';
import { randomBindings, randomGraph } from './random_graphs.js';
import { ensureBuilt } from '../built.js';


/** The frontend entry points a model needs; the seed examples come from dist/, the extra models from the sources. */
interface Api {
  keras: typeof keras;
  traceModel: typeof traceModel;
  compileModel: typeof compileModel;
  traceTrainStep: typeof traceTrainStep;
}
const sourceApi: Api = { keras, traceModel, compileModel, traceTrainStep };
let distApi: Api;

/** Imports a built seed example quietly (they print, and custom_loop would train for KILN_EPOCHS epochs). */
async function example(name: string): Promise<Record<string, unknown>> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  process.env['KILN_EPOCHS'] = '0';
  try {
    return (await import(`../../dist/examples/seed/${name}.js`)) as Record<string, unknown>;
  } finally {
    log.mockRestore();
  }
}

beforeAll(async () => {
  ensureBuilt();
  distApi = {
    keras: (await import('../../dist/frontend/index.js')) as unknown as typeof keras,
    traceModel: ((await import('../../dist/frontend/models/executor.js')) as unknown as { traceModel: typeof traceModel }).traceModel,
    ...((await import('../../dist/frontend/models/training.js')) as unknown as Pick<Api, 'compileModel' | 'traceTrainStep'>),
  };
}, 120_000);

const params = (vars: readonly { path: string; data: Data[string] }[]): Data => Object.fromEntries(vars.map((v) => [v.path, v.data]));

type LossId = keras.losses.LossIdentifier;

interface ModelCase {
  readonly name: string;
  readonly api: () => Api;
  readonly build: () => Promise<keras.Model> | keras.Model;
  /** Loss per output, in output order. */
  readonly losses: readonly LossId[];
}

const fromExample = (file: string, exportName: string, losses: LossId[]): ModelCase => ({
  name: `examples/seed/${file}.ts ${exportName}`,
  api: () => distApi,
  build: async () => (await example(file))[exportName] as keras.Model,
  losses,
});

const SPARSE: LossId = 'sparse_categorical_crossentropy';

const MODELS: ModelCase[] = [
  fromExample('sequential', 'default', [SPARSE]),
  fromExample('functional', 'default', [SPARSE]),
  fromExample('multi_io', 'default', ['binary_crossentropy', SPARSE]),
  fromExample('activations', 'byArgument', [SPARSE]),
  fromExample('activations', 'byLayer', [SPARSE]),
  fromExample('optimizers', 'default', ['mse']),
  fromExample('losses', 'default', [SPARSE]),
  fromExample('dense', 'default', ['mse']),
  fromExample('custom_loop', 'default', [SPARSE]),
  {
    name: 'shared Dense on two inputs, residual Add',
    api: () => sourceApi,
    build: () => {
      const a = keras.Input({ shape: [16] }), b = keras.Input({ shape: [16] });
      const shared = keras.layers.Dense(16, { activation: 'tanh' });
      const res = keras.layers.Add()([shared(a), a]);
      const out = keras.layers.Dense(3, { activation: 'softmax' })(keras.layers.concatenate([res, shared(b)]));
      return keras.Model({ inputs: [a, b], outputs: out });
    },
    losses: ['categorical_crossentropy'],
  },
  {
    name: 'Flatten and Reshape around Dense on rank-3 inputs',
    api: () => sourceApi,
    build: () => keras.Sequential([
      keras.layers.Flatten({ inputShape: [2, 3, 4] }),
      keras.layers.Dense(12, { activation: 'elu' }),
      keras.layers.Reshape([3, -1]),
      keras.layers.Dense(2, { activation: 'gelu' }),
      keras.layers.Reshape([2, 3]),
      keras.layers.Flatten(),
    ]),
    losses: ['mse'],
  },
  {
    name: 'Embedding, LSTM and GRU over a sequence (unrolled steps)',
    api: () => sourceApi,
    build: () => keras.Sequential([
      keras.layers.Embedding(7, 3, { inputShape: [4] }),
      keras.layers.LSTM(4, { returnSequences: true }),
      keras.layers.GRU(3),
      keras.layers.Dense(2, { activation: 'softmax' }),
    ]),
    losses: [SPARSE],
  },
  {
    name: 'a Transformer encoder block: MultiHeadAttention, residual, LayerNormalization, feed-forward',
    api: () => sourceApi,
    build: () => {
      const x = keras.Input({ shape: [4, 6] });
      const h = keras.layers.LayerNormalization()(keras.layers.Add()([x, keras.layers.MultiHeadAttention({ numHeads: 2, keyDim: 3 })([x, x])]));
      const ff = keras.layers.Dense(6)(keras.layers.Dense(8, { activation: 'relu' })(h));
      return keras.Model({ inputs: x, outputs: keras.layers.Dense(3, { activation: 'softmax' })(keras.layers.Flatten()(keras.layers.Add()([h, ff]))) });
    },
    losses: [SPARSE],
  },
];

const BATCH = 3;

/** Target shapes for a loss: sparse labels drop the class axis. */
function targetShapes(model: keras.Model, losses: readonly LossId[]): number[][] {
  return model.outputShapes.map((s, i) => {
    const shape = s.map((d) => d ?? BATCH);
    return losses[i] === SPARSE ? shape.slice(0, -1) : shape;
  });
}

function inputShapes(model: keras.Model): number[][] {
  return model.inputSpecs.map((s) => s.shape.map((d, i) => (i === 0 ? BATCH : d ?? 1)));
}

/** Each test runs for the CPU schedule (as wasm's) and the GPU one (blocks, threads, shared memory; run both ways). */
const SCHEDULES: readonly [string, TargetCaps | undefined][] = [['CPU schedule', undefined], ['GPU schedule', CUDA_CAPS]];

describe.each(SCHEDULES)('loop IR equals the graph interpreter on the seed models (%s)', (_, caps) => {
  for (const c of MODELS) {
    describe(c.name, () => {
      it('inference', async () => {
        const api = c.api(), model = await c.build();
        const t = api.traceModel(model, BATCH);
        const { diffs, compiled } = runBoth(t.graph, modelInputs(t.graph, 1), params(t.variables), caps);
        expect(diffs).toEqual([]);
        expect(compiled.plan.kernels.length).toBeGreaterThan(0);
      });

      const optimizers: [string, () => keras.optimizers.Optimizer][] = [
        ['SGD with momentum', () => c.api().keras.optimizers.SGD({ learningRate: 0.05, momentum: 0.9 })],
        ['SGD with Nesterov momentum', () => c.api().keras.optimizers.SGD({ learningRate: 0.05, momentum: 0.9, nesterov: true })],
        ['Adam', () => c.api().keras.optimizers.Adam({ learningRate: 0.01 })],
      ];
      for (const [oname, opt] of optimizers) {
        it(`training step with ${oname} (two steps: outputs and every update)`, async () => {
          const api = c.api(), model = await c.build();
          const comp = api.compileModel(model, { optimizer: opt(), loss: [...c.losses] });
          const step = api.traceTrainStep(model, comp, inputShapes(model), targetShapes(model, c.losses));
          const inputs = modelInputs(step.graph, 2);
          let ps = params(step.variables);
          for (let k = 0; k < 2; k++) {
            const { diffs, ref } = runBoth(step.graph, inputs, ps, caps);
            expect(diffs, `step ${k + 1}`).toEqual([]);
            expect(ref.updates.size).toBe(step.graph.updates.length);
            // the next step starts from the reference's updated parameters (nonzero optimizer state)
            ps = { ...ps, ...Object.fromEntries([...ref.updates].map(([n, v]) => [n, v.data])) };
          }
        });
      }
    });
  }
});

/** A small conv net in graph IR (there is no Conv2D layer yet): 3x3 conv + bias + relu, 2x2 max pool, dense, softmax. */
function convNet(train: boolean, channels = 2): Graph {
  const b = new Builder();
  const e = (op: Op, src: Node[], attrs: Attrs = {}) => b.emit(op, src, attrs);
  const f32 = (...shape: number[]) => ({ dtype: 'float32' as const, shape });
  const x = b.input('x', f32(2, 8, 8, channels));
  const k = b.param('conv/kernel', f32(3, 3, channels, 4)), kb = b.param('conv/bias', f32(4));
  const w = b.param('dense/kernel', f32(64, 10)), wb = b.param('dense/bias', f32(10));
  const conv = e('conv', [x, k], { strides: [1, 1], padding: [[1, 1], [1, 1]], dilation: [1, 1], lhsDilation: [1, 1], groups: 1 });
  const act = e('max', [e('add', [conv, e('broadcast', [kb], { shape: conv.type.shape })]), b.constant(0, 'float32', conv.type.shape)]);
  const pool = e('reduce_window', [act], { kind: 'max', window: [2, 2], strides: [2, 2], padding: [[0, 0], [0, 0]] });
  const flat = e('reshape', [pool], { shape: [2, 64] });
  const logits = e('add', [e('matmul', [flat, w]), e('broadcast', [wb], { shape: [2, 10] })]);
  const m = e('reduce_max', [logits], { axes: [1], keepdims: true });
  const ex = e('exp', [e('sub', [logits, e('broadcast', [m], { shape: [2, 10] })])]);
  const probs = e('div', [ex, e('broadcast', [e('reduce_sum', [ex], { axes: [1], keepdims: true })], { shape: [2, 10] })]);
  if (!train) return b.finish('conv_net', [{ name: 'probs', node: probs }]);
  // mean squared error against one-hot targets, plain SGD
  const t = b.input('target', f32(2, 10));
  const d = e('sub', [probs, t]);
  const loss = e('div', [e('reduce_sum', [e('mul', [d, d])], { axes: [0, 1], keepdims: false }), b.constant(20)]);
  const ps = [k, kb, w, wb];
  const gs = gradients(b, loss, ps);
  const updates = ps.map((p, i) => ({ param: p, value: e('sub', [p, e('mul', [b.constant(0.1, 'float32', p.type.shape), gs[i]!])]) }));
  return b.finish('conv_net_train', [{ name: 'loss', node: loss }, { name: 'probs', node: probs }], updates);
}

describe.each(SCHEDULES)('loop IR equals the graph interpreter on a conv net built in graph IR (%s)', (_, caps) => {
  for (const train of [false, true]) {
    it(train ? 'training step (autodiff through conv, pooling, matmul, softmax)' : 'inference', () => {
      const g = convNet(train);
      const [inputs, ps] = randomBindings(g, 5);
      const { diffs, ref } = runBoth(g, Object.fromEntries(inputs), Object.fromEntries(ps), caps);
      expect(diffs).toEqual([]);
      expect(ref.updates.size).toBe(train ? 4 : 0);
    });
  }
});

describe.each(SCHEDULES)('loop IR equals the graph interpreter on seeded random graphs (%s)', (_, caps) => {
  const seeds = Array.from({ length: 100 }, (_, i) => i);
  it.each(seeds)('random graph %i', (seed) => {
    const rg = randomGraph(seed);
    const [inputs, ps] = randomBindings(rg.graph, seed);
    let diffs: string[];
    try {
      diffs = runBoth(rg.graph, Object.fromEntries(inputs), Object.fromEntries(ps), caps).diffs;
    } catch (err) {
      throw new Error(`random graph ${seed} (steps: ${rg.steps.join(', ')}): ${(err as Error).message}`);
    }
    expect(diffs, `random graph ${seed} (steps: ${rg.steps.join(', ')})`).toEqual([]);
  });
});

const MIN = {
  unitBatch: `graph @softmax_batch1 {
  %0 = input {name="x"} : f32[1,10]
  %1 = reduce_max %0 {axes=[1], keepdims=true} : f32[1,1]
  %2 = broadcast %1 {shape=[1, 10]} : f32[1,10]
  %3 = sub %0, %2 : f32[1,10]
  output "y" = %3
}`,
  transposedMatmul: `graph @transposed_matmul {
  %0 = input {name="a"} : f32[3,3]
  %1 = input {name="b"} : f32[3,3]
  %2 = matmul %0, %1 : f32[3,3]
  %3 = transpose %2 {perm=[1, 0]} : f32[3,3]
  output "y" = %3
}`,
  gatheredReduction: `graph @gathered_reduction {
  %0 = input {name="x"} : f32[4,2]
  %1 = reduce_sum %0 {axes=[0], keepdims=false} : f32[2]
  %2 = const {value=[1, 0]} : i32[2]
  %3 = gather %1, %2 {axis=0} : f32[2]
  output "y" = %3
}`,
  shiftedReduction: `graph @shifted_reduction {
  %0 = input {name="x"} : f32[4,3]
  %1 = reduce_sum %0 {axes=[1], keepdims=false} : f32[4]
  %2 = slice %1 {end=[3], start=[1], step=[1]} : f32[2]
  %3 = pad %2 {padding=[[0, 2]], value=0} : f32[4]
  output "y" = %3
}`,
  transposedPool: `graph @transposed_pool {
  %0 = input {name="x"} : f32[1,6,3,3]
  %1 = reduce_window %0 {kind="sum", padding=[[0, 1], [0, 1]], strides=[1, 1], window=[2, 2]} : f32[1,6,3,3]
  %2 = transpose %1 {perm=[0, 1, 3, 2]} : f32[1,6,3,3]
  output "y" = %2
}`,
  inputOutput: `graph @input_output {
  %0 = input {name="x"} : f32[2]
  %1 = neg %0 : f32[2]
  output "x_again" = %0
  output "y" = %1
}`,
  constOutput: `graph @const_output {
  %0 = input {name="x"} : f32[2]
  %1 = const {value=[2]} : f32[2]
  %2 = mul %0, %1 : f32[2]
  output "y" = %2
  output "two" = %1
}`,
  unsortedAxes: `graph @unsorted_axes {
  %0 = input {name="x"} : f32[4,5,4]
  %1 = reduce_sum %0 {axes=[2, 1], keepdims=false} : f32[4]
  output "y" = %1
}`,
};

/** Differences for a graph's text, under both schedules. */
function checkText(text: string): string[] {
  const g = parseGraph(text);
  const [inputs, ps] = randomBindings(g, 3);
  return SCHEDULES.flatMap(([name, caps]) => runBoth(g, Object.fromEntries(inputs), Object.fromEntries(ps), caps).diffs.map((d) => `${name}: ${d}`));
}

describe('unit dimensions (regressions: lower.ts matched index patterns as text until commit 7918673)', () => {
  it('the seed MLP at batch size 1 (the CLI default): a softmax over a [1, 10] row', () => {
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    const t = traceModel(model, 1);
    expect(runBoth(t.graph, modelInputs(t.graph, 1), params(t.variables)).diffs).toEqual([]);
  });
  it('reduce_max over the row of a [1, 10] input, broadcast back (read at [0, 0], bound at [o0, 0])', () => {
    expect(checkText(MIN.unitBatch)).toEqual([]);
  });
  it('the seed MLP training step at batch size 1', () => {
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[1, 784]], [[1]]);
    expect(runBoth(step.graph, modelInputs(step.graph, 4), params(step.variables)).diffs).toEqual([]);
  });
});

describe('regressions: minimal graphs of fuse/lower bugs found by the random graphs', () => {
  it('index: transpose(a @ b) of square matrices (fuse.ts: the matmul is bound at [o0, o1], read at [o1, o0])', () => {
    expect(checkText(MIN.transposedMatmul)).toEqual([]);
  });
  it('index: a pooled [1, 6, 3, 3] map with its last two axes swapped (fuse.ts: reduce_window read at [0, o1, o3, o2])', () => {
    expect(checkText(MIN.transposedPool)).toEqual([]);
  });
  it('index: gather of a column sum (fuse.ts: the reduction is bound at the nest index, read at the gathered one)', () => {
    expect(checkText(MIN.gatheredReduction)).toEqual([]);
  });
  it('index: pad(slice(row sums)) (fuse.ts: the reduction is read at a shifted index)', () => {
    expect(checkText(MIN.shiftedReduction)).toEqual([]);
  });
  it('index: the kernel gradient of a 3x3 conv on 3 channels (fuse.ts: transpose [1, 2, 0, 3] of a [3, 3, 3, 4] conv)', () => {
    const g = convNet(true, 3);
    const [inputs, ps] = randomBindings(g, 5);
    expect(runBoth(g, Object.fromEntries(inputs), Object.fromEntries(ps)).diffs).toEqual([]);
  });
  it('index: a conv with two tiles of output channels (lower.ts blockedConv read input channels at twice the tile offset)', () => {
    const model = keras.Sequential([keras.layers.Conv2D(16, 3, { strides: 2, inputShape: [6, 6, 8] })]);
    const t = traceModel(model, 1);
    expect(runBoth(t.graph, modelInputs(t.graph, 1), params(t.variables)).diffs).toEqual([]);
  });
  it('leaf: an output that is a graph input (lower.ts binds it to the input buffer; verifyProgram refuses)', () => {
    expect(checkText(MIN.inputOutput)).toEqual([]);
  });
  it('leaf: an output that is a constant (lower.ts: a splat has no buffer, a full constant only a const one)', () => {
    expect(checkText(MIN.constOutput)).toEqual([]);
  });
  it('unsorted reduction axes lowered without canonicalize accumulate in another order than the interpreter', () => {
    // canonicalize sorts the axes, so the pipeline is exact; lower itself loops over the axes in attribute order
    const g = parseGraph(MIN.unsortedAxes);
    const [inputs] = randomBindings(g, 46);
    const ref = interpret(g, inputs);
    const got = runProgram(lower(fuse(g), { name: 'g' }), inputs, {});
    expect(differences(ref, got)).toEqual([]);
  });
  it('the same unsorted reduction through the whole pipeline is exact', () => {
    expect(checkText(MIN.unsortedAxes)).toEqual([]);
  });
});
