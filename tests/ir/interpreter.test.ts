// Reference interpreter, op by op, against float64 / BigInt references computed here with plain JS.
import { describe, expect, it } from 'vitest';
import { Builder } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import type { Attrs, Op } from '../../ir/ops.js';
import { philoxUniform } from '../../ir/philox.js';
import { type Shape, sizeOf } from '../../ir/types.js';
import { INT_MAX, INT_MIN, arg, expectClose, f32, indices, ravel, rng, run, uniform } from './helpers.js';

const F = Math.fround;
const I = (x: bigint): number => Number(BigInt.asIntN(32, x)); // int32 wrap-around of an exact integer
const SPECIAL = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 0.5, -0.5, 2.5, -3.75, 1e-30, -1e-30, 3.4e38, -3.4e38, 1e-45, 100, -100, 88.7, 89, 0.1].map(F);
const PAIR_VALUES = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 2, -2.5, 0.5, 3.4e38, 1e-45, 7, 0.1].map(F);
const PAIRS = PAIR_VALUES.flatMap((a) => PAIR_VALUES.map((b) => [a, b] as const));
const INTS = [INT_MIN, INT_MAX, -1, 0, 1, 2, 3, -7, 7, 46341, 65536, -65536, 123456789];
const INT_PAIRS = INTS.flatMap((a) => INTS.map((b) => [a, b] as const));
const col = (pairs: readonly (readonly [number, number])[], i: 0 | 1) => pairs.map((p) => p[i]);

describe('elementwise float', () => {
  it.each([
    ['neg', (x: number) => -x], ['abs', Math.abs], ['sign', (x: number) => (x > 0 ? 1 : x < 0 ? -1 : x)],
    ['exp', Math.exp], ['log', Math.log], ['sqrt', Math.sqrt], ['rsqrt', (x: number) => 1 / Math.sqrt(x)],
    ['tanh', Math.tanh], ['sin', Math.sin], ['cos', Math.cos], ['floor', Math.floor], ['ceil', Math.ceil],
    ['recip', (x: number) => 1 / x],
  ] as [Op, (x: number) => number][])('%s', (op, fn) => {
    const y = run(op, [arg([3, 7], SPECIAL)]);
    expect(y.type).toEqual(f32(3, 7));
    expectClose(y.data, SPECIAL.map((x) => F(fn(x))));
    expect(run(op, [arg([0, 4], [])]).type.shape).toEqual([0, 4]);
    expectClose(run(op, [arg([], [0.75])]).data, [F(fn(0.75))]);
  });

  it('round is half to even', () => {
    const xs = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -3.5, 0.49999997, -0.49999997, 4194304.5, 4194305.5, -4194305.5,
      8388607.5, 1.25, -1.75, 1e30, NaN, Infinity, -Infinity].map(F);
    const even = (x: number) => {
      const fl = Math.floor(x), d = x - fl;
      return d < 0.5 ? fl : d > 0.5 ? fl + 1 : fl % 2 === 0 ? fl : fl + 1;
    };
    expectClose(run('round', [arg([xs.length], xs)]).data, xs.map(even));
    expectClose(run('round', [arg([6], [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])]).data, [-2, -2, -0, 0, 2, 2]);
  });

  it('erf matches known values', () => {
    const known: [number, number][] = [
      [0, 0], [0.25, 0.2763263901682369], [0.5, 0.5204998778130465], [1, 0.8427007929497149], [1.5, 0.9661051464753108],
      [2, 0.9953222650189527], [2.5, 0.9995930479825550], [3, 0.9999779095030014], [4, 0.9999999845827421],
      [-0.5, -0.5204998778130465], [-3, -0.9999779095030014], [10, 1], [Infinity, 1], [-Infinity, -1], [NaN, NaN],
    ];
    expectClose(run('erf', [arg([known.length], known.map((k) => k[0]))]).data, known.map((k) => F(k[1])));
    // odd, monotone and continuous across the series / continued-fraction switch at 2.5 and the clamp at 6
    const xs = Array.from({ length: 2001 }, (_, i) => F(-8 + i * 0.008));
    const y = run('erf', [arg([xs.length], xs)]).data;
    for (let i = 1; i < xs.length; i++) {
      expect(y[i]!).toBeGreaterThanOrEqual(y[i - 1]!);
      expect(y[i]! - y[i - 1]!).toBeLessThan(0.0091); // slope <= 2/sqrt(pi)
    }
    expectClose(run('erf', [arg([xs.length], xs.map((x) => -x))]).data, Array.from(y, (v) => -v));
  });

  it.each([
    ['add', (a: number, b: number) => a + b], ['sub', (a: number, b: number) => a - b],
    ['mul', (a: number, b: number) => a * b], ['div', (a: number, b: number) => a / b],
    ['max', (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a > b ? a : b)],
    ['min', (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a < b ? a : b)],
  ] as [Op, (a: number, b: number) => number][])('%s over special pairs', (op, fn) => {
    const y = run(op, [arg([PAIRS.length], col(PAIRS, 0)), arg([PAIRS.length], col(PAIRS, 1))]);
    expectClose(y.data, PAIRS.map(([a, b]) => F(fn(a, b))));
    expect(run(op, [arg([2, 0], []), arg([2, 0], [])]).type.shape).toEqual([2, 0]);
  });

  it('pow follows C99 Annex F (IEEE 754) special cases', () => {
    const cases: [number, number, number][] = [
      [1, NaN, 1], [1, Infinity, 1], [1, -Infinity, 1], [-1, Infinity, 1], [-1, -Infinity, 1], [NaN, 0, 1], [NaN, -0, 1],
      [0, -1, Infinity], [-0, -1, -Infinity], [-0, -2, Infinity], [0, 3, 0], [-8, F(1 / 3), NaN], [0.5, Infinity, 0],
      [2, Infinity, Infinity], [2, -Infinity, 0], [-Infinity, -1, -0], [-Infinity, 3, -Infinity], [-Infinity, 2, Infinity],
      [NaN, 1, NaN], [2, NaN, NaN], [-2, 3, -8], [2, 0.5, F(Math.SQRT2)], [10, -2, F(0.01)], [2, 128, Infinity],
    ];
    expectClose(run('pow', [arg([cases.length], cases.map((c) => c[0])), arg([cases.length], cases.map((c) => c[1]))]).data, cases.map((c) => c[2]));
    const a = uniform(50, 3, 0, 4), b = uniform(50, 4, -3, 3);
    expectClose(run('pow', [arg([50], a), arg([50], b)]).data, a.map((x, i) => F(x ** b[i]!)));
  });

  it.each([
    ['eq', (a: number, b: number) => a === b], ['ne', (a: number, b: number) => a !== b], ['lt', (a: number, b: number) => a < b],
    ['le', (a: number, b: number) => a <= b], ['gt', (a: number, b: number) => a > b], ['ge', (a: number, b: number) => a >= b],
  ] as [Op, (a: number, b: number) => boolean][])('%s (NaN compares unordered)', (op, fn) => {
    const y = run(op, [arg([PAIRS.length], col(PAIRS, 0)), arg([PAIRS.length], col(PAIRS, 1))]);
    expect(y.type.dtype).toBe('bool');
    expectClose(y.data, PAIRS.map(([a, b]) => (fn(a, b) ? 1 : 0)));
    const yi = run(op, [arg([INT_PAIRS.length], col(INT_PAIRS, 0), 'int32'), arg([INT_PAIRS.length], col(INT_PAIRS, 1), 'int32')]);
    expectClose(yi.data, INT_PAIRS.map(([a, b]) => (fn(a, b) ? 1 : 0)));
  });

  it('select picks per element, NaN and inf included', () => {
    const c = [1, 0, 1, 0, 0, 1], a = [NaN, 1, -Infinity, 2, 3, -0], b = [5, NaN, 6, Infinity, -1, 7];
    expectClose(run('select', [arg([2, 3], c, 'bool'), arg([2, 3], a), arg([2, 3], b)]).data, c.map((ci, i) => (ci ? a[i]! : b[i]!)));
    expectClose(run('select', [arg([3], [0, 1, 1], 'bool'), arg([3], [1, 2, 3], 'int32'), arg([3], [-1, -2, -3], 'int32')]).data, [-1, 2, 3]);
    expectClose(run('select', [arg([2], [1, 0], 'bool'), arg([2], [1, 0], 'bool'), arg([2], [0, 1], 'bool')]).data, [1, 1]);
    expect(run('select', [arg([0], [], 'bool'), arg([0], []), arg([0], [])]).data).toHaveLength(0);
  });
});

