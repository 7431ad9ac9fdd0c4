// Scheduling: GPU matmul tiles from the cost model, grids for every other nest, the verifier's GPU rules, the
// interpreter's barrier and per-thread semantics (with reversed block/thread order as a race detector); CPU
// register tiles and packed panels.
import { describe, expect, it } from 'vitest';
import { H100, gridThreads, matmulCycles, matmulTiles, tileThreads } from '../../codegen/loop/gpu.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { type Buffer, E, type Kernel, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { DEFAULT_CAPS, registerTile } from '../../codegen/loop/schedule.js';
import { CUDA_CAPS } from '../../codegen/cuda/target.js';
import { schedule } from '../../codegen/loop/schedules/index.js';
import { LLVM_CAPS } from '../../codegen/llvm/target.js';
import { verifyProgram } from '../../codegen/loop/verifier.js';
import { renderWasmModule } from '../../codegen/wasm/render.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { parseGraph } from '../../ir/parser.js';
import { runPipeline } from '../../driver/pipeline.js';
import { runBoth } from '../passes/differential.js';
import { randomBindings, rng } from '../passes/random_graphs.js';

const { v, load } = E;
const buf = (name: string, size: number, kind: Buffer['kind']): Buffer => ({ name, dtype: 'float32', size, kind });
function program(buffers: Buffer[], body: Stmt[]): Program {
  const of = (kind: Buffer['kind']) => buffers.filter((b) => b.kind === kind).map((b) => ({ name: b.name, buffer: b.name }));
  const kernels: Kernel[] = [{ name: 'k0', ops: [], body }];
  return { name: 'test', buffers, kernels, inputs: of('input'), params: of('param'), outputs: of('output'), updates: [] };
}
const grid = (blocks: number, body: Stmt[]) => S.for('g', blocks, body, 'block');
const threads = (n: number, body: Stmt[], name = 't') => S.for(name, n, body, 'thread');

function seedMlp(): keras.Sequential {
  keras.backend.clearSession();
  keras.utils.setRandomSeed(7);
  return keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
}

/** Every statement of a tree, depth first. */
function* walk(stmts: readonly Stmt[]): Generator<Stmt> {
  for (const s of stmts) {
    yield s;
    if (s.k === 'for') yield* walk(s.body);
  }
}

describe('matmul tiles (cost model)', () => {
  const shapes = [[1024, 1024, 1024], [4096, 4096, 4096], [256, 64, 784], [256, 10, 64], [784, 64, 256], [64, 10, 256], [2, 64, 784], [1, 1, 1], [97, 13, 31]];
  it.each(shapes)('%i x %i x %i: tiles divide the extents and fit a block', (M, N, K) => {
    const t = matmulTiles(M!, N!, K!, 1);
    expect([M! % t.bm, N! % t.bn, K! % t.bk, t.bm % t.tm, t.bn % t.tn]).toEqual([0, 0, 0, 0, 0]);
    expect(tileThreads(t)).toBeLessThanOrEqual(H100.maxThreadsPerBlock);
    expect(4 * t.bk * (t.bm + t.bn)).toBeLessThanOrEqual(H100.sharedPerBlock);
  });
  it('large square matmuls get register tiles and blocks of at least 4 warps', () => {
    for (const n of [1024, 4096]) {
      const t = matmulTiles(n, n, n, 1);
      expect(t.tm * t.tn, `${n}: ${JSON.stringify(t)}`).toBeGreaterThanOrEqual(16);
      expect(tileThreads(t)).toBeGreaterThanOrEqual(128);
    }
  });
  it('the chosen tiles cost no more than the textbook 16 x 16 tile with one output per thread', () => {
    for (const [M, N, K] of [[1024, 1024, 1024], [256, 64, 784], [512, 512, 64]]) {
      const naive = matmulCycles(M!, N!, K!, 1, { bm: 16, bn: 16, bk: 16, tm: 1, tn: 1 }, H100);
      const best = matmulCycles(M!, N!, K!, 1, matmulTiles(M!, N!, K!, 1), H100);
      expect(best).toBeLessThanOrEqual(naive);
    }
    // on 1024^3 the model expects the register-tiled kernel to be several times faster than the textbook one
    const t = matmulTiles(1024, 1024, 1024, 1);
    expect(matmulCycles(1024, 1024, 1024, 1, { bm: 16, bn: 16, bk: 16, tm: 1, tn: 1 }, H100) / matmulCycles(1024, 1024, 1024, 1, t, H100)).toBeGreaterThan(3);
  });
  it('small problems are spread over more blocks than one', () => {
    const t = matmulTiles(256, 64, 784, 1);
    expect((256 / t.bm) * (64 / t.bn)).toBeGreaterThan(8);
  });
  it('grid threads divide the iteration count', () => {
    const r = rng(3);
    for (let k = 0; k < 50; k++) {
      const points = 1 + Math.floor(r() * 100_000);
      const d = gridThreads(points, 1 + Math.floor(r() * 50));
      expect(points % d).toBe(0);
      expect(d).toBeLessThanOrEqual(1024);
    }
    expect(gridThreads(1 << 20, 4)).toBeGreaterThanOrEqual(128);
  });
});

