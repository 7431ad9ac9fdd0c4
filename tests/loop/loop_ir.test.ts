// Loop IR: hand-built programs run by the loop interpreter against the graph interpreter, the printer's text, the verifier's rules.
import { describe, expect, it } from 'vitest';
import { runProgram, philoxUniformAt } from '../../codegen/loop/interpreter.js';
import { type Buffer, E, type Expr, type Kernel, type Program, S, type Scalar, type Stmt } from '../../codegen/loop/ir.js';
import { formatF32, printExpr, printKernel, printProgram } from '../../codegen/loop/printer.js';
import { verifyKernel, verifyProgram } from '../../codegen/loop/verifier.js';
import { Builder } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { BINARY_OPS, COMPARE_OPS, type Op, UNARY_OPS } from '../../ir/ops.js';
import { philoxUniform } from '../../ir/philox.js';
import { type DType, type TypedArray, toTyped } from '../../ir/types.js';
import { INT_MAX, INT_MIN, expectSame, f32, uniform } from '../ir/helpers.js';

const F = Math.fround;
const { v, load } = E;
const i = (name: string) => v(name);
const buf = (name: string, dtype: DType, size: number, kind: Buffer['kind'], data?: number[]): Buffer =>
  (data ? { name, dtype, size, kind, data } : { name, dtype, size, kind });
const kernel = (name: string, body: Stmt[], ops: string[] = []): Kernel => ({ name, ops, body });

/** A program whose graph names are its buffer names: inputs/params/outputs by kind, updates as [param, buffer]. */
function program(buffers: Buffer[], kernels: Kernel[], updates: [string, string][] = []): Program {
  const of = (kind: Buffer['kind']) => buffers.filter((b) => b.kind === kind).map((b) => ({ name: b.name, buffer: b.name }));
  return {
    name: 'test', buffers, kernels, inputs: of('input'), params: of('param'), outputs: of('output'),
    updates: updates.map(([name, buffer]) => ({ name, buffer })),
  };
}

const scalarOfDtype: Record<string, Scalar> = { float32: 'f32', int32: 'i32', bool: 'bool' };

/** y[i] = f(x0[i], x1[i], ...) over n elements, run through the loop interpreter. */
function runElementwise(ins: { dtype: DType; data: number[] }[], outDtype: DType, f: (xs: Expr[]) => Expr): TypedArray {
  const n = ins[0]!.data.length;
  const xs = ins.map((x, k) => load(`x${k}`, i('i'), scalarOfDtype[x.dtype]!));
  const p = program(
    [...ins.map((x, k) => buf(`x${k}`, x.dtype, n, 'input')), buf('y', outDtype, n, 'output')],
    [kernel('k0', [S.for('i', n, [S.store('y', i('i'), f(xs))])])],
  );
  const bind = Object.fromEntries(ins.map((x, k) => [`x${k}`, toTyped(x.dtype, x.data)]));
  return runProgram(p, bind, {}).outputs.get('y')!;
}

/** The same op through the graph interpreter. */
function runGraph(op: Op, ins: { dtype: DType; data: number[] }[], attrs = {}): TypedArray {
  const b = new Builder();
  const xs = ins.map((x, k) => b.input(`x${k}`, { dtype: x.dtype, shape: [x.data.length] }));
  const g = b.finish('g', [{ name: 'y', node: b.emit(op, xs, attrs) }]);
  return interpret(g, Object.fromEntries(ins.map((x, k) => [`x${k}`, toTyped(x.dtype, x.data)]))).outputs.get('y')!.data;
}

