// Typed attribute accessors: every op's attributes read back typed; wrong-typed, missing or unknown ones are clear errors.
import { describe, expect, it } from 'vitest';
import { Builder, type Node, topoSort } from '../../ir/graph.js';
import { evalOp } from '../../ir/interpreter.js';
import { ALL_OPS, type Attrs, OP_ATTRS, REDUCE_OPS, ShapeError, attrsOf, checkAttrs } from '../../ir/ops.js';
import { parseGraph } from '../../ir/parser.js';
import { verifyProblems } from '../../ir/verifier.js';
import { OP_GRAPHS, f32 } from './helpers.js';

/** A plain node, bypassing the Builder's checks. */
const node = (op: string, attrs: Attrs, shape = [2, 3]): Node =>
  ({ id: 9, op, type: f32(...shape), src: [], attrs }) as unknown as Node;

describe('attrsOf', () => {
  it.each([...ALL_OPS])('reads back the attributes of every %s node the builder makes', (op) => {
    const nodes = topoSort(OP_GRAPHS[op](new Builder())).filter((n) => n.op === op);
    expect(nodes.length).toBeGreaterThan(0);
    for (const n of nodes) {
      if (op in OP_ATTRS) expect(attrsOf(n, op as keyof typeof OP_ATTRS)).toBe(n.attrs);
      else expect(n.attrs).toEqual({});
    }
  });

  it.each([
    ['a wrong-typed list', node('transpose', { perm: 'abc' }), 'transpose', /^transpose: attribute 'perm' must be a list of integers, got abc$/],
    ['a fractional entry', node('reshape', { shape: [2, 1.5] }), 'reshape', /^reshape: attribute 'shape' must be a list of integers, got \[2,1.5\]$/],
    ['a missing attribute', node('reduce_sum', {}), 'reduce_sum', /^reduce_sum: attribute 'axes' must be a list of integers, got none$/],
    ['a non-boolean keepdims', node('argmax', { axis: 0, keepdims: 1 }), 'argmax', /^argmax: attribute 'keepdims' must be true or false, got 1$/],
    ['a string number', node('pad', { padding: [[0, 0]], value: '0' }), 'pad', /^pad: attribute 'value' must be a number, got 0$/],
    ['a bad pair', node('conv', { strides: [1], dilation: [1], lhsDilation: [1], padding: [[0, 0, 0]], groups: 1 }), 'conv',
      /^conv: attribute 'padding' must be a list of \[low, high\] integer pairs, got \[\[0,0,0\]\]$/],
    ['a bad window kind', node('reduce_window', { kind: 'avg', window: [2], strides: [1], padding: [[0, 0]] }), 'reduce_window',
      /^reduce_window: attribute 'kind' must be 'max' or 'sum', got avg$/],
    ['a bad dtype', node('cast', { dtype: 'float64' }), 'cast', /^cast: attribute 'dtype' must be a dtype, got float64$/],
    ['a number name', node('input', { name: 3 }), 'input', /^input: attribute 'name' must be a string, got 3$/],
    ['an unknown attribute', node('reduce_max', { axes: [0], axis: 0 }), 'reduce_max', /^reduce_max: unknown attribute 'axis' \(it takes axes, keepdims, tree\)$/],
    ['another op', node('reduce_sum', { axes: [0] }), 'conv', /^reduce_sum: read as a conv node$/],
  ] as const)('%s is a ShapeError naming the op and the attribute', (_, n, op, msg) => {
    expect(() => attrsOf(n, op)).toThrow(ShapeError);
    expect(() => attrsOf(n, op)).toThrow(msg);
  });

  it('reads a group of ops with their common attributes', () => {
    for (const op of REDUCE_OPS) expect(attrsOf(node(op, { axes: [1], keepdims: true }), REDUCE_OPS).axes).toEqual([1]);
    expect(() => attrsOf(node('argmax', { axis: 1 }), REDUCE_OPS)).toThrow(/^argmax: read as a reduce_sum or reduce_max or reduce_min or reduce_prod node$/);
  });

  it('an op without attributes takes none', () => {
    expect(() => checkAttrs('add', {})).not.toThrow();
    expect(() => checkAttrs('add', { axis: 1 })).toThrow(/^add: unknown attribute 'axis' \(it takes none\)$/);
  });
});

describe('wrong-typed attributes are clear errors where nodes are read', () => {
  it('the builder', () => {
    const b = new Builder(), x = b.input('x', f32(2, 3));
    expect(() => b.emit('reduce_sum', [x], { axes: [1], keepdims: 'yes' })).toThrow(/^reduce_sum: attribute 'keepdims' must be true or false, got yes$/);
    expect(() => b.emit('exp', [x], { fast: true })).toThrow(/^exp: unknown attribute 'fast' \(it takes none\)$/);
    expect(() => b.emit('transpose', [x], { perm: [1, 0], axes: [0] })).toThrow(/^transpose: unknown attribute 'axes' \(it takes perm\)$/);
  });

  it('the interpreter, on a node built without the builder', () => {
    const x = { type: f32(2, 3), data: new Float32Array(6) };
    expect(() => evalOp({ op: 'transpose', type: f32(3, 2), attrs: { perm: '10' } }, [x])).toThrow(/^transpose: attribute 'perm' must be a list of integers, got 10$/);
    expect(() => evalOp({ op: 'pad', type: f32(2, 3), attrs: { padding: [[0, 0], [0, 0]], value: 'nan' } }, [x])).toThrow(/^pad: attribute 'value' must be a number/);
  });

  it('the parser, with the line', () => {
    const text = (line: string) => `graph @g {\n  ${line}\n  output "y" = %0\n}`;
    // the one shorthand: a splat constant's value written as a number
    expect(attrsOf(parseGraph(text('%0 = const {value=2.5} : f32[3]')).outputs[0]!.node, 'const').value).toEqual([2.5]);
    expect(() => parseGraph(text('%0 = input : f32[2]'))).toThrow(/^line 2: input: attribute 'name' must be a string, got none$/);
    expect(() => parseGraph(text('%0 = const {value="1"} : f32[]'))).toThrow(/^line 2: const: attribute 'value' must be a list of numbers, got 1$/);
    expect(() => parseGraph(text('%0 = iota {axis=0, name="i"} : i32[2]'))).toThrow(/^line 2: iota: unknown attribute 'name' \(it takes axis\)$/);
    expect(() => parseGraph('graph @g {\n  %0 = input {name="x"} : f32[]\n  %1 = const %0 {value=[1]} : f32[]\n  output "y" = %1\n}'))
      .toThrow(/^line 3: const is a leaf and takes no operands$/);
  });

  it('the verifier, for leaves', () => {
    const c = node('const', { value: ['1'] }, [1]);
    const g = { name: 'g', inputs: [], params: [], outputs: [{ name: 'y', node: c }], updates: [] };
    expect(verifyProblems(g)).toEqual(["%9 const: const: attribute 'value' must be a list of numbers, got [\"1\"]"]);
  });
});
