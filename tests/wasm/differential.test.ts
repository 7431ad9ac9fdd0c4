// The wasm target against the reference interpreter: seed models (inference and training step) and random graphs.
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { runPipeline } from '../../driver/pipeline.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { type Data, modelInputs } from '../passes/differential.js';
import { randomBindings, randomGraph } from '../passes/random_graphs.js';
import { close } from '../../fuzz/targets.js';
import { UPDATE_GRAPHS, updateCase } from '../passes/update_graphs.js';

/** Runs g on wasm and on the interpreter; lists elements outside rtol 1e-5 + atol 1e-6 (NaN must match NaN). */
function compare(g: Graph, inputs: Data, params: Data): string[] {
  const c = runPipeline(g);
  const got = new WasmRunner(c.program, renderWasm(c.program, c.memory)).run(inputs, params);
  const ref = interpret(g, inputs, params);
  const bad: string[] = [];
  const check = (what: string, want: ArrayLike<number>, have: ArrayLike<number>) => {
    for (let i = 0; i < want.length; i++) {
      const w = want[i]!, h = have[i]!;
      if (!close(w, h) && bad.length < 4) bad.push(`${what}[${i}]: wasm ${h}, interpreter ${w}`);
    }
  };
  for (const [k, v] of ref.outputs) check(`output ${k}`, v.data, got.outputs.get(k)!);
  for (const [k, v] of ref.updates) check(`update ${k}`, v.data, got.updates.get(k)!);
  return bad;
}

function params(vars: readonly keras.Variable[]): Data {
  return Object.fromEntries(vars.map((v) => [v.path, v.data]));
}

const MODELS: [string, () => keras.Model][] = [
  ['seed MLP', () => keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ])],
  ['seed title/body model', () => {
    const title = keras.Input({ shape: [100], name: 'title' }), body = keras.Input({ shape: [500], name: 'body' });
    const x = keras.layers.concatenate([keras.layers.Dense(64, { activation: 'relu' })(title), keras.layers.Dense(64, { activation: 'relu' })(body)]);
    return keras.Model({ inputs: [title, body], outputs: [keras.layers.Dense(1, { activation: 'sigmoid', name: 'priority' })(x), keras.layers.Dense(4, { activation: 'softmax', name: 'department' })(x)] });
  }],
  ['shared layer + residual + activations', () => {
    const a = keras.Input({ shape: [16] }), b = keras.Input({ shape: [16] });
    const shared = keras.layers.Dense(16, { activation: 'tanh' });
    const h = keras.layers.Add()([shared(a), shared(b), a]);
    const y = keras.layers.Dense(3, { activation: 'gelu' })(keras.layers.Activation('elu')(h));
    return keras.Model({ inputs: [a, b], outputs: keras.layers.Dense(2, { activation: 'softmax' })(keras.layers.Reshape([3])(y)) });
  }],
  ['seed CNN (register-blocked conv micro-kernels)', () => keras.Sequential([
    keras.layers.Conv2D(8, 3, { activation: 'relu', padding: 'same', inputShape: [12, 12, 2] }),
    keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(16, 3, { activation: 'relu', strides: 2 }),
    keras.layers.Flatten(),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ])],
];

describe('wasm equals the interpreter on models', () => {
  it.each(MODELS)('%s: inference at batch 1 and 5', (_name, build) => {
    const model = build();
    for (const b of [1, 5]) {
      const t = traceModel(model, b);
      expect(compare(t.graph, modelInputs(t.graph, b), params(t.variables))).toEqual([]);
    }
  });
  it.each(MODELS)('%s: Adam and SGD training steps', (_name, build) => {
    const model = build();
    for (const optimizer of ['adam', keras.optimizers.SGD({ learningRate: 0.1, momentum: 0.9, nesterov: true })]) {
      const losses = model.outputNames.map((_, i) => (model.outputShapes[i]!.at(-1) === 1 ? 'binary_crossentropy' : 'categorical_crossentropy'));
      const c = compileModel(model, { optimizer, loss: losses });
      const step = traceTrainStep(model, c, model.inputSpecs.map((s) => [4, ...s.shape.slice(1) as number[]]), model.outputShapes.map((s) => [4, ...s.slice(1) as number[]]));
      expect(compare(step.graph, modelInputs(step.graph, 7), params(step.variables))).toEqual([]);
    }
  });
});

describe('wasm equals the interpreter on seeded random graphs', () => {
  it.each(Array.from({ length: 200 }, (_, i) => i))('random graph %i', (seed) => {
    const rg = randomGraph(seed);
    const [inputs, ps] = randomBindings(rg.graph, seed);
    expect(compare(rg.graph, Object.fromEntries(inputs), Object.fromEntries(ps)), rg.steps.join(', ')).toEqual([]);
  });
});

describe('wasm in-place updates (issue 11: a nest overwrote param elements before reading them)', () => {
  it.each(Object.keys(UPDATE_GRAPHS))('%s', (name) => {
    const { g, inputs, params: ps } = updateCase(name);
    expect(compare(g, inputs, ps)).toEqual([]);
  });
});

describe('Keras models fusion could not place (issue 11), through predict and fit on wasm', () => {
  const close = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(b).every((y, i) => Math.abs(a[i]! - y) <= 1e-5 + 1e-4 * Math.abs(y));
  it('Dense softmax → Reshape([1, 5]) → GlobalMaxPooling1D: predict', () => {
    const model = keras.Sequential([keras.layers.Dense(5, { activation: 'softmax', inputShape: [4] }), keras.layers.Reshape([1, 5]), keras.layers.GlobalMaxPooling1D()]);
    const x = keras.ops.array([[0.5, -1, 2, 0.25], [1, 1, -1, 0]]);
    for (const batchSize of [1, 2]) {
      const got = model.predict(x, { batchSize, backend: 'wasm' }) as keras.Tensor;
      expect(close(got.data, (model.predict(x, { batchSize, backend: 'interpreter' }) as keras.Tensor).data)).toBe(true);
    }
  });
  it('Conv2D → BatchNormalization → MaxPooling2D → GlobalAveragePooling2D → Dense softmax: fit at batch 1', () => {
    const input = keras.Input({ shape: [5, 5, 1] });
    let h = keras.layers.Conv2D(4, 3)(input);
    h = keras.layers.BatchNormalization()(h);
    h = keras.layers.MaxPooling2D(2)(h);
    h = keras.layers.GlobalAveragePooling2D()(h);
    const model = keras.Model({ inputs: input, outputs: keras.layers.Dense(2, { activation: 'softmax' })(h) });
    const x = new keras.Tensor('float32', [3, 5, 5, 1], Float32Array.from({ length: 75 }, (_, i) => Math.sin(i)));
    const y = keras.ops.array([0, 1, 1]);
    const w0 = model.getWeights();
    const after = (['wasm', 'interpreter'] as const).map((backend) => {
      model.setWeights(w0);
      model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
      model.fit(x, y, { batchSize: 1, epochs: 1, shuffle: false, verbose: 0, backend });
      return model.getWeights();
    });
    expect(after[1]!.some((w, i) => !close(w.data, w0[i]!.data))).toBe(true);
    after[0]!.forEach((w, i) => expect(close(w.data, after[1]![i]!.data), model.weights[i]!.path).toBe(true));
  });
});
