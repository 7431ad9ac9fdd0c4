// int8 dot products on the wasm target: the i32 vector lanes SIMD128 renders for int8 kernels (dot2 as
// i32x4.dot_i16x8_s, pack16, int8 loads and stores, f32 <-> i32 casts, i32 selects, splatted row pairs) against the
// loop interpreter, the requantization helpers in wasm (requant.ts) against ir/quant.ts on edge operands, and the
// seed MLP's, the CNN's and random graphs' int8 matmuls and convolutions scheduled as pair dot products (pairDot +
// the micro-kernel) and equal to the graph interpreter bit for bit.
import { describe, expect, it } from 'vitest';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { E, type Expr, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { planMemory } from '../../codegen/loop/memplan.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { runPipeline } from '../../driver/pipeline.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { roundingDivideByPOT, srdhm } from '../../ir/quant.js';
import type { TypedArray } from '../../ir/types.js';
import { expectSame, rng } from '../ir/helpers.js';
import { QUANT_CASES } from './graphs.js';
import { randomQuantGraph } from './random.js';

/** i32x4.dot_i16x8_s's opcode (0xfd, then 186 as LEB128) in a module's code. */
function hasDotI16x8(bin: Uint8Array): boolean {
  for (let i = 0; i + 2 < bin.length; i++) if (bin[i] === 0xfd && bin[i + 1] === 0xba && bin[i + 2] === 0x01) return true;
  return false;
}

// 14 lanes: three vectors of four and a scalar tail of two
const N = 14, i = E.v('i');
const ld = (buf: string, t: 'i32' | 'f32' = 'i32', idx: Expr = i) => E.load(buf, idx, t);
const edges = [0, 1, -1, 0x7fff, -0x8000, 0x8000, 0x7fff7fff, -0x80000000, 0x80008000 | 0, 0x12345678, -0x1234567, -0x7fff8000, 0x00ff00ff, -2];

/** A program of one kernel over the given i32, int8 and f32 inputs, writing i32, int8 and f32 outputs. */
function program(body: Stmt[], outs: Record<string, 'int32' | 'int8' | 'float32'>): Program {
  const inputs = { a: 'int32', b: 'int32', c8: 'int8', f: 'float32' } as const;
  return {
    name: 'p', kernels: [{ name: 'k', ops: [], body }], params: [], updates: [],
    buffers: [...Object.entries(inputs).map(([name, dtype]) => ({ name, dtype, size: N, kind: 'input' as const })),
      ...Object.entries(outs).map(([name, dtype]) => ({ name, dtype, size: N, kind: 'output' as const }))],
    inputs: Object.keys(inputs).map((name) => ({ name, buffer: name })), outputs: Object.keys(outs).map((name) => ({ name, buffer: name })),
  };
}

const INPUTS: Record<string, TypedArray> = {
  a: Int32Array.from(edges),
  b: Int32Array.from(edges, (v, k) => edges[(k * 5 + 3) % N]! ^ v),
  c8: Int8Array.from([127, -128, -1, 0, 1, 100, -100, 27, -27, 64, -65, 3, 126, -127]),
  f: Float32Array.from([NaN, Infinity, -Infinity, 3e9, -3e9, 2147483520, -2147483648, 0.5, -0.5, 1.5, -2.5, 127.9, -1e-30, 7]),
};

describe('i32 vector lanes on wasm equal the loop interpreter', () => {
  const cases: [string, Stmt[], Record<string, 'int32' | 'int8' | 'float32'>][] = [
    ['dot2 of edge values (-32768² twice wraps) and pack16 of int8 lanes', [S.for('i', N, [
      S.store('d', i, E.binary('dot2', ld('a'), ld('b'))),
      S.store('p', i, E.binary('pack16', E.add(ld('c8'), E.i32(-128)), ld('c8'))),
      S.store('q', i, E.binary('dot2', E.binary('pack16', ld('c8'), E.binary('sub', ld('c8'), E.i32(127))), ld('a'))),
    ], 'vector')], { d: 'int32', p: 'int32', q: 'int32' }],
    // the store keeps each lane's low byte, as store8 does (127 + 100 wraps)
    ['int8 loads and stores, products', [S.for('i', N, [
      S.store('o8', i, E.add(ld('c8'), E.i32(100))),
      S.store('m', i, E.mul(ld('a'), ld('c8'))),
    ], 'vector')], { o8: 'int8', m: 'int32' }],
    ['f32 -> i32 (saturating, NaN to 0), i32 -> f32, an i32 select on an f32 mask', [S.for('i', N, [
      S.store('t', i, E.cast('i32', ld('f', 'f32'))),
      S.store('g', i, E.cast('f32', ld('a'))),
      S.store('s', i, E.select(E.binary('lt', ld('f', 'f32'), E.f32(1)), ld('a'), ld('b'))),
    ], 'vector')], { t: 'int32', g: 'float32', s: 'int32' }],
    // decls loaded outside the vector loop and read only in it: splatted (an int8 one sign-extended first)
    ['a row pair and an int8 value splatted across the lanes', [
      S.decl('x', 'i32', ld('a', 'i32', E.i32(6))), S.decl('z', 'i32', ld('c8', 'i32', E.i32(1))),
      S.for('i', N, [S.store('d', i, E.add(E.binary('dot2', E.v('x'), ld('b')), E.v('z')))], 'vector'),
    ], { d: 'int32' }],
  ];
  it.each(cases)('%s', (_, body, outs) => {
    const p = program(body, outs);
    const art = renderWasm(p, planMemory(p));
    const got = new WasmRunner(p, art).run(INPUTS, {}).outputs;
    const want = runProgram(p, INPUTS, {}).outputs;
    for (const name of Object.keys(outs)) expectSame(got.get(name)!, want.get(name)!);
    expect(hasDotI16x8(art.binary)).toBe(JSON.stringify(body).includes('"dot2"'));
  });

  it('a register tile of i32 accumulators: dot2 into v128 locals, read back lane by lane', () => {
    // acc[m, c] += dot2(a[m], b[c]) over the tile, then out[m * 4 + c] = acc[m, c] + 1 unrolled (extract_lane)
    // (loop names are unique per kernel: each tile loop pair its own)
    const tile = (n: number, kinds: ['unroll' | 'vector', 'unroll' | 'vector'], f: (at: Expr, m: Expr, c: Expr) => Stmt): Stmt => {
      const [m, c] = [E.v(`m${n}`), E.v(`c${n}`)];
      return S.for(`m${n}`, 2, [S.for(`c${n}`, 4, [f(E.add(E.mul(m, E.i32(4)), c), m, c)], kinds[1])], kinds[0]);
    };
    const body: Stmt[] = [S.local('acc', 'i32', 8, 'register'),
      tile(0, ['unroll', 'vector'], (at) => S.store('acc', at, E.i32(0))),
      S.for('k', 3, [tile(1, ['unroll', 'vector'], (at, m, c) => S.store('acc', at, E.add(E.load('acc', at, 'i32'),
        E.binary('dot2', ld('a', 'i32', E.add(E.mul(E.v('k'), E.i32(2)), m)), ld('b', 'i32', E.add(E.v('k'), c))))))]),
      tile(2, ['unroll', 'unroll'], (at) => S.store('d', at, E.add(E.load('acc', at, 'i32'), E.i32(1)))),
    ];
    const p = program(body, { d: 'int32' });
    const got = new WasmRunner(p, renderWasm(p, planMemory(p))).run(INPUTS, {}).outputs.get('d')!;
    expectSame(got.subarray(0, 8), runProgram(p, INPUTS, {}).outputs.get('d')!.subarray(0, 8));
  });
});

describe('requantization in wasm (qmulhi, qshr on i64) equals ir/quant.ts', () => {
  it('on edge operands (INT32_MIN squared saturates, ties) and random ones, every shift 0..31', () => {
    const MIN = -(2 ** 31), MAX = 2 ** 31 - 1, edges = [MIN, MIN + 1, -1073741824, -65536, -3, -2, -1, 0, 1, 2, 3, 65535, 1073741824, MAX - 1, MAX];
    const r = rng(5), rand = () => Math.floor(r() * 2 ** 32) - 2 ** 31;
    const pairs = [...edges.flatMap((a) => edges.map((b) => [a, b])), ...Array.from({ length: 4000 }, () => [rand(), rand()])];
    const n = pairs.length, a = Int32Array.from(pairs, (p) => p[0]!), b = Int32Array.from(pairs, (p) => p[1]!), e = Int32Array.from(pairs, (_, k) => k % 32);
    const io = (name: string, kind: 'input' | 'output') => ({ name, dtype: 'int32' as const, size: n, kind });
    const j = E.v('j');
    const p: Program = {
      name: 'p', params: [], updates: [], buffers: [io('a', 'input'), io('b', 'input'), io('e', 'input'), io('hi', 'output'), io('sh', 'output')],
      kernels: [{ name: 'k', ops: [], body: [S.for('j', n, [
        S.store('hi', j, E.binary('qmulhi', E.load('a', j, 'i32'), E.load('b', j, 'i32'))),
        S.store('sh', j, E.binary('qshr', E.load('a', j, 'i32'), E.load('e', j, 'i32'))),
      ])] }],
      inputs: [{ name: 'a', buffer: 'a' }, { name: 'b', buffer: 'b' }, { name: 'e', buffer: 'e' }], outputs: [{ name: 'hi', buffer: 'hi' }, { name: 'sh', buffer: 'sh' }],
    };
    const got = new WasmRunner(p, renderWasm(p, planMemory(p))).run({ a, b, e }, {}).outputs;
    expectSame(got.get('hi')!, Int32Array.from(pairs, ([x, y]) => srdhm(x!, y!)));
    expectSame(got.get('sh')!, Int32Array.from(pairs, ([x], k) => roundingDivideByPOT(x!, k % 32)));
    expect(got.get('hi')![edges.length * 0]).toBe(MAX); // MIN * MIN
  });
});

/** The contractions scheduled as pair dot products: one buffer of row pairs each. */
const pairNests = (p: Program) => p.buffers.filter((b) => b.name.startsWith('pairs_')).length;

function expectWasmEqualsInterpreter(g: Graph, inputs: Record<string, TypedArray>, params: Record<string, TypedArray>, exact: (name: string) => boolean): Program {
  const c = runPipeline(g, { caps: WASM_CAPS });
  const art = renderWasm(c.program, c.memory);
  expect(hasDotI16x8(art.binary)).toBe(true);
  const got = new WasmRunner(c.program, art).run(inputs, params).outputs;
  const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs;
  for (const [k, v] of want) if (exact(k)) expectSame(got.get(k)!, v.data);
  return c.program;
}

describe('int8 matmuls and convolutions on wasm as i32x4.dot_i16x8_s, bit for bit', () => {
  // mlp: the 32-column layer, cnn: both convolutions (the 10-column Dense layers have no register tile on wasm:
  // plain integer loops)
  it.each([['mlp', 1], ['cnn', 2]] as const)('%s: %i pair-dot nests', (name, nests) => {
    const { g, inputs, params, exact } = QUANT_CASES[name]!();
    const p = expectWasmEqualsInterpreter(g, inputs, params, (k) => exact.includes(k));
    expect(pairNests(p)).toBe(nests);
  });

  it.each([3, 11])('random int8 matmuls and convolutions (seed %i)', (seed) => {
    const { g, inputs, params } = randomQuantGraph(seed);
    const p = expectWasmEqualsInterpreter(g, inputs, params, () => true);
    expect(pairNests(p)).toBeGreaterThan(0);
  });
});