describe('loop interpreter', () => {
  it('runs an elementwise kernel with a splat and a full const buffer', () => {
    const x = uniform(7, 1, -2, 2);
    const p = program([
      buf('x', 'float32', 7, 'input'), buf('half', 'float32', 7, 'const', [0.5]),
      buf('w', 'float32', 7, 'const', [1, 2, 3, 4, 5, 6, 0.1]), buf('y', 'float32', 7, 'output'),
    ], [kernel('k0_mul_add_max', [
      S.for('i0', 7, [
        S.store('y', i('i0'), E.binary('max', E.binary('add', E.binary('mul', load('x', i('i0'), 'f32'), load('w', i('i0'), 'f32')), load('half', i('i0'), 'f32')), E.f32(0))),
      ], 'vector'),
    ], ['mul', 'add', 'max'])]);
    expect(verifyProgram(p)).toEqual([]);
    const y = runProgram(p, { x: new Float32Array(x) }, {}).outputs.get('y')!;
    const w = [1, 2, 3, 4, 5, 6, 0.1].map(F);
    expectSame(y, x.map((xv, k) => Math.max(F(F(xv * w[k]!) + 0.5), 0)));
  });

  it('reduces rows with a decl accumulator exactly as reduce_sum does', () => {
    const x = uniform(20, 2, -100, 100);
    const p = program([buf('x', 'float32', 20, 'input'), buf('y', 'float32', 4, 'output')], [kernel('k0', [
      S.for('i0', 4, [
        S.decl('acc', 'f32', E.f32(0)),
        S.for('r0', 5, [S.assign('acc', E.binary('add', v('acc', 'f32'), load('x', E.add(E.mul(i('i0'), E.i32(5)), i('r0')), 'f32')))]),
        S.store('y', i('i0'), v('acc', 'f32')),
      ], 'parallel'),
    ], ['reduce_sum'])]);
    const b = new Builder();
    const g = b.finish('g', [{ name: 'y', node: b.emit('reduce_sum', [b.input('x', f32(4, 5))], { axes: [1] }) }]);
    const want = interpret(g, { x: new Float32Array(x) }).outputs.get('y')!.data;
    expectSame(runProgram(p, { x: new Float32Array(x) }, {}).outputs.get('y')!, want);
  });

  it('computes a matmul exactly as the graph matmul', () => {
    const [m, k, n] = [3, 7, 5];
    const a = uniform(m * k, 3), w = uniform(k * n, 4);
    const idx = (row: Expr, stride: number, col: Expr) => E.add(E.mul(row, E.i32(stride)), col);
    const p = program([buf('a', 'float32', m * k, 'input'), buf('w', 'float32', k * n, 'param'), buf('y', 'float32', m * n, 'output')], [kernel('k0_matmul', [
      S.for('i0', m, [
        S.for('i1', n, [
          S.decl('acc', 'f32', E.f32(0)),
          S.for('r0', k, [S.assign('acc', E.binary('add', v('acc', 'f32'), E.binary('mul', load('a', idx(i('i0'), k, i('r0')), 'f32'), load('w', idx(i('r0'), n, i('i1')), 'f32'))))]),
          S.store('y', idx(i('i0'), n, i('i1')), v('acc', 'f32')),
        ], 'vector'),
      ], 'parallel'),
    ], ['matmul'])]);
    const b = new Builder();
    const g = b.finish('g', [{ name: 'y', node: b.emit('matmul', [b.input('a', f32(m, k)), b.param('w', f32(k, n))]) }]);
    const want = interpret(g, { a: new Float32Array(a) }, { w: new Float32Array(w) }).outputs.get('y')!.data;
    expectSame(runProgram(p, { a: new Float32Array(a) }, { w: new Float32Array(w) }).outputs.get('y')!, want);
  });

  it('computes a softmax row through a local array shared by sequential inner loops', () => {
    const [rows, cols] = [3, 6];
    const x = uniform(rows * cols, 5, -30, 30);
    const at = (j: Expr) => E.add(E.mul(i('i0'), E.i32(cols)), j);
    const row = (j: string) => load('row', i(j), 'f32');
    const p = program([buf('x', 'float32', rows * cols, 'input'), buf('y', 'float32', rows * cols, 'output')], [kernel('k0_softmax', [
      S.for('i0', rows, [
        S.local('row', 'f32', cols),
        S.decl('m', 'f32', E.f32(-Infinity)),
        S.for('j0', cols, [S.store('row', i('j0'), load('x', at(i('j0')), 'f32')), S.assign('m', E.binary('max', v('m', 'f32'), row('j0')))]),
        S.decl('s', 'f32', E.f32(0)),
        S.for('j1', cols, [
          S.store('row', i('j1'), E.unary('exp', E.binary('sub', row('j1'), v('m', 'f32')))),
          S.assign('s', E.binary('add', v('s', 'f32'), row('j1'))),
        ]),
        S.for('j2', cols, [S.store('y', at(i('j2')), E.binary('div', row('j2'), v('s', 'f32')))], 'vector'),
      ], 'parallel'),
    ], ['reduce_max', 'sub', 'exp', 'reduce_sum', 'div'])]);
    expect(verifyProgram(p)).toEqual([]);
    const b = new Builder();
    const xi = b.input('x', f32(rows, cols));
    const bc = (t: ReturnType<Builder['input']>) => b.emit('broadcast', [t], { shape: [rows, cols] });
    const e = b.emit('exp', [b.emit('sub', [xi, bc(b.emit('reduce_max', [xi], { axes: [1], keepdims: true }))])]);
    const g = b.finish('g', [{ name: 'y', node: b.emit('div', [e, bc(b.emit('reduce_sum', [e], { axes: [1], keepdims: true }))]) }]);
    const want = interpret(g, { x: new Float32Array(x) }).outputs.get('y')!.data;
    expectSame(runProgram(p, { x: new Float32Array(x) }, {}).outputs.get('y')!, want);
  });

  it.each([[0, 0], [7, 5], [123456, -1], [-5, 2147483647]])('philox(seed %i, counter %i) matches philoxUniform element by element', (seed, counter) => {
    const n = 11, off = 6;
    const p = program([buf('c', 'int32', 1, 'input'), buf('y', 'float32', n, 'output')], [kernel('k0_random', [
      S.for('i0', n, [S.store('y', i('i0'), E.philox(seed, load('c', E.i32(0), 'i32'), E.add(i('i0'), E.i32(off))))]),
    ])]);
    const y = runProgram(p, { c: new Int32Array([counter]) }, {}).outputs.get('y')!;
    expectSame(y, philoxUniform(n + off, seed, counter).subarray(off));
    expect(philoxUniformAt(seed, counter, 3)).toBe(philoxUniform(4, seed, counter)[3]);
  });

  it('wraps i32 arithmetic and divides as specified', () => {
    const a = [INT_MAX, INT_MIN, -7, 7, -7, 7, 0, INT_MIN, 5, -1, 46341];
    const b = [1, -1, 2, -2, -2, 0, 0, -1, 3, INT_MIN, 46341];
    const run = (op: Parameters<typeof E.binary>[0]) =>
      Array.from(runElementwise([{ dtype: 'int32', data: a }, { dtype: 'int32', data: b }], 'int32', ([x, y]) => E.binary(op, x!, y!)));
    const wrap = (x: bigint) => Number(BigInt.asIntN(32, x));
    expect(run('add')).toEqual(a.map((x, k) => wrap(BigInt(x) + BigInt(b[k]!))));
    expect(run('sub')).toEqual(a.map((x, k) => wrap(BigInt(x) - BigInt(b[k]!))));
    expect(run('mul')).toEqual(a.map((x, k) => wrap(BigInt(x) * BigInt(b[k]!))));
    // truncating division, 0 for a zero divisor, INT_MIN / -1 wraps
    expect(run('div')).toEqual([INT_MAX, INT_MIN, -3, -3, 3, 0, 0, INT_MIN, 1, 0, 1]);
    // floor division and the non-negative remainder
    expect(run('idiv')).toEqual([INT_MAX, INT_MIN, -4, -4, 3, 0, 0, INT_MIN, 1, 0, 1]);
    expect(run('mod')).toEqual([0, 0, 1, 1, 1, 0, 0, 0, 2, INT_MAX, 0]);
    expect(run('div')).toEqual(Array.from(runGraph('div', [{ dtype: 'int32', data: a }, { dtype: 'int32', data: b }])));
  });

  it('stores bools as 0/1 bytes', () => {
    const x = [-1, 0, 1, 2, NaN, -0];
    const y = runElementwise([{ dtype: 'float32', data: x }], 'bool', ([a]) =>
      E.binary('and', E.binary('ge', a!, E.f32(0)), E.unary('not', E.binary('eq', a!, E.f32(1)))));
    expect(y).toBeInstanceOf(Uint8Array);
    expect(Array.from(y)).toEqual([0, 1, 0, 1, 0, 1]);
    const z = runElementwise([{ dtype: 'float32', data: x }], 'float32', ([a]) => E.cast('f32', E.binary('ne', a!, a!)));
    expectSame(z, [0, 0, 0, 0, 1, 0]);
  });

  it('runs in-place param updates on a copy and returns them', () => {
    const w = new Float32Array([1, 2, 3]);
    const p = program([buf('g', 'float32', 3, 'input'), buf('w', 'float32', 3, 'param'), buf('y', 'float32', 1, 'output')], [
      kernel('k0_sgd', [S.for('i0', 3, [S.store('w', i('i0'), E.binary('sub', load('w', i('i0'), 'f32'), E.binary('mul', E.f32(0.1), load('g', i('i0'), 'f32'))))])]),
      kernel('k1_sum', [S.decl('s', 'f32', E.f32(0)), S.for('i0', 3, [S.assign('s', E.binary('add', v('s', 'f32'), load('w', i('i0'), 'f32')))]), S.store('y', E.i32(0), v('s', 'f32'))]),
    ], [['w', 'w']]);
    const r = runProgram(p, { g: new Float32Array([1, 1, 1]) }, { w });
    expect(Array.from(w)).toEqual([1, 2, 3]);
    const want = [1, 2, 3].map((x) => F(x - F(0.1)));
    expectSame(r.updates.get('w')!, want);
    expectSame(r.outputs.get('y')!, [F(F(want[0]! + want[1]!) + want[2]!)]);
  });

  it('throws on an out-of-bounds load naming kernel, buffer and index', () => {
    const p = program([buf('x', 'float32', 4, 'input'), buf('j', 'int32', 2, 'input'), buf('y', 'float32', 2, 'output')], [
      kernel('k0_gather', [S.for('i0', 2, [S.store('y', i('i0'), load('x', load('j', i('i0'), 'i32'), 'f32'))])]),
    ]);
    const x = new Float32Array([1, 2, 3, 4]);
    expectSame(runProgram(p, { x, j: new Int32Array([3, 0]) }, {}).outputs.get('y')!, [4, 1]);
    expect(() => runProgram(p, { x, j: new Int32Array([1, 9]) }, {})).toThrow('kernel k0_gather: load x[j[i0]]: index 9 is out of bounds for x of size 4 at i0=1');
    expect(() => runProgram(p, { x, j: new Int32Array([-1, 0]) }, {})).toThrow(/index -1 is out of bounds/);
  });

  it('checks its bindings and refuses malformed programs', () => {
    const p = program([buf('x', 'float32', 2, 'input'), buf('y', 'float32', 2, 'output')], [
      kernel('k0', [S.for('i0', 2, [S.store('y', i('i0'), load('x', i('i0'), 'f32'))])]),
    ]);
    expect(() => runProgram(p, {}, {})).toThrow("no value given for input 'x' (f32[2])");
    expect(() => runProgram(p, { x: new Int32Array(2) }, {})).toThrow("input 'x' expects f32[2], got Int32Array of 2 elements");
    const bad = { ...p, kernels: [kernel('k0', [S.store('y', E.i32(0), v('nope', 'f32'))])] };
    expect(() => runProgram(bad, { x: new Float32Array(2) }, {})).toThrow(/malformed[\s\S]*'nope' is not declared/);
  });
});

