// Printer/parser: print(parse(print(g))) == print(g) for every op, the parsed graph computes the same, and parse errors name the line.
import { describe, expect, it } from 'vitest';
import { Builder } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { ALL_OPS } from '../../ir/ops.js';
import { ParseError, parseGraph } from '../../ir/parser.js';
import { formatAttr, printGraph } from '../../ir/printer.js';
import { verifyProblems } from '../../ir/verifier.js';
import { OP_GRAPHS, expectSame, randomBindings } from './helpers.js';

describe('printer/parser round-trip', () => {
  it('covers every op', () => {
    expect(Object.keys(OP_GRAPHS).sort()).toEqual([...ALL_OPS].sort());
  });

  it.each([...ALL_OPS])('%s', (op) => {
    const g = OP_GRAPHS[op](new Builder());
    expect(verifyProblems(g)).toEqual([]);
    const text = printGraph(g);
    expect(text).toMatch(new RegExp(`= ${op}\\b`));
    const h = parseGraph(text);
    expect(printGraph(h)).toBe(text);
    expect(verifyProblems(h)).toEqual([]);
    expect(h.inputs.map((n) => n.attrs['name'])).toEqual(g.inputs.map((n) => n.attrs['name']));
    expect(h.outputs.map((o) => o.name)).toEqual(g.outputs.map((o) => o.name));
    const [ins, ps] = randomBindings(g);
    const [a, b] = [interpret(g, ins, ps), interpret(h, ins, ps)];
    for (const [name, v] of a.outputs) {
      expect(b.outputs.get(name)!.type).toEqual(v.type);
      expectSame(b.outputs.get(name)!.data, v.data);
    }
    for (const [name, v] of a.updates) expectSame(b.updates.get(name)!.data, v.data);
  });

  it('keeps special constants bit for bit', () => {
    const h = parseGraph(printGraph(OP_GRAPHS.const(new Builder())));
    const out = interpret(h, new Map()).outputs;
    expectSame(out.get('y0')!.data, Float32Array.from([NaN, Infinity, -Infinity, -0, -1.5, 1e-30, 3.4e38, 0.1]));
    expectSame(out.get('y6')!.data, Int32Array.from([2147483647, -2147483648]));
    expect(out.get('y5')!.type.shape).toEqual([0, 3]);
  });

  it.each([
    [NaN, 'nan'], [Infinity, 'inf'], [-Infinity, '-inf'], [-0, '-0'], [-2.5, '-2.5'], [1e21, '1e+21'], [1e-7, '1e-7'],
    ['a"b\\c', '"a\\"b\\\\c"'], [true, 'true'], [[[1, -2], []], '[[1, -2], []]'],
  ] as const)('formats attribute %s as %s', (v, text) => {
    expect(formatAttr(v)).toBe(text);
  });

  it('reads hand-written text, comments and blank lines included', () => {
    const g = parseGraph([
      'graph @g {', '  // two inputs', '', '  %0 = input {name="x"} : f32[2]', '  %1 = const {value=[0.5]} : f32[2]',
      '  %2 = add %0, %1 : f32[2]', '  output "y" = %2', '}',
    ].join('\n'));
    expect(Array.from(interpret(g, { x: Float32Array.from([1, -2]) }).outputs.get('y')!.data)).toEqual([1.5, -1.5]);
  });
});

describe('parser errors name the line', () => {
  const head = 'graph @g {\n  %0 = input {name="x"} : f32[2]\n';
  it.each([
    ['unknown op', `${head}  %1 = frobnicate %0 : f32[2]\n`, /^line 3: unknown op 'frobnicate'/],
    ['undefined value', `${head}  %1 = add %0, %7 : f32[2]\n`, /^line 3: undefined value %7/],
    ['undefined output', `${head}  output "y" = %4\n`, /^line 3: undefined value %4/],
    ['wrong declared type', `${head}  %1 = neg %0 : f32[3]\n`, /^line 3: neg has type float32\[2\], but the text says float32\[3\]/],
    ['wrong declared dtype', `${head}  %1 = eq %0, %0 : f32[2]\n`, /^line 3: eq has type bool\[2\]/],
    ['ill-typed op', `${head}  %1 = matmul %0, %0 : f32[2]\n`, /^line 3: matmul: /],
    ['bad type', `${head}  %1 = neg %0 : f64[2]\n`, /^line 3: bad type 'f64\[2\]'/],
    ['redefinition', `${head}  %0 = neg %0 : f32[2]\n`, /^line 3: %0 is defined twice/],
    ['bad attribute', `${head}  %1 = reshape %0 {shape=[2,} : f32[2]\n`, /^line 3: /],
    ['unreadable line', `${head}\n  what is this\n`, /^line 4: cannot read 'what is this'/],
    ['missing header', '  %0 = input {name="x"} : f32[2]\n', /^line 1: expected "graph @name \{"/],
  ])('%s', (_, text, msg) => {
    expect(() => parseGraph(text)).toThrow(ParseError);
    expect(() => parseGraph(text)).toThrow(msg);
  });
});
