// The training step split at the gradients (traceSplitStep: gradStep, then applyGrads on the flat vector of its
// outputs) makes, on one process, the bits of the fused training step, on the reference interpreter; under MPI the
// llvm target places that vector side by side and says when each suffix of it is final (memplan's FlatPlan).
import { describe, expect, it } from 'vitest';
import { interpret } from '../../ir/interpreter.js';
import { runPipeline } from '../../driver/pipeline.js';
import { E, type Program, S } from '../../codegen/loop/ir.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { MIN_SEGMENT, planMemory } from '../../codegen/loop/memplan.js';
import { completeFlatLast } from '../../codegen/loop/flat.js';
import { LLVM_CAPS } from '../../codegen/llvm/target.js';
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

describe('the flat gradient block (--distributed mpi)', () => {
  it('side by side in order; after each ready point no later statement reads or writes the completed suffix; the reordered gradStep computes the same bits', () => {
    const model = keras.Sequential([keras.layers.Dense(32, { activation: 'relu', inputShape: [64] }), keras.layers.Dense(48, { activation: 'relu' }), keras.layers.Dense(10, { activation: 'softmax' })]);
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const { grad, apply } = traceSplitStep(model, c, [[B, 64]], [[B]], { partial: true });
    const flat = grad.outputs.map((o) => o.name).filter((n) => !n.startsWith('pred/'));
    const original = runPipeline(grad, { caps: LLVM_CAPS }).program;
    const program = completeFlatLast(original, flat);
    const plan = planMemory(program, { flat });
    const inputs = { [model.inputSpecs[0]!.name]: data(1, B * 64), [`target/${model.outputNames[0]}`]: data(2, B, 10), rng_counter: Int32Array.of(3), rows: Int32Array.of(6) };
    const params = Object.fromEntries(grad.params.map((n) => [String(n.attrs['name']), c.optimizer.variables.concat(model.weights).find((v) => v.path === n.attrs['name'])!.data]));
    const want = interpret(grad, inputs, params).outputs;
    // the same bits as the graph interpreter, reordered or not
    for (const p of [original, program]) for (const [name, v] of runProgram(p, inputs, params).outputs) expect(Array.from(v), name).toEqual(Array.from(want.get(name)!.data));
    // side by side, in the outputs' order
    const sizes = flat.map((n) => want.get(n)!.data.length), starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
    flat.forEach((n, i) => expect(plan.offsets.get(program.outputs.find((o) => o.name === n)!.buffer), n).toBe(plan.flat!.offset + 4 * starts[i]!));
    // applyGrads's input where that block is, alone there for the whole entry: read in place, never copied
    const ap = runPipeline(apply, { caps: LLVM_CAPS }).program, am = planMemory(ap, { input: 'grads' }), gb = ap.inputs[0]!.buffer;
    expect(am.offsets.get(gb)).toBe(plan.flat!.offset);
    for (const [b, off] of am.offsets) if (b !== gb) expect(off, b).toBeGreaterThanOrEqual(4 * plan.flat!.elements);
    // the last layer's gradients and the loss complete before the first layer's (a segment of their own), which in
    // graph order they did not
    const ready = plan.flat!.ready;
    expect(ready.length).toBeGreaterThanOrEqual(2);
    expect(ready.at(-1)!.from).toBe(0);
    expect(planMemory(original, { flat }).flat!.ready.length).toBe(1);
    for (let i = 1; i < ready.length; i++) expect(ready[i - 1]!.from - ready[i]!.from).toBeGreaterThanOrEqual(MIN_SEGMENT);
    // poisoned right after each ready point, the completed suffix stays poisoned to the end (no later write) and
    // every other output keeps its bits (no later read)
    for (const r of ready) {
      const poison = flat.flatMap((n, i) => (starts[i]! >= r.from ? [S.for(`poison${i}`, sizes[i]!, [S.store(program.outputs.find((o) => o.name === n)!.buffer, E.v(`poison${i}`), E.f32(NaN))])] : []));
      const kernels = program.kernels.map((k, ki) => (ki === r.kernel ? { ...k, body: [...k.body.slice(0, r.at + 1), ...poison, ...k.body.slice(r.at + 1)] } : k));
      const got = runProgram({ ...program, kernels } as Program, inputs, params).outputs;
      flat.forEach((n, i) => {
        if (starts[i]! >= r.from) expect(Array.from(got.get(n)!).every(Number.isNaN), n).toBe(true);
        else expect(Array.from(got.get(n)!), n).toEqual(Array.from(want.get(n)!.data));
      });
    }
  });
});