describe('loop interpreter scalar ops match the graph interpreter bit for bit', () => {
  const SPECIAL = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 3.75, 1e-30, 3.4e38, -3.4e38, 1e-45, 88.7, 89, 0.1, 2, -3];
  const INTS = [INT_MIN, INT_MAX, -1, 0, 1, 2, 3, -7, 7, 46341, 65536, -65536];
  const BOOLS = [0, 1];
  const pairs = (xs: number[]) => [xs.flatMap((a) => xs.map(() => a)), xs.flatMap(() => xs)] as const;
  const values: Record<Scalar, number[]> = { f32: SPECIAL.map(F), i32: INTS, bool: BOOLS };
  const dt: Record<Scalar, DType> = { f32: 'float32', i32: 'int32', bool: 'bool' };

  const unaries: [Op, Scalar][] = [
    ...UNARY_OPS.filter((op) => op !== 'not').map((op): [Op, Scalar] => [op, 'f32']),
    ...(['neg', 'abs', 'sign', 'floor', 'ceil', 'round'] as Op[]).map((op): [Op, Scalar] => [op, 'i32']),
    ['not', 'bool'],
  ];
  it.each(unaries)('%s on %s', (op, t) => {
    const ins = [{ dtype: dt[t], data: values[t] }];
    expectSame(runElementwise(ins, dt[t], ([a]) => E.unary(op as Parameters<typeof E.unary>[0], a!)), runGraph(op, ins));
  });

  const casts = (['f32', 'i32', 'bool'] as Scalar[]).flatMap((from) => (['f32', 'i32', 'bool'] as Scalar[]).map((to): [Scalar, Scalar] => [from, to]));
  it.each(casts)('cast %s to %s', (from, to) => {
    const ins = [{ dtype: dt[from], data: [...values[from], ...(from === 'f32' ? [2147483648, -2147483904, 1e10, -1e10].map(F) : [])] }];
    expectSame(runElementwise(ins, dt[to], ([a]) => E.cast(to, a!)), runGraph('cast', ins, { dtype: dt[to] }));
  });

  const binaries: [Op, Scalar][] = [
    ...[...BINARY_OPS, ...COMPARE_OPS].map((op): [Op, Scalar] => [op, 'f32']),
    ...[...BINARY_OPS, ...COMPARE_OPS].map((op): [Op, Scalar] => [op, 'i32']),
    ['and', 'bool'], ['or', 'bool'], ['eq', 'bool'], ['ne', 'bool'],
  ];
  it.each(binaries)('%s on %s', (op, t) => {
    const [a, b] = pairs(values[t]);
    const ins = [{ dtype: dt[t], data: a }, { dtype: dt[t], data: b }];
    const out = (COMPARE_OPS as readonly string[]).includes(op) || op === 'and' || op === 'or' ? 'bool' : dt[t];
    expectSame(runElementwise(ins, out, ([x, y]) => E.binary(op as Parameters<typeof E.binary>[0], x!, y!)), runGraph(op, ins));
  });
});

