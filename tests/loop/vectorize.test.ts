// vectorize: which loops each target renders as vector code (canVectorize), what the schedule makes of the others
// (laneKinds), that the pipeline hands renderers no vector loop without a vector form, and that renderers refuse one.
import { describe, expect, it } from 'vitest';
import { E, type Expr, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { planMemory } from '../../codegen/loop/memplan.js';
import { type TargetCaps } from '../../codegen/loop/schedule.js';
import { laneKinds, vectorize } from '../../codegen/loop/schedules/index.js';
import { laneFactor } from '../../codegen/loop/schedules/cpu_kinds.js';
import { LLVM_VECTORS, SIMD128, type VectorCaps, canVectorize, checkVectorLoops } from '../../codegen/loop/vectorize.js';
import { LLVM_CAPS } from '../../codegen/llvm/target.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { runPipeline } from '../../driver/pipeline.js';
import { parseGraph } from '../../ir/parser.js';
import { randomGraph } from '../passes/random_graphs.js';
import { sched } from './schedules/helpers.js';

type For = Extract<Stmt, { k: 'for' }>;
const i = E.v('i'), j = E.v('j');
const x = (idx: Expr) => E.load('x', idx, 'f32');
const vloop = (body: Stmt[], extent = 16): For => S.for('i', extent, body, 'vector') as For;
const store = (value: Expr, idx: Expr = i) => S.store('y', idx, value);
const LLVM = { vector: LLVM_VECTORS, legal: { ieeeMinMax: false } }, WASM = { vector: SIMD128, legal: { ieeeMinMax: true } };
/** [what, loop, on LLVM, on wasm] */
const CASES: [string, For, boolean, boolean][] = [
  ['an f32 multiply-add', vloop([store(E.binary('add', E.binary('mul', x(i), E.f32(2)), x(E.add(i, E.i32(16)))))]), true, true],
  ['log (no f32x4 form)', vloop([store(E.unary('log', x(i)))]), true, false],
  ['exp, tanh and recip (f64x2 and f32x4 forms)', vloop([store(E.unary('recip', E.unary('tanh', E.unary('exp', x(i)))))]), true, true],
  ['sign (compares and selects once legalized)', vloop([store(E.unary('sign', x(i)))]), true, true],
  ['max of lanes and an invariant load', vloop([store(E.binary('max', x(i), x(j)))]), true, true],
  ['a decl, a compare mask and a select', vloop([S.decl('t', 'f32', x(i)), store(E.select(E.binary('lt', E.v('t', 'f32'), E.f32(0)), E.f32(0), E.v('t', 'f32')))]), true, true],
  ['a bool mask cast to f32', vloop([store(E.cast('f32', E.binary('gt', x(i), E.f32(1))))]), true, true],
  // wasm: the i32 ops of int8 kernels (SIMD128.ints), no integer division
  ['i32 lanes', vloop([S.store('a', i, E.binary('add', E.load('a', E.add(i, E.i32(16)), 'i32'), E.i32(1)))]), true, true],
  ['dot2 and pack16 of i32 lanes', vloop([S.store('a', i, E.binary('dot2', E.binary('pack16', E.load('a', E.add(i, E.i32(16)), 'i32'), E.i32(3)), E.v('j', 'i32')))]), true, true],
  ['i32 division', vloop([S.store('a', i, E.binary('div', E.load('a', E.add(i, E.i32(16)), 'i32'), E.i32(3)))]), true, false],
  ['the lane index as a value', vloop([store(E.cast('f32', i))]), true, false],
  // wasm: lane groups that are whole Philox blocks (index 4 * anything + i, codegen/loop/philox_lanes.ts)
  ['philox', vloop([store({ k: 'philox', t: 'f32', seed: 1, counter: E.i32(0), index: i })]), true, true],
  ['philox off its blocks', vloop([store({ k: 'philox', t: 'f32', seed: 1, counter: E.i32(0), index: E.add(i, E.i32(2)) })]), true, false],
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
    expect(canVectorize(loop, LLVM)).toBe(llvm);
    expect(canVectorize(loop, WASM)).toBe(wasm);
  });

  it('is false for every loop on a target without vector loops', () => {
    for (const [, loop] of CASES) expect(canVectorize(loop, { legal: { ieeeMinMax: false } })).toBe(false);
  });
});

const program = (body: Stmt[]): Program => ({
  name: 'p', buffers: [{ name: 'x', dtype: 'float32', size: 64, kind: 'input' }, { name: 'y', dtype: 'float32', size: 64, kind: 'output' }],
  kernels: [{ name: 'k', ops: [], body }], inputs: [{ name: 'x', buffer: 'x' }], params: [], outputs: [{ name: 'y', buffer: 'y' }], updates: [],
});

