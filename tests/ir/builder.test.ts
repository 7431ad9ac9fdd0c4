// Builder: ShapeErrors that name the op for bad operands/attributes, hash-consing, topological order, rebuild.
import { describe, expect, it } from 'vitest';
import { Builder, rebuild, topoSort } from '../../ir/graph.js';
import { type Attrs, type Op, ShapeError, broadcastShapes, windowOut } from '../../ir/ops.js';
import { printGraph } from '../../ir/printer.js';
import type { TensorType } from '../../ir/types.js';
import { bool, f32, i32 } from './helpers.js';

const conv = (o: Partial<Record<string, unknown>> = {}): Attrs =>
  ({ strides: [1, 1], padding: [[0, 0], [0, 0]], dilation: [1, 1], lhsDilation: [1, 1], groups: 1, ...o }) as Attrs;
const win = (o: Partial<Record<string, unknown>> = {}): Attrs =>
  ({ kind: 'max', window: [2, 2], strides: [1, 1], padding: [[0, 0], [0, 0]], ...o }) as Attrs;

describe('Builder rejects bad ops with a ShapeError naming the op', () => {
  const cases: [Op, TensorType[], Attrs, RegExp][] = [
    ['matmul', [f32(2, 3), f32(4, 5)], {}, /contraction dimensions differ.*\(3 vs 4\)/],
    ['matmul', [f32(2, 2, 3), f32(3, 3, 4)], {}, /batch dimensions differ/],
    ['matmul', [f32(3), f32(3)], {}, /same rank >= 2/],
    ['matmul', [f32(2, 3), f32(2, 3, 4)], {}, /same rank >= 2/],
    ['matmul', [f32(2, 3), i32(3, 4)], {}, /share a numeric dtype/],
    ['matmul', [bool(2, 2), bool(2, 2)], {}, /share a numeric dtype/],
    ['add', [f32(2, 3), f32(3, 2)], {}, /same type \(broadcast explicitly\), got f32\[2,3\] and f32\[3,2\]/],
    ['add', [f32(2), f32(1)], {}, /same type/],
    ['mul', [f32(2), i32(2)], {}, /same type/],
    ['add', [f32(2)], {}, /expects 2 operand\(s\), got 1/],
    ['and', [f32(2), f32(2)], {}, /does not accept float32/],
    ['or', [i32(2), i32(2)], {}, /does not accept int32/],
    ['lt', [bool(2), bool(2)], {}, /does not accept bool/],
    ['sub', [bool(2), bool(2)], {}, /does not accept bool/],
    ['neg', [bool(2)], {}, /does not accept bool/],
    ['exp', [i32(2)], {}, /expects a float operand, got i32\[2\]/],
    ['erf', [bool(2)], {}, /expects a float operand/],
    ['not', [f32(2)], {}, /expects bool, got f32\[2\]/],
    ['cast', [f32(2)], { dtype: 'float64' }, /attribute 'dtype' must be a dtype, got float64/],
    ['select', [f32(2), f32(2), f32(2)], {}, /condition must be bool/],
    ['select', [bool(2), f32(2), i32(2)], {}, /one shape and the branches one dtype/],
    ['select', [bool(3), f32(2), f32(2)], {}, /one shape/],
    ['reshape', [f32(2, 3)], { shape: [4] }, /cannot reshape f32\[2,3\] \(6 elements\) to \[4\]/],
    ['reshape', [f32(0)], { shape: [-1, 0] }, /negative dimension/],
    ['reshape', [f32(2)], { shape: 2 }, /attribute 'shape' must be a list of integers/],
    ['reshape', [f32(2)], { shape: [2.5] }, /attribute 'shape' must be a list of integers/],
    ['transpose', [f32(2, 3)], { perm: [0] }, /perm \[0\] does not match rank 2/],
    ['transpose', [f32(2, 3)], { perm: [1, 1] }, /axis 1 is repeated/],
    ['transpose', [f32(2, 3)], { perm: [0, 2] }, /axis 2 is out of range/],
    ['broadcast', [f32(2, 3)], { shape: [3, 3] }, /cannot broadcast f32\[2,3\] to \[3,3\]/],
    ['broadcast', [f32(2, 3)], { shape: [3] }, /lower rank/],
    ['broadcast', [f32(1)], { shape: [-2] }, /attribute 'shape' entries must be >= 0, got \[-2\]/],
    ['slice', [f32(4)], { start: [0], end: [5], step: [1] }, /slice 0:5:1 is out of range for dimension 0 of size 4/],
    ['slice', [f32(4)], { start: [3], end: [2], step: [1] }, /out of range/],
    ['slice', [f32(4)], { start: [0], end: [4], step: [0] }, /out of range/],
    ['slice', [f32(4, 4)], { start: [0], end: [4], step: [1] }, /must each have 2 entries/],
    ['pad', [f32(2)], { padding: [[-1, 0]], value: 0 }, /non-negative/],
    ['pad', [f32(2, 2)], { padding: [[1, 0]], value: 0 }, /attribute 'padding' must be 2 \[low, high\] pairs/],
    ['pad', [f32(2)], { padding: [[1, 0]] }, /attribute 'value' must be a number/],
    ['concat', [f32(2, 3), f32(3, 3)], { axis: 1 }, /operands must agree except on axis 1/],
    ['concat', [f32(2, 3), i32(2, 3)], { axis: 0 }, /operands must agree/],
    ['concat', [f32(2), f32(2)], { axis: 1 }, /axis 1 is out of range/],
    ['concat', [], { axis: 0 }, /at least one operand/],
    ['gather', [f32(3, 4), f32(2)], { axis: 0 }, /indices must be int32, got f32\[2\]/],
    ['gather', [f32(3, 4), i32(2)], { axis: 2 }, /axis 2 is out of range/],
    ['gather', [f32(1, 0), i32()], { axis: 1 }, /cannot gather from the empty axis 1 of f32\[1,0\]/],
    ['reduce_sum', [f32(2, 3)], { axes: [2] }, /axis 2 is out of range for rank 2/],
    ['reduce_sum', [f32(2, 3)], { axes: [-1] }, /axis -1 is out of range/],
    ['reduce_prod', [f32(2, 3)], { axes: [1, 1] }, /axis 1 is repeated/],
    ['reduce_max', [f32(2, 0)], { axes: [1] }, /cannot reduce an empty axis/],
    ['reduce_sum', [bool(2)], { axes: [0] }, /does not accept bool/],
    ['argmax', [f32(0, 3)], { axis: 0 }, /cannot take the arg of an empty axis/],
    ['argmin', [f32(2, 3)], { axis: 1.5 }, /attribute 'axis' must be an integer/],
    ['conv', [f32(1, 5, 5, 3), f32(3, 3, 2, 4)], conv(), /input channels 3 do not match kernel f32\[3,3,2,4\] with 1 group\(s\)/],
    ['conv', [f32(1, 5, 5, 4), f32(3, 3, 2, 3)], conv({ groups: 2 }), /with 2 group\(s\)/],
    ['conv', [f32(1, 5, 5, 4), f32(3, 3, 2, 4)], conv({ groups: 0 }), /group/],
    ['conv', [f32(5, 3), f32(3, 3, 3)], conv(), /expects input \[N, \.\.\.spatial, C\]/],
    ['conv', [i32(1, 5, 5, 1), i32(3, 3, 1, 1)], conv(), /expects float32 operands/],
    ['conv', [f32(1, 5, 5, 1), f32(3, 3, 1, 1)], conv({ strides: [1] }), /strides\/dilation\/lhsDilation need 2 entries/],
    ['conv', [f32(1, 5, 5, 1), f32(3, 3, 1, 1)], conv({ padding: [[0, 0]] }), /attribute 'padding' must be 2/],
    ['conv', [f32(1, 5, 5, 1), f32(3, 3, 1, 1)], conv({ strides: [0, 1] }), /attribute 'strides' entries must be >= 1/],
    ['conv', [f32(1, 5, 5, 1), f32(3, 3, 1, 1)], conv({ dilation: [1, 0] }), /attribute 'dilation' entries must be >= 1/],
    ['conv', [f32(1, 5, 5, 1), f32(3, 3, 1, 1)], conv({ lhsDilation: [-1, 1] }), /attribute 'lhsDilation' entries must be >= 1/],
    ['reduce_window', [f32(1, 4, 4, 1)], win({ kind: 'avg' }), /attribute 'kind' must be 'max' or 'sum'/],
    ['reduce_window', [f32(1, 4, 4, 1)], win({ window: [2] }), /window\/strides need 2 entries/],
    ['reduce_window', [f32(4, 4)], win({ window: [], strides: [], padding: [] }), /expects input \[N, \.\.\.spatial, C\]/],
    ['reduce_window', [f32(1, 4, 4, 1)], win({ strides: [1, 0] }), /attribute 'strides' entries must be >= 1/],
    ['reduce_window', [f32(1, 4, 4, 1)], win({ window: [0, 2] }), /attribute 'window' entries must be >= 1/],
    ['reduce_window', [bool(1, 4, 4, 1)], win({ kind: 'sum' }), /does not accept bool/],
    ['random_uniform', [i32(1)], { seed: 1, shape: [2] }, /counter must be an int32 scalar, got i32\[1\]/],
    ['random_uniform', [f32()], { seed: 1, shape: [2] }, /counter must be an int32 scalar/],
    ['random_uniform', [i32()], { seed: 0.5, shape: [2] }, /attribute 'seed' must be an integer/],
    ['random_uniform', [i32()], { seed: 1, shape: [-2] }, /attribute 'shape' entries must be >= 0/],
    ['input', [], {}, /is a leaf/],
  ];

  it.each(cases)('%s %j %j', (op, types, attrs, msg) => {
    const b = new Builder();
    const src = types.map((t, i) => b.input(`x${i}`, t));
    const build = () => b.emit(op, src, attrs);
    expect(build).toThrow(ShapeError);
    expect(build).toThrow(new RegExp(`^${op}: .*${msg.source}`));
  });

  it('rejects bad leaves', () => {
    const b = new Builder();
    b.input('x', f32(2));
    b.param('w', f32(2));
    expect(() => b.input('x', f32(3))).toThrow(/^input: duplicate name 'x'/);
    expect(() => b.param('w', f32(3))).toThrow(/^param: duplicate name 'w'/);
    expect(() => b.constant([1, 2, 3], 'float32', [2, 2])).toThrow(/^const: 3 values do not fill shape \[2,2\]/);
    expect(() => b.iota([2, 3], 2)).toThrow(/^iota: axis 2 is out of range for rank 2/);
    expect(() => b.iota([2, 3], -1)).toThrow(ShapeError);
  });
});

