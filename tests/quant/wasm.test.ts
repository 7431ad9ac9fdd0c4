// The wasm target renders int8 quantization bit for bit as the reference interpreter (tests/quant/graphs.ts).
import { describe, expect, it } from 'vitest';
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