describe('elementwise int32 and bool', () => {
  it.each([
    ['neg', (x: bigint) => -x], ['abs', (x: bigint) => (x < 0n ? -x : x)], ['sign', (x: bigint) => (x > 0n ? 1n : x < 0n ? -1n : 0n)],
    ['floor', (x: bigint) => x], ['ceil', (x: bigint) => x], ['round', (x: bigint) => x],
  ] as [Op, (x: bigint) => bigint][])('%s wraps around', (op, fn) => {
    const y = run(op, [arg([INTS.length], INTS, 'int32')]);
    expect(y.type.dtype).toBe('int32');
    expectClose(y.data, INTS.map((x) => I(fn(BigInt(x)))));
  });

  it.each([
    ['add', (a: bigint, b: bigint) => a + b], ['sub', (a: bigint, b: bigint) => a - b], ['mul', (a: bigint, b: bigint) => a * b],
    ['max', (a: bigint, b: bigint) => (a > b ? a : b)], ['min', (a: bigint, b: bigint) => (a < b ? a : b)],
  ] as [Op, (a: bigint, b: bigint) => bigint][])('%s wraps around', (op, fn) => {
    const y = run(op, [arg([INT_PAIRS.length], col(INT_PAIRS, 0), 'int32'), arg([INT_PAIRS.length], col(INT_PAIRS, 1), 'int32')]);
    expectClose(y.data, INT_PAIRS.map(([a, b]) => I(fn(BigInt(a), BigInt(b)))));
  });

  it('div truncates toward zero and wraps INT_MIN / -1', () => {
    const pairs = INT_PAIRS.filter(([, b]) => b !== 0);
    const y = run('div', [arg([pairs.length], col(pairs, 0), 'int32'), arg([pairs.length], col(pairs, 1), 'int32')]);
    expectClose(y.data, pairs.map(([a, b]) => I(BigInt(a) / BigInt(b)))); // BigInt division truncates
    expectClose(run('div', [arg([4], [7, -7, 7, -7], 'int32'), arg([4], [2, 2, -2, -2], 'int32')]).data, [3, -3, -3, 3]);
  });

  it('pow wraps around like repeated multiplication', () => {
    const pairs = [-3, -2, -1, 0, 1, 2, 3, 5, 7, 46341].flatMap((a) => [0, 1, 2, 3, 10, 19, 20, 21, 31, 32, 33, 40].map((b) => [a, b] as const));
    const y = run('pow', [arg([pairs.length], col(pairs, 0), 'int32'), arg([pairs.length], col(pairs, 1), 'int32')]);
    expectClose(y.data, pairs.map(([a, b]) => I(BigInt(a) ** BigInt(b))));
  });

  it('bool and / or / not / eq / ne follow the truth tables', () => {
    const p = [0, 0, 1, 1], q = [0, 1, 0, 1];
    const bin = (op: Op) => Array.from(run(op, [arg([4], p, 'bool'), arg([4], q, 'bool')]).data);
    expect(bin('and')).toEqual([0, 0, 0, 1]);
    expect(bin('or')).toEqual([0, 1, 1, 1]);
    expect(bin('eq')).toEqual([1, 0, 0, 1]);
    expect(bin('ne')).toEqual([0, 1, 1, 0]);
    expect(Array.from(run('not', [arg([2, 2], p, 'bool')]).data)).toEqual([1, 1, 0, 0]);
    expect(run('not', [arg([0], [], 'bool')]).data).toHaveLength(0);
  });

  it.each([
    // from, to, inputs, expected
    ['float32', 'int32', [1.9, -1.9, 0.5, -0.5, -0, 2147483520, 2147483647, -2147483648, 3e9, -3e9, NaN, Infinity, -Infinity],
      [1, -1, 0, 0, 0, 2147483520, INT_MAX, INT_MIN, INT_MAX, INT_MIN, 0, INT_MAX, INT_MIN]], // truncate, saturate, NaN -> 0
    ['float32', 'bool', [0, -0, NaN, 1e-45, -Infinity, 2], [0, 0, 1, 1, 1, 1]],
    ['float32', 'float32', [NaN, -0, 1e-45, -Infinity], [NaN, -0, F(1e-45), -Infinity]],
    ['int32', 'float32', [16777217, 16777219, INT_MAX, INT_MIN, -3], [16777216, 16777220, 2147483648, -2147483648, -3]], // round to nearest even
    ['int32', 'bool', [0, 1, -1, INT_MIN], [0, 1, 1, 1]],
    ['bool', 'float32', [0, 1], [0, 1]],
    ['bool', 'int32', [1, 0], [1, 0]],
  ] as const)('cast %s -> %s', (from, to, xs, want) => {
    const y = run('cast', [arg([xs.length], xs, from)], { dtype: to });
    expect(y.type).toEqual({ dtype: to, shape: [xs.length] });
    expectClose(y.data, want);
  });
});

