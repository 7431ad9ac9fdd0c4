// The GPU matmul tiles (gpu_matmul.ts, run by gpu_grid.ts), cacheShared and distribute: on plain matmul nests (as
// lowering writes them) and on whole graphs in the CUDA schedule, every step verifies and runs bit
// for bit as the plain nest does, in both loop orders of the interpreter.
import { describe, expect, it } from 'vitest';
import { E, type Expr, type Program, S, type Stmt } from '../../../codegen/loop/ir.js';
import { printProgram } from '../../../codegen/loop/printer.js';
import { verifyProgram } from '../../../codegen/loop/verifier.js';
import { CUDA_CAPS } from '../../../codegen/cuda/target.js';
import { runPipeline } from '../../../driver/pipeline.js';
import {
  Schedule, bind, cacheShared, distribute, gpuGrid, matmulTops, paddedTiles, schedule, scheduleMatmul,
} from '../../../codegen/loop/schedules/index.js';
import { parseGraph } from '../../../ir/parser.js';
import { expectSame, f32, load, program, sched, text, v } from './helpers.js';
import { cudaLowered, expectMatchesGraph } from './gpu_helpers.js';
import * as keras from '../../../frontend/index.js';
import { compileModel, traceTrainStep } from '../../../frontend/models/training.js';
import type { Graph } from '../../../ir/graph.js';
import { randomGraph } from '../../passes/random_graphs.js';

const i32 = E.i32;
const add = (...xs: Expr[]) => xs.reduce((a, b) => E.add(a, b));
const mul = (a: Expr, n: number) => E.mul(a, i32(n));

interface Spec {
  readonly batch?: number;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  /** B is stored transposed (N x K), as a transpose of the last two axes reads it */
  readonly bT?: boolean;
  /** y = relu(A @ B + bias) instead of y = A @ B */
  readonly bias?: boolean;
  /** y = (A @ B) * s for a scalar input s, computed before the nest */
  readonly scalar?: boolean;
}

/** The plain nest for a spec, with the buffer names lowering gives the graph of `graphOf(spec)`. */
function plainMatmul(sp: Spec): Program {
  const { M, N, K } = sp, B = sp.batch ?? 1;
  const [b, i, j, k] = [v('o0'), v('o1'), v('o2'), v('k3')];
  const loopsOf = (body: Stmt[]) => (sp.batch ? [S.for('o0', B, [S.for('o1', M, [S.for('o2', N, body)])])] : [S.for('o1', M, [S.for('o2', N, body)])]);
  const bOff = sp.batch ? mul(b, M * K) : i32(0), bOffB = sp.batch ? mul(b, K * N) : i32(0), bOffY = sp.batch ? mul(b, M * N) : i32(0);
  const step: Stmt[] = [];
  if (K > 1 || true) {
    step.push(S.decl('v4', 'f32', load('in_a', add(bOff, M > 1 ? mul(i, K) : i32(0), K > 1 ? k : i32(0)), 'f32')));
    const bIdx = sp.bT ? add(bOffB, N > 1 ? mul(j, K) : i32(0), K > 1 ? k : i32(0)) : add(bOffB, K > 1 ? mul(k, N) : i32(0), N > 1 ? j : i32(0));
    step.push(S.decl('v5', 'f32', load(sp.bT ? 'in_b' : 'in_w', bIdx, 'f32')));
    step.push(S.assign('acc2', E.binary('add', v('acc2', 'f32'), E.binary('mul', v('v4', 'f32'), v('v5', 'f32')))));
  }
  const epi: Stmt[] = [];
  let y: Expr = v('acc2', 'f32');
  if (sp.bias) {
    epi.push(S.decl('v6', 'f32', load('in_c', N > 1 ? j : i32(0), 'f32')), S.decl('t7', 'f32', E.binary('add', y, v('v6', 'f32'))), S.decl('t8', 'f32', E.binary('max', v('t7', 'f32'), E.f32(0))));
    y = v('t8', 'f32');
  }
  if (sp.scalar) {
    epi.push(S.decl('t9', 'f32', E.binary('mul', y, v('s0', 'f32'))));
    y = v('t9', 'f32');
  }
  const body: Stmt[] = [S.decl('acc2', 'f32', E.f32(0)), ...(K > 1 ? [S.for('k3', K, step)] : step), ...epi, S.store('out_y', add(bOffY, M > 1 ? mul(i, N) : i32(0), N > 1 ? j : i32(0)), y)];
  const buffers = [f32('in_a', B * M * K, 'input'), sp.bT ? f32('in_b', B * N * K, 'input') : f32('in_w', B * K * N, 'input'), ...(sp.bias ? [f32('in_c', N, 'input')] : []),
    ...(sp.scalar ? [f32('in_s', 1, 'input')] : []), f32('out_y', B * M * N, 'output')];
  return program(buffers, [...(sp.scalar ? [S.decl('s0', 'f32', load('in_s', i32(0), 'f32'))] : []), ...loopsOf(body)]);
}

