// Shared by the GPU recipe tests: programs lowered as the CUDA target lowers them, names normalized for comparing
// with today's schedules, and a whole-program check against the graph interpreter (both loop orders).
import { expect } from 'vitest';
import { H100 } from '../../../codegen/loop/gpu.js';
import { reductionTrees } from '../../../codegen/loop/reduction_trees.js';
import { runProgram } from '../../../codegen/loop/interpreter.js';
import type { Program } from '../../../codegen/loop/ir.js';
import { lower } from '../../../codegen/loop/lower.js';
import { printProgram } from '../../../codegen/loop/printer.js';
import { CUDA_CAPS } from '../../../codegen/cuda/target.js';
import { simplify } from '../../../codegen/loop/simplify.js';
import { verifyProgram } from '../../../codegen/loop/verifier.js';
import type { Graph } from '../../../ir/graph.js';
import { interpret } from '../../../ir/interpreter.js';
import { runPipeline } from '../../../driver/pipeline.js';
import { differences } from '../../passes/differential.js';
import { randomBindings } from '../../passes/random_graphs.js';

/** The program the CUDA schedule gets today: the graph lowered for CUDA caps and simplified. */
export function cudaLowered(g: Graph): Program {
  const plan = runPipeline(g, { caps: CUDA_CAPS }).plan;
  return simplify(lower(plan, { name: g.name }));
}

/** Loop variables, decls and local arrays renamed by order of appearance in each kernel (as fuzz/schedule_snapshot.ts compares). */
export function normalizeNames(text: string): string {
  return text.split(/\n(?=kernel )/).map((k) => {
    const names = new Map<string, string>();
    for (const m of k.matchAll(/(?:for|decl|local) ([A-Za-z_][A-Za-z0-9_]*)/g)) if (!names.has(m[1]!)) names.set(m[1]!, `_${names.size}`);
    return k.replace(/\b[A-Za-z_][A-Za-z0-9_]*\b/g, (w) => names.get(w) ?? w);
  }).join('\n');
}

/** One kernel of a program as text. */
export function kernelText(p: Program, k: number): string {
  return printProgram({ ...p, kernels: [p.kernels[k]!] }).split('\n\n').slice(1).join('\n\n');
}

/** p verifies, and computes every output and update the graph interpreter computes, bit for bit (also reversed). */
export function expectMatchesGraph(g: Graph, p: Program, seed = 7): void {
  expect(verifyProgram(p), printProgram(p)).toEqual([]);
  const [inputs, params] = randomBindings(g, seed).map((m) => Object.fromEntries(m));
  const ref = interpret(reductionTrees(g, H100), inputs!, params!);
  for (const reverse of [false, true]) expect(differences(ref, runProgram(p, inputs!, params!, { reverse })), `reverse: ${reverse}`).toEqual([]);
}
