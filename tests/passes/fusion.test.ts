// Structural assertions on fusion and memory planning (tinygrad check_schedule style): kernel counts, arena size.
import { beforeEach, describe, expect, it } from 'vitest';
import { runProgram } from '../../codegen/loop/interpreter.js';
import type { Program, Stmt } from '../../codegen/loop/ir.js';
import { ALIGN, type MemoryPlan, THREADED_APART_BYTES, accesses, bytesOf, intermediateBytes } from '../../codegen/loop/memplan.js';
import { DEFAULT_CAPS } from '../../codegen/loop/schedule.js';
import { verifyProgram } from '../../codegen/loop/verifier.js';
import * as keras from '../../frontend/index.js';
import { Trace, withTrace } from '../../frontend/engine.js';
import { traceModel } from '../../frontend/models/executor.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import type { Tensor } from '../../frontend/tensor.js';
import { Builder, type Graph, topoSort } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { GroupOp, type Op, REDUCE_OPS } from '../../ir/ops.js';
import type { DType } from '../../ir/types.js';
import { MAX_INLINED_OPS, isRowReduce } from '../../passes/fuse.js';
import { type Compiled, GRAPH_PASSES, runPipeline } from '../../driver/pipeline.js';
import { differences } from './differential.js';
import { randomBindings } from './random_graphs.js';

const ops = keras.ops;

/** The seed's MLP: Dense 64 relu, Dropout 0.2, Dense 10 softmax on 784 features. */
function seedMlp(): keras.Sequential {
  return keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
}

function adamStep(batch: number): Graph {
  const model = seedMlp();
  const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  return traceTrainStep(model, c, [[batch, 784]], [[batch]]).graph;
}

/** Traces fn of float32 inputs with keras.ops into a graph with outputs y0, y1, ... */
function traceOps(name: string, shapes: Record<string, number[]>, fn: (xs: Record<string, Tensor>) => Tensor | Tensor[]): Graph {
  const tr = new Trace();
  const outs = withTrace(tr, () => {
    const xs: Record<string, Tensor> = {};
    for (const [k, s] of Object.entries(shapes)) xs[k] = tr.input(k, 'float32', s);
    const o = fn(xs);
    return Array.isArray(o) ? o : [o];
  });
  return tr.finish(name, outs.map((t, i) => ({ name: `y${i}`, node: tr.nodeOf(t) })));
}

/** Compiles with verification after every graph pass and checks what every compiled program must satisfy. */
function compile(g: Graph): Compiled {
  const c = runPipeline(g, { verifyEach: true });
  expect(verifyProgram(c.program)).toEqual([]);
  for (const k of c.program.kernels) expect(k.ops.length, `kernel ${k.name} lists no ops`).toBeGreaterThan(0);
  expect(c.plan.kernels.map((k) => k.name)).toEqual(c.program.kernels.map((k) => k.name));
  return c;
}

/** Compiles and runs g on random data in both interpreters; returns the compiled form. */
function compileAndCheck(g: Graph): Compiled {
  const c = compile(g);
  const [inputs, params] = randomBindings(g, 11);
  expect(differences(interpret(g, inputs, params), runProgram(c.program, inputs, params))).toEqual([]);
  return c;
}

/** Bytes of every value an op-by-op executor would allocate: every non-leaf node after the graph passes. */
function intermediates(g: Graph): number {
  let h = g;
  for (const p of GRAPH_PASSES) h = p.run(h);
  return intermediateBytes(topoSort(h).filter((n) => !GroupOp.Leaf.has(n.op)).map((n) => n.type));
}

/** Pairs of arena buffers whose lifetimes overlap and whose bytes overlap (there must be none), and misaligned ones. */
function arenaProblems(p: Program, m: MemoryPlan): string[] {
  const first = new Map<string, number>(), last = new Map<string, number>();
  p.kernels.forEach((k, i) => {
    const { loads, stores } = accesses(k.body);
    for (const b of stores) if (!first.has(b)) first.set(b, i);
    for (const b of [...loads, ...stores]) last.set(b, i);
  });
  const placed = p.buffers.filter((b) => m.offsets.has(b.name));
  const live = (name: string, kind: string): [number, number] => [first.get(name) ?? 0, kind === 'output' ? p.kernels.length : last.get(name) ?? 0];
  const problems: string[] = [];
  for (const a of placed) {
    const ao = m.offsets.get(a.name)!;
    if (ao % ALIGN !== 0) problems.push(`${a.name} at ${ao} is not ${ALIGN}-byte aligned`);
    if (ao + bytesOf(a) > m.arenaBytes) problems.push(`${a.name} ends past the arena`);
    for (const b of placed) {
      if (a.name >= b.name) continue;
      const [la, lb] = [live(a.name, a.kind), live(b.name, b.kind)];
      const bo = m.offsets.get(b.name)!;
      const timeOverlap = la[0] <= lb[1] && lb[0] <= la[1];
      const byteOverlap = ao < bo + bytesOf(b) && bo < ao + bytesOf(a);
      if (timeOverlap && byteOverlap && bytesOf(a) > 0 && bytesOf(b) > 0) problems.push(`${a.name} and ${b.name} are live together and share bytes`);
    }
  }
  return problems;
}