describe('loop printer', () => {
  const tiny = (): Program => program([
    buf('x', 'float32', 8, 'input'), buf('b', 'float32', 4, 'param'), buf('c', 'int32', 2, 'const', [3, -4]),
    buf('y', 'float32', 8, 'output'), buf('m', 'bool', 1, 'output'),
  ], [
    kernel('k0_add_relu', [
      S.for('i0', 2, [
        S.for('i1', 4, [
          S.decl('t', 'f32', E.binary('add', load('x', E.add(E.mul(i('i0'), E.i32(4)), i('i1')), 'f32'), load('b', i('i1'), 'f32'))),
          S.store('y', E.add(E.mul(i('i0'), E.i32(4)), i('i1')), E.binary('max', v('t', 'f32'), E.f32(0))),
        ], 'vector'),
      ], 'parallel'),
    ], ['add', 'max']),
    kernel('k1', [S.local('r', 'i32', 2, 'shared'), S.store('r', E.i32(1), E.mod(E.idiv(load('c', E.i32(0), 'i32'), 2), 3)),
      S.store('m', E.i32(0), E.binary('lt', E.cast('f32', load('r', E.i32(1), 'i32')), E.f32(0.1)))]),
  ], [['b', 'b']]);

  it('prints a kernel and a program in a stable text form', () => {
    const p = tiny();
    expect(printKernel(p.kernels[0]!)).toBe([
      'kernel k0_add_relu  # ops: add, max',
      '  for i0 in 0..2 parallel {',
      '    for i1 in 0..4 vector {',
      '      decl t: f32 = x[i0 * 4 + i1] + b[i1]',
      '      y[i0 * 4 + i1] = max(t, 0.0)',
      '    }',
      '  }',
      '',
    ].join('\n'));
    expect(printProgram(p)).toBe([
      'program @test',
      '  buffer x: f32[8] input',
      '  buffer b: f32[4] param',
      '  buffer c: i32[2] const = [3, -4]',
      '  buffer y: f32[8] output',
      '  buffer m: bool[1] output',
      '  input "x" -> x',
      '  param "b" -> b',
      '  output "y" -> y',
      '  output "m" -> m',
      '  update "b" -> b',
      '',
      printKernel(p.kernels[0]!),
      'kernel k1',
      '  local r: i32[2] shared',
      '  r[1] = c[0] // 2 % 3',
      '  m[0] = f32(r[1]) < 0.1',
      '',
    ].join('\n'));
    expect(printProgram(tiny())).toBe(printProgram(p));
  });

  it('parenthesizes exactly where the tree needs it', () => {
    const [a, b, c] = ['a', 'b', 'c'].map((n) => v(n, 'f32')) as [Expr, Expr, Expr];
    const [p, q] = [i('p'), i('q')];
    expect(printExpr(E.binary('sub', a, E.binary('sub', b, c)))).toBe('a - (b - c)');
    expect(printExpr(E.binary('sub', E.binary('sub', a, b), c))).toBe('a - b - c');
    expect(printExpr(E.binary('add', a, E.binary('add', b, c)))).toBe('a + (b + c)');
    expect(printExpr(E.binary('mul', E.binary('add', a, b), c))).toBe('(a + b) * c');
    expect(printExpr(E.binary('add', a, E.binary('mul', b, c)))).toBe('a + b * c');
    expect(printExpr(E.binary('div', a, E.binary('mul', b, c)))).toBe('a / (b * c)');
    expect(printExpr(E.binary('eq', E.binary('lt', a, b), E.bool(true)))).toBe('(a < b) == true');
    expect(printExpr(E.binary('add', p, E.i32(-1)))).toBe('p + (-1)');
    expect(printExpr(E.binary('mod', E.binary('idiv', p, q), E.i32(3)))).toBe('p // q % 3');
    expect(printExpr(E.binary('idiv', p, E.binary('mod', q, E.i32(3))))).toBe('p // (q % 3)');
    expect(printExpr(E.select(E.binary('ge', a, E.f32(0)), E.unary('neg', a), E.binary('pow', a, E.f32(-2))))).toBe('select(a >= 0.0, neg(a), pow(a, -2.0))');
    expect(printExpr(E.philox(42, p, E.add(q, E.i32(1))))).toBe('philox(42, p, q + 1)');
  });

  it('writes f32 constants as the shortest float32 round-trip, always marked as float', () => {
    expect([0, -0, 1, 0.1, -2.5, 1e-7, 3.4e38, 1e-45, 16777216, NaN, Infinity, -Infinity].map((x) => formatF32(F(x))))
      .toEqual(['0.0', '-0.0', '1.0', '0.1', '-2.5', '1e-7', '3.4e+38', '1e-45', '16777216.0', 'nan', 'inf', '-inf']);
    for (const x of uniform(200, 9, -1e6, 1e6)) expect(F(Number(formatF32(x)))).toBe(x);
  });
});