describe('laneKinds', () => {
  const body = [
    S.for('j', 2, [
      S.local('acc', 'f32', 16), S.local('big', 'f32', 80),
      S.for('i', 16, [S.store('acc', i, E.unary('log', x(i)))]), // over a register array: unrolled on wasm
      S.for('c', 16, [S.store('y', E.v('c'), E.unary('log', E.load('acc', E.v('c'), 'f32')))]),
      S.for('b', 16, [S.store('y', E.v('b'), E.unary('log', E.load('big', E.v('b'), 'f32')))]), // not kept in wasm locals
      S.for('d', 16, [S.store('y', E.add(E.v('d'), E.i32(16)), E.unary('log', x(E.v('d'))))]), // serial on wasm
      S.for('e', 16, [S.store('y', E.add(E.v('e'), E.i32(32)), E.unary('neg', x(E.v('e'))))]), // vector everywhere
    ]),
  ];
  const lanes = ['i', 'c', 'b', 'd', 'e'];
  const kinds = (caps: Pick<TargetCaps, 'vector' | 'legal'>) => [...laneKinds(body, lanes, caps)].map(([l, k]) => `${l}:${k}`);

  it('vectorizes loops the target renders, unrolls small ones over arrays it keeps in registers, leaves the rest serial', () => {
    expect(kinds(LLVM)).toEqual(['i:vector', 'c:vector', 'b:vector', 'd:vector', 'e:vector']);
    // wasm keeps acc (16 elements) in locals, not big (80)
    expect(kinds(WASM)).toEqual(['i:unroll', 'c:unroll', 'b:serial', 'd:serial', 'e:vector']);
    expect(kinds({ legal: { ieeeMinMax: false } })).toEqual(['i:unroll', 'c:unroll', 'b:unroll', 'd:serial', 'e:serial']);
    const none: VectorCaps = { values: 'any', minExtent: 32, maxExtent: 32, maxUnroll: 15 };
    expect(kinds({ vector: none, legal: { ieeeMinMax: false } })).toEqual(['i:serial', 'c:serial', 'b:serial', 'd:serial', 'e:serial']);
  });

  it('the vectorize primitive refuses a loop the target has no vector form for', () => {
    const s = sched(program(body));
    expect(s.check(vectorize, { loops: ['d'], caps: WASM })).toMatch(/loop 'd': it holds a value or an access with no vector form/);
    expect(s.check(vectorize, { loops: ['e'], caps: { vector: { ...SIMD128, minExtent: 32 }, legal: WASM.legal } })).toMatch(/its extent 16 is outside/);
    expect(s.check(vectorize, { loops: ['d'], caps: LLVM })).toBeUndefined();
  });
});

/** Every vector loop of a program, as `kernel/loop`. */
function vectorLoops(p: Program): string[] {
  const out: string[] = [];
  const walk = (k: string, ss: readonly Stmt[]): void => ss.forEach((s) => { if (s.k === 'for') { if (s.kind === 'vector') out.push(`${k}/${s.v}`); walk(k, s.body); } });
  for (const k of p.kernels) walk(k.name, k.body);
  return out;
}

describe('vector loops reach the renderers decided', () => {
  it('the pipeline gives wasm and llvm only vector loops with a vector form (random graphs)', () => {
    let loops = 0;
    for (let seed = 1; seed <= 40; seed++) {
      for (const caps of [WASM_CAPS, LLVM_CAPS]) {
        const p = runPipeline(randomGraph(seed, { extended: true }).graph, { caps }).program;
        loops += vectorLoops(p).length;
        const [vector, name] = caps === WASM_CAPS ? [SIMD128, 'wasm'] : [LLVM_VECTORS, 'llvm'];
        expect(() => checkVectorLoops(p, vector, name)).not.toThrow();
      }
    }
    expect(loops).toBeGreaterThan(40);
  });

  it('gives each of the copy kernel\'s loops (all named i0 by lowering) its own kind', () => {
    const g = parseGraph(`graph @copies {
  %0 = const {value=[1.5]} : f32[6]
  %1 = const {value=[0]} : i32[2]
  %2 = const {value=[2.5]} : f32[2]
  %3 = const {value=[-1]} : i32[8]
  output "a" = %0
  output "b" = %1
  output "c" = %2
  output "d" = %3
}`);
    const kinds = (p: Program) => p.kernels.find((k) => k.name === 'k_copy')!.body.map((s) => (s.k === 'for' ? `${s.extent}:${s.kind}` : s.k));
    const wasm = runPipeline(g, { caps: WASM_CAPS }).program, llvm = runPipeline(g, { caps: LLVM_CAPS }).program;
    // loops of four or more (cpu-kinds)
    expect(kinds(wasm)).toEqual(['6:vector', '2:serial', '2:serial', '8:vector']);
    expect(kinds(llvm)).toEqual(['6:vector', '2:serial', '2:serial', '8:vector']);
    expect(() => checkVectorLoops(wasm, SIMD128, 'wasm')).not.toThrow();
  });

  it('splits a loop longer than LLVM\'s vectors so its inner part is lanes (a 256-wide Adam update)', () => {
    expect([256, 784, 1000, 787, 100, 129].map((n) => laneFactor(n, LLVM_CAPS))).toEqual([128, 112, 125, undefined, undefined, 43]);
    expect(laneFactor(256, WASM_CAPS)).toBeUndefined();
    const g = parseGraph(`graph @wide {
  %0 = input {name="x"} : f32[3,256]
  %1 = input {name="y"} : f32[3,256]
  %2 = mul %0, %1 : f32[3,256]
  %3 = sqrt %2 : f32[3,256]
  output "z" = %3
}`);
    const p = runPipeline(g, { caps: LLVM_CAPS }).program;
    expect(vectorLoops(p).length).toBeGreaterThan(0);
    expect(() => checkVectorLoops(p, LLVM_VECTORS, 'llvm')).not.toThrow();
  });

  it('a renderer refuses a vector loop with no vector form on its target, naming it', () => {
    const p = program([vloop([store(E.unary('log', x(i)))])]);
    expect(() => renderWasm(p, planMemory(p))).toThrow(/^wasm: internal error: vector loop 'i' of kernel k cannot be rendered as vectors: it holds a value or an access with no vector form/);
    expect(() => checkVectorLoops(p, LLVM_VECTORS, 'llvm')).not.toThrow();
    const gather = program([vloop([store(x(E.mul(i, E.i32(2))))], 8)]);
    expect(() => checkVectorLoops(gather, LLVM_VECTORS, 'llvm')).toThrow(/^llvm: internal error: vector loop 'i' of kernel k/);
  });
});
