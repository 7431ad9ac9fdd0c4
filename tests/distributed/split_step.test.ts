// The training step split at the gradients (traceSplitStep: gradStep, then applyGrads on the flat vector of its
// outputs) makes, on one process, the bits of the fused training step, on the reference interpreter.
import { describe, expect, it } from 'vitest';
import { interpret } from '../../ir/interpreter.js';
import type { TypedArray } from '../../ir/types.js';
import * as keras from '../../frontend/index.js';
import { compileModel, traceSplitStep, traceTrainStep } from '../../frontend/models/training.js';

const B = 8;

function data(seed: number, n: number, classes?: number): Float32Array | Int32Array {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  return classes ? Int32Array.from({ length: n }, () => Math.floor(next() * classes)) : Float32Array.from({ length: n }, () => Math.fround(next() * 2 - 1));
}

const cases: [string, () => keras.Model, boolean][] = [
  ['an MLP, a partial batch of 5 rows (Adam)', () => keras.Sequential([keras.layers.Dense(16, { activation: 'relu', inputShape: [12] }), keras.layers.Dense(4, { activation: 'softmax' })]), true],
  ['BatchNormalization: its moving statistics go through the vector (SGD with momentum)', () => keras.Sequential([
    keras.layers.Dense(16, { inputShape: [12] }), keras.layers.BatchNormalization(), keras.layers.Activation('relu'), keras.layers.Dense(4, { activation: 'softmax' }),
  ]), false],
];

describe('traceSplitStep', () => {
  it.each(cases)('%s: gradStep + applyGrads give the fused step\'s updates bit for bit', (_name, build, partial) => {
    const model = build();
    const c = compileModel(model, { optimizer: partial ? 'adam' : keras.optimizers.SGD({ learningRate: 0.1, momentum: 0.9 }), loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, c, [[B, 12]], [[B]], { partial });
    const { grad, apply } = traceSplitStep(model, c, [[B, 12]], [[B]], { partial });
    const params: Record<string, TypedArray> = Object.fromEntries(step.variables.map((v) => [v.path, v.data]));
    const inputs: Record<string, TypedArray> = { [model.inputSpecs[0]!.name]: data(1, B * 12), [`target/${model.outputNames[0]}`]: data(2, B, 4), rng_counter: Int32Array.of(3) };
    if (partial) inputs['rows'] = Int32Array.of(5);
    for (const n of grad.inputs) expect(Object.keys(inputs)).toContain(String(n.attrs['name']));
    const fused = interpret(step.graph, inputs, params);
    const g = interpret(grad, inputs, params);
    expect(g.updates.size).toBe(0); // gradStep changes no param
    // the outputs before the preds, side by side, as model_train copies them
    const values = [...g.outputs].filter(([name]) => !name.startsWith('pred/'));
    expect(values.at(-1)![0]).toBe('loss');
    const flat = new Float32Array(values.reduce((n, [, v]) => n + v.data.length, 0));
    let at = 0;
    for (const [, v] of values) flat.set(v.data, (at += v.data.length) - v.data.length);
    const a = interpret(apply, { grads: flat }, params);
    expect([...a.updates.keys()].sort()).toEqual([...fused.updates.keys()].sort());
    for (const [name, v] of fused.updates) expect(Array.from(a.updates.get(name)!.data), name).toEqual(Array.from(v.data));
    expect(Array.from(a.outputs.get('loss')!.data)).toEqual(Array.from(fused.outputs.get('loss')!.data));
  });
});