/** The graph whose matmul nest plainMatmul(spec) is. */
function graphOf(sp: Spec): string {
  const { M, N, K } = sp, bt = sp.batch ? `${sp.batch},` : '', perm = sp.batch ? '[0, 2, 1]' : '[1, 0]';
  const lines = [`%0 = input {name="a"} : f32[${bt}${M},${K}]`,
    sp.bT ? `%1 = input {name="b"} : f32[${bt}${N},${K}]\n  %2 = transpose %1 {perm=${perm}} : f32[${bt}${K},${N}]` : `%1 = input {name="w"} : f32[${bt}${K},${N}]\n  %2 = reshape %1 {shape=[${bt}${K}, ${N}]} : f32[${bt}${K},${N}]`,
    `%3 = matmul %0, %2 : f32[${bt}${M},${N}]`];
  let y = '%3';
  if (sp.bias) {
    lines.push(`%4 = input {name="c"} : f32[${N}]`, `%5 = broadcast %4 {shape=[${M}, ${N}]} : f32[${M},${N}]`, `%6 = add %3, %5 : f32[${M},${N}]`,
      `%7 = const {value=[0.0]} : f32[]`, `%8 = broadcast %7 {shape=[${M}, ${N}]} : f32[${M},${N}]`, `%9 = max %6, %8 : f32[${M},${N}]`);
    y = '%9';
  }
  if (sp.scalar) {
    lines.push(`%10 = input {name="s"} : f32[]`, `%11 = broadcast %10 {shape=[${bt}${M}, ${N}]} : f32[${bt}${M},${N}]`, `%12 = mul ${y}, %11 : f32[${bt}${M},${N}]`);
    y = '%12';
  }
  return `graph @mm {\n  ${lines.join('\n  ')}\n  output "y" = ${y}\n}`;
}

/** The recipe on a plain program (its steps as the schedule driver reports them). */
function scheduled(p: Program, tiles?: Parameters<typeof scheduleMatmul>[3]): { s: Schedule; steps: string[] } {
  const steps: string[] = [];
  const s = new Schedule(p, 0, (name) => steps.push(name));
  if (tiles) scheduleMatmul(s, (p.kernels[0]!.body.find((x) => x.k === 'for') as { v: string }).v, CUDA_CAPS.gpu!, tiles);
  else gpuGrid.run(s, CUDA_CAPS);
  return { s, steps };
}

