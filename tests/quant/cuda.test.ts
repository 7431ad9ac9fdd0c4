// The cuda target renders int8 quantization bit for bit as the interpreter (tests/quant/graphs.ts) on the emulated
// build (KILN_CUDA_EMULATE), and where nvcc is installed its model.cu compiles for sm_90 with no warnings or spills.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCuda, hasNvcc } from '../../codegen/cuda/target.js';
import { interpret } from '../../ir/interpreter.js';
import { expectSame } from '../ir/helpers.js';
import { outputDiffs, runMain, weightsOf, expectNvccClean } from '../native.js';
import { QUANT_CASES } from './graphs.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-quant-cuda-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('int8 on the cuda target (emulated) equals the interpreter', () => {
  it.each(Object.keys(QUANT_CASES))('%s', (name, ctx) => {
    const { g, inputs, params, exact } = QUANT_CASES[name]!();
    const dir = path.join(tmp, name);
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, params), nvcc: false });
    const got = runMain(path.join(dir, 'model_main_emu'), dir, g, inputs);
    const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(params))).outputs;
    for (const k of exact) expectSame(got.get(k)!, want.get(k)!.data);
    expect(outputDiffs(g, inputs, params, got, 'cuda')).toEqual([]);
    // nvcc on the networks (the op cases add no kernel shape of their own): its minutes of CPU are few here
    if (name !== 'mlp' && name !== 'cnn') return;
    if (!hasNvcc()) return ctx.skip('nvcc is not installed');
    expectNvccClean(dir);
  }, 120_000);
});
