// Verifier: hand-built malformed graphs are reported with a message naming the problem; well-formed graphs give [].
import { describe, expect, it } from 'vitest';
import { Builder, type Graph, type Node, type Update } from '../../ir/graph.js';
import { ALL_OPS, type Attrs } from '../../ir/ops.js';
import type { TensorType } from '../../ir/types.js';
import { VerifyError, verify, verifyProblems } from '../../ir/verifier.js';
import { OP_GRAPHS, bool, f32, i32 } from './helpers.js';

let ids = 100;
/** A plain node object, bypassing the Builder's checks. */
const node = (op: string, type: TensorType, src: Node[] = [], attrs: Attrs = {}): Node =>
  ({ id: ids++, op, type, src, attrs }) as unknown as Node;
const inp = (name: unknown, t = f32(2)) => node('input', t, [], { name } as Attrs);
const par = (name: string, t = f32(2)) => node('param', t, [], { name });
const graph = (inputs: Node[], outputs: Node[], params: Node[] = [], updates: Update[] = []): Graph =>
  ({ name: 'g', inputs, params, outputs: outputs.map((n, i) => ({ name: `y${i}`, node: n })), updates });
/** A graph with one input x: f32[2] and one output computed from it. */
const on = (f: (x: Node) => Node): Graph => {
  const x = inp('x');
  return graph([x], [f(x)]);
};

