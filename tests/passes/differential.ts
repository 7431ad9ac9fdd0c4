// Differential helpers: compile a graph through the pipeline, run the loop program and the graph interpreter, list differences.
import { reductionTrees } from '../../codegen/loop/reduction_trees.js';
import { type LoopRunResult, runProgram } from '../../codegen/loop/interpreter.js';
import type { Graph } from '../../ir/graph.js';
import { type RunResult, interpret } from '../../ir/interpreter.js';
import { type TypedArray, sizeOf, toTyped } from '../../ir/types.js';
import type { TargetCaps } from '../../codegen/loop/schedule.js';
import { type Compiled, runPipeline } from '../../driver/pipeline.js';
import { rng } from './random_graphs.js';

export type Data = Record<string, TypedArray>;

/**
 * Element-wise differences between the graph interpreter's results and the loop program's, at most `limit`
 * lines. Exact (Object.is: -0 differs from 0, NaN matches NaN) unless atol is given.
 */
export function differences(ref: RunResult, got: LoopRunResult, atol = 0, limit = 6): string[] {
  const out: string[] = [];
  const cmp = (what: string, want: ArrayLike<number>, have: ArrayLike<number> | undefined) => {
    if (!have) { out.push(`${what}: missing`); return; }
    if (have.length !== want.length) { out.push(`${what}: ${have.length} elements, want ${want.length}`); return; }
    let bad = 0;
    for (let i = 0; i < want.length; i++) {
      const w = want[i]!, h = have[i]!;
      const ok = Object.is(w, h) || (atol > 0 && Math.abs(w - h) <= atol);
      if (!ok && bad++ < 2) out.push(`${what}[${i}]: loop ${h}, graph ${w}`);
    }
    if (bad > 2) out.push(`${what}: ${bad} elements differ`);
  };
  for (const [k, v] of ref.outputs) cmp(`output ${k}`, v.data, got.outputs.get(k));
  for (const [k, v] of ref.updates) cmp(`update ${k}`, v.data, got.updates.get(k));
  return out.slice(0, limit);
}

export interface Differential {
  readonly compiled: Compiled;
  readonly ref: RunResult;
  readonly got: LoopRunResult;
  readonly diffs: string[];
}

/**
 * Compiles g for `caps` (verifying after every graph pass), runs both interpreters on the same data, and diffs
 * them. A GPU schedule is also run with its block and thread loops reversed, which must not change a bit.
 */
export function runBoth(g: Graph, inputs: Data, params: Data, caps?: TargetCaps, atol = 0): Differential {
  const compiled = runPipeline(g, { verifyEach: true, caps });
  // a GPU pipeline declares reduction trees: the reference sums in the same declared order
  const ref = interpret(caps?.gpu ? reductionTrees(g, caps.gpu) : g, inputs, params);
  const got = runProgram(compiled.program, inputs, params);
  const diffs = differences(ref, got, atol);
  if (caps?.gpu) diffs.push(...differences(ref, runProgram(compiled.program, inputs, params, { reverse: true }), atol).map((d) => `reversed: ${d}`));
  return { compiled, ref, got, diffs };
}

/**
 * Data for a traced model graph: features uniform in [-1, 1), float targets in [0, 1), int32 targets as
 * class labels below the matching prediction's last dimension, rng_counter 3.
 */
export function modelInputs(g: Graph, seed: number): Data {
  const out: Data = {};
  g.inputs.forEach((n, k) => {
    const name = String(n.attrs['name']), size = sizeOf(n.type.shape), r = rng(seed + 31 * k);
    if (name === 'rng_counter') out[name] = Int32Array.of(3);
    else if (n.type.dtype === 'int32') {
      const pred = g.outputs.find((o) => o.name === `pred/${name.slice('target/'.length)}`);
      const classes = pred?.node.type.shape.at(-1) ?? 2;
      out[name] = toTyped('int32', Array.from({ length: size }, () => Math.floor(r() * classes)));
    } else {
      const lo = name.startsWith('target/') ? 0 : -1;
      out[name] = toTyped(n.type.dtype, Array.from({ length: size }, () => lo + (1 - lo) * r()));
    }
  });
  return out;
}