describe('leaves', () => {
  it('iota counts along its axis; const splats or fills', () => {
    const b = new Builder();
    const shape = [2, 3, 4];
    const g = b.finish('g', [
      { name: 'i1', node: b.iota(shape, 1) }, { name: 'i2', node: b.iota(shape, 2) },
      { name: 'c', node: b.constant(F(0.1), 'float32', [2, 2]) }, { name: 'd', node: b.constant([1, -2, 3], 'int32', [3]) },
      { name: 'e', node: b.iota([0, 3], 1) },
    ]);
    const out = interpret(g, {}).outputs;
    expectClose(out.get('i1')!.data, indices(shape).map((i) => i[1]!));
    expectClose(out.get('i2')!.data, indices(shape).map((i) => i[2]!));
    expectClose(out.get('c')!.data, [F(0.1), F(0.1), F(0.1), F(0.1)]);
    expectClose(out.get('d')!.data, [1, -2, 3]);
    expect(out.get('e')!.data).toHaveLength(0);
  });
});

/** Float64 reduction by index formula. */
function reduceRef(x: readonly number[], shape: Shape, axes: number[], keep: boolean, comb: (a: number, b: number) => number, init: number) {
  const kshape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = new Array<number>(sizeOf(kshape)).fill(init);
  indices(shape).forEach((idx, flat) => {
    const o = ravel(idx.map((v, i) => (axes.includes(i) ? 0 : v)), kshape);
    out[o] = comb(out[o]!, x[flat]!);
  });
  return { shape: keep ? kshape : shape.filter((_, i) => !axes.includes(i)), data: out };
}

