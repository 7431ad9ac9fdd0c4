// The wasm target renders int8 quantization bit for bit as the reference interpreter (tests/quant/graphs.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileWasm } from '../../codegen/wasm/target.js';
import { type Node, nodeName } from '../../ir/graph.js';
import { weightsOf } from '../native.js';
import { runPipeline } from '../../driver/pipeline.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { WASM_CAPS } from '../../codegen/wasm/target.js';
import { interpret } from '../../ir/interpreter.js';
import { expectClose, expectSame } from '../ir/helpers.js';
import { QUANT_CASES } from './graphs.js';

describe('int8 on the wasm target equals the interpreter', () => {
  it.each(Object.keys(QUANT_CASES))('%s', (name) => {
    const { g, inputs, params, exact } = QUANT_CASES[name]!();
    const c = runPipeline(g, { caps: WASM_CAPS });
    const got = new WasmRunner(c.program, renderWasm(c.program, c.memory)).run(inputs, params).outputs;
    const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs;
    for (const [k, v] of want) {
      if (exact.includes(k)) expectSame(got.get(k)!, v.data);
      else expectClose(got.get(k)!, v.data, 1e-6, 1e-5);
    }
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  });
});

describe('the shipped wasm loader (model.mjs) runs int8 weights', () => {
  // embedded: the int8 weights packed one byte each into model.wasm's data
  it.each([['ops', false], ['ties', false], ['ops', true]] as const)('%s (embedded weights: %s)', async (name, embedWeights) => {
    const { g, inputs, params, exact } = QUANT_CASES[name]!();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-quant-wasm-'));
    try {
      const io = (ns: readonly Node[]) => ns.map((n) => ({ name: nodeName(n), shape: [...n.type.shape], dtype: n.type.dtype }));
      compileWasm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: g.inputs[0]!.type.shape[0]! }], weights: weightsOf(g, params),
        inputs: io(g.inputs), outputs: g.outputs.map((o) => ({ name: o.name, shape: [...o.node.type.shape], dtype: o.node.type.dtype })), embedWeights });
      const { load } = await import(pathToFileURL(path.join(dir, 'model.mjs')).href) as { load: () => Promise<{ predict: (x: Float32Array[]) => Float32Array[] }> };
      const got = (await load()).predict([inputs['x'] as Float32Array]);
      const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs;
      g.outputs.forEach((o, i) => { if (exact.includes(o.name)) expectSame(got[i]!, want.get(o.name)!.data); });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
