// Graphs whose in-place parameter updates read the parameter at other elements than the one they write (transpose,
// gather, slices, reshapes, reductions, matmul), or take another leaf's value: each target must give the
// interpreter's new values (regressions of issue 11: the nest overwrote elements before reading them).
import type { Graph } from '../../ir/graph.js';
import { parseGraph } from '../../ir/parser.js';
import type { Data } from './differential.js';
import { randomBindings } from './random_graphs.js';

export const UPDATE_GRAPHS: Record<string, string> = {
  // the minimal graph: w[1,0] became 0.000145 on llvm, the interpreter gives 0.1368
  transpose: `graph @transpose {
  %0 = param {name="w"} : f32[3,3]
  %1 = exp %0 : f32[3,3]
  %2 = transpose %1 {perm=[1, 0]} : f32[3,3]
  %3 = sub %0, %2 : f32[3,3]
  update %0 = %3
}`,
  gather: `graph @gather {
  %0 = param {name="w"} : f32[4,3]
  %1 = neg %0 : f32[4,3]
  %2 = const {value=[2, 0, 3, 1]} : i32[4]
  %3 = gather %1, %2 {axis=0} : f32[4,3]
  %4 = mul %0, %3 : f32[4,3]
  update %0 = %4
}`,
  // w[i] += w[i + 1] (a slice padded back to w's shape)
  shiftedSlice: `graph @shifted_slice {
  %0 = param {name="w"} : f32[6]
  %1 = exp %0 : f32[6]
  %2 = slice %1 {end=[6], start=[1], step=[1]} : f32[5]
  %3 = pad %2 {padding=[[0, 1]], value=0} : f32[6]
  %4 = add %0, %3 : f32[6]
  update %0 = %4
}`,
  // w[i] -= w[5 - i] (slice has no negative step: a reversed slice is a gather)
  reversed: `graph @reversed {
  %0 = param {name="w"} : f32[6]
  %1 = exp %0 : f32[6]
  %2 = const {value=[5, 4, 3, 2, 1, 0]} : i32[6]
  %3 = gather %1, %2 {axis=0} : f32[6]
  %4 = sub %0, %3 : f32[6]
  update %0 = %4
}`,
  // every other element, twice over: w[i] *= w[2 * (i mod 3)]
  stridedConcat: `graph @strided_concat {
  %0 = param {name="w"} : f32[6]
  %1 = neg %0 : f32[6]
  %2 = slice %1 {end=[6], start=[0], step=[2]} : f32[3]
  %3 = concat %2, %2 {axis=0} : f32[6]
  %4 = add %0, %3 : f32[6]
  update %0 = %4
}`,
  reshapeTranspose: `graph @reshape_transpose {
  %0 = param {name="w"} : f32[2,3]
  %1 = exp %0 : f32[2,3]
  %2 = reshape %1 {shape=[3, 2]} : f32[3,2]
  %3 = transpose %2 {perm=[1, 0]} : f32[2,3]
  %4 = sub %0, %3 : f32[2,3]
  update %0 = %4
}`,
  // a reshape there and back reads w at the element it writes: this one may stay in place
  reshapeRoundTrip: `graph @reshape_round_trip {
  %0 = param {name="w"} : f32[2,3]
  %1 = reshape %0 {shape=[3, 2]} : f32[3,2]
  %2 = exp %1 : f32[3,2]
  %3 = reshape %2 {shape=[2, 3]} : f32[2,3]
  %4 = sub %0, %3 : f32[2,3]
  update %0 = %4
}`,
  rowSumBroadcast: `graph @row_sum_broadcast {
  %0 = param {name="w"} : f32[3,4]
  %1 = exp %0 : f32[3,4]
  %2 = reduce_sum %1 {axes=[1], keepdims=true} : f32[3,1]
  %3 = broadcast %2 {shape=[3, 4]} : f32[3,4]
  %4 = sub %0, %3 : f32[3,4]
  update %0 = %4
}`,
  columnMaxBroadcast: `graph @column_max_broadcast {
  %0 = param {name="w"} : f32[3,4]
  %1 = neg %0 : f32[3,4]
  %2 = reduce_max %1 {axes=[0], keepdims=false} : f32[4]
  %3 = broadcast %2 {shape=[3, 4]} : f32[3,4]
  %4 = sub %0, %3 : f32[3,4]
  update %0 = %4
}`,
  matmul: `graph @matmul {
  %0 = param {name="w"} : f32[3,3]
  %1 = exp %0 : f32[3,3]
  %2 = matmul %1, %0 : f32[3,3]
  %3 = const {value=[0.1]} : f32[3,3]
  %4 = mul %2, %3 : f32[3,3]
  %5 = sub %0, %4 : f32[3,3]
  update %0 = %5
}`,
  // an output computed in the update's nest after it, reading w at the same element
  outputAfterUpdate: `graph @output_after_update {
  %0 = param {name="w"} : f32[5]
  %1 = input {name="x"} : f32[5]
  %2 = mul %0, %1 : f32[5]
  %3 = add %2, %0 : f32[5]
  output "y" = %3
  update %0 = %2
}`,
  // an output of the update's nest reading w transposed after the update's store
  outputReadsTransposed: `graph @output_reads_transposed {
  %0 = param {name="w"} : f32[3,3]
  %1 = input {name="x"} : f32[3,3]
  %2 = mul %0, %1 : f32[3,3]
  %3 = exp %0 : f32[3,3]
  %4 = transpose %3 {perm=[1, 0]} : f32[3,3]
  %5 = add %2, %4 : f32[3,3]
  output "y" = %5
  update %0 = %2
}`,
  // two updates in one kernel, each reading the other's param transposed
  crossed: `graph @crossed {
  %0 = param {name="a"} : f32[2,2]
  %1 = param {name="b"} : f32[2,2]
  %2 = neg %1 : f32[2,2]
  %3 = transpose %2 {perm=[1, 0]} : f32[2,2]
  %4 = add %0, %3 : f32[2,2]
  %5 = neg %0 : f32[2,2]
  %6 = transpose %5 {perm=[1, 0]} : f32[2,2]
  %7 = sub %1, %6 : f32[2,2]
  update %0 = %4
  update %1 = %7
}`,
  // new values that are leaves: the params swapped, one set to an input and one to a constant
  leaves: `graph @leaves {
  %0 = param {name="a"} : f32[3]
  %1 = param {name="b"} : f32[3]
  %2 = param {name="c"} : f32[3]
  %3 = param {name="d"} : f32[3]
  %4 = input {name="x"} : f32[3]
  %5 = const {value=[2]} : f32[3]
  %6 = add %0, %4 : f32[3]
  output "y" = %6
  update %0 = %1
  update %1 = %0
  update %2 = %4
  update %3 = %5
}`,
  // the plain optimizer step reads w only at the element it writes: it must stay in place
  sgd: `graph @sgd {
  %0 = param {name="w"} : f32[4,3]
  %1 = input {name="g"} : f32[4,3]
  %2 = const {value=[0.1]} : f32[4,3]
  %3 = mul %1, %2 : f32[4,3]
  %4 = sub %0, %3 : f32[4,3]
  update %0 = %4
}`,
};

/** The graphs whose update must still be written in place (their param's own buffer). */
export const IN_PLACE = ['reshapeRoundTrip', 'sgd'];

/** Graph `name` with its params named `<name>/<param>` (entries of one module share params by name), and data. */
export function updateCase(name: string, seed = 7): { g: Graph; inputs: Data; params: Data } {
  const g = parseGraph(UPDATE_GRAPHS[name]!.replace(/param \{name="/g, `param {name="${name}/`));
  const [inputs, params] = randomBindings(g, seed);
  return { g, inputs: Object.fromEntries(inputs), params: Object.fromEntries(params) };
}