const nanMax = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a > b ? a : b);
const nanMin = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a < b ? a : b);
const REDUCERS: [Op, (a: number, b: number) => number, number, number, number][] = [
  // op, combine, identity, data low, data high
  ['reduce_sum', (a, b) => a + b, 0, -1, 1], ['reduce_prod', (a, b) => a * b, 1, 0.5, 1.5],
  ['reduce_max', nanMax, -Infinity, -1, 1], ['reduce_min', nanMin, Infinity, -1, 1],
];

describe('reductions', () => {
  const axesList = [[], [0], [1], [2], [0, 2], [2, 0], [1, 2], [0, 1, 2]];
  it.each(REDUCERS)('%s over every axis set, with and without keepdims', (op, comb, init, lo, hi) => {
    const shape = [3, 4, 5], x = uniform(60, 11, lo, hi);
    for (const axes of axesList) {
      for (const keepdims of [false, true]) {
        const want = reduceRef(x, shape, axes, keepdims, comb, init);
        const y = run(op, [arg(shape, x)], { axes, keepdims });
        expect(y.type.shape).toEqual(want.shape);
        expectClose(y.data, want.data, 1e-6, 1e-5);
      }
    }
  });

  it('sum and prod of empty axes are the identities; empty results are empty', () => {
    expectClose(run('reduce_sum', [arg([2, 0, 3], [])], { axes: [1] }).data, [0, 0, 0, 0, 0, 0]);
    expectClose(run('reduce_prod', [arg([2, 0], [])], { axes: [0, 1], keepdims: true }).data, [1]);
    const y = run('reduce_max', [arg([0, 3], [])], { axes: [1] });
    expect(y.type.shape).toEqual([0]);
    expectClose(run('reduce_sum', [arg([], [2.5])], { axes: [] }).data, [2.5]);
  });

  it('propagates NaN and infinities', () => {
    const x = [1, NaN, 3, Infinity, -Infinity, 2, Infinity, 1, -Infinity, -Infinity, 0, 5];
    for (const [op, comb, init] of REDUCERS) {
      expectClose(run(op, [arg([4, 3], x)], { axes: [1] }).data, reduceRef(x, [4, 3], [1], false, comb, init).data);
    }
  });

  it('int32 reductions wrap around', () => {
    const x = [INT_MAX, 1, 5, INT_MIN, -1, 7, 65536, 65536, 3];
    const big = (f: (a: bigint, b: bigint) => bigint) => (a: number, b: number) => I(f(BigInt(a), BigInt(b)));
    for (const [op, comb, init] of [
      ['reduce_sum', big((a, b) => a + b), 0], ['reduce_prod', big((a, b) => a * b), 1],
      ['reduce_max', Math.max, INT_MIN], ['reduce_min', Math.min, INT_MAX],
    ] as const) {
      for (const axes of [[0], [1], [0, 1]]) {
        const y = run(op, [arg([3, 3], x, 'int32')], { axes });
        expect(y.type.dtype).toBe('int32');
        expectClose(y.data, reduceRef(x, [3, 3], axes, false, comb, init).data);
      }
    }
  });

  it.each(['argmax', 'argmin'] as const)('%s picks the first extreme (NaN counts as extreme)', (op) => {
    const better = op === 'argmax' ? (a: number, b: number) => a > b : (a: number, b: number) => a < b;
    const r = rng(5), shape = [3, 4, 5];
    const xf = Array.from({ length: 60 }, () => [-1, 0, 2, 2, Infinity, -Infinity][Math.floor(r() * 6)]!); // many ties
    const data = { float32: xf, int32: xf.map((v) => Math.max(INT_MIN, Math.min(INT_MAX, v))) };
    for (const dtype of ['float32', 'int32'] as const) for (let axis = 0; axis < 3; axis++) for (const keepdims of [false, true]) {
      const x = data[dtype], oshape = shape.map((d, i) => (i === axis ? 1 : d));
      const want = indices(oshape).map((o) => {
        let best = 0;
        for (let k = 1; k < shape[axis]!; k++) {
          const at = (j: number) => x[ravel(o.map((v, i) => (i === axis ? j : v)), shape)]!;
          if (better(at(k), at(best))) best = k;
        }
        return best;
      });
      const y = run(op, [arg(shape, x, dtype)], { axis, keepdims });
      expect(y.type).toEqual({ dtype: 'int32', shape: keepdims ? oshape : shape.filter((_, i) => i !== axis) });
      expectClose(y.data, want);
    }
    expectClose(run(op, [arg([6], [1, NaN, 3, NaN, -5, 9])], { axis: 0 }).data, [1]);
    expectClose(run(op, [arg([2, 0], [])], { axis: 0 }).data, []);
  });
});

/** out[j] = x[src(j)] for every out index j: the movement ops by their index formulas. */
const moveRef = (x: readonly number[], xs: Shape, os: Shape, src: (j: number[]) => number[] | undefined, fill = 0) =>
  indices(os).map((j) => {
    const i = src(j);
    return i ? x[ravel(i, xs)]! : fill;
  });
const iotaData = (shape: Shape) => Array.from({ length: sizeOf(shape) }, (_, i) => i + 0.5);

