// The llvm target renders int8 quantization (quantize, qmatmul's fixed-point requantization, dequantize) bit for bit
// as the reference interpreter defines it (tests/quant/graphs.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm } from '../../codegen/llvm/target.js';
import { interpret } from '../../ir/interpreter.js';
import { expectSame } from '../ir/helpers.js';
import { outputDiffs, runMain, weightsOf } from '../native.js';
import { QUANT_CASES } from './graphs.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-quant-llvm-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('int8 on the llvm target equals the interpreter', () => {
  it.each(Object.keys(QUANT_CASES))('%s', (name) => {
    const { g, inputs, params, exact } = QUANT_CASES[name]!();
    const dir = path.join(tmp, name);
    compileLlvm({ outDir: dir, threads: 2, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, params) });
    const got = runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: '2' });
    const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs;
    for (const k of exact) expectSame(got.get(k)!, want.get(k)!.data);
    expect(outputDiffs(g, inputs, params, got, 'llvm')).toEqual([]);
  });
});