describe('matmul tiles', () => {
  const cases: [string, Spec][] = [
    ['the seed MLP\'s first layer: [2,784] x [784,64] + bias, relu', { M: 2, N: 64, K: 784, bias: true }],
    ['a batched matmul with B transposed: [3,8,16] x [3,32,16]^T', { batch: 3, M: 8, N: 32, K: 16, bT: true }],
    ['K = 1, times a scalar computed before the nest', { M: 4, N: 6, K: 1, scalar: true }],
    ['register tiles (4 x 4 per thread by the cost model): [256,64] x [64,1024] + bias, relu', { M: 256, N: 1024, K: 64, bias: true }],
  ];
  for (const [name, sp] of cases) {
    it(name, () => {
      const plain = plainMatmul(sp), { s } = scheduled(plain);
      // paddedTiles' tiles: blocks of bm x bn, A's and B's bk-deep tiles shared, tm x tn accumulators per thread
      const { bm, bn, bk, tm, tn } = paddedTiles(sp.M, sp.N, sp.K, sp.batch ?? 1, CUDA_CAPS.gpu!, true);
      const t = text(s);
      expect(t).toMatch(new RegExp(`for g\\d+ in 0..${Math.ceil(sp.M / bm)} block \\{\\n\\s+for g\\d+ in 0..${Math.ceil(sp.N / bn)} block`));
      // a tile staged along k (A here, and B transposed) has rows of an odd length, a bank apart
      const row = (n: number, alongK: boolean) => (alongK && bk > 1 && n % 2 === 0 ? n + 1 : n);
      expect(t).toMatch(new RegExp(`local As\\d+: f32\\[${row(bm, true) * bk}\\] shared\\n\\s+local Bs\\d+: f32\\[${bk * row(bn, !!sp.bT)}\\] shared\\n\\s+local acc\\d+: f32\\[${tm * tn}\\] register`));
      if (sp.M * sp.N * sp.K < 1 << 16) expectSame(plain, s.program);
      // and through the whole CUDA pipeline, against the graph interpreter
      const g = parseGraph(graphOf(sp));
      if (sp.M * sp.N * sp.K < 1 << 16) expectMatchesGraph(g, runPipeline(g, { caps: CUDA_CAPS }).program);
    });
  }
  it('names each step, and each step verifies and keeps the results bit for bit', () => {
    const plain = plainMatmul({ M: 8, N: 16, K: 8, bias: true });
    const steps: string[] = [];
    const s = new Schedule(plain, 0, (name, prog) => {
      steps.push(name);
      expectSame(plain, prog);
    });
    scheduleMatmul(s, 'o1', CUDA_CAPS.gpu!, { bm: 4, bn: 8, bk: 4, tm: 2, tn: 4 });
    expect(steps).toEqual(['split', 'split', 'split', 'split', 'reorder', 'cacheWrite', 'fission', 'fission', 'fission', 'fission', 'reorder', 'split', 'reorder',
      'fuse', 'fuse', 'fuse', 'hoist', 'bind', 'privatize', 'cacheShared', 'reorder', 'fuse', 'distribute', 'cacheShared', 'split', 'fuse', 'distribute', 'unroll',
      'bind', 'scaleDecl', 'scaleDecl', 'scaleDecl', 'scaleDecl', 'expand', 'hoist', 'unroll', 'simplify', 'renumberNests']);
    // 2 x 4 accumulators per thread, B's 4 values of a step loaded once for the thread's 2 rows
    expect(text(s)).toMatch(/local acc\d+: f32\[8\] register/);
    expect(text(s)).toMatch(/for kk\d+ in 0..4 \{\n(\s+decl b\d+: f32 = Bs\d+\[[^\n]+\]\n){4}\s+for m\d+ in 0..2 unroll \{\n\s+decl a\d+: f32 = As/);
  });
  it('stages an operand along its contiguous axis, also when a reshape\'s division and remainder compute its index', () => {
    // A (32 x 16) read as A^T stored 16 x 32 through a reshape: in_a[k // 8 * 256 + k % 8 * 32 + i], contiguous in i
    const [i, j, k] = [v('i'), v('j'), v('k')];
    const aIdx = add(mul(E.idiv(k, 8), 256), mul(E.mod(k, 8), 32), i);
    const body = [S.for('i', 32, [S.for('j', 32, [S.decl('acc', 'f32', E.f32(0)), S.for('k', 16, [
      S.decl('va', 'f32', load('in_a', aIdx, 'f32')), S.decl('vb', 'f32', load('in_b', add(mul(k, 32), j), 'f32')),
      S.assign('acc', E.binary('add', v('acc', 'f32'), E.binary('mul', v('va', 'f32'), v('vb', 'f32'))))]),
    S.store('out_y', add(mul(i, 32), j), v('acc', 'f32'))])])];
    const p = program([f32('in_a', 512, 'input'), f32('in_b', 512, 'input'), f32('out_y', 1024, 'output')], body);
    const { s } = scheduled(p, { bm: 8, bn: 8, bk: 8, tm: 1, tn: 1 });
        // consecutive threads on consecutive 4-float groups of the A tile's rows (e % 2, lanes of 4), as for a
    // transposed operand: in_a read along i (the k digits reach the index through the reshape's division)
    expect(text(s)).toMatch(/decl c\d+: i32 = e\d+ % 2\n\s+decl j\d+: i32 = e\d+ \/\/ 2\n\s+for v\d+ in 0\.\.4 unroll \{\n\s+decl va\d+: f32 = in_a\[[^\n]*c\d+ \* 4 \+ v\d+\]/);
    expectSame(p, s.program);
  });
  it('leaves nests that are not a plain matmul alone', () => {
    // the accumulation goes to a row cache, not to a root
    const body: Stmt[] = [S.local('row', 'f32', 4), S.for('i', 2, [S.for('j', 2, [S.decl('acc', 'f32', E.f32(0)), S.for('k', 3, [
      S.decl('a', 'f32', load('x', add(mul(v('i'), 3), v('k')), 'f32')), S.decl('b', 'f32', load('x', add(mul(v('k'), 2), v('j')), 'f32')),
      S.assign('acc', E.binary('add', v('acc', 'f32'), E.binary('mul', v('a', 'f32'), v('b', 'f32'))))]), S.store('row', add(mul(v('i'), 2), v('j')), v('acc', 'f32'))])]),
    S.for('r', 4, [S.store('y', v('r'), load('row', v('r'), 'f32'))])];
    const p = program([f32('x', 6, 'input'), f32('y', 4, 'output')], body), s = sched(p);
    expect(matmulTops(s.body)).toEqual([]);
  });
});

describe('cacheShared and distribute', () => {
  /** for g(block) { for k0 { for t { for kk { v = x[g*8 + k0*4 + kk] * w[t]; y[..] += v } } } } with t bound as threads */
  function staged(): { p: Program; s: Schedule } {
    const body: Stmt[] = [S.for('g', 2, [S.for('t', 4, [S.decl('acc', 'f32', E.f32(0)), S.for('k0', 2, [S.for('kk', 4, [
      S.decl('x0', 'f32', load('x', add(mul(v('g'), 8), mul(v('k0'), 4), v('kk')), 'f32')),
      S.decl('v0', 'f32', E.binary('mul', v('x0', 'f32'), load('w', v('t'), 'f32'))),
      S.assign('acc', E.binary('add', v('acc', 'f32'), v('v0', 'f32')))])]),
    S.store('y', add(mul(v('g'), 4), v('t')), v('acc', 'f32'))])])];
    const p = program([f32('x', 16, 'input'), f32('w', 4, 'input'), f32('y', 8, 'output')], body);
    const s = sched(p);
    s.apply(bind, { blocks: ['g'], threads: ['t'] });
    return { p, s };
  }
  it('refuse a value that depends on a loop other than the tile\'s, or a scope that is no block', () => {
    const { s } = staged();
    // x0 depends on kk only, but it lies inside thread loop t: the tile would be filled per thread
    expect(s.check(cacheShared, { value: 'x0', at: 'k0', dims: [['kk']], local: 'X', scope: 'g', fill: ['f'] })).toMatch(/loop 'k0' is inside thread loop 't'/);
    const body: Stmt[] = [S.for('g', 2, [S.for('k0', 2, [S.for('t', 4, [S.for('kk', 4, [
      S.decl('x0', 'f32', load('x', add(mul(v('g'), 8), mul(v('k0'), 4), v('kk')), 'f32')),
      S.decl('v0', 'f32', E.binary('mul', v('x0', 'f32'), load('w', v('t'), 'f32'))),
      S.store('y', add(mul(v('g'), 32), mul(v('k0'), 16), mul(v('t'), 4), v('kk')), v('v0', 'f32'))])])])])];
    const p = program([f32('x', 16, 'input'), f32('w', 4, 'input'), f32('y', 64, 'output')], body), t = sched(p);
    expect(t.check(cacheShared, { value: 'x0', at: 'k0', dims: [['kk']], local: 'X', scope: 'g', fill: ['f'] })).toMatch(/loop 'g' is not a block loop/);
    t.apply(bind, { blocks: ['g'], threads: ['t'] });
    expect(t.check(cacheShared, { value: 'v0', at: 'k0', dims: [['kk']], local: 'X', scope: 'g', fill: ['f'] })).toMatch(/'v0' depends on 't', which is not a dimension of the tile/);
    t.apply(cacheShared, { value: 'x0', at: 'k0', dims: [['kk']], local: 'X', scope: 'g', fill: ['f'] });
    expect(text(t)).toMatch(/local X: f32\[4\] shared\n {4}for k0 in 0..2 \{\n {6}for f in 0..4 \{\n {8}decl x\d+: f32 = x\[g \* 8 \+ k0 \* 4 \+ f\]\n {8}X\[f\] = x\d+/);
    expectSame(p, t.program);
    // the fill, shared among the block's threads (the last ones redo the last element), bound to them
    t.apply(distribute, { loop: 'f', threads: 3, outer: 'u', inner: 'r' });
    expect(text(t)).toContain('for u in 0..3 {\n        for r in 0..2 {\n          decl f: i32 = min(r * 3 + u, 3)');
    t.apply(bind, { blocks: [], threads: ['u'] });
    expectSame(p, t.program);
  });
  it('distribute refuses a loop that reads what it writes; bind a clamped share storing different values', () => {
    const inc = program([f32('y', 4, 'param')], [S.for('i', 4, [S.store('y', v('i'), E.binary('add', load('y', v('i'), 'f32'), E.f32(1)))])]);
    expect(sched(inc).check(distribute, { loop: 'i', threads: 3, outer: 'u', inner: 'r' })).toMatch(/it reads 'y', which it writes/);
    // y[e] = x[u]: threads that redo element 3 store x[u] for their own u (in a block nest, as a tile's staging is:
    // a launch's own thread loop, directly in a top-level block, is trusted to be lowering's, one element per index)
    const body: Stmt[] = [S.for('g', 1, [S.for('h', 1, [S.for('u', 3, [S.for('r', 2, [S.decl('e', 'i32', E.binary('min', add(mul(v('r'), 3), v('u')), i32(3))),
      S.store('y', v('e'), load('x', v('u'), 'f32'))])])])])];
    const s = sched(program([f32('x', 3, 'input'), f32('y', 4, 'output')], body));
    expect(s.check(bind, { blocks: ['g', 'h'], threads: ['u'] })).toMatch(/cannot prove that its iterations touch different elements of 'y' \(index e\)/);
  });
});

describe('matmul tiles in the CUDA schedule', () => {
  // each with the number of its matmul nests (as many as lower.ts tiled before the recipe)
  // (the seed MLP step at batch 2: 3 tiled nests; the cost model (gpu.ts matmulPlan) gives the fourth matmul a tree)
  const graphs: [string, number, () => Graph][] = [['seed MLP Adam step (a kernel with a reduction before the matmul nest)', 3, () => {
    keras.backend.clearSession();
    keras.utils.setRandomSeed(1234);
    const m = keras.Sequential([keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }), keras.layers.Dropout(0.2), keras.layers.Dense(10, { activation: 'softmax' })]);
    return traceTrainStep(m, compileModel(m, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' }), [[2, 784]], [[2]]).graph;
  }]];
  // random graphs with matmul nests: one-row tiles, two matmul nests in a kernel, unit batch axes
  for (const [seed, n] of [[6, 1], [11, 1], [113, 2]]) graphs.push([`random graph ${seed}`, n!, () => randomGraph(seed!).graph]);
  // (graph 52's third tiled nest is a 1-D dilated conv, as implicit GEMM: gpu_conv.ts)
  for (const [seed, n] of [[52, 3], [58, 2]]) graphs.push([`extended random graph ${seed}`, n!, () => randomGraph(seed!, { extended: true }).graph]);
  for (const [name, count, make] of graphs) {
    it(`${name}: every step verifies, every scheduled nest computes what the graph interpreter computes`, () => {
      const g = make(), p = cudaLowered(g);
      let nests = 0;
      const out = schedule(p, CUDA_CAPS, (step, prog, at) => {
        if (at.recipe !== 'gpu-grid' && at.recipe !== 'gpu-matmul') return;
        expect(verifyProgram(prog), `after ${step}:\n${printProgram(prog)}`).toEqual([]);
        // the whole program on the interpreter once the kernel's nests are tiled (each step runs on a plain nest above)
        if (step === 'renumberNests') expectMatchesGraph(g, prog);
        if (step === 'privatize') nests++;
      });
      expect(nests).toBe(count);
      expectMatchesGraph(g, out);
    });
  }
});