describe('movement', () => {
  it.each([
    [[2, 3, 4], [4, 6]], [[2, 3, 4], [24]], [[1, 1], []], [[0, 3], [3, 0, 5]], [[6], [1, 6, 1]],
  ])('reshape %j -> %j keeps row-major order', (xs, os) => {
    const y = run('reshape', [arg(xs, iotaData(xs))], { shape: os });
    expect(y.type.shape).toEqual(os);
    expectClose(y.data, iotaData(xs));
  });

  it.each([
    [[2, 3, 4], [0, 1, 2]], [[2, 3, 4], [0, 2, 1]], [[2, 3, 4], [1, 0, 2]], [[2, 3, 4], [1, 2, 0]], [[2, 3, 4], [2, 0, 1]],
    [[2, 3, 4], [2, 1, 0]], [[0, 2], [1, 0]], [[], []], [[2, 1, 3, 2], [3, 1, 0, 2]],
  ])('transpose %j by %j', (xs, perm) => {
    const os = perm.map((p) => xs[p]!), x = iotaData(xs);
    const y = run('transpose', [arg(xs, x)], { perm });
    expect(y.type.shape).toEqual(os);
    expectClose(y.data, moveRef(x, xs, os, (j) => {
      const i = new Array<number>(xs.length);
      perm.forEach((p, d) => { i[p] = j[d]!; });
      return i;
    }));
  });

  it.each([
    [[3, 1], [2, 3, 4]], [[], [2, 2]], [[1, 4], [3, 4]], [[0], [2, 0]], [[2, 1, 3], [2, 5, 3]], [[3], [3]],
  ])('broadcast %j -> %j', (xs, os) => {
    const x = iotaData(xs), off = os.length - xs.length;
    expectClose(run('broadcast', [arg(xs, x)], { shape: os }).data,
      moveRef(x, xs, os, (j) => xs.map((d, k) => (d === 1 ? 0 : j[k + off]!))));
  });

  it.each([['float32', -0], ['float32', 2.5], ['int32', -7], ['bool', 1]] as const)('broadcast one %s value %d to every element', (dtype, v) => {
    const y = run('broadcast', [arg([1, 1], [v], dtype)], { shape: [2, 3, 4] });
    expect(y.data.length).toBe(24);
    for (const x of y.data) expect(Object.is(x, v)).toBe(true);
  });

  it.each([
    [[5, 6], [0, 0], [5, 6], [1, 1]], [[5, 6], [1, 2], [5, 6], [2, 3]], [[5, 6], [4, 1], [5, 5], [3, 10]],
    [[5, 6], [2, 3], [2, 6], [1, 1]], [[3, 4, 5], [1, 0, 4], [3, 4, 5], [1, 3, 2]], [[0, 4], [0, 1], [0, 4], [1, 2]],
  ])('slice %j from %j to %j by %j', (xs, start, end, step) => {
    const os = xs.map((_, d) => Math.ceil((end[d]! - start[d]!) / step[d]!)), x = iotaData(xs);
    const y = run('slice', [arg(xs, x)], { start, end, step });
    expect(y.type.shape).toEqual(os);
    expectClose(y.data, moveRef(x, xs, os, (j) => j.map((v, d) => start[d]! + v * step[d]!)));
  });

  it.each([
    [[2, 3], [[1, 0], [0, 2]], 0], [[2, 3], [[0, 0], [1, 1]], -Infinity], [[3], [[2, 3]], NaN], [[0, 2], [[1, 1], [0, 0]], 7.5],
    [[], [], 1], [[1, 2, 1], [[0, 1], [2, 0], [1, 1]], -2.5],
  ] as [number[], [number, number][], number][])('pad %j by %j with %d', (xs, padding, value) => {
    const os = xs.map((d, k) => d + padding[k]![0] + padding[k]![1]), x = iotaData(xs);
    const y = run('pad', [arg(xs, x)], { padding, value });
    expect(y.type.shape).toEqual(os);
    expectClose(y.data, moveRef(x, xs, os, (j) => {
      const i = j.map((v, d) => v - padding[d]![0]);
      return i.every((v, d) => v >= 0 && v < xs[d]!) ? i : undefined;
    }, value));
  });

  it.each([
    [0, [[1, 3], [2, 3], [0, 3]]], [1, [[2, 1], [2, 0], [2, 4]]], [2, [[2, 2, 1], [2, 2, 3]]], [0, [[4]]], [1, [[0, 2], [0, 3]]],
  ])('concat on axis %i of %j', (axis, shapes) => {
    const xs = shapes.map((s, k) => iotaData(s).map((v) => v + 100 * k));
    const os = shapes[0]!.map((d, i) => (i === axis ? shapes.reduce((n, s) => n + s[axis]!, 0) : d));
    const want = indices(os).map((j) => {
      let at = j[axis]!, k = 0;
      while (at >= shapes[k]![axis]!) at -= shapes[k++]![axis]!;
      return xs[k]![ravel(j.map((v, d) => (d === axis ? at : v)), shapes[k]!)]!;
    });
    const y = run('concat', shapes.map((s, k) => arg(s, xs[k]!)), { axis });
    expect(y.type.shape).toEqual(os);
    expectClose(y.data, want);
  });

  it.each([
    [[4, 3], 0, [2], [3, 0]], [[3, 4, 2], 1, [2, 2], [3, 0, 1, 3]], [[2, 5], 1, [], [4]], [[2, 3, 2], 2, [3], [1, 1, 0]],
    [[3, 2], 0, [0], []], [[4], 0, [4], [-3, 99, 2, 4]], // out-of-range indices are clamped into range
  ])('gather %j on axis %i with indices %j', (xs, axis, ishape, idx) => {
    const x = iotaData(xs), os = [...xs.slice(0, axis), ...ishape, ...xs.slice(axis + 1)], r = ishape.length;
    const want = moveRef(x, xs, os, (j) => {
      const k = idx[ravel(j.slice(axis, axis + r), ishape)]!;
      return [...j.slice(0, axis), Math.min(xs[axis]! - 1, Math.max(0, k)), ...j.slice(axis + r)];
    });
    const y = run('gather', [arg(xs, x), arg(ishape, idx, 'int32')], { axis });
    expect(y.type.shape).toEqual(os);
    expectClose(y.data, want);
  });
});

