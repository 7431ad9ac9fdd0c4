// Dev check for fusion refactors: writes describePlan(fuse(g)) of many graphs (every example's predict graph and
// training step at two batch sizes, random graphs) to a folder; `--compare DIR` reports every plan that differs.
//   npm run build && node dist/fuzz/fuse_plans.js --out tmp/plans-base
//   npm run build && node dist/fuzz/fuse_plans.js --out tmp/plans-new --compare tmp/plans-base
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { GRAPH_PASSES, describePlan } from '../driver/pipeline.js';
import { traceModel } from '../frontend/models/executor.js';
import { Model } from '../frontend/models/model.js';
import { traceTrainStep } from '../frontend/models/training.js';
import { type Graph, updatesAsOutputs } from '../ir/graph.js';
import { fuse } from '../passes/fuse.js';
import { randomGraph } from './random_graphs.js';

function trainGraph(model: Model, batch: number): Graph {
  const c = model.compiled!;
  const b = (s: readonly (number | null)[]) => s.map((d, i) => (i === 0 ? batch : d ?? 1));
  const targets = model.outputShapes.map((s, i) => (c.losses[i]!.targetDtype === 'int32' ? b(s).slice(0, -1) : b(s)));
  return updatesAsOutputs(traceTrainStep(model, c, model.inputSpecs.map((s) => b(s.shape)), targets).graph);
}

/** name -> graph builder, in a fixed order. */
async function cases(seeds: number): Promise<[string, () => Graph][]> {
  const out: [string, () => Graph][] = [];
  const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../examples');
  process.env['KILN_EPOCHS'] = '0';
  const log = console.log;
  console.log = () => {};
  try {
    for (const dir of [root, path.join(root, 'seed')]) {
      for (const f of readdirSync(dir).filter((f) => f.endsWith('.js')).sort()) {
        const mod = (await import(path.join(dir, f))) as Record<string, unknown>;
        for (const [name, m] of Object.entries(mod)) {
          if (!(m instanceof Model) || name === 'default' && Object.values(mod).filter((x) => x === m).length > 1) continue;
          const id = `${path.basename(dir)}_${f.slice(0, -3)}_${name}`;
          for (const batch of [3, 16]) {
            out.push([`${id}_b${batch}`, () => traceModel(m, batch).graph]);
            if (m.compiled) out.push([`${id}_train_b${batch}`, () => trainGraph(m, batch)]);
          }
        }
      }
    }
  } finally {
    console.log = log;
  }
  for (let s = 1; s <= seeds; s++) {
    out.push([`rand_${s}`, () => randomGraph(s).graph]);
    out.push([`randx_${s}`, () => randomGraph(s, { extended: true }).graph]);
  }
  return out;
}

const opts = new Command('fuse_plans')
  .requiredOption('--out <dir>', 'folder for the plans')
  .option('--compare <dir>', 'a folder of earlier output to compare with')
  .option('--seeds <n>', 'random graph seeds 1..n', '300')
  .option('--only <regex>', 'only cases whose name matches')
  .option('--skip <regex>', 'leave out cases whose name matches')
  .parse()
  .opts<{ out: string; compare?: string; seeds: string; only?: string; skip?: string }>();

mkdirSync(opts.out, { recursive: true });
let differ = 0, same = 0;
const only = opts.only ? new RegExp(opts.only) : undefined, skip = opts.skip ? new RegExp(opts.skip) : undefined;
for (const [name, make] of await cases(Number(opts.seeds))) {
  if (only && !only.test(name) || skip && skip.test(name)) continue;
  let text: string;
  try {
    let g = make();
    for (const p of GRAPH_PASSES) g = p.run(g);
    text = describePlan(fuse(g));
  } catch (err) {
    text = `error: ${(err as Error).message}\n`;
  }
  writeFileSync(path.join(opts.out, `${name}.txt`), text);
  if (!opts.compare) continue;
  const base = path.join(opts.compare, `${name}.txt`);
  if ((existsSync(base) ? readFileSync(base, 'utf8') : '<missing>') === text) same++;
  else {
    differ++;
    console.log(`differs: ${name}`);
  }
}
if (opts.compare) console.log(`${same} same, ${differ} differ`);
