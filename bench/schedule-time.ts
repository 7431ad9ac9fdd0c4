// `node dist/bench/schedule-time.js MODEL [--batch 16] [--target llvm] [--predict] [--runs 2]`: CPU milliseconds of
// the loop-IR stages (lower, simplify, schedule) of one model's training step (or predict), run `runs` times in
// this process after one fusion: the first run is what a fresh `kiln compile` pays (code not yet optimized by V8),
// the later ones show the steady state. Prints one JSON line. Fusion is timed once (the sequence example's training
// step takes minutes there: issue 20).
import path from 'node:path';
import { Command } from 'commander';
import { CUDA_CAPS } from '../codegen/cuda/target.js';
import { LLVM_CAPS } from '../codegen/llvm/target.js';
import { lower } from '../codegen/loop/lower.js';
import type { TargetCaps } from '../codegen/loop/schedule.js';
import { schedule } from '../codegen/loop/schedules/index.js';
import { simplify } from '../codegen/loop/simplify.js';
import { WASM_CAPS } from '../codegen/wasm/target.js';
import { GRAPH_PASSES } from '../driver/pipeline.js';
import { traceModel } from '../frontend/models/executor.js';
import { Model } from '../frontend/models/model.js';
import { traceTrainStep } from '../frontend/models/training.js';
import { updatesAsOutputs } from '../ir/graph.js';
import { fuse } from '../passes/fuse.js';

const CAPS: Record<string, TargetCaps> = { llvm: LLVM_CAPS, wasm: WASM_CAPS, cuda: CUDA_CAPS };

const cmd: Command = new Command('schedule-time')
  .argument('<model>', 'a model file built to JavaScript (dist/examples/seed/transformer.js)')
  .option('--batch <n>', 'batch size', '16')
  .option('--target <t>', `whose schedule: ${Object.keys(CAPS).join(', ')}`, 'llvm')
  .option('--predict', 'the predict graph instead of the training step')
  .option('--runs <n>', 'runs of lower, simplify and schedule', '2')
  .parse();
const opts = cmd.opts<{ batch: string; target: string; predict?: boolean; runs: string }>();
const caps = CAPS[opts.target];
if (!caps) cmd.error(`schedule-time: unknown target '${opts.target}'; targets are ${Object.keys(CAPS).join(', ')}`);
const batch = Number(opts.batch), runs = Number(opts.runs);
if (!(Number.isInteger(batch) && batch > 0 && Number.isInteger(runs) && runs > 0)) cmd.error('schedule-time: --batch and --runs take positive integers');

process.env['KILN_EPOCHS'] = '0';
const log = console.log;
console.log = () => {};
const mod = (await import(path.resolve(cmd.args[0]!))) as Record<string, unknown>;
console.log = log;
const model = mod['default'];
if (!(model instanceof Model)) cmd.error(`schedule-time: ${cmd.args[0]} does not export a model by default`);

const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const time = <T>(f: () => T): [T, number] => {
  const t = cpu();
  const out = f();
  return [out, Math.round((cpu() - t) * 10) / 10];
};

const rows = (s: readonly (number | null)[]) => s.map((d, i) => (i === 0 ? batch : d ?? 1));
const c = model.compiled;
let graph = opts.predict || !c ? traceModel(model, batch).graph
  : updatesAsOutputs(traceTrainStep(model, c, model.inputSpecs.map((s) => rows(s.shape)),
    model.outputShapes.map((s, i) => (c.losses[i]!.targetDtype === 'int32' ? rows(s).slice(0, -1) : rows(s)))).graph);
for (const p of GRAPH_PASSES) graph = p.run(graph);
const [plan, fuseMs] = time(() => fuse(graph));
const out: Record<string, number[] | number> = { fuse: fuseMs, lower: [], simplify: [], schedule: [] };
for (let r = 0; r < runs; r++) {
  const [lowered, l] = time(() => lower(plan, { name: graph.name }));
  const [simplified, s] = time(() => simplify(lowered));
  const [, k] = time(() => schedule(simplified, caps));
  (out['lower'] as number[]).push(l);
  (out['simplify'] as number[]).push(s);
  (out['schedule'] as number[]).push(k);
}
process.stdout.write(`${JSON.stringify({ model: cmd.args[0], batch, target: opts.target, graph: opts.predict || !c ? 'predict' : 'trainStep', kernels: plan.kernels.length, cpuMs: out })}\n`);
