// Parallel loops of the wasm target run in chunks as a thread pool runs them: the chunk functions, called over the
// pieces the loader's pool (and the llvm target's) cuts, last piece first, give the interpreter's results bit for bit.
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { runPipeline } from '../../driver/pipeline.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import type { TypedArray } from '../../ir/types.js';

/** Iterations [begin, end) of thread t of `threads` (runtime/wasm/model.mjs chunkOf, kiln_runtime.c run_chunk). */
function chunkOf(t: number, threads: number, n: number): [number, number] {
  const q = Math.floor(n / threads), r = n % threads, begin = t * q + Math.min(t, r);
  return [begin, begin + q + (t < r ? 1 : 0)];
}

/**
 * Runs g compiled for WASM_CAPS with its parallel loops cut for `threads` threads, pieces in reverse order, each
 * with its thread's scratch; also the top-level parallel loops of the program, and the bytes of every thread's
 * scratch region past the first's (ThreadMemory) after the run.
 */
function chunked(g: Graph, inputs: Record<string, TypedArray>, params: Record<string, TypedArray>, threads: number) {
  const c = runPipeline(g, { caps: WASM_CAPS });
  let loops = 0;
  const art = renderWasm(c.program, c.memory);
  const r = new WasmRunner(c.program, art, {
    parallel: (chunk, n) => {
      loops++;
      for (let t = threads - 1; t >= 0; t--) {
        const [begin, end] = chunkOf(t, threads, n);
        if (begin < end) chunk(begin, end, t);
      }
    },
  });
  const out = r.run(inputs, params);
  const memory = (r as unknown as { memory: WebAssembly.Memory }).memory, T = art.threads!;
  const scratch = Array.from({ length: threads - 1 }, (_, t) => new Uint8Array(memory.buffer.slice(T.scratch + t * T.scratchStride, T.scratch + (t + 1) * T.scratchStride)));
  const parallel = c.program.kernels.flatMap((k) => k.body.filter((s) => s.k === 'for' && s.kind === 'parallel')).length;
  return { ...out, loops, parallel, scratch, stride: T.scratchStride };
}

const seedCnn = () => keras.Sequential([
  keras.layers.Conv2D(8, 3, { activation: 'relu', padding: 'same', inputShape: [28, 28, 1] }),
  keras.layers.MaxPooling2D(2),
  keras.layers.Conv2D(16, 3, { activation: 'relu' }),
  keras.layers.GlobalAveragePooling2D(),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);
const seedMlp = () => keras.Sequential([
  keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
  keras.layers.Dropout(0.2),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);

describe('wasm parallel loops in chunks', () => {
  for (const [name, make, shape, batch] of [['seed CNN', seedCnn, [28, 28, 1], 2], ['seed MLP', seedMlp, [784], 64]] as const) {
    it(`${name}: predict and an Adam step on 2 and 3 threads' chunks equal the interpreter bit for bit`, () => {
      keras.utils.setRandomSeed(3);
      const model = make();
      const size = batch * shape.reduce((a, b) => a * b, 1);
      const x = Float32Array.from({ length: size }, (_, i) => (Math.sin(i * 0.7) + 1) / 2);
      const y = Int32Array.from({ length: batch }, (_, i) => (i * 3) % 10);
      const t = traceModel(model, batch);
      const input = String(t.graph.inputs[0]!.attrs['name']), output = t.graph.outputs[0]!.name;
      const step = traceTrainStep(model, compileModel(model, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' }), [[batch, ...shape]], [[batch]]);
      const cases: [Graph, Record<string, TypedArray>, Record<string, TypedArray>][] = [
        [t.graph, { [input]: x }, Object.fromEntries(t.variables.map((v) => [v.path, v.data]))],
        [step.graph, { [input]: x, [`target/${output}`]: y, rng_counter: Int32Array.of(5) }, Object.fromEntries(step.variables.map((v) => [v.path, v.data]))],
      ];
      for (const [g, inputs, params] of cases) {
        const ref = interpret(g, inputs, params);
        for (const threads of [2, 3]) {
          const got = chunked(g, inputs, params, threads);
          expect(got.loops).toBeGreaterThan(0);
          // every thread ran pieces in its own scratch where the loops keep local arrays there
          for (const s of got.scratch) expect(s.length === 0 || s.some((b) => b !== 0)).toBe(true);
          for (const [k, v] of ref.outputs) expect(Array.from(got.outputs.get(k)!), k).toEqual(Array.from(v.data));
          for (const [k, v] of ref.updates) expect(Array.from(got.updates.get(k)!), k).toEqual(Array.from(v.data));
        }
      }
    });
  }

  it('the seed MLP\'s softmax keeps a local array in scratch and runs on threads, each in its own scratch', () => {
    keras.utils.setRandomSeed(3);
    const model = seedMlp();
    const x = Float32Array.from({ length: 64 * 784 }, (_, i) => (Math.sin(i * 0.7) + 1) / 2);
    const t = traceModel(model, 64);
    const input = String(t.graph.inputs[0]!.attrs['name']), output = t.graph.outputs[0]!.name;
    const params = Object.fromEntries(t.variables.map((v) => [v.path, v.data]));
    const ref = interpret(t.graph, { [input]: x }, params).outputs.get(output)!.data;
    const got = chunked(t.graph, { [input]: x }, params, 3);
    expect(got.stride).toBeGreaterThan(0);
    // every top-level parallel loop runs in pieces (the softmax's, with its local array in scratch, too)
    expect(got.loops).toBe(got.parallel);
    expect(got.loops).toBeGreaterThanOrEqual(3);
    expect(got.scratch.map((s) => s.some((b) => b !== 0))).toEqual([true, true]);
    expect(Array.from(got.outputs.get(output)!)).toEqual(Array.from(ref));
  });
});
