// Scan loops on every target (llvm model_main, wasm, cuda emulated on the CPU) against the graph interpreter (wasm bit
// for bit; the native builds within libm's rounding), forward and gradients (the reverse loop), all cases in one compiled artifact per target.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCuda } from '../../codegen/cuda/target.js';
import { compileLlvm } from '../../codegen/llvm/target.js';
import { renderWasm } from '../../codegen/wasm/render.js';
import { WasmRunner } from '../../codegen/wasm/runtime.js';
import { runPipeline } from '../../driver/pipeline.js';
import { H100 } from '../../codegen/loop/gpu.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import type { Graph } from '../../ir/graph.js';
import { randomBindings } from '../ir/helpers.js';
import { interpret } from '../../ir/interpreter.js';
import { outputDiffs, runMain } from '../native.js';
import type { Data } from '../passes/differential.js';
import { CASES, casesGraph } from './graphs.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-scan-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const inputsOf = (g: Graph): Data => Object.fromEntries(randomBindings(g, 9)[0]);

/** Elements that differ from the interpreter's in any bit (NaN equals NaN), at most 4 lines. */
function bitDiffs(g: Graph, inputs: Data, got: ReadonlyMap<string, ArrayLike<number>>, label: string): string[] {
  const bad: string[] = [];
  for (const [k, v] of interpret(g, inputs).outputs) {
    v.data.forEach((w, i) => { if (!Object.is(w, got.get(k)![i]) && bad.length < 4) bad.push(`${k}[${i}]: ${label} ${got.get(k)![i]}, interpreter ${w}`); });
  }
  return bad;
}

describe('scan loops on the targets', () => {
  it('llvm model_main equals the interpreter', () => {
    const g = casesGraph(CASES, false, true), dir = path.join(tmp, 'llvm'), inputs = inputsOf(g);
    compileLlvm({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: [], threads: 1 });
    // C's expf and tanhf round differently from the interpreter's (1 ulp here): within rtol 1e-5, as every native test
    expect(outputDiffs(g, inputs, {}, runMain(path.join(dir, 'model_main'), dir, g, inputs), 'llvm')).toEqual([]);
  });

  it('wasm equals the interpreter', () => {
    const g = casesGraph(CASES, false, true), inputs = inputsOf(g);
    const p = runPipeline(g);
    const got = new WasmRunner(p.program, renderWasm(p.program, p.memory)).run(inputs, {});
    expect(bitDiffs(g, inputs, got.outputs, 'wasm')).toEqual([]);
  });

  it('cuda (emulated) equals the interpreter', () => {
    const g = reductionTrees(casesGraph(CASES, false, true), H100), dir = path.join(tmp, 'cuda'), inputs = inputsOf(g);
    compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: [], nvcc: false });
    expect(outputDiffs(g, inputs, {}, runMain(path.join(dir, 'model_main_emu'), dir, g, inputs), 'cuda (emulated)')).toEqual([]);
  });
});
