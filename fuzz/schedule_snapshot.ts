// Dev check for schedule refactors: prints the scheduled loop IR of many graphs (the seed examples, the golden seed
// MLP, hand-written matmul/conv nests, random graphs) under each target's caps, to a folder; `--compare DIR` prints
// them again and reports every program that differs from DIR's, after renaming loop variables, decls and local
// arrays by order of appearance (so a renumbering alone is no difference).
//   npm run build && node dist/fuzz/schedule_snapshot.js --out tmp/sched-base
//   npm run build && node dist/fuzz/schedule_snapshot.js --out tmp/sched-new --compare tmp/sched-base
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { printProgram } from '../codegen/loop/printer.js';
import * as keras from '../frontend/index.js';
import { traceModel } from '../frontend/models/executor.js';
import { Model } from '../frontend/models/model.js';
import { compileModel, traceTrainStep } from '../frontend/models/training.js';
import { type Graph, updatesAsOutputs } from '../ir/graph.js';
import { parseGraph } from '../ir/parser.js';
import { LLVM_CAPS } from '../codegen/llvm/target.js';
import { runPipeline } from '../driver/pipeline.js';
import { randomGraph } from './random_graphs.js';
import { SCHEDULES } from './targets.js';

const CAPS = { ...SCHEDULES, llvm1: LLVM_CAPS };

/** Hand-written nests that reach every blocked schedule with shapes the random graphs are too small for. */
const HAND: Record<string, string> = {
  mm_pack: `graph @mm {
  %0 = input {name="a"} : f32[32,24]
  %1 = input {name="b"} : f32[24,192]
  %2 = matmul %0, %1 : f32[32,192]
  %3 = input {name="c"} : f32[192]
  %4 = broadcast %3 {shape=[32, 192]} : f32[32,192]
  %5 = add %2, %4 : f32[32,192]
  output "y" = %5
}`,
  mm_bt: `graph @mmt {
  %0 = input {name="a"} : f32[64,16]
  %1 = input {name="b"} : f32[64,16]
  %2 = transpose %1 {perm=[1, 0]} : f32[16,64]
  %3 = matmul %0, %2 : f32[64,64]
  %4 = tanh %3 : f32[64,64]
  output "y" = %4
  output "z" = %3
}`,
  bmm: `graph @bmm {
  %0 = input {name="a"} : f32[3,8,16]
  %1 = input {name="b"} : f32[3,16,32]
  %2 = matmul %0, %1 : f32[3,8,32]
  output "y" = %2
}`,
  mm_odd: `graph @mmo {
  %0 = input {name="a"} : f32[12,7]
  %1 = input {name="b"} : f32[7,10]
  %2 = matmul %0, %1 : f32[12,10]
  %3 = input {name="c"} : f32[7,10]
  %4 = matmul %0, %3 : f32[12,10]
  %5 = mul %2, %4 : f32[12,10]
  output "y" = %5
}`,
  mm_chain: `graph @mmc {
  %0 = input {name="a"} : f32[16,8]
  %1 = input {name="b"} : f32[8,8]
  %2 = matmul %0, %1 : f32[16,8]
  %3 = exp %2 : f32[16,8]
  %4 = input {name="c"} : f32[8,8]
  %5 = matmul %3, %4 : f32[16,8]
  output "y" = %5
}`,
  mm_softmax: `graph @mms {
  %0 = input {name="a"} : f32[16,8]
  %1 = input {name="b"} : f32[8,12]
  %2 = matmul %0, %1 : f32[16,12]
  %3 = reduce_max %2 {axes=[1], keepdims=true} : f32[16,1]
  %4 = broadcast %3 {shape=[16, 12]} : f32[16,12]
  %5 = sub %2, %4 : f32[16,12]
  %6 = exp %5 : f32[16,12]
  output "y" = %6
}`,
  conv: `graph @conv {
  %0 = input {name="x"} : f32[2,10,12,3]
  %1 = input {name="k"} : f32[3,3,3,16]
  %2 = conv %0, %1 {dilation=[1, 1], groups=1, lhsDilation=[1, 1], padding=[[1, 1], [1, 1]], strides=[1, 1]} : f32[2,10,12,16]
  %3 = max %2, %2 : f32[2,10,12,16]
  output "y" = %3
}`,
  conv_groups: `graph @convg {
  %0 = input {name="x"} : f32[1,8,8,4]
  %1 = input {name="k"} : f32[3,3,2,16]
  %2 = conv %0, %1 {dilation=[1, 1], groups=2, lhsDilation=[1, 1], padding=[[1, 0], [1, 0]], strides=[2, 2]} : f32[1,4,4,16]
  output "y" = %2
}`,
  sum_rows: `graph @rows {
  %0 = input {name="x"} : f32[256,512]
  %1 = reduce_sum %0 {axes=[1], keepdims=false} : f32[256]
  output "y" = %1
}`,
  sum_all: `graph @sum {
  %0 = input {name="x"} : f32[256,512]
  %1 = reduce_sum %0 {axes=[0, 1], keepdims=false} : f32[]
  output "y" = %1
}`,
};