describe('matmul', () => {
  /** Naive float64 batched matmul. */
  const ref = (a: readonly number[], b: readonly number[], batch: number, m: number, k: number, n: number) =>
    Array.from({ length: batch * m * n }, (_, o) => {
      const t = Math.floor(o / (m * n)), i = Math.floor(o / n) % m, j = o % n;
      let s = 0;
      for (let p = 0; p < k; p++) s += a[(t * m + i) * k + p]! * b[(t * k + p) * n + j]!;
      return s;
    });

  it.each([
    [[], 1, 1, 1], [[], 3, 5, 4], [[], 7, 64, 9], [[2], 3, 4, 5], [[2, 3], 4, 5, 2], [[], 0, 3, 2], [[], 2, 0, 3], [[0], 2, 2, 2],
  ])('batch %j, %i x %i @ x %i', (bs, m, k, n) => {
    const batch = sizeOf(bs), a = uniform(batch * m * k, 21), b = uniform(batch * k * n, 22);
    const y = run('matmul', [arg([...bs, m, k], a), arg([...bs, k, n], b)]);
    expect(y.type.shape).toEqual([...bs, m, n]);
    expectClose(y.data, ref(a, b, batch, m, k, n), 1e-5, 1e-5);
  });

  it('propagates NaN and inf', () => {
    const a = [Infinity, 1, NaN, 2], b = [0, 1, 1, 1];
    expectClose(run('matmul', [arg([2, 2], a), arg([2, 2], b)]).data, ref(a, b, 1, 2, 2, 2));
  });

  it('int32 wraps around', () => {
    const a = [INT_MAX, 2, 65536, -7, 3, 46341], b = [2, 65536, -1, 46341, 123456789, INT_MIN];
    const want = Array.from({ length: 4 }, (_, o) => {
      const i = o >> 1, j = o & 1;
      let s = 0n;
      for (let p = 0; p < 3; p++) s += BigInt(a[i * 3 + p]!) * BigInt(b[p * 2 + j]!);
      return I(s);
    });
    expectClose(run('matmul', [arg([2, 3], a, 'int32'), arg([3, 2], b, 'int32')]).data, want);
  });
});

interface ConvAttrs { strides: number[]; padding: [number, number][]; dilation: number[]; lhsDilation: number[]; groups: number }

/** Direct float64 convolution over an explicitly lhs-dilated and padded copy of the input (negative padding crops). */
function convRef(x: readonly number[], xs: Shape, k: readonly number[], ks: Shape, a: ConvAttrs) {
  const nsp = xs.length - 2, sp = (d: number) => d > 0 && d <= nsp;
  const ps = xs.map((n, d) => (sp(d) ? (n === 0 ? 0 : (n - 1) * a.lhsDilation[d - 1]! + 1) + a.padding[d - 1]![0] + a.padding[d - 1]![1] : n));
  const xp = indices(ps).map((j) => {
    const i = j.map((v, d) => (sp(d) ? v - a.padding[d - 1]![0] : v));
    if (i.some((v, d) => sp(d) && (v < 0 || v % a.lhsDilation[d - 1]! !== 0 || v / a.lhsDilation[d - 1]! >= xs[d]!))) return 0;
    return x[ravel(i.map((v, d) => (sp(d) ? v / a.lhsDilation[d - 1]! : v)), xs)]!;
  });
  const win = ks.slice(0, nsp), cin = ks[nsp]!, cout = ks[nsp + 1]!;
  const outSp = win.map((w, d) => {
    const keff = (w - 1) * a.dilation[d]! + 1;
    let count = 0;
    for (let s = 0; s + keff <= ps[d + 1]!; s += a.strides[d]!) count++;
    return count;
  });
  const os = [xs[0]!, ...outSp, cout];
  const data = indices(os).map((o) => {
    const co = o[nsp + 1]!, g = Math.floor(co / (cout / a.groups));
    let acc = 0;
    for (const w of indices(win)) {
      for (let ci = 0; ci < cin; ci++) {
        const p = [o[0]!, ...w.map((wv, d) => o[d + 1]! * a.strides[d]! + wv * a.dilation[d]!), g * cin + ci];
        acc += xp[ravel(p, ps)]! * k[ravel([...w, ci, co], ks)]!;
      }
    }
    return acc;
  });
  return { shape: os, data };
}