beforeEach(() => {
  keras.backend.clearSession();
  keras.utils.setRandomSeed(42);
});

describe('the seed MLP', () => {
  it('compiles to at most 2 kernels for inference', () => {
    const c = compileAndCheck(traceModel(seedMlp(), 4).graph);
    expect(c.plan.kernels.length).toBeLessThanOrEqual(2);
    // the first Dense's bias and relu are the first matmul's epilogue; the softmax the second's
    expect(c.plan.kernels[0]!.ops).toEqual(expect.arrayContaining(['matmul', 'add', 'max']));
    expect(c.plan.kernels.at(-1)!.ops).toEqual(expect.arrayContaining(['matmul', 'reduce_max', 'exp', 'reduce_sum', 'div']));
  });

  it('compiles to at most 2 kernels for inference in training mode (dropout)', () => {
    const c = compile(traceModel(seedMlp(), 4, true).graph);
    expect(c.plan.kernels.length).toBeLessThanOrEqual(2);
    expect(c.plan.kernels.flatMap((k) => k.ops)).toContain('random_uniform');
  });

  it('compiles the whole Adam training step (forward, loss, backward, update) to at most 6 kernels', () => {
    const g = adamStep(32);
    const c = compile(g);
    expect(c.plan.kernels.length).toBeLessThanOrEqual(6);
    // the kernels and their Adam slots are written in place; the biases, whose gradients are column sums
    // (row nests), and the step count go through a temp today (lower.ts inPlaceUpdates takes plain nests only)
    const own = new Set(c.program.params.map((p) => p.buffer));
    const copied = c.program.updates.filter((u) => !own.has(u.buffer)).map((u) => u.name);
    expect(copied.filter((n) => n.includes('kernel'))).toEqual([]);
    expect(c.program.updates.length).toBe(g.updates.length);
  });

  it('plans the training step at batch 256 in an arena at most half of all intermediate values', () => {
    const g = adamStep(256);
    const c = compile(g);
    const all = intermediates(g);
    expect(c.memory.arenaBytes).toBeGreaterThan(0);
    expect(c.memory.arenaBytes).toBeLessThanOrEqual(all / 2);
    expect(c.memory.arenaBytes).toBeLessThanOrEqual(c.memory.unsharedBytes + ALIGN * c.memory.offsets.size);
    expect(arenaProblems(c.program, c.memory)).toEqual([]);
  });

  it('on threads, keeps buffers apart up to THREADED_APART_BYTES (no bytes written by two threads\' slabs in turn), shares them past it', () => {
    // the same step at batch 32 (its unshared bytes under the limit) and 8192 (over it), planned for 2 threads
    const small = runPipeline(adamStep(32), { caps: { ...DEFAULT_CAPS, threads: 2 } }).memory;
    expect(small.unsharedBytes).toBeLessThanOrEqual(THREADED_APART_BYTES);
    const ends = [...small.offsets.values()].sort((a, b) => a - b);
    expect(new Set(ends).size).toBe(small.offsets.size); // every buffer at its own offset
    expect(small.arenaBytes).toBeGreaterThanOrEqual(small.unsharedBytes);
    expect(runPipeline(adamStep(32)).memory.arenaBytes).toBeLessThan(small.arenaBytes); // one thread: shared
    const big = adamStep(8192), threads = runPipeline(big, { caps: { ...DEFAULT_CAPS, threads: 2, parallelGrain: 1 << 30 } }).memory;
    expect(threads.unsharedBytes).toBeGreaterThan(THREADED_APART_BYTES);
    expect(threads.arenaBytes).toBeLessThan(threads.unsharedBytes);
  });
});

