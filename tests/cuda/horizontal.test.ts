// Horizontal fusion of GPU launches (codegen/loop/schedules/horizontal.ts): the seed MLP's Adam step in 4 launches,
// bit for bit with the graph interpreter on the loop interpreter (forward, and reversed: a fused launch's nests run
// last to first) and on the emulated build, params read back; what may not merge stays apart.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CUDA_CAPS, compileCuda } from '../../codegen/cuda/target.js';
import { H100, launchShapes } from '../../codegen/loop/gpu.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { E, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import { fuseLaunches } from '../../codegen/loop/schedules/horizontal.js';
import { verifyProgram } from '../../codegen/loop/verifier.js';
import { runPipeline } from '../../driver/pipeline.js';
import * as keras from '../../frontend/index.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { interpret } from '../../ir/interpreter.js';
import { modelInputs } from '../passes/differential.js';
import { buildUpdateMain, runWithUpdates, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-hfuse-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Names of values whose bits differ between two maps of arrays (with the first differing index). */
function bitDiffs(want: ReadonlyMap<string, ArrayLike<number>>, got: ReadonlyMap<string, ArrayLike<number>>): string[] {
  const bad: string[] = [];
  for (const [k, w] of want) {
    const h = got.get(k);
    const i = h ? Array.from(w).findIndex((x, j) => !Object.is(Math.fround(x), Math.fround(h[j]!))) : 0;
    if (!h || h.length !== w.length || i >= 0) bad.push(`${k}[${i}]: ${h?.[i]}, want ${w[i]}`);
  }
  return bad;
}

function mlpStep(batch: number) {
  keras.utils.setRandomSeed(5);
  const model = keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
  const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  const step = traceTrainStep(model, c, [[batch, 784]], [[batch]]);
  const g = reductionTrees(step.graph, H100);
  return { g, params: Object.fromEntries(step.variables.map((v) => [v.path, v.data])), inputs: modelInputs(g, 4) };
}

describe('horizontal fusion of launches', () => {
  it('the seed MLP Adam step: 4 launches (k3\'s six nests one grid), bit for bit on the loop interpreter and the emulated build', () => {
    const { g, params, inputs } = mlpStep(32);
    const { program } = runPipeline(g, { caps: CUDA_CAPS });
    const shapes = launchShapes(program);
    expect(shapes.map((l) => l.nests)).toEqual([1, 1, 2, 6]); // k2 also takes the copy of Adam's iteration counter
    const ref = interpret(g, inputs, params);
    const want = new Map([...ref.outputs].map(([k, v]) => [k, v.data]));
    const wantUpdates = new Map([...ref.updates].map(([k, v]) => [k, v.data]));
    for (const reverse of [false, true]) {
      const r = runProgram(program, inputs, params, { reverse });
      expect(bitDiffs(want, r.outputs), `reverse ${reverse}`).toEqual([]);
      expect(bitDiffs(wantUpdates, r.updates), `reverse ${reverse}`).toEqual([]);
    }
    const dir = path.join(tmp, 'mlp');
    compileCuda({ outDir: dir, entries: [{ name: 'trainStep', graph: g, batchSize: 32 }], weights: weightsOf(g, params), nvcc: false });
    const cu = readFileSync(path.join(dir, 'model.cu'), 'utf8');
    expect(cu.match(/KILN_LAUNCH\(/g)).toHaveLength(4);
    expect(cu).toMatch(/} else if \(KILN_BLOCK_ID < \d+\) \{/);
    buildUpdateMain(dir, ['model_emu.o', 'model_desc.o', 'kiln_runtime.o', 'kiln_math.o'], ['-lstdc++']);
    const got = runWithUpdates(dir, 'trainStep', g, inputs);
    expect(bitDiffs(want, got.outputs)).toEqual([]);
    expect(bitDiffs(wantUpdates, got.params)).toEqual([]);
  }, 120_000);

  // one kernel of three launches over buffers a, b (size n), c: A stores a; B loads a (after A: dependent); C stores b
  const program = (n: number, cReadsA: boolean): Program => {
    const nest = (g: string, t: string, buf: string, value: (i: ReturnType<typeof E.v>) => ReturnType<typeof E.v>) =>
      S.for(g, 1, [S.for(t, n, [S.store(buf, E.v(t), value(E.v(t)))], 'thread')], 'block');
    return {
      name: 'p', inputs: [{ name: 'x', buffer: 'x' }], params: [], updates: [],
      outputs: [{ name: 'a', buffer: 'a' }, { name: 'b', buffer: 'b' }, { name: 'c', buffer: 'c' }],
      buffers: ['x', 'a', 'b', 'c'].map((name) => ({ name, dtype: 'float32' as const, size: n, kind: name === 'x' ? 'input' as const : 'output' as const })),
      kernels: [{
        name: 'k0', ops: ['add'], body: [
          nest('ga', 'ta', 'a', (i) => E.binary('add', E.load('x', i, 'f32'), E.f32(1))),
          nest('gb', 'tb', 'b', (i) => E.binary('mul', E.load('a', i, 'f32'), E.f32(2))),
          nest('gc', 'tc', 'c', (i) => E.binary('sub', E.load(cReadsA ? 'a' : 'x', i, 'f32'), E.f32(3))),
        ],
      }],
    };
  };

  it('merges only independent launches: a reader of what an earlier launch wrote stays after it', () => {
    const p = fuseLaunches(program(64, false), H100);
    expect(verifyProgram(p)).toEqual([]);
    // B reads what A wrote; C depends on neither: A and C run as one grid of 2 blocks, then B
    expect(launchShapes(p).map((l) => [l.grid, l.nests])).toEqual([[2, 2], [1, 1]]);
    const x = Float32Array.from({ length: 64 }, (_, i) => i / 7);
    const want = runProgram(program(64, false), { x }, {}).outputs;
    for (const reverse of [false, true]) expect(bitDiffs(want, runProgram(p, { x }, {}, { reverse }).outputs)).toEqual([]);
    // C reading a: after A too, beside B (both only read a)
    expect(launchShapes(fuseLaunches(program(64, true), H100)).map((l) => l.nests)).toEqual([1, 2]);
  });

  it('orders nests by dependence level: two chains A -> B and C -> D run as [A, C] then [B, D]', () => {
    const p0 = program(64, false);
    const [a, b, c] = p0.kernels[0]!.body as Extract<Stmt, { k: 'for' }>[];
    // C stores c; D (loads c, stores b2) comes last: consecutive merging alone gives A | B C | D
    const d = S.for('gd', 1, [S.for('td', 64, [S.store('d', E.v('td'), E.binary('add', E.load('c', E.v('td'), 'f32'), E.f32(1)))], 'thread')], 'block');
    const p1: Program = { ...p0, buffers: [...p0.buffers, { name: 'd', dtype: 'float32', size: 64, kind: 'output' }], outputs: [...p0.outputs, { name: 'd', buffer: 'd' }], kernels: [{ name: 'k0', ops: ['add'], body: [a!, b!, c!, d] }] };
    const p = fuseLaunches(p1, H100);
    expect(verifyProgram(p)).toEqual([]);
    expect(launchShapes(p).map((l) => l.nests)).toEqual([2, 2]);
    const x = Float32Array.from({ length: 64 }, (_, i) => 3 - i);
    const want = runProgram(p1, { x }, {}).outputs;
    for (const reverse of [false, true]) expect(bitDiffs(want, runProgram(p, { x }, {}, { reverse }).outputs)).toEqual([]);
  });

  it('a buffer written by a later nest and read by an earlier one is copied a launch before, only when small', () => {
    // B (reads a) then A' (writes a): the first kernel's launch copies a; over 1024 elements they stay apart
    const swap = (n: number): Program => {
      const p = program(n, false);
      const [a, b, c] = p.kernels[0]!.body;
      return { ...p, kernels: [{ name: 'k0', ops: ['add'], body: [c!] }, { name: 'k1', ops: ['add'], body: [b!, a!] }] };
    };
    const p = fuseLaunches(swap(64), H100);
    expect(verifyProgram(p)).toEqual([]);
    expect(launchShapes(p).map((l) => l.nests)).toEqual([2, 2]);
    const x = Float32Array.from({ length: 64 }, (_, i) => i - 30);
    const want = runProgram(swap(64), { x }, {}).outputs;
    for (const reverse of [false, true]) expect(bitDiffs(want, runProgram(p, { x }, {}, { reverse }).outputs)).toEqual([]);
    expect(launchShapes(fuseLaunches(swap(2048), H100)).map((l) => l.nests)).toEqual([1, 1, 1]);
  });
});