describe('loop verifier', () => {
  const bufs = [
    buf('x', 'float32', 6, 'input'), buf('n', 'int32', 6, 'input'), buf('w', 'float32', 6, 'param'),
    buf('c', 'float32', 1, 'const', [2]), buf('t', 'float32', 6, 'temp'), buf('y', 'float32', 6, 'output'), buf('z', 'bool', 6, 'output'),
  ];
  const xi = load('x', i('i0'), 'f32');
  const loop = (...body: Stmt[]) => S.for('i0', 6, body);
  /** A kernel with `body` inside `for i0 in 0..6`, checked against the buffers above. */
  const check = (...body: Stmt[]) => verifyKernel(kernel('k0', [loop(...body)]), bufs);
  const ok = program(bufs, [kernel('k0', [loop(S.store('y', i('i0'), xi), S.store('z', i('i0'), E.binary('gt', xi, E.f32(0))))])]);

  it('accepts well-formed programs, including an in-place param store', () => {
    expect(verifyProgram(ok)).toEqual([]);
    expect(check(S.store('w', i('i0'), E.binary('add', load('w', i('i0'), 'f32'), xi)))).toEqual([]);
    expect(check(S.local('r', 'f32', 6), S.store('r', E.i32(5), xi))).toEqual([]);
  });

  const cases: [string, Stmt[], RegExp][] = [
    ['a load from an undeclared buffer', [S.store('y', i('i0'), load('q', i('i0'), 'f32'))], /loads from 'q', which is neither a declared buffer nor a local array/],
    ['a store into an undeclared buffer', [S.store('q', i('i0'), xi)], /stores into 'q', which is neither/],
    ['a local array out of scope', [S.for('j', 2, [S.local('r', 'f32', 2)]), S.store('y', i('i0'), load('r', E.i32(0), 'f32'))], /loads from 'r', which is neither/],
    ['an undeclared variable', [S.store('y', i('i0'), v('acc', 'f32'))], /variable 'acc' is not declared/],
    ['a variable used before its decl', [S.store('y', i('i0'), v('acc', 'f32')), S.decl('acc', 'f32', E.f32(0))], /variable 'acc' is not declared/],
    ['a decl used in its own initializer', [S.decl('acc', 'f32', v('acc', 'f32'))], /variable 'acc' is not declared/],
    ['a shadowing loop variable', [S.for('i0', 2, [])], /loop variable 'i0' shadows/],
    ['a shadowing decl', [S.decl('a', 'f32', E.f32(0)), S.for('j', 2, [S.decl('a', 'f32', E.f32(1))])], /decl 'a' shadows/],
    ['a loop variable named like a buffer', [S.for('x', 2, [])], /loop variable 'x' has the name of a buffer/],
    ['two sibling loops of one name', [S.for('j', 2, []), S.for('j', 3, [])], /loop variable 'j' names another loop of this kernel too/],
    ['a loop named like an earlier nest\'s loop', [S.for('j', 2, [S.for('k', 2, [])]), S.for('m', 2, [S.for('k', 2, [])])], /loop variable 'k' names another loop/],
    ['an assignment to a loop variable', [S.assign('i0', E.i32(1))], /assigns to 'i0', a loop variable; only decls are assignable/],
    ['an assignment to an undeclared name', [S.assign('a', E.f32(1))], /assigns to 'a', which is not declared/],
    ['an assignment of the wrong type', [S.decl('a', 'f32', E.f32(0)), S.assign('a', E.i32(1))], /assigns i32 to 'a', declared f32/],
    ['a decl with a mistyped initializer', [S.decl('a', 'f32', E.i32(0))], /decl 'a' is f32, but its initializer is i32/],
    ['binary operands of different types', [S.store('y', i('i0'), E.binary('add', xi, E.i32(1)))], /operands of add have different types f32 and i32/],
    ['a comparison not typed bool', [S.store('y', i('i0'), { k: 'binary', t: 'f32', op: 'lt', a: xi, b: E.f32(0) })], /lt of f32 gives bool, but is typed f32/],
    ['arithmetic on bool', [S.store('z', i('i0'), E.binary('add', E.bool(true), E.bool(false)))], /add does not accept bool/],
    ['a select on a non-bool condition', [S.store('y', i('i0'), E.select(xi, xi, E.f32(0)))], /select condition is f32, not bool/],
    ['select branches of different types', [S.store('y', i('i0'), E.select(E.bool(true), xi, E.i32(0)))], /select branches have different types f32 and i32/],
    ['an f32 index', [S.store('y', i('i0'), load('x', E.f32(1), 'f32'))], /index 1\.0 is f32, not i32/],
    ['a mistyped load', [S.store('y', i('i0'), load('n', i('i0'), 'f32'))], /load is typed f32, but 'n' holds i32/],
    ['a mistyped variable', [S.store('y', i('i0'), E.cast('f32', v('i0', 'f32')))], /variable 'i0' is used as f32 but declared i32/],
    ['a store of the wrong type', [S.store('y', i('i0'), E.i32(1))], /stores i32 into 'y', which holds f32/],
    ['a bool store of f32', [S.store('z', i('i0'), xi)], /stores f32 into 'z', which holds bool/],
    ['a constant index out of bounds', [S.store('y', E.i32(6), xi)], /index 6 ranges over \[6, 6\], out of bounds for size 6/],
    ['a negative constant index', [S.store('y', i('i0'), load('x', E.i32(-1), 'f32'))], /index -1 ranges over \[-1, -1\], out of bounds/],
    ['an affine index out of bounds', [S.for('j', 3, [S.store('y', E.add(E.mul(i('i0'), E.i32(3)), i('j')), xi)])], /index i0 \* 3 \+ j ranges over \[0, 17\], out of bounds for size 6/],
    ['a local index out of bounds', [S.local('r', 'f32', 2), S.store('r', i('i0'), xi)], /store r: index i0 ranges over \[0, 5\], out of bounds for size 2/],
    ['a zero loop extent', [S.for('j', 0, [])], /loop extent 0 is not a positive integer/],
    ['a fractional loop extent', [S.for('j', 2.5, [])], /loop extent 2.5 is not a positive integer/],
    ['a store into an input', [S.store('x', i('i0'), xi)], /stores into input buffer 'x'/],
    ['a store into a const', [S.store('c', E.i32(0), xi)], /stores into const buffer 'c'/],
    ['exp of an i32', [S.store('n', i('i0'), E.unary('exp', i('i0')))], /exp needs a f32 operand, got i32/],
    ['mod by a constant zero', [S.store('y', E.mod(i('i0'), 0), xi)], /mod by 0: a constant divisor must be positive/],
    ['idiv of f32', [S.store('y', i('i0'), E.binary('idiv', xi, E.f32(2)))], /idiv needs i32 operands, got f32/],
    ['a philox with an f32 counter', [S.store('y', i('i0'), { k: 'philox', t: 'f32', seed: 1, counter: E.f32(0), index: i('i0') })], /philox counter is f32, not i32/],
    ['a non-float32 f32 constant', [S.store('y', i('i0'), { k: 'const', t: 'f32', v: 0.1 })], /f32 constant 0.1 is not a float32 value/],
  ];
  it.each(cases)('rejects %s', (_, body, message) => {
    const problems = check(...body);
    expect(problems.join('\n')).toMatch(message);
    expect(problems.every((m) => m.startsWith('kernel k0: '))).toBe(true);
  });

  it('names the statement where the problem is', () => {
    expect(check(S.store('y', i('i0'), v('acc', 'f32')))).toEqual(["kernel k0: y[i0] = acc: variable 'acc' is not declared (by an enclosing loop or an earlier decl)"]);
  });

  const programCases: [string, (p: Program) => Program, RegExp][] = [
    ['an input bound to a missing buffer', (p) => ({ ...p, inputs: [...p.inputs, { name: 'extra', buffer: 'nope' }] }), /input "extra" -> nope: buffer nope is not declared/],
    ['an input bound to a param buffer', (p) => ({ ...p, inputs: [...p.inputs, { name: 'w2', buffer: 'w' }] }), /input "w2" -> w: buffer w is a param buffer, not input/],
    ['an unbound input buffer', (p) => ({ ...p, inputs: p.inputs.filter((e) => e.name !== 'n') }), /input buffer n is not bound to any input/],
    ['an output bound to a temp', (p) => ({ ...p, outputs: [{ name: 'y', buffer: 't' }] }), /output "y" -> t: buffer t is a temp buffer, not output/],
    ['an update of an unknown param', (p) => ({ ...p, updates: [{ name: 'v', buffer: 't' }] }), /update "v" -> t: no param is named "v"/],
    ['an update into a const', (p) => ({ ...p, updates: [{ name: 'w', buffer: 'c' }] }), /update "w" -> c: buffer c is a read-only const buffer/],
    ['a duplicate buffer', (p) => ({ ...p, buffers: [...p.buffers, buf('y', 'float32', 1, 'temp')] }), /buffer y is declared twice/],
    ['a const without data', (p) => ({ ...p, buffers: p.buffers.map((b) => (b.name === 'c' ? buf('c', 'float32', 1, 'const') : b)) }), /buffer c: a const buffer needs data/],
    ['a const with the wrong amount of data', (p) => ({ ...p, buffers: p.buffers.map((b) => (b.name === 'c' ? buf('c', 'float32', 3, 'const', [1, 2]) : b)) }), /data has 2 values, not 1 \(a splat\) or 3/],
    ['an unsupported dtype', (p) => ({ ...p, buffers: [...p.buffers, buf('h', 'float16', 2, 'temp')] }), /buffer h: dtype float16 is not supported/],
    ['a duplicate kernel', (p) => ({ ...p, kernels: [...p.kernels, ...p.kernels] }), /kernel k0 is declared twice/],
  ];
  it.each(programCases)('rejects %s', (_, edit, message) => {
    expect(verifyProgram(edit(ok)).join('\n')).toMatch(message);
  });
});
