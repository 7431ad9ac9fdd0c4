// The structures fuse keeps across rounds and while grouping, checked against recomputing them from scratch.
import { describe, expect, it } from 'vitest';
import { GRAPH_PASSES } from '../../driver/pipeline.js';
import * as keras from '../../frontend/index.js';
import { compileModel, traceTrainStep } from '../../frontend/models/training.js';
import { type Graph, type Node, topoSort, updatesAsOutputs } from '../../ir/graph.js';
import { GroupOp } from '../../ir/ops.js';
import { type Group, Groups, type RootInfo, fuse, readsOf, rootInfo } from '../../passes/fuse.js';
import { randomGraph, rng } from '../../fuzz/random_graphs.js';

function graphOf(seed: number): Graph {
  let g = randomGraph(seed, { extended: seed % 2 === 0 }).graph;
  for (const p of GRAPH_PASSES) g = p.run(g);
  return g;
}

/** The sequence example's training step over `steps` words (its graph grows with them: issue 20). */
function sequenceTrainStep(steps: number): Graph {
  keras.backend.clearSession();
  keras.utils.setRandomSeed(1);
  const m = keras.Sequential([
    keras.layers.Embedding(50, 8, { inputShape: [steps] }),
    keras.layers.LSTM(8, { returnSequences: true }),
    keras.layers.GRU(4),
    keras.layers.Dense(3, { activation: 'softmax' }),
  ]);
  const c = compileModel(m, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  let g = updatesAsOutputs(traceTrainStep(m, c, [[2, steps]], [[2]]).graph);
  for (const p of GRAPH_PASSES) g = p.run(g);
  return g;
}

/** A root's info as plain data (ids), with its reads under its own key. */
function describe_(m: Node, i: RootInfo, mat: Set<Node>): unknown {
  const ids = (xs: Iterable<Node>) => [...xs].map((x) => x.id).sort((a, b) => a - b);
  return { cone: ids(i.cone), front: ids(i.front), contractions: ids(i.contractions), key: i.key,
    reads: [...readsOf(m, mat, i.key)].map(([x, h]) => `${x.id}:${h}`).sort() };
}

/** The dependency check as a plain walk over groups (fuse's check before it kept bitsets). */
function closesCycleWalk(r: Node, gr: Group, front: Map<Node, Node[]>, groupOf: Map<Node, Group>): boolean {
  const seen = new Set<Group>();
  const stack = front.get(r)!.filter((x) => !gr.roots.includes(x));
  while (stack.length) {
    const x = stack.pop()!;
    if (gr.roots.includes(x)) return true;
    const h = groupOf.get(x)!;
    if (seen.has(h)) continue;
    seen.add(h);
    for (const y of h.roots) stack.push(...front.get(y)!);
  }
  return false;
}

describe('fuse caches', () => {
  it('a root\'s info is unchanged by materializing a value outside its cone (random graphs)', () => {
    let checked = 0, changed = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const g = graphOf(seed), mat = fuse(g).materialized;
      const infos = new Map([...mat].map((m) => [m, rootInfo(m, mat)]));
      for (const x of topoSort(g)) {
        if (GroupOp.Leaf.has(x.op) || mat.has(x)) continue;
        const more = new Set([...mat, x]);
        for (const [m, i] of infos) {
          const after = describe_(m, rootInfo(m, more), more);
          if (i.cone.has(x)) changed += JSON.stringify(after) === JSON.stringify(describe_(m, i, more)) ? 0 : 1;
          else {
            expect(after, `seed ${seed}: %${m.id} after materializing %${x.id}`).toEqual(describe_(m, i, mat));
            checked++;
          }
        }
      }
    }
    // both sides of the rule are exercised: entries that must be kept, and ones whose cone did change
    expect(checked).toBeGreaterThan(100);
    expect(changed).toBeGreaterThan(10);
  });

  it('the bitset dependency check agrees with a walk over groups (random groupings)', () => {
    let yes = 0, no = 0;
    const graphs = [...Array.from({ length: 120 }, (_, i) => () => graphOf(i + 1)), () => sequenceTrainStep(3), () => sequenceTrainStep(5)];
    for (const [seed, make] of graphs.entries()) {
      const g = make(), mat = fuse(g).materialized;
      const order = new Map(topoSort(g).map((n, i) => [n, i]));
      const front = new Map([...mat].map((m) => [m, rootInfo(m, mat).front]));
      const grouping = new Groups(front), rand = rng(seed);
      for (const r of [...mat].sort((a, b) => order.get(a)! - order.get(b)!)) {
        for (const gr of grouping.list) {
          const walk = closesCycleWalk(r, gr, front, grouping.groupOf);
          expect(grouping.closesCycle(r, gr), `seed ${seed}: %${r.id}`).toBe(walk);
          if (walk) yes++;
          else no++;
        }
        // join a random group that closes no cycle, or start a new one
        const open = grouping.list.filter((gr) => !closesCycleWalk(r, gr, front, grouping.groupOf));
        const pick = rand() < 0.2 ? undefined : open[Math.floor(rand() * open.length)];
        grouping.add(r, pick ?? { key: { full: r.type.shape, axes: [] }, roots: [] });
        // what each group depends on, against a walk from the values its roots read
        for (const h of grouping.list) {
          const reached = new Set<Group>(), stack = [h];
          while (stack.length) {
            const k = stack.pop()!;
            for (const y of k.roots) for (const x of front.get(y)!) {
              const kx = grouping.groupOf.get(x)!;
              if (kx !== k && !reached.has(kx)) reached.add(kx), stack.push(kx);
            }
          }
          for (const on of grouping.list) expect(grouping.dependsOn(h, on), `seed ${seed}: group deps`).toBe(reached.has(on));
        }
      }
    }
    expect(yes).toBeGreaterThan(10);
    expect(no).toBeGreaterThan(10);
  });
});
