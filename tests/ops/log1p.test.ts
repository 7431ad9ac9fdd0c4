// log1p, the primitive added end to end (issue 12): accurate where log(1 + x) loses x, on the graph interpreter,
// the loop interpreter, wasm, llvm and CUDA (emulated), and in keras.ops.log1p / softplus / binary cross-entropy.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCuda } from '../../codegen/cuda/target.js';
import { compileLlvm } from '../../codegen/llvm/target.js';
import { runProgram } from '../../codegen/loop/interpreter.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { runPipeline } from '../../driver/pipeline.js';
import * as keras from '../../frontend/index.js';
import { Builder } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { outputDiffs, runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-log1p-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// tiny values (where 1 + x rounds to 1 or loses digits), both sides of 0, near and past -1, specials
const XS = Float32Array.from([1e-7, -1e-7, 3e-9, 1e-30, 1e-3, -0.5, 0.5, 1, 10, 1e30, -0.999999, -1, -2, 0, -0, Infinity, -Infinity, NaN,
  ...Array.from({ length: 46 }, (_, i) => Math.sin(i) * 2 ** (i % 20 - 10))]);

function graph() {
  const b = new Builder();
  const x = b.input('x', { dtype: 'float32', shape: [XS.length] });
  return b.finish('log1p', [{ name: 'y', node: b.emit('log1p', [x]) }]);
}

describe('log1p', () => {
  it('the graph interpreter gives log(1 + x) rounded once to float32', () => {
    const y = interpret(graph(), { x: XS }).outputs.get('y')!.data;
    XS.forEach((x, i) => expect(Object.is(y[i], Math.fround(Math.log1p(x))), `log1p(${x})`).toBe(true));
    expect(y[0]).toBeCloseTo(1e-7, 13); // log(1 + 1e-7) in float32 is 1.19e-7
  });

  it('the loop interpreter equals the graph interpreter bit for bit', () => {
    const g = graph(), c = runPipeline(g);
    const got = runProgram(c.program, { x: XS }, {}).outputs.get('y')!;
    expect(Array.from(got)).toEqual(Array.from(interpret(g, { x: XS }).outputs.get('y')!.data));
  });

  it('wasm, llvm and CUDA (emulated) equal the interpreter', () => {
    const g = graph(), inputs = { x: XS };
    const c = runPipeline(g, { caps: WASM_CAPS });
    const wasm = new WasmRunner(c.program, renderWasm(c.program, c.memory)).run(inputs, {});
    expect(outputDiffs(g, inputs, {}, wasm.outputs, 'wasm')).toEqual([]);
    const ldir = path.join(tmp, 'llvm');
    compileLlvm({ outDir: ldir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, {}), threads: 1 });
    expect(outputDiffs(g, inputs, {}, runMain(path.join(ldir, 'model_main'), ldir, g, inputs), 'llvm')).toEqual([]);
    const cdir = path.join(tmp, 'cuda');
    compileCuda({ outDir: cdir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, {}), nvcc: false });
    expect(outputDiffs(g, inputs, {}, runMain(path.join(cdir, 'model_main_emu'), cdir, g, inputs), 'cuda (emulated)')).toEqual([]);
  }, 300_000);

  it('keras.ops.log1p, softplus and binary cross-entropy keep what log(1 + x) rounded away', () => {
    expect(keras.ops.log1p(keras.ops.array([1e-7])).data[0]).toBeCloseTo(1e-7, 13);
    // Keras 3 / NumPy: softplus(-20) = log1p(exp(-20)) = 2.0611537e-09 (log(1 + exp(-20)) is 0 in float32)
    expect(keras.activations.softplus(keras.ops.array([-20])).data[0]).toBeCloseTo(2.0611537e-9, 15);
    // from logits: -log(sigmoid(20)) = log1p(exp(-20)) for a positive label
    const bce = keras.losses.BinaryCrossentropy({ fromLogits: true });
    expect(bce(keras.ops.array([[1]]), keras.ops.array([[20]])).data[0]).toBeCloseTo(2.0611537e-9, 15);
  });
});