describe('verifier', () => {
  it.each([...ALL_OPS])('accepts the builder graph for %s', (op) => {
    expect(verifyProblems(OP_GRAPHS[op](new Builder()))).toEqual([]);
  });

  it('accepts hand-built well-formed nodes', () => {
    const x = inp('x'), w = par('w');
    const y = node('add', f32(2), [x, w]);
    expect(verifyProblems(graph([x], [y, node('reduce_sum', f32(), [y], { axes: [0] })], [w], [{ param: w, value: y }]))).toEqual([]);
  });

  const cases: [string, () => Graph, RegExp][] = [
    ['a declared type that inference disagrees with', () => on((x) => node('neg', f32(3), [x])), /neg: type is f32\[3\] but its operands give f32\[2\]/],
    ['a wrong result dtype', () => on((x) => node('lt', f32(2), [x, x])), /lt: type is f32\[2\] but its operands give bool\[2\]/],
    ['operands of different types', () => on((x) => node('add', f32(2), [x, node('const', f32(3), [], { value: [1] })])), /add: operands must have the same type/],
    ['a float op on int32', () => { const x = inp('x', i32(2)); return graph([x], [node('exp', i32(2), [x])]); }, /exp: expects a float operand/],
    ['a non-leaf without operands', () => graph([], [node('neg', f32(2))]), /neg: has no operands/],
    ['a leaf with operands', () => on((x) => node('const', f32(2), [x], { value: [1] })), /const: .*operands/],
    ['a negative dimension', () => graph([], [node('const', f32(-1), [], { value: [1] })]), /bad type/],
    ['a fractional dimension', () => on((x) => node('reshape', f32(1.5), [x], { shape: [1.5] })), /bad type/],
    ['an unknown dtype', () => graph([], [node('const', { dtype: 'float64' } as unknown as TensorType, [], { value: [1] })]), /bad type/],
    ['a missing attribute', () => on((x) => node('reduce_sum', f32(), [x])), /reduce_sum: attribute 'axes' must be a list of integers/],
    ['a repeated axis', () => on((x) => node('reduce_sum', f32(), [x], { axes: [0, 0] })), /reduce_sum: axis 0 is repeated/],
    ['an out-of-range axis', () => on((x) => node('argmax', i32(), [x], { axis: 1 })), /argmax: axis 1 is out of range for rank 1/],
    ['a bad cast dtype', () => on((x) => node('cast', f32(2), [x], { dtype: 'float64' })), /cast: attribute 'dtype' must be a dtype/],
    ['a bad pad value', () => on((x) => node('pad', f32(4), [x], { padding: [[1, 1]], value: 'zero' })), /pad: attribute 'value' must be a number/],
    ['a bad window kind', () => { const x = inp('x', f32(1, 4, 1)); return graph([x], [node('reduce_window', f32(1, 2, 1), [x], { kind: 'avg', window: [2], strides: [2], padding: [[0, 0]] })]); }, /reduce_window: attribute 'kind'/],
    ['a const that does not fill its type', () => graph([], [node('const', f32(3), [], { value: [1, 2] })]), /const: value does not fill f32\[3\]/],
    ['an iota with a bad axis', () => graph([], [node('iota', i32(3), [], { axis: 1 })]), /iota: bad axis or dtype/],
    ['a float iota', () => graph([], [node('iota', f32(3), [], { axis: 0 })]), /iota: bad axis or dtype/],
    ['an input without a string name', () => { const x = inp(3); return graph([x], [x]); }, /input: attribute 'name' must be a string, got 3/],
    ['an undeclared input', () => graph([], [node('neg', f32(2), [inp('ghost')])]), /input 'ghost': used but not declared in the graph's inputs/],
    ['an undeclared param', () => graph([], [node('neg', f32(2), [par('w')])]), /param 'w': used but not declared in the graph's params/],
    ['a non-input among the inputs', () => graph([node('const', f32(2), [], { value: [0] })], []), /inputs: %\d+ is a const, not an input/],
    ['a non-param among the params', () => graph([], [], [inp('x')]), /params: %\d+ is a input, not a param/],
    ['duplicate input names', () => graph([inp('x'), inp('x')], []), /input name 'x' is used twice/],
    ['duplicate param names', () => graph([], [], [par('w'), par('w')]), /param name 'w' is used twice/],
    ['duplicate output names', () => { const x = inp('x'); return { ...graph([x], []), outputs: [{ name: 'y', node: x }, { name: 'y', node: x }] }; }, /output name 'y' is used twice/],
    ['an update of mismatched type', () => { const w = par('w', f32(2)), x = inp('x', f32(3)); return graph([x], [], [w], [{ param: w, value: x }]); }, /update of 'w': value f32\[3\] does not match f32\[2\]/],
    ['an update of mismatched dtype', () => { const w = par('w', f32(2)), x = inp('x', i32(2)); return graph([x], [], [w], [{ param: w, value: x }]); }, /update of 'w': value i32\[2\] does not match f32\[2\]/],
    ['an update of an undeclared param', () => { const w = par('w'), x = inp('x'); return graph([x], [], [], [{ param: w, value: x }]); }, /update: %\d+ is not one of the graph's params/],
    ['a param updated twice', () => { const w = par('w'), x = inp('x'); return graph([x], [], [w], [{ param: w, value: x }, { param: w, value: x }]); }, /update name 'w' is used twice/],
    ['a cycle', () => {
      const x = inp('x'), a = node('neg', f32(2), [x]), c = node('add', f32(2), [a, x]);
      (a.src as Node[])[0] = c; // a = neg(c), c = add(a, x)
      return graph([x], [c]);
    }, /is part of a cycle/],
    ['a self-loop', () => {
      const x = inp('x'), a = node('add', f32(2), [x, x]);
      (a.src as Node[])[1] = a;
      return graph([x], [a]);
    }, /%\d+ add: is part of a cycle/],
  ];

  it.each(cases)('reports %s', (_, make, msg) => {
    const problems = verifyProblems(make());
    expect(problems.some((p) => msg.test(p)), problems.join('\n')).toBe(true);
    expect(() => verify(make())).toThrow(VerifyError);
  });

  it('lists every problem at once', () => {
    const x = inp('x'), w = par('w', bool(2));
    const g = graph([x, x], [node('neg', f32(3), [x])], [w], [{ param: w, value: x }]);
    const err = (() => { try { verify(g); } catch (e) { return e as VerifyError; } })()!;
    expect(err.problems).toHaveLength(3);
    expect(err.message).toMatch(/^graph is malformed:\n {2}/);
  });
});