describe('Builder', () => {
  it('rejects a value of more than 32 dimensions (the C runtime\'s KILN_MAX_RANK) and accepts 32', () => {
    const b = new Builder();
    const x = b.input('x', { dtype: 'float32', shape: Array(32).fill(1) });
    expect(() => b.emit('reshape', [x], { shape: Array(33).fill(1) })).toThrow(/reshape: rank 33 is more than the 32 dimensions kiln supports/);
    expect(() => b.input('y', { dtype: 'float32', shape: Array(33).fill(1) })).toThrow(ShapeError);
    expect(b.emit('neg', [x]).type.shape).toHaveLength(32);
  });

  it('infers result types', () => {
    const b = new Builder();
    const x = b.input('x', f32(2, 3, 4)), k = b.input('k', f32(3, 3, 4, 6));
    const t = (op: Op, src = [x], attrs: Attrs = {}) => b.emit(op, src, attrs).type;
    expect(t('reduce_sum', [x], { axes: [0, 2], keepdims: true })).toEqual(f32(1, 3, 1));
    expect(t('argmin', [x], { axis: 1 })).toEqual(i32(2, 4));
    expect(t('transpose', [x], { perm: [2, 0, 1] })).toEqual(f32(4, 2, 3));
    expect(t('slice', [x], { start: [0, 0, 1], end: [2, 3, 4], step: [1, 2, 2] })).toEqual(f32(2, 2, 2));
    expect(t('gather', [x, b.input('i', i32(5, 6))], { axis: 1 })).toEqual(f32(2, 5, 6, 4));
    expect(t('lt', [x, x])).toEqual(bool(2, 3, 4));
    expect(t('eq', [b.input('p', bool(2)), b.input('q', bool(2))])).toEqual(bool(2));
    // [N=2, H=3, W=4] as 1-D conv over W=3 (the spatial axis), channels 4 -> 6 with 2 groups (kernel [3, 2, 6])
    expect(b.emit('conv', [b.input('z', f32(2, 9, 4)), b.input('kk', f32(3, 2, 6))],
      { strides: [2], padding: [[1, 1]], dilation: [1], lhsDilation: [1], groups: 2 }).type).toEqual(f32(2, 5, 6));
    expect(b.emit('conv', [b.input('im', f32(1, 7, 7, 4)), k],
      { strides: [2, 2], padding: [[1, 1], [1, 1]], dilation: [1, 1], lhsDilation: [1, 1], groups: 1 }).type).toEqual(f32(1, 4, 4, 6));
  });

  it.each([
    // n, k, stride, lo, hi, dilation, lhsDilation -> out: by counting window positions on an explicit dilated, padded line
    [5, 3, 1, 0, 0, 1, 1], [5, 3, 2, 1, 1, 1, 1], [7, 3, 2, 0, 0, 2, 1], [4, 3, 1, 0, 0, 1, 2], [3, 5, 1, 0, 0, 1, 1],
    [5, 2, 3, 2, -1, 1, 1], [0, 1, 1, 0, 0, 1, 1], [0, 1, 1, 1, 1, 1, 2], [1, 1, 1, 0, 0, 1, 3],
  ])('windowOut(n=%i, k=%i, s=%i, lo=%i, hi=%i, d=%i, ld=%i)', (n, k, s, lo, hi, d, ld) => {
    const len = (n === 0 ? 0 : (n - 1) * ld + 1) + lo + hi, keff = (k - 1) * d + 1;
    let count = 0;
    for (let start = 0; start + keff <= len; start += s) count++;
    expect(windowOut(n, k, s, lo, hi, d, ld)).toBe(count);
  });

  it('interns structurally equal nodes', () => {
    const b = new Builder();
    const x = b.input('x', f32(2));
    expect(b.emit('add', [x, x])).toBe(b.emit('add', [x, x]));
    expect(b.emit('reduce_sum', [x], { keepdims: false, axes: [0] })).toBe(b.emit('reduce_sum', [x], { axes: [0], keepdims: false }));
    expect(b.emit('reduce_sum', [x], { axes: [0], keepdims: true })).not.toBe(b.emit('reduce_sum', [x], { axes: [0] }));
    expect(b.constant(NaN)).toBe(b.constant(NaN));
    expect(b.constant(0)).not.toBe(b.constant(-0));
    expect(b.constant(1, 'int32')).not.toBe(b.constant(1, 'float32'));
    expect(b.constant([2, 2], 'float32', [2])).toBe(b.constant(2, 'float32', [2]));
    expect(b.constant(0.1).attrs['value']).toEqual([Math.fround(0.1)]);
    expect(b.constant([2.7, -2.7], 'int32', [2]).attrs['value']).toEqual([2, -2]);
    expect(b.constant([], 'float32', [0]).attrs['value']).toEqual([]);
    // typed arrays, checked for one value in place (a traced relu's zero broadcast over a batch): canonicalized first
    expect(b.constant(new Float32Array(5000).fill(-0), 'float32', [5000]).attrs['value']).toEqual([-0]);
    expect(Object.is((b.constant(new Float32Array(5000).fill(-0), 'float32', [5000]).attrs['value'] as number[])[0], -0)).toBe(true);
    expect(b.constant(Float32Array.of(0, 0, -0), 'float32', [3]).attrs['value']).toEqual([0, 0, -0]);
    expect(b.constant(Int32Array.of(2, 2, 3), 'int32', [3]).attrs['value']).toEqual([2, 2, 3]);
    expect(b.constant([2, 1, 5], 'bool', [3]).attrs['value']).toEqual([1]);
    expect(b.constant([2.2, 2.9], 'int32', [2]).attrs['value']).toEqual([2]);
    expect(b.constant([NaN, NaN], 'float32', [2]).attrs['value']).toEqual([NaN]);
  });

  it('orders sources before users and rebuild reproduces the graph', () => {
    const b = new Builder();
    const x = b.input('x', f32(2)), w = b.param('w', f32(2));
    let y = x;
    for (let i = 0; i < 20000; i++) y = b.emit('add', [y, w]); // deep chain: no recursion overflow
    const g = b.finish('deep', [{ name: 'y', node: y }], [{ param: w, value: y }]);
    const order = topoSort(g);
    const pos = new Map(order.map((n, i) => [n, i]));
    expect(order).toHaveLength(20002);
    expect(order.every((n) => n.src.every((s) => pos.get(s)! < pos.get(n)!))).toBe(true);
    expect(printGraph(rebuild(g, () => undefined))).toBe(printGraph(g));
  });

  it('broadcastShapes follows NumPy rules', () => {
    expect(broadcastShapes([2, 1, 3], [4, 1])).toEqual([2, 4, 3]);
    expect(broadcastShapes([], [3])).toEqual([3]);
    expect(broadcastShapes([0, 1], [1, 5])).toEqual([0, 5]);
    expect(broadcastShapes([2, 3], [3, 2])).toBeUndefined();
  });
});