describe('GPU schedule of the seed MLP', () => {
  it('inference: every kernel is launches of blocks; the matmul stages A and B tiles in shared memory', () => {
    const p = runPipeline(traceModel(seedMlp(), 256).graph, { caps: CUDA_CAPS }).program;
    expect(verifyProgram(p)).toEqual([]);
    for (const k of p.kernels) expect(k.body.every((s) => s.k === 'for' && s.kind === 'block'), k.name).toBe(true);
    const first = [...walk(p.kernels[0]!.body)];
    expect(first.filter((s) => s.k === 'local' && s.scope === 'shared')).toHaveLength(2);
    expect(first.filter((s) => s.k === 'for' && s.kind === 'thread').length).toBeGreaterThanOrEqual(4);
    // the softmax kernel: one thread per row, 256 rows in all
    const rows = p.kernels[1]!.body[0] as Extract<Stmt, { k: 'for' }>;
    expect(rows.extent * (rows.body[0] as Extract<Stmt, { k: 'for' }>).extent).toBe(256);
  });
  it('the Adam training step: the weight gradients are tiled matmuls; a transposed operand is staged down its columns', () => {
    const model = seedMlp();
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const p = runPipeline(traceTrainStep(model, c, [[256, 784]], [[256]]).graph, { caps: CUDA_CAPS }).program;
    expect(verifyProgram(p)).toEqual([]);
    const all = p.kernels.flatMap((k) => [...walk(k.body)]);
    expect(all.filter((s) => s.k === 'local' && s.scope === 'shared').length).toBeGreaterThanOrEqual(6);
    // X^T in dW = X^T @ dY: consecutive threads read consecutive elements of X's rows (index e % 16, not e // 32)
    // (a load of a padded K tile sits inside its zeroing select)
    const xLoads = all.filter((s) => s.k === 'decl' && JSON.stringify(s.init).includes('"buf":"in_input_layer"'));
    expect(xLoads.length).toBe(2);
  });
});

describe('interpreter: barriers, per-thread registers and the race detector', () => {
  it('a register array declared in a block keeps each thread its own values across thread loops', () => {
    // out[g*4 + t] = x[g*4 + t] * 2 through a per-thread register and a shared tile reversed between barriers
    const p = program([buf('x', 8, 'input'), buf('y', 8, 'output')], [grid(2, [
      S.local('sh', 'f32', 4, 'shared'), S.local('r', 'f32', 1),
      threads(4, [S.store('r', E.i32(0), E.binary('mul', load('x', E.add(E.mul(v('g'), E.i32(4)), v('t')), 'f32'), E.f32(2)))]),
      threads(4, [S.store('sh', v('t1'), load('r', E.i32(0), 'f32'))], 't1'),
      threads(4, [S.store('y', E.add(E.mul(v('g'), E.i32(4)), v('t2')), E.binary('add', load('sh', E.binary('sub', E.i32(3), v('t2')), 'f32'), load('r', E.i32(0), 'f32')))], 't2'),
    ])]);
    expect(verifyProgram(p)).toEqual([]);
    const x = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const want = [2 * 4 + 2 * 1, 2 * 3 + 2 * 2, 2 * 2 + 2 * 3, 2 * 1 + 2 * 4, 2 * 8 + 2 * 5, 2 * 7 + 2 * 6, 2 * 6 + 2 * 7, 2 * 5 + 2 * 8];
    for (const reverse of [false, true]) expect([...runProgram(p, { x }, {}, { reverse }).outputs.get('y')!]).toEqual(want);
  });
  it('reversing the thread order exposes a race inside one thread loop', () => {
    // each thread reads its neighbour's shared element in the same thread loop that writes it (no barrier between)
    const p = program([buf('x', 4, 'input'), buf('y', 4, 'output')], [grid(1, [
      S.local('sh', 'f32', 5, 'shared'),
      threads(4, [
        S.store('sh', v('t'), load('x', v('t'), 'f32')),
        S.store('y', v('t'), load('sh', E.add(v('t'), E.i32(1)), 'f32')),
      ]),
    ])]);
    expect(verifyProgram(p)).toEqual([]);
    const x = Float32Array.from([1, 2, 3, 4]);
    const fwd = [...runProgram(p, { x }, {}).outputs.get('y')!], rev = [...runProgram(p, { x }, {}, { reverse: true }).outputs.get('y')!];
    expect(fwd).not.toEqual(rev);
  });
});

