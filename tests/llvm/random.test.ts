// The llvm target on 200 seeded random graphs (every update also an output), against the reference interpreter:
// 20 graphs per module (one entry each, params renamed apart), each entry run by model_main --entry.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLlvm } from '../../codegen/llvm/target.js';
import { Builder, type Graph, type Node, topoSort } from '../../ir/graph.js';
import { outputDiffs, runMain, weightsOf, withUpdates } from '../native.js';
import type { Data } from '../passes/differential.js';
import { randomBindings, randomGraph } from '../passes/random_graphs.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-llvm-random-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const GRAPHS = 200, PER_MODULE = 20;

/** Random graph `seed` with its params prefixed by the seed (entries of one module share params by name). */
function graph(seed: number): { g: Graph; inputs: Data; params: Data; steps: string[] } {
  const rg = randomGraph(seed);
  const [inputs, ps] = randomBindings(rg.graph, seed);
  const prefix = (name: string) => `s${seed}/${name}`;
  const src = withUpdates(rg.graph), b = new Builder(), map = new Map<Node, Node>();
  for (const n of src.inputs) map.set(n, b.leaf(n));
  for (const n of src.params) map.set(n, b.param(prefix(String(n.attrs['name'])), n.type));
  for (const n of topoSort(src)) if (!map.has(n)) map.set(n, n.src.length ? b.emit(n.op, n.src.map((x) => map.get(x)!), n.attrs) : b.leaf(n));
  const g = b.finish(src.name, src.outputs.map((o) => ({ name: o.name, node: map.get(o.node)! })));
  return { g, inputs: Object.fromEntries(inputs), params: Object.fromEntries([...ps].map(([k, v]) => [prefix(k), v])), steps: rg.steps };
}

describe('llvm equals the interpreter on seeded random graphs', () => {
  it.each(Array.from({ length: GRAPHS / PER_MODULE }, (_, i) => i * PER_MODULE))('random graphs %i.. (20 entries of one module)', (first) => {
    const cases = Array.from({ length: PER_MODULE }, (_, i) => ({ seed: first + i, ...graph(first + i) }));
    const dir = path.join(tmp, `r${first}`);
    compileLlvm({
      outDir: dir, threads: 2,
      entries: cases.map((c) => ({ name: `g${c.seed}`, graph: c.g, batchSize: 1 })),
      weights: cases.flatMap((c) => weightsOf(c.g, c.params)),
    });
    for (const c of cases) {
      const got = runMain(path.join(dir, 'model_main'), dir, c.g, c.inputs, { KILN_NUM_THREADS: '2' }, `g${c.seed}`);
      expect(outputDiffs(c.g, c.inputs, c.params, got, 'llvm'), `seed ${c.seed}: ${c.steps.join(', ')}`).toEqual([]);
    }
  });
});