describe('conv', () => {
  const c = (nsp: number, o: Partial<ConvAttrs> = {}): ConvAttrs => ({
    strides: Array(nsp).fill(1), padding: Array(nsp).fill([0, 0]), dilation: Array(nsp).fill(1), lhsDilation: Array(nsp).fill(1), groups: 1, ...o,
  });
  it.each([
    ['plain', [2, 5, 6, 3], [3, 2, 3, 4], c(2)],
    ['strided', [1, 7, 8, 2], [3, 3, 2, 3], c(2, { strides: [2, 3] })],
    ['padded', [1, 4, 5, 2], [3, 3, 2, 2], c(2, { padding: [[1, 1], [2, 0]] })],
    ['dilated', [1, 7, 7, 1], [3, 2, 1, 2], c(2, { dilation: [2, 3] })],
    ['lhs-dilated', [1, 3, 4, 2], [3, 3, 2, 2], c(2, { lhsDilation: [2, 3], padding: [[2, 2], [1, 2]] })],
    ['grouped', [2, 4, 4, 6], [2, 2, 2, 6], c(2, { groups: 3 })],
    ['depthwise', [1, 5, 5, 4], [3, 3, 1, 8], c(2, { groups: 4, padding: [[1, 1], [1, 1]] })],
    ['negative padding', [1, 6, 6, 1], [2, 2, 1, 1], c(2, { padding: [[-1, 0], [0, -2]] })],
    ['everything', [2, 5, 5, 4], [3, 3, 2, 4], c(2, { strides: [2, 1], padding: [[1, -1], [2, 0]], dilation: [1, 2], lhsDilation: [2, 1], groups: 2 })],
    ['1-d', [2, 9, 4], [3, 2, 6], c(1, { strides: [2], padding: [[1, 1]], dilation: [2], groups: 2 })],
    ['3-d', [1, 4, 3, 5, 2], [2, 2, 3, 2, 3], c(3, { strides: [1, 2, 1], padding: [[0, 1], [1, 1], [0, 0]] })],
    ['empty batch', [0, 4, 4, 2], [2, 2, 2, 1], c(2)],
    ['window larger than input', [1, 2, 2, 1], [3, 3, 1, 1], c(2)],
    ['empty lhs-dilated input', [1, 0, 3, 1], [1, 1, 1, 1], c(2, { lhsDilation: [2, 1], padding: [[1, 1], [0, 0]] })],
  ] as [string, number[], number[], ConvAttrs][])('%s', (_, xs, ks, attrs) => {
    const x = uniform(sizeOf(xs), 31), k = uniform(sizeOf(ks), 32);
    const want = convRef(x, xs, k, ks, attrs);
    const y = run('conv', [arg(xs, x), arg(ks, k)], attrs as unknown as Attrs);
    expect(y.type.shape).toEqual(want.shape);
    expectClose(y.data, want.data, 1e-5, 1e-5);
  });

  it('propagates NaN and inf only into windows that see them', () => {
    const xs = [1, 4, 4, 1], ks = [2, 2, 1, 1], x = uniform(16, 33), k = uniform(4, 34);
    x[0] = NaN;
    x[15] = Infinity;
    expectClose(run('conv', [arg(xs, x), arg(ks, k)], c(2) as unknown as Attrs).data, convRef(x, xs, k, ks, c(2)).data, 1e-5, 1e-5);
  });
});