describe('verifier: GPU rules', () => {
  const bufs = [buf('x', 64, 'input'), buf('y', 64, 'output')];
  const cases: [string, Stmt[], string][] = [
    ['thread loop outside a block', [threads(4, [S.store('y', v('t'), E.f32(0))])], 'a thread loop outside any block loop'],
    ['thread loop in a thread loop', [grid(1, [threads(2, [threads(2, [S.store('y', v('t'), E.f32(0))], 'u')])])], 'a thread loop inside a thread loop'],
    ['too many threads', [grid(1, [threads(2048, [S.store('y', E.i32(0), E.f32(0))])])], '2048 threads per block'],
    ['block loop inside a serial loop', [S.for('i', 2, [grid(1, [threads(1, [S.store('y', v('i'), E.f32(0))])])])], 'a block loop must be at the top'],
    ['store outside thread loops', [grid(1, [S.store('y', E.i32(0), E.f32(0))])], "stores into buffer 'y' in a GPU block outside its thread loops"],
    ['shared array outside a block', [S.local('sh', 'f32', 4, 'shared'), S.for('i', 4, [S.store('sh', v('i'), E.f32(0))])], 'a shared local array must be declared in a GPU block'],
    ['shared array over 48 KiB', [grid(1, [S.local('sh', 'f32', 12289, 'shared'), threads(1, [S.store('sh', E.i32(0), E.f32(0))])])], 'more than 49152'],
    ['per-thread register outside thread loops', [grid(1, [S.local('r', 'f32', 1), S.store('r', E.i32(0), E.f32(1))])], "private to each thread, outside a thread loop"],
    ['a vector loop in a block', [grid(1, [threads(1, [S.for('c', 4, [S.store('y', v('c'), E.f32(0))], 'vector')])])], 'a vector loop inside a GPU block'],
    ['a launch beside other top-level code', [grid(1, [threads(1, [S.store('y', E.i32(0), E.f32(0))])]), S.store('y', E.i32(1), E.f32(0))], 'nothing else at its top level'],
  ];
  it.each(cases)('%s', (_, body, message) => {
    const problems = verifyProgram(program(bufs, body));
    expect(problems.join('\n')).toContain(message);
  });
});

describe('CPU schedules', () => {
  it('a whole-tensor reduction at the top of a kernel is not made parallel (its iterations share the accumulator)', () => {
    const g = parseGraph(`graph @sum {
  %0 = input {name="x"} : f32[256,512]
  %1 = reduce_sum %0 {axes=[0, 1], keepdims=false} : f32[]
  output "y" = %1
}`);
    const p = runPipeline(g, { caps: { ...DEFAULT_CAPS, threads: 2, parallelGrain: 1 } }).program;
    expect([...walk(p.kernels.flatMap((k) => k.body))].some((s) => s.k === 'for' && s.kind === 'parallel')).toBe(false);
    // while a row-wise nest of the same size is
    const rows = parseGraph(`graph @rows {
  %0 = input {name="x"} : f32[256,512]
  %1 = reduce_sum %0 {axes=[1], keepdims=false} : f32[256]
  output "y" = %1
}`);
    const q = schedule(runPipeline(rows, {}).program, { ...DEFAULT_CAPS, threads: 2, parallelGrain: 1 });
    expect(q.kernels[0]!.body.some((s) => s.k === 'for' && s.kind === 'parallel')).toBe(true);
  });
  it('the wasm renderer refuses a GPU schedule with a message naming the loop', () => {
    const p = runPipeline(traceModel(seedMlp(), 2).graph, { caps: CUDA_CAPS });
    expect(() => renderWasmModule([{ name: 'predict', program: p.program, memory: p.memory }])).toThrow(/GPU block axis: this renderer takes CPU schedules/);
  });
});

describe('CPU register tiles and packed panels', () => {
  it('the cost model picks 4 x 64 tiles for AVX-512 and 4 x 8 for wasm, always dividing the extents', () => {
    expect(registerTile(1024, 1024, LLVM_CAPS)).toEqual({ mr: 4, nr: 64 });
    expect(registerTile(256, 64, DEFAULT_CAPS)).toEqual({ mr: 4, nr: 8 });
    const r = rng(5);
    for (let k = 0; k < 200; k++) {
      const rows = 1 + Math.floor(r() * 300), cols = 4 * (1 + Math.floor(r() * 40));
      for (const caps of [DEFAULT_CAPS, LLVM_CAPS]) {
        const t = registerTile(rows, cols, caps)!;
        expect([rows % t.mr, cols % t.nr]).toEqual([0, 0]);
        expect(t.mr * Math.ceil(t.nr / caps.vectorWidth) + Math.ceil(t.nr / caps.vectorWidth) + 2).toBeLessThanOrEqual(caps.vectorRegisters);
      }
    }
  });
  it('B is packed into panels when several row tiles read them, with results equal to the interpreter', () => {
    const g = parseGraph(`graph @mm {
  %0 = input {name="a"} : f32[32,24]
  %1 = input {name="b"} : f32[24,192]
  %2 = matmul %0, %1 : f32[32,192]
  %3 = input {name="c"} : f32[192]
  %4 = broadcast %3 {shape=[32, 192]} : f32[32,192]
  %5 = add %2, %4 : f32[32,192]
  output "y" = %5
}`);
    const [inputs] = randomBindings(g, 9);
    for (const caps of [DEFAULT_CAPS, LLVM_CAPS]) {
      const { diffs, compiled } = runBoth(g, Object.fromEntries(inputs), {}, caps);
      expect(diffs).toEqual([]);
      expect(compiled.program.buffers.some((b) => b.name.startsWith('pack_') && b.size === 24 * 192)).toBe(true);
    }
  });
});