function seedMlp(seed: number): keras.Sequential {
  keras.backend.clearSession();
  keras.utils.setRandomSeed(seed);
  return keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
}

function trainGraph(model: Model, batch: number, c = model.compiled!): Graph {
  const b = (s: readonly (number | null)[]) => s.map((d, i) => (i === 0 ? batch : d ?? 1));
  const targets = model.outputShapes.map((s, i) => (c.losses[i]!.targetDtype === 'int32' ? b(s).slice(0, -1) : b(s)));
  return traceTrainStep(model, c, model.inputSpecs.map((s) => b(s.shape)), targets).graph;
}

/** name -> graph builder, in a fixed order. */
async function cases(seeds: number): Promise<[string, () => Graph][]> {
  const out: [string, () => Graph][] = [];
  out.push(['golden_predict', () => traceModel(seedMlp(1234), 2).graph]);
  out.push(['golden_train', () => {
    const m = seedMlp(1234);
    return trainGraph(m, 2, compileModel(m, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' }));
  }]);
  out.push(['mlp256_train', () => {
    const m = seedMlp(7);
    return trainGraph(m, 256, compileModel(m, { optimizer: 'adam', loss: 'sparse_categorical_crossentropy' }));
  }]);
  for (const [name, text] of Object.entries(HAND)) out.push([`hand_${name}`, () => parseGraph(text)]);
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../examples/seed');
  process.env['KILN_EPOCHS'] = '0';
  const log = console.log;
  console.log = () => {};
  try {
    for (const f of readdirSync(dir).filter((f) => f.endsWith('.js')).sort()) {
      const mod = (await import(path.join(dir, f))) as Record<string, unknown>;
      for (const [name, m] of Object.entries(mod)) {
        if (!(m instanceof Model) || name === 'default' && Object.values(mod).filter((x) => x === m).length > 1) continue;
        for (const batch of [3, 16]) {
          out.push([`ex_${f.slice(0, -3)}_${name}_b${batch}`, () => traceModel(m, batch).graph]);
          if (m.compiled) out.push([`ex_${f.slice(0, -3)}_${name}_train_b${batch}`, () => updatesAsOutputs(trainGraph(m, batch))]);
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

/**
 * Renames loop variables, decls and local arrays by order of appearance in each kernel, and sorts the buffer list
 * (memplan places buffers by size and name, so their order in the program does not matter).
 */
export function normalize(text: string): string {
  const [head, ...kernels] = text.split(/\n(?=kernel )/);
  const lines = (head ?? '').split('\n');
  const buffers = lines.filter((l) => l.startsWith('  buffer ')).sort();
  let b = 0;
  const sorted = lines.map((l) => (l.startsWith('  buffer ') ? buffers[b++]! : l)).join('\n');
  return [sorted, ...kernels].map((k) => {
    const names = new Map<string, string>();
    for (const m of k.matchAll(/(?:for|decl|local) ([A-Za-z_][A-Za-z0-9_]*)/g)) if (!names.has(m[1]!)) names.set(m[1]!, `_${names.size}`);
    return k.replace(/\b[A-Za-z_][A-Za-z0-9_]*\b/g, (w) => names.get(w) ?? w);
  }).join('\n');
}

const opts = new Command('schedule_snapshot')
  .requiredOption('--out <dir>', 'folder for the printed programs')
  .option('--compare <dir>', 'a folder of earlier output to compare with')
  .option('--seeds <n>', 'random graph seeds 1..n', '300')
  .option('--only <regex>', 'only cases whose name matches')
  .parse()
  .opts<{ out: string; compare?: string; seeds: string; only?: string }>();

mkdirSync(opts.out, { recursive: true });
let differ = 0, same = 0;
const only = opts.only ? new RegExp(opts.only) : undefined;
for (const [name, make] of await cases(Number(opts.seeds))) {
  if (only && !only.test(name)) continue;
  for (const [capsName, caps] of Object.entries(CAPS)) {
    let text: string;
    try {
      text = printProgram(runPipeline(make(), { caps }).program);
    } catch (err) {
      text = `error: ${(err as Error).message}\n`;
    }
    const file = `${name}.${capsName}.txt`;
    writeFileSync(path.join(opts.out, file), text);
    if (!opts.compare) continue;
    const base = path.join(opts.compare, file);
    const old = existsSync(base) ? readFileSync(base, 'utf8') : '<missing>';
    if (normalize(old) === normalize(text)) same++;
    else {
      differ++;
      console.log(`differs: ${file}`);
    }
  }
}
if (opts.compare) console.log(`${same} same, ${differ} differ`);
