// Graphs the fusion planner could not place, or placed where lowering could not find a value (issue 11), as
// minimal reproducers found by tests/passes/compile_search.ts: each compiles under every schedule and equals the
// graph interpreter.
import { describe, expect, it } from 'vitest';
import { LLVM_CAPS } from '../../codegen/llvm/target.js';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import type { TargetCaps } from '../../codegen/loop/schedule.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { parseGraph } from '../../ir/parser.js';
import { modelInputs, runBoth } from './differential.js';
import { randomBindings } from './random_graphs.js';

const SCHEDULES: [string, TargetCaps][] = [['wasm', WASM_CAPS], ['llvm', LLVM_CAPS], ['cuda', CUDA_CAPS]];

const GRAPHS: Record<string, string> = {
  // fuse rootKey: a contraction root took the row structure of a softmax among its operands only because its shape
  // matched (through unit axes); it cannot be computed there ("fuse: cannot place %N reduce_prod in any loop nest")
  reductionRootInRow: `graph @reduction_root_in_row {
  %0 = input {name="x"} : f32[1,1,2,2]
  %1 = reduce_max %0 {axes=[3], keepdims=true} : f32[1,1,2,1]
  %2 = broadcast %1 {shape=[1, 1, 2, 2]} : f32[1,1,2,2]
  %3 = reduce_prod %2 {axes=[0, 1], keepdims=true} : f32[1,1,2,2]
  %4 = broadcast %3 {shape=[2, 3, 2, 2]} : f32[2,3,2,2]
  %5 = reduce_max %4 {axes=[0, 1, 2, 3], keepdims=false} : f32[]
  %6 = broadcast %5 {shape=[1, 1, 2, 2]} : f32[1,1,2,2]
  output "y" = %6
}`,
  // fuse: a broadcast aligns trailing axes, so [3] broadcast to [3, 3] is read at the inner index of a row over
  // axis 1, not at the row's own index ("lower: %N reduce_min is needed at [r4]")
  trailingBroadcast: `graph @trailing_broadcast {
  %0 = input {name="x"} : f32[3,3]
  %1 = reduce_min %0 {axes=[1], keepdims=false} : f32[3]
  %2 = broadcast %1 {shape=[3, 3]} : f32[3,3]
  output "y" = %2
}`,
  trailingBroadcast3d: `graph @trailing_broadcast_3d {
  %0 = input {name="x"} : f32[3,3,2]
  %1 = reduce_max %0 {axes=[1], keepdims=false} : f32[3,2]
  %2 = broadcast %1 {shape=[3, 3, 2]} : f32[3,3,2]
  output "y" = %2
}`,
  // fuse readsAt: a value read both elementwise and through a slice was walked once, so a root read another root of
  // its nest at a shifted index ("lower: %N argmin is needed at [1]")
  argminReadTwice: `graph @argmin_read_twice {
  %0 = input {name="x"} : f32[2,1]
  %1 = argmin %0 {axis=1, keepdims=false} : i32[2]
  %2 = cast %1 {dtype="float32"} : f32[2]
  %3 = slice %2 {end=[2], start=[1], step=[3]} : f32[1]
  %4 = broadcast %3 {shape=[2]} : f32[2]
  %5 = div %2, %4 : f32[2]
  output "y" = %5
}`,
  matmulReadTwice: `graph @matmul_read_twice {
  %0 = input {name="a"} : f32[1,6]
  %1 = input {name="b"} : f32[6,3]
  %2 = input {name="c"} : f32[1,3]
  %3 = param {name="w"} : f32[4]
  %4 = matmul %0, %1 : f32[1,3]
  %5 = add %4, %2 : f32[1,3]
  %6 = slice %5 {end=[1, 2], start=[0, 1], step=[1, 3]} : f32[1,1]
  %7 = broadcast %6 {shape=[1, 3]} : f32[1,3]
  %8 = min %5, %7 : f32[1,3]
  %9 = reduce_sum %8 {axes=[0, 1], keepdims=false} : f32[]
  %10 = broadcast %9 {shape=[4]} : f32[4]
  update %3 = %10
}`,
  gatheredSum: `graph @gathered_sum {
  %0 = input {name="i"} : i32[12,2]
  %1 = input {name="b"} : f32[2,2]
  %2 = reduce_sum %0 {axes=[0], keepdims=true} : i32[1,2]
  %3 = cast %2 {dtype="float32"} : f32[1,2]
  %4 = const {value=[0]} : i32[1,3]
  %5 = gather %3, %4 {axis=0} : f32[1,3,2]
  %6 = matmul %3, %1 : f32[1,2]
  %7 = mul %3, %6 : f32[1,2]
  %8 = reduce_sum %7 {axes=[1], keepdims=false} : f32[1]
  output "y0" = %5
  output "y1" = %8
}`,
  transposedReshapeOfSum: `graph @transposed_reshape_of_sum {
  %0 = input {name="x"} : f32[1,3,2]
  %1 = reduce_sum %0 {axes=[0], keepdims=true} : f32[1,3,2]
  %2 = sub %0, %1 : f32[1,3,2]
  %3 = transpose %2 {perm=[2, 1, 0]} : f32[2,3,1]
  %4 = reshape %3 {shape=[1, 3, 2]} : f32[1,3,2]
  %5 = max %2, %4 : f32[1,3,2]
  output "y" = %5
}`,
  transposedReshapeOfPool: `graph @transposed_reshape_of_pool {
  %0 = input {name="x"} : f32[1,1,3,2]
  %1 = reduce_window %0 {kind="sum", padding=[[0, 0], [0, 1]], strides=[1, 1], window=[1, 2]} : f32[1,1,3,2]
  %2 = neg %1 : f32[1,1,3,2]
  %3 = transpose %2 {perm=[1, 3, 0, 2]} : f32[1,2,1,3]
  %4 = reshape %3 {shape=[1, 1, 3, 2]} : f32[1,1,3,2]
  %5 = sub %2, %4 : f32[1,1,3,2]
  output "y" = %5
}`,
  reshapedPoolThroughParam: `graph @reshaped_pool_through_param {
  %0 = input {name="x"} : f32[1,1,2,2]
  %1 = param {name="w"} : f32[1,2,3]
  %2 = reduce_window %0 {kind="max", padding=[[0, 0], [0, 1]], strides=[1, 1], window=[1, 1]} : f32[1,1,3,2]
  %3 = exp %2 : f32[1,1,3,2]
  %4 = reshape %3 {shape=[1, 2, 3]} : f32[1,2,3]
  %5 = max %1, %4 : f32[1,2,3]
  %6 = reshape %5 {shape=[1, 1, 3, 2]} : f32[1,1,3,2]
  %7 = mul %3, %6 : f32[1,1,3,2]
  output "y" = %7
}`,
  // lower: a root that is also its row's reduction lost its binding after the row's stores, so a root of the outer
  // shape could not read it (rows of length 1: "lower: %N reduce_sum is needed at [0, 0]")
  unitRowSumRoot: `graph @unit_row_sum_root {
  %0 = param {name="w"} : f32[1,1]
  %1 = reduce_max %0 {axes=[1], keepdims=true} : f32[1,1]
  %2 = reduce_sum %1 {axes=[1], keepdims=true} : f32[1,1]
  %3 = reshape %2 {shape=[1]} : f32[1]
  output "y" = %3
  update %0 = %2
}`,
  unitRowSumRoot4d: `graph @unit_row_sum_root_4d {
  %0 = input {name="x"} : f32[1,1,1,1]
  %1 = param {name="w"} : f32[1,1,1]
  %2 = reduce_max %0 {axes=[3], keepdims=true} : f32[1,1,1,1]
  %3 = reduce_sum %2 {axes=[3], keepdims=true} : f32[1,1,1,1]
  %4 = reshape %3 {shape=[1, 1, 1]} : f32[1,1,1]
  output "y" = %3
  update %1 = %4
}`,
  // fuse: a root joined a nest whose other root depends, through a third nest, on a value that depends on the
  // joining root's group ("fuse: nests depend on each other")
  nestCycle: `graph @nest_cycle {
  %0 = input {name="a"} : f32[1,1]
  %1 = input {name="b"} : f32[1,2]
  %2 = param {name="w"} : f32[1,1]
  %3 = matmul %0, %1 : f32[1,2]
  %4 = reduce_max %2 {axes=[0], keepdims=true} : f32[1,1]
  %5 = reduce_max %4 {axes=[0, 1], keepdims=false} : f32[]
  %6 = broadcast %5 {shape=[1, 2]} : f32[1,2]
  %7 = sub %3, %6 : f32[1,2]
  %8 = reduce_max %3 {axes=[0, 1], keepdims=false} : f32[]
  %9 = broadcast %8 {shape=[1, 1]} : f32[1,1]
  %10 = max %4, %9 : f32[1,1]
  output "y0" = %7
  output "y1" = %10
}`,
};

