// The wasm renderer's addressing (codegen/wasm/address.ts): affine indices, pointer locals stepped per serial
// iteration, splatted loads; bit for bit against the loop interpreter, and the micro-kernel's code they give.
import { describe, expect, it } from 'vitest';
import binaryen from 'binaryen';
import { E, type Expr, type Program, S, type Stmt } from '../../codegen/loop/ir.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { planMemory } from '../../codegen/loop/memplan.js';
import { legalize } from '../../codegen/loop/legalize.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { affine } from '../../codegen/wasm/address.js';
import { runPipeline } from '../../driver/pipeline.js';
import { tracedFor } from '../../frontend/models/executor.js';
import * as keras from '../../frontend/index.js';
import { traceTrainStep } from '../../frontend/models/training.js';

const v = (n: string): Expr => E.v(n);
const raw = (op: 'add' | 'sub' | 'mul', a: Expr, b: Expr): Expr => ({ k: 'binary', t: 'i32', op, a, b }); // E.add folds
const loops = new Set(['i', 'j', 'k']);

describe('affine indices', () => {
  it('collects coefficients and the constant, with unrolled variables as constants', () => {
    const f = affine(raw('add', raw('mul', v('i'), E.i32(12)), raw('sub', raw('add', v('j'), v('u')), E.i32(1))), new Map([['u', 3]]), (n) => loops.has(n));
    expect(f && { terms: [...f.terms], c: f.c }).toEqual({ terms: [['i', 12], ['j', 1]], c: 2 });
  });
  it('drops terms that cancel, and refuses negative coefficients, products of variables and non-loop variables', () => {
    expect([...affine(raw('sub', raw('add', v('i'), v('j')), v('i')), new Map(), (n) => loops.has(n))!.terms]).toEqual([['j', 1]]);
    expect(affine(raw('sub', E.i32(8), v('j')), new Map(), (n) => loops.has(n))).toBeUndefined();
    expect(affine(raw('mul', v('i'), v('j')), new Map(), (n) => loops.has(n))).toBeUndefined();
    expect(affine(raw('add', v('i'), v('d')), new Map(), (n) => loops.has(n))).toBeUndefined();
  });
});

/** Runs a loop-IR program (f32 input `a` of `size`, output `out`) on wasm and on the loop interpreter. */
function both(body: Stmt[], size: number, outSize: number): { got: Float32Array; want: Float32Array } {
  const p: Program = {
    name: 'addr',
    buffers: [{ name: 'a', dtype: 'float32', size, kind: 'input' }, { name: 'out', dtype: 'float32', size: outSize, kind: 'output' }],
    kernels: [{ name: 'k', ops: [], body }],
    inputs: [{ name: 'a', buffer: 'a' }], params: [], outputs: [{ name: 'out', buffer: 'out' }], updates: [],
  };
  const a = Float32Array.from({ length: size }, (_, i) => Math.fround(Math.sin(i + 1) * 100));
  const q = legalize(p, WASM_CAPS.legal);
  const got = new WasmRunner(q, renderWasm(q, planMemory(q))).run({ a }, {}).outputs.get('out') as Float32Array;
  return { got, want: runProgram(p, { a }, {}).outputs.get('out') as Float32Array };
}

