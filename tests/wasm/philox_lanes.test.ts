// The 4-lane vector form of philox (codegen/loop/philox_lanes.ts, codegen/wasm/philox_vector.ts): which indices have
// it, and vector loops holding it (plain, over a register tile, with a tail) bit for bit against the loop interpreter.
import { describe, expect, it } from 'vitest';
import { E, type Expr, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { planMemory } from '../../codegen/loop/memplan.js';
import { legalize } from '../../codegen/loop/legalize.js';
import { philoxLanes } from '../../codegen/loop/philox_lanes.js';
import { laneCoef } from '../../codegen/loop/vectorize.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { runPipeline } from '../../driver/pipeline.js';
import * as keras from '../../frontend/index.js';
import { traceTrainStep } from '../../frontend/models/training.js';

const v = (n: string): Expr => E.v(n);
const raw = (op: 'add' | 'sub' | 'mul', a: Expr, b: Expr): Expr => ({ k: 'binary', t: 'i32', op, a, b }); // E.add folds
const philox = (index: Expr, counter: Expr = E.i32(3)) => ({ k: 'philox', t: 'f32', seed: 12345, counter, index }) as Extract<Expr, { k: 'philox' }>;

describe('philoxLanes', () => {
  const varies = (x: Expr): boolean => JSON.stringify(x).includes('"name":"c"');
  const has = (index: Expr, counter?: Expr) => philoxLanes(philox(index, counter), 'c', varies, (x) => laneCoef(x, 'c', varies));
  it('takes indices 4 * (anything) + the lane variable: each lane group one block', () => {
    expect(has(v('c'))).toBe(true);
    expect(has(raw('add', raw('mul', v('o'), E.i32(8)), v('c')))).toBe(true);
    expect(has(raw('add', raw('add', raw('mul', v('o'), E.i32(256)), E.i32(12)), v('c')))).toBe(true);
    expect(has(raw('add', raw('mul', E.load('n', E.i32(0), 'i32'), E.i32(4)), v('c')))).toBe(true);
  });
  it('refuses lanes across two blocks, strided lanes and a counter that differs between lanes', () => {
    expect(has(raw('add', v('c'), E.i32(2)))).toBe(false);
    expect(has(raw('add', raw('mul', v('o'), E.i32(2)), v('c')))).toBe(false);
    expect(has(raw('add', v('o'), v('c')))).toBe(false);
    expect(has(raw('mul', v('c'), E.i32(4)))).toBe(false);
    expect(has(v('c'), v('c'))).toBe(false);
  });
});

/** Runs a loop-IR program (f32 input `a`, output `out`) on wasm and on the loop interpreter. */
function both(body: Stmt[], size: number, outSize: number): { got: Float32Array; want: Float32Array } {
  const p: Program = {
    name: 'philox',
    buffers: [{ name: 'a', dtype: 'float32', size, kind: 'input' }, { name: 'out', dtype: 'float32', size: outSize, kind: 'output' }],
    kernels: [{ name: 'k', ops: [], body }],
    inputs: [{ name: 'a', buffer: 'a' }], params: [], outputs: [{ name: 'out', buffer: 'out' }], updates: [],
  };
  const a = Float32Array.from({ length: size }, (_, i) => Math.fround(Math.sin(i + 1)));
  const q = legalize(p, WASM_CAPS.legal);
  const got = new WasmRunner(q, renderWasm(q, planMemory(q))).run({ a }, {}).outputs.get('out') as Float32Array;
  return { got, want: runProgram(p, { a }, {}).outputs.get('out') as Float32Array };
}

describe('philox in wasm vector loops equals the loop interpreter', () => {
  it('a dropout mask in a vector loop with a scalar tail, at block-aligned offsets of an outer loop', () => {
    const n = 3, m = 10, row = 12; // lanes 0..7 as two blocks per row, 8..9 in the tail
    const idx = raw('add', raw('mul', v('i'), E.i32(row)), v('c'));
    const body: Stmt[] = [S.for('i', n, [S.for('c', m, [
      S.decl('u', 'f32', philox(idx)),
      S.store('out', raw('add', raw('mul', v('i'), E.i32(m)), v('c')),
        E.select(E.binary('ge', E.v('u', 'f32'), E.f32(0.3)), E.binary('div', E.load('a', idx, 'f32'), E.f32(0.7)), E.f32(0))),
      S.store('out', raw('add', E.i32(n * m), raw('add', raw('mul', v('i'), E.i32(m)), v('c'))), E.v('u', 'f32')),
    ], 'vector')])];
    const { got, want } = both(body, n * row, 2 * n * m);
    expect(Array.from(got)).toEqual(Array.from(want));
    expect(new Set(got.subarray(n * m)).size).toBe(n * m); // the raw draws: all distinct
  });

  it('a vector loop over a register tile (unrolled by lane groups), as a matmul epilogue has it', () => {
    const body: Stmt[] = [
      S.local('acc', 'f32', 8),
      S.for('d', 8, [S.store('acc', v('d'), E.load('a', v('d'), 'f32'))], 'vector'),
      S.for('o', 2, [S.for('c', 8, [
        S.decl('u', 'f32', philox(raw('add', raw('mul', v('o'), E.i32(16)), v('c')))),
        S.store('out', raw('add', raw('mul', v('o'), E.i32(8)), v('c')), E.binary('mul', E.load('acc', v('c'), 'f32'), E.v('u', 'f32'))),
      ], 'vector')]),
    ];
    const { got, want } = both(body, 8, 16);
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  it("the seed MLP's training step at batch 8: its dropout epilogues are vector loops", () => {
    keras.utils.setRandomSeed(3);
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const step = traceTrainStep(model, model.compiled!, [[8, 784]], [[8]]);
    const c = runPipeline(step.graph);
    const inVector = (ss: readonly Stmt[], vec: boolean): number => ss.reduce((n, s) => n + (s.k === 'for' ? inVector(s.body, vec || s.kind === 'vector')
      : (s.k === 'decl' && s.init.k === 'philox' && vec ? 1 : 0)), 0);
    expect(c.program.kernels.map((k) => inVector(k.body, false)).reduce((a, b) => a + b)).toBe(2);
  });
});