describe.each(SCHEDULES)('graphs fusion could not place compile and equal the interpreter (%s schedule)', (_, caps) => {
  it.each(Object.keys(GRAPHS))('%s', (name) => {
    const g = parseGraph(GRAPHS[name]!);
    const [inputs, params] = randomBindings(g, 5);
    expect(runBoth(g, Object.fromEntries(inputs), Object.fromEntries(params), caps).diffs).toEqual([]);
  });
});

const params = (vars: readonly keras.Variable[]) => Object.fromEntries(vars.map((v) => [v.path, v.data]));

/** The Keras models of issue 11 that fuse rejected: predict, and the Adam training step at batch 1 and 3. */
const MODELS: [string, () => keras.Model][] = [
  ['Dense softmax → Reshape([1, 5]) → GlobalMaxPooling1D', () => keras.Sequential([
    keras.layers.Dense(5, { activation: 'softmax', inputShape: [4] }), keras.layers.Reshape([1, 5]), keras.layers.GlobalMaxPooling1D(),
  ])],
  ['Conv2D → BatchNormalization → MaxPooling2D → GlobalAveragePooling2D → Dense softmax', () => {
    const x = keras.Input({ shape: [5, 5, 1] });
    let h = keras.layers.Conv2D(4, 3)(x);
    h = keras.layers.BatchNormalization()(h);
    h = keras.layers.MaxPooling2D(2)(h);
    h = keras.layers.GlobalAveragePooling2D()(h);
    return keras.Model({ inputs: x, outputs: keras.layers.Dense(2, { activation: 'softmax' })(h) });
  }],
  ['BatchNormalization → Reshape([1, 1, 1]) → GlobalAveragePooling2D → Dense softmax', () => keras.Sequential([
    keras.layers.BatchNormalization({ inputShape: [1] }), keras.layers.Reshape([1, 1, 1]), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, { activation: 'softmax' }),
  ])],
];

describe.each(SCHEDULES)('Keras models fusion could not place (%s schedule)', (_, caps) => {
  it.each(MODELS)('%s', (_name, build) => {
    const model = build();
    for (const batch of [1, 3]) {
      const t = traceModel(model, batch);
      expect(runBoth(t.graph, modelInputs(t.graph, batch), params(t.variables), caps).diffs, `predict, batch ${batch}`).toEqual([]);
      const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
      const step = traceTrainStep(model, c, [[batch, ...model.inputSpecs[0]!.shape.slice(1) as number[]]], [[batch]]);
      expect(runBoth(step.graph, modelInputs(step.graph, batch), params(step.variables), caps).diffs, `training step, batch ${batch}`).toEqual([]);
    }
  });
});
