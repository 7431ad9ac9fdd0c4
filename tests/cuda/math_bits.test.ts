// The cuda target's transcendental ops bit for bit with the interpreter: the emulated build (KILN_CUDA_EMULATE) on
// every float unary op over 32,768 inputs, and the seed MLP's softmax at batch 1024 (libm's expf differed from the
// interpreter's rounding in 7 of its 10,240 outputs).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCuda } from '../../codegen/cuda/target.js';
import { H100 } from '../../codegen/loop/gpu.js';
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import * as keras from '../../frontend/index.js';
import { traceModel } from '../../frontend/models/executor.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpreter.js';
import { parseGraph } from '../../ir/parser.js';
import { type Data, modelInputs } from '../passes/differential.js';
import { runMain, weightsOf } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-cuda-bits-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Outputs of the emulated build whose bits differ from the interpreter's (count, and the first few). */
function bitDiffs(g0: Graph, inputs: Data, params: Data, name: string): { n: number; first: string[] } {
  const g = reductionTrees(g0, H100);
  const dir = path.join(tmp, name);
  compileCuda({ outDir: dir, entries: [{ name: 'predict', graph: g, batchSize: 1 }], weights: weightsOf(g, params), nvcc: false });
  const got = runMain(path.join(dir, 'model_main_emu'), dir, g, inputs);
  const first: string[] = [];
  let n = 0;
  for (const [k, v] of interpret(g, inputs, params).outputs) {
    const h = new Uint32Array(Float32Array.from(got.get(k)!).buffer), w = new Uint32Array(Float32Array.from(v.data as Float32Array).buffer);
    for (let i = 0; i < w.length; i++) {
      if (h[i] === w[i]) continue;
      n++;
      if (first.length < 4) first.push(`${k}[${i}]: emulated ${got.get(k)![i]}, interpreter ${v.data[i]}`);
    }
  }
  return { n, first };
}

describe('cuda transcendental ops', () => {
  it('exp, log, log1p, tanh, erf, sin, cos and pow equal the interpreter bit for bit (double, rounded once)', () => {
    const n = 32768;
    const g = parseGraph(`graph @math {
  %0 = input {name="x"} : f32[${n}]
  %1 = exp %0 : f32[${n}]
  %2 = abs %0 : f32[${n}]
  %3 = log %2 : f32[${n}]
  %4 = log1p %2 : f32[${n}]
  %5 = tanh %0 : f32[${n}]
  %6 = erf %0 : f32[${n}]
  %7 = sin %0 : f32[${n}]
  %8 = cos %0 : f32[${n}]
  %9 = pow %2, %0 : f32[${n}]
  output "exp" = %1
  output "log" = %3
  output "log1p" = %4
  output "tanh" = %5
  output "erf" = %6
  output "sin" = %7
  output "cos" = %8
  output "pow" = %9
}`);
    // exp's range of interest for softmax, and enough points that libm's last-bit differences (1 in ~1,600) show
    const x = Float32Array.from({ length: n }, (_, i) => -20 + (40 * i) / n + 1e-3);
    expect(bitDiffs(g, { x }, {}, 'math')).toEqual({ n: 0, first: [] });
  });

  it('the seed MLP at batch 1024: all 10,240 softmax outputs bit for bit', () => {
    const model = keras.Sequential([
      keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
      keras.layers.Dropout(0.2),
      keras.layers.Dense(10, { activation: 'softmax' }),
    ]);
    const t = traceModel(model, 1024);
    const params = Object.fromEntries(t.variables.map((v) => [v.path, v.data]));
    expect(bitDiffs(t.graph, modelInputs(t.graph, 3), params, 'mlp')).toEqual({ n: 0, first: [] });
  });
});