describe('wasm addressing equals the loop interpreter', () => {
  it('nested serial loops: strides, indices with sub and constants, an outer variable in the inner loop, a reversed index', () => {
    const n = 5, m = 7;
    const ld = (idx: Expr) => E.load('a', idx, 'f32');
    const body: Stmt[] = [S.for('i', n, [
      S.decl('s', 'f32', ld(raw('mul', v('i'), E.i32(m)))),
      S.for('j', m, [
        // i*m + j - 1 + 1, and 3*j + i (stride 3), and (n*m - 1) - (i*m + j) (negative coefficients: the plain path)
        S.decl('x', 'f32', ld(raw('add', raw('sub', raw('add', raw('mul', v('i'), E.i32(m)), v('j')), E.i32(1)), E.i32(1)))),
        S.decl('y', 'f32', ld(raw('add', raw('mul', v('j'), E.i32(3)), v('i')))),
        S.decl('z', 'f32', ld(raw('sub', E.i32(n * m - 1), raw('add', raw('mul', v('i'), E.i32(m)), v('j'))))),
        S.store('out', raw('add', raw('mul', v('i'), E.i32(m)), v('j')), E.binary('add', E.binary('mul', E.v('x', 'f32'), E.v('y', 'f32')), E.binary('sub', E.v('z', 'f32'), E.v('s', 'f32')))),
      ]),
      S.store('out', E.i32(n * m + 0), E.v('s', 'f32')),
    ])];
    const { got, want } = both(body, n * m, n * m + 1);
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  it('a vector loop inside a serial loop: lanes and tail addressed off the serial pointer; a decl read only in the vector loop loaded splatted; one also read as a scalar, and an assigned one, not', () => {
    const n = 3, m = 10;
    const body: Stmt[] = [S.for('i', n, [
      S.decl('s', 'f32', E.load('a', raw('add', v('i'), E.i32(1)), 'f32')),
      S.decl('t', 'f32', E.load('a', v('i'), 'f32')),
      S.decl('r', 'f32', E.load('a', raw('add', v('i'), E.i32(2)), 'f32')),
      S.assign('r', E.binary('mul', E.v('r', 'f32'), E.f32(2))),
      S.for('j', m, [
        S.store('out', raw('add', raw('mul', v('i'), E.i32(m)), v('j')),
          E.binary('add', E.binary('mul', E.v('s', 'f32'), E.load('a', raw('add', raw('mul', v('i'), E.i32(m)), v('j')), 'f32')), E.binary('add', E.v('t', 'f32'), E.v('r', 'f32')))),
      ], 'vector'),
      S.store('out', raw('add', E.i32(n * m), v('i')), E.v('t', 'f32')),
    ])];
    const { got, want } = both(body, n * m, n * m + n);
    expect(Array.from(got)).toEqual(Array.from(want));
  });
});

describe('the seed MLP first matmul (batch 256) on wasm', () => {
  it('its reduction loop steps pointers (no multiply) and loads each row of A splatted', () => {
    const model = keras.Sequential([keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }), keras.layers.Dense(10, { activation: 'softmax' })]);
    const c = runPipeline(tracedFor(model, 256).graph, { caps: WASM_CAPS });
    const k0 = c.program.kernels[0]!;
    const m = binaryen.readBinary(renderWasm({ ...c.program, kernels: [k0] }, c.memory).binary);
    const text = m.emitText();
    m.dispose();
    // the innermost loop: from the last `(loop` to the end of its function
    const inner = text.slice(text.lastIndexOf('(loop', text.indexOf('f32x4.mul')));
    const loop = inner.slice(0, inner.indexOf('(br_if'));
    expect(loop.match(/v128\.load32_splat/g)?.length).toBe(4);
    expect(loop.match(/f32x4\.splat/g)).toBeNull();
    expect(loop.match(/i32\.(mul|shl)/g)).toBeNull();
  });
});

describe('philox blocks computed once per loop iteration (wasm) equal the loop interpreter', () => {
  it('words of one block in an unrolled loop, a counter from a decl inside the unrolled loop (a new block each copy), an index not a multiple of 4 apart, and the next iteration', () => {
    const n = 3, m = 8;
    const idx = (c: number) => raw('add', raw('mul', v('i'), E.i32(m)), E.i32(c));
    const body: Stmt[] = [
      S.decl('top', 'i32', E.i32(7)),
      S.for('i', n, [
        S.for('u', 2, [
          S.decl('d', 'i32', raw('add', v('u'), E.i32(5))),
          S.for('c', 4, [S.store('out', raw('add', raw('add', raw('mul', v('i'), E.i32(3 * m)), raw('mul', v('u'), E.i32(m))), v('c')),
            E.philox(11, E.v('d'), raw('add', idx(0), v('c'))))], 'unroll'),
        ], 'unroll'),
        S.for('e', m, [S.store('out', raw('add', raw('add', raw('mul', v('i'), E.i32(3 * m)), E.i32(2 * m)), v('e')),
          E.binary('add', E.philox(11, E.v('top'), raw('add', idx(1), v('e'))), E.philox(11, E.v('top'), raw('add', idx(0), v('e')))))], 'unroll'),
      ]),
    ];
    const { got, want } = both(body, 1, 3 * m * n);
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  it('the seed MLP training step (dropout) computes blocks, never one word at a time', () => {
    const model = keras.Sequential([keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }), keras.layers.Dropout(0.2), keras.layers.Dense(10, { activation: 'softmax' })]);
    model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const c = runPipeline(traceTrainStep(model, model.compiled!, [[32, 784]], [[32]]).graph, { caps: WASM_CAPS });
    binaryen.setDebugInfo(true); // keep function names in the binary
    let bin: Uint8Array;
    try {
      bin = renderWasm(c.program, c.memory).binary;
    } finally {
      binaryen.setDebugInfo(false);
    }
    const m = binaryen.readBinary(bin);
    const text = m.emitText();
    m.dispose();
    expect(text).toMatch(/call \$philox_block/);
    expect(text).not.toMatch(/call \$philox\b(?!_)/);
  });
});