describe('row patterns written with keras.ops fuse into one kernel', () => {
  it('layer norm over the last axis: mean, variance as the mean of squared deviations, scale and shift', () => {
    const g = traceOps('layer_norm', { x: [8, 32], gamma: [32], beta: [32] }, ({ x, gamma, beta }) => {
      const mean = ops.mean(x, { axis: -1, keepdims: true });
      const d = ops.subtract(x, mean);
      const variance = ops.mean(ops.square(d), { axis: -1, keepdims: true });
      return ops.add(ops.multiply(ops.divide(d, ops.sqrt(ops.add(variance, 1e-5))), gamma), beta);
    });
    const c = compileAndCheck(g);
    expect(c.plan.kernels.length).toBe(1);
    expect(c.plan.kernels[0]!.nests.length).toBe(1);
  });

  it('softmax: exp(x - max) / sum', () => {
    const g = traceOps('softmax', { x: [8, 32] }, ({ x }) => {
      const e = ops.exp(ops.subtract(x, ops.max(x, { axis: -1, keepdims: true })));
      return ops.divide(e, ops.sum(e, { axis: -1, keepdims: true }));
    });
    const c = compileAndCheck(g);
    expect(c.plan.kernels.length).toBe(1);
    expect(c.plan.kernels[0]!.ops).toEqual(expect.arrayContaining(['reduce_max', 'exp', 'reduce_sum', 'div']));
  });

  it('log-softmax, mean and variance, and a Dense with relu each take one kernel', () => {
    const cases: [string, Record<string, number[]>, (xs: Record<string, Tensor>) => Tensor | Tensor[]][] = [
      ['log_softmax', { x: [8, 32] }, ({ x }) => ops.logSoftmax(x)],
      ['mean_variance', { x: [8, 32] }, ({ x }) => [ops.mean(x, { axis: -1 }), ops.variance(x, { axis: -1 })]],
      ['dense_relu', { x: [8, 32], w: [32, 16], b: [16] }, ({ x, w, b }) => ops.relu(ops.add(ops.matmul(x, w), b))],
    ];
    for (const [name, shapes, fn] of cases) {
      expect(compileAndCheck(traceOps(name, shapes, fn)).plan.kernels.length, name).toBe(1);
    }
  });

  it('a layer norm as a custom layer in a functional model fuses the same way', () => {
    class LayerNorm extends keras.layers.Layer {
      gamma!: keras.Variable;
      beta!: keras.Variable;
      override build(shape: (number | null)[]): void {
        const d = shape[shape.length - 1]!;
        this.gamma = this.addWeight('gamma', [d], 'ones');
        this.beta = this.addWeight('beta', [d], 'zeros');
        this.built = true;
      }
      call(x: Tensor): Tensor {
        const mean = ops.mean(x, { axis: -1, keepdims: true });
        const d = ops.subtract(x, mean);
        const variance = ops.mean(ops.square(d), { axis: -1, keepdims: true });
        return ops.add(ops.multiply(ops.divide(d, ops.sqrt(ops.add(variance, 1e-5))), this.gamma), this.beta);
      }
    }
    const inputs = keras.Input({ shape: [32] });
    const model = keras.Model({ inputs, outputs: new LayerNorm()(inputs) });
    const t = traceModel(model, 8);
    expect(compile(t.graph).plan.kernels.length).toBe(1);
  });
});

describe('isRowReduce', () => {
  it('holds for a reduction of the full shape over exactly the nest\'s axes, and nothing else', () => {
    const b = new Builder();
    const x = b.input('x', { dtype: 'float32', shape: [2, 3, 4] });
    const key = { full: [2, 3, 4], axes: [1, 2] };
    const red = (op: Op, axes: number[], keepdims = false) => b.emit(op, [x], { axes, keepdims });
    for (const op of REDUCE_OPS) {
      expect(isRowReduce(red(op, [1, 2]), key), op).toBe(true);
      expect(isRowReduce(red(op, [1, 2], true), key), `${op} keepdims`).toBe(true);
    }
    expect(isRowReduce(red('reduce_sum', [2]), key)).toBe(false);
    expect(isRowReduce(red('reduce_sum', [0, 1, 2]), key)).toBe(false);
    expect(isRowReduce(red('reduce_sum', [1, 2]), { full: [2, 3, 4], axes: [] })).toBe(false);
    expect(isRowReduce(red('reduce_sum', [1]), { full: [2, 12], axes: [1] })).toBe(false);
    expect(isRowReduce(b.emit('argmax', [x], { axis: 2 }), { full: [2, 3, 4], axes: [2] })).toBe(false);
    const win = b.emit('reduce_window', [x], { kind: 'max', window: [2], strides: [1], padding: [[0, 0]] });
    expect(isRowReduce(win, { full: [2, 3, 4], axes: [1] })).toBe(false);
  });
});

describe('dtypes of the graphs compiled here', () => {
  it('stay float32 except labels and the rng counter', () => {
    const dtypes = new Set<DType>(adamStep(4).inputs.map((n) => n.type.dtype));
    expect([...dtypes].sort()).toEqual(['float32', 'int32']);
  });
});

describe('inlining is bounded', () => {
  /** The Adam step of an LSTM unrolled over `steps`: its gradient chains values each read by the next step. */
  const lstmStep = (steps: number) => {
    const model = keras.Sequential([keras.layers.LSTM(4, { inputShape: [steps, 3], unroll: true }), keras.layers.Dense(2, { activation: 'softmax' })]);
    const c = compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    return traceTrainStep(model, c, [[2, steps, 3]], [[2]]).graph;
  };
  const statements = (ss: readonly Stmt[]): number => ss.reduce((a, s) => a + 1 + (s.k === 'for' ? statements(s.body) : 0), 0);

  it('an unrolled LSTM\'s training step grows linearly with its steps (inlined, it grew 7x from 4 to 12 steps) and stays exact', () => {
    const [short, long] = [4, 12].map((n) => compileAndCheck(lstmStep(n)));
    const size = (c: Compiled) => c.program.kernels.reduce((a, k) => a + statements(k.body), 0);
    expect(size(long!) / size(short!)).toBeLessThan(3.5);
    // every value's inlined expansion within the bound: the materialized ones read back instead
    expect(long!.plan.materialized.size).toBeGreaterThan(100);
    expect(MAX_INLINED_OPS).toBeLessThanOrEqual(1024);
  });
});
