// Packed int8 weight columns computed once per init (codegen/loop/schedules/prepack.ts): an inference artifact
// equals the interpreter call after call, with its own weights and with other weights passed by --weights (kiln_init
// zeroes the cache, so they are packed anew), on 1, 2 and 3 threads, any number of rows.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm } from '../../codegen/llvm/target.js';
import { interpret } from '../../ir/interpreter.js';
import { writeSafetensors } from '../../runtime/safetensors.js';
import { expectSame } from '../ir/helpers.js';
import { outputDiffs, runMain, weightsOf } from '../native.js';
import { QUANT_CASES } from './graphs.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-prepack-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('int8 weights packed once per init', () => {
  it('the seed-like MLP: its own weights, then others by --weights, on 1 to 3 threads, equal the interpreter', () => {
    const { g, inputs, params, exact } = QUANT_CASES['mlp']!();
    const dir = path.join(tmp, 'mlp'), bs = 8;
    compileLlvm({ outDir: dir, threads: 2, entries: [{ name: 'predict', graph: g, batchSize: bs }], weights: weightsOf(g, params) });
    expect(readFileSync(path.join(dir, 'model.ir'), 'utf8')).toMatch(/buffer cols_\w+: i32\[\d+\] cache/);
    // other weights: each int8 kernel reversed (every packed column changes), the biases as they are
    const other = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, k.endsWith('kernel') ? v.slice().reverse() : v]));
    writeFileSync(path.join(dir, 'other.safetensors'), writeSafetensors(weightsOf(g, other).map((w) => ({ ...w, dtype: g.params.find((p) => p.attrs['name'] === w.name)!.type.dtype }))));
    for (const [weights, values] of [[[], params], [['--weights', 'other.safetensors'], other]] as const) {
      const want = interpret(g, new Map(Object.entries(inputs)), new Map(Object.entries(values))).outputs;
      for (const threads of ['1', '2', '3']) {
        // --bench 20: the outputs written after 22 calls, all but the first on the columns it packed
        const got = runMain(path.join(dir, 'model_main'), dir, g, inputs, { KILN_NUM_THREADS: threads }, 'predict', [], [...weights, '--bench', '20']);
        // the int8 logits bit for bit; the softmax through libm's exp within rounding (outputDiffs)
        for (const k of exact) expectSame(got.get(k)!, want.get(k)!.data);
        expect(outputDiffs(g, inputs, values, got, `llvm, ${threads} thread(s)`)).toEqual([]);
      }
    }
    expect(JSON.stringify(other)).not.toBe(JSON.stringify(params));
  });
});
