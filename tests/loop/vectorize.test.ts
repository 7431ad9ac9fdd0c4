// vectorize: which loops each target renders as vector code (canVectorize), and what becomes of the others.
import { describe, expect, it } from 'vitest';
import { E, type Expr, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { LLVM_VECTORS, SIMD128, canVectorize, fitVectorLoops } from '../../codegen/loop/vectorize.js';

type For = Extract<Stmt, { k: 'for' }>;
const i = E.v('i'), j = E.v('j');
const x = (idx: Expr) => E.load('x', idx, 'f32');
const vloop = (body: Stmt[], extent = 16): For => S.for('i', extent, body, 'vector') as For;
const store = (value: Expr, idx: Expr = i) => S.store('y', idx, value);

/** [what, loop, on LLVM, on wasm] */
const CASES: [string, For, boolean, boolean][] = [
  ['an f32 multiply-add', vloop([store(E.binary('add', E.binary('mul', x(i), E.f32(2)), x(E.add(i, E.i32(16)))))]), true, true],
  ['exp (no f32x4 form)', vloop([store(E.unary('exp', x(i)))]), true, false],
  ['sign (compares and selects once legalized)', vloop([store(E.unary('sign', x(i)))]), true, true],
  ['max of lanes and an invariant load', vloop([store(E.binary('max', x(i), x(j)))]), true, true],
  ['a decl, a compare mask and a select', vloop([S.decl('t', 'f32', x(i)), store(E.select(E.binary('lt', E.v('t', 'f32'), E.f32(0)), E.f32(0), E.v('t', 'f32')))]), true, true],
  ['a bool mask cast to f32', vloop([store(E.cast('f32', E.binary('gt', x(i), E.f32(1))))]), true, true],
  ['i32 lanes', vloop([S.store('a', i, E.binary('add', E.load('a', E.add(i, E.i32(16)), 'i32'), E.i32(1)))]), true, false],
  ['the lane index as a value', vloop([store(E.cast('f32', i))]), true, false],
  ['philox', vloop([store({ k: 'philox', t: 'f32', seed: 1, counter: E.i32(0), index: i })]), true, false],
  ['a strided load (a gather)', vloop([store(x(E.mul(i, E.i32(2))))]), false, false],
  ['a load through floor division', vloop([store(x(E.idiv(i, 2)))]), false, false],
  ['an invariant floor division in a contiguous index', vloop([store(x(E.add(E.mul(E.idiv(j, 3), E.i32(16)), i)))]), true, true],
  ['a store to one element from every lane', vloop([store(x(i), j)]), false, false],
  ['an assign to an outer decl', vloop([S.assign('acc', E.binary('add', E.v('acc', 'f32'), x(i)))]), false, false],
  ['a nested loop', vloop([S.for('k', 2, [store(x(i))])]), false, false],
  ['two lanes', vloop([store(x(i))], 2), true, false],
  ['200 lanes', vloop([store(x(i))], 200), false, true],
];

describe('canVectorize', () => {
  it.each(CASES)('%s: llvm %s, wasm %s', (_, loop, llvm, wasm) => {
    expect(canVectorize(loop, { vector: LLVM_VECTORS })).toBe(llvm);
    expect(canVectorize(loop, { vector: SIMD128 })).toBe(wasm);
  });

  it('is false for every loop on a target without vector loops', () => {
    for (const [, loop] of CASES) expect(canVectorize(loop, {})).toBe(false);
  });
});

describe('fitVectorLoops', () => {
  const program = (body: Stmt[]): Program => ({
    name: 'p', buffers: [{ name: 'x', dtype: 'float32', size: 64, kind: 'input' }, { name: 'y', dtype: 'float32', size: 64, kind: 'output' }],
    kernels: [{ name: 'k', ops: [], body }], inputs: [{ name: 'x', buffer: 'x' }], params: [], outputs: [{ name: 'y', buffer: 'y' }], updates: [],
  });
  const kinds = (p: Program): string[] => {
    const out: string[] = [];
    const walk = (ss: readonly Stmt[]): void => ss.forEach((s) => { if (s.k === 'for') { out.push(`${s.v}:${s.kind}`); walk(s.body); } });
    walk(p.kernels[0]!.body);
    return out;
  };

  it('keeps vector loops the target renders, unrolls small ones over arrays it keeps in registers, makes the rest serial', () => {
    const p = program([
      S.for('j', 2, [
        S.local('acc', 'f32', 16), S.local('big', 'f32', 80),
        S.for('i', 16, [S.store('acc', i, E.unary('exp', x(i)))], 'vector'), // over a register array: unrolled on wasm
        S.for('c', 16, [S.store('y', E.v('c'), E.unary('exp', E.load('acc', E.v('c'), 'f32')))], 'vector'),
        S.for('b', 16, [S.store('y', E.v('b'), E.unary('exp', E.load('big', E.v('b'), 'f32')))], 'vector'), // not kept in wasm locals
        S.for('d', 16, [S.store('y', E.add(E.v('d'), E.i32(16)), E.unary('exp', x(E.v('d'))))], 'vector'), // serial on wasm
        S.for('e', 16, [S.store('y', E.add(E.v('e'), E.i32(32)), E.unary('neg', x(E.v('e'))))], 'vector'), // vector everywhere
      ]),
    ]);
    expect(kinds(fitVectorLoops(p, { vector: LLVM_VECTORS }, { maxWork: 4096 }))).toEqual(['j:serial', 'i:vector', 'c:vector', 'b:vector', 'd:vector', 'e:vector']);
    expect(kinds(fitVectorLoops(p, { vector: SIMD128 }, { registers: () => new Set(['acc']) }))).toEqual(['j:serial', 'i:unroll', 'c:unroll', 'b:serial', 'd:serial', 'e:vector']);
    expect(kinds(fitVectorLoops(p, {}))).toEqual(['j:serial', 'i:unroll', 'c:unroll', 'b:unroll', 'd:serial', 'e:serial']);
    expect(kinds(fitVectorLoops(p, {}, { maxWork: 15 }))).toEqual(['j:serial', 'i:serial', 'c:serial', 'b:serial', 'd:serial', 'e:serial']);
  });
});