describe('reduce_window', () => {
  /** Windows over an explicitly padded copy of the input (padding holds the identity: -inf for max, 0 for sum). */
  function windowRef(x: readonly number[], xs: Shape, kind: 'max' | 'sum', window: number[], strides: number[], padding: [number, number][], lowest = -Infinity) {
    const nsp = xs.length - 2, init = kind === 'max' ? lowest : 0;
    const ps = xs.map((n, d) => (d > 0 && d <= nsp ? n + padding[d - 1]![0] + padding[d - 1]![1] : n));
    const xp = indices(ps).map((j) => {
      const i = j.map((v, d) => (d > 0 && d <= nsp ? v - padding[d - 1]![0] : v));
      return i.every((v, d) => v >= 0 && v < xs[d]!) ? x[ravel(i, xs)]! : init;
    });
    const os = xs.map((n, d) => (d > 0 && d <= nsp ? Math.max(0, Math.floor((ps[d]! - window[d - 1]!) / strides[d - 1]!) + 1) : n));
    return {
      shape: os, data: indices(os).map((o) => indices(window).reduce((acc, w) => {
        const v = xp[ravel(o.map((ov, d) => (d > 0 && d <= nsp ? ov * strides[d - 1]! + w[d - 1]! : ov)), ps)]!;
        return kind === 'sum' ? acc + v : Number.isNaN(acc) || Number.isNaN(v) ? NaN : Math.max(acc, v);
      }, init)),
    };
  }

  it.each([
    ['max', [1, 4, 4, 2], [2, 2], [2, 2], [[0, 0], [0, 0]]],
    ['max', [2, 5, 4, 3], [3, 3], [1, 1], [[1, 1], [1, 1]]],
    ['sum', [2, 5, 4, 3], [3, 3], [2, 2], [[1, 0], [0, 1]]],
    ['sum', [1, 3, 3, 1], [3, 3], [1, 1], [[2, 2], [2, 2]]],
    ['max', [2, 7, 3], [3], [2], [[0, 0]]],
    ['max', [1, 2, 2, 1], [2, 2], [2, 2], [[2, 0], [0, 0]]], // first window row lies wholly in padding
    ['sum', [0, 4, 4, 1], [2, 2], [1, 1], [[0, 0], [0, 0]]],
    ['max', [1, 2, 2, 1], [3, 3], [1, 1], [[0, 0], [0, 0]]],
  ] as ['max' | 'sum', number[], number[], number[], [number, number][]][])('%s %j window %j strides %j padding %j', (kind, xs, window, strides, padding) => {
    const x = uniform(sizeOf(xs), 41);
    if (x.length > 5) { x[3] = NaN; x[5] = -Infinity; }
    const want = windowRef(x, xs, kind, window, strides, padding);
    const y = run('reduce_window', [arg(xs, x)], { kind, window, strides, padding });
    expect(y.type.shape).toEqual(want.shape);
    expectClose(y.data, want.data, 1e-6, 1e-6);
  });

  it('int32 sums exactly with wrap-around; an int32 max over padding only is INT_MIN', () => {
    const x = [16777217, 1, INT_MAX, 1, -5, 3];
    const attrs = { window: [2], strides: [2], padding: [[0, 0]] as [number, number][] };
    expectClose(run('reduce_window', [arg([1, 6, 1], x, 'int32')], { kind: 'sum', ...attrs }).data, [16777218, INT_MIN, -2]);
    const y = run('reduce_window', [arg([1, 2, 1], [-7, 4], 'int32')], { kind: 'max', window: [2], strides: [2], padding: [[2, 0]] });
    expectClose(y.data, windowRef([-7, 4], [1, 2, 1], 'max', [2], [2], [[2, 0]], INT_MIN).data);
  });
});

describe('random_uniform and interpret', () => {
  it('random_uniform is philoxUniform of (seed, counter) and lies in [0, 1)', () => {
    const y = run('random_uniform', [arg([], [3], 'int32')], { seed: 42, shape: [3, 5] });
    expect(y.type).toEqual(f32(3, 5));
    expectClose(y.data, philoxUniform(15, 42, 3));
    expect(Array.from(y.data).every((v) => v >= 0 && v < 1)).toBe(true);
    expect(Array.from(run('random_uniform', [arg([], [4], 'int32')], { seed: 42, shape: [3, 5] }).data)).not.toEqual(Array.from(y.data));
    expect(run('random_uniform', [arg([], [3], 'int32')], { seed: 42, shape: [0, 2] }).data).toHaveLength(0);
  });

  it('binds inputs and params by name, returns outputs and updates, and rejects bad bindings', () => {
    const b = new Builder();
    const x = b.input('x', f32(2)), w = b.param('w', f32(2));
    const y = b.emit('mul', [x, w]);
    const g = b.finish('g', [{ name: 'y', node: y }], [{ param: w, value: b.emit('add', [w, y]) }]);
    const r = interpret(g, { x: Float32Array.from([2, 3]) }, new Map([['w', Float32Array.from([0.5, -1])]]));
    expectClose(r.outputs.get('y')!.data, [1, -3]);
    expectClose(r.updates.get('w')!.data, [1.5, -4]);
    expect(() => interpret(g, {}, { w: new Float32Array(2) })).toThrow(/g: no value given for input 'x' \(f32\[2\]\)/);
    expect(() => interpret(g, { x: new Int32Array(2) }, { w: new Float32Array(2) })).toThrow(/input 'x' expects f32\[2\], got Int32Array of 2 elements/);
    expect(() => interpret(g, { x: new Float32Array(2) }, { w: new Float32Array(3) })).toThrow(/param 'w' expects f32\[2\], got Float32Array of 3 elements/);
  });

  it('binds by own keys only: a missing input named constructor is missing, not Object', () => {
    const b = new Builder();
    const x = b.input('constructor', f32(2));
    const g = b.finish('g', [{ name: 'y', node: b.emit('neg', [x]) }]);
    expect(() => interpret(g, {})).toThrow(/^g: no value given for input 'constructor' \(f32\[2\]\)$/);
    expectClose(interpret(g, { constructor: Float32Array.from([1, -2]) }).outputs.get('y')!.data, [-1, 2]);
  });
});
