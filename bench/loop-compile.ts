// `node --expose-gc --single-threaded dist/bench/loop-compile.js [--reps N] MODEL...`: CPU milliseconds and heap of the loop-IR stages
// (fuse, lower, simplify, schedule, memplan, then verify and print) for each model's predict and training step under
// every target's caps. The traced graphs are built once; only the pipeline from the graph on is timed. Heap is
// measured after a full GC once each model is done, with the loop-IR intern table's live entries where it has one.
import { loadModelFile } from '../compiler.js';
import { traceModel } from '../frontend/models/executor.js';
import { traceTrainStep } from '../frontend/models/training.js';
import type { Graph } from '../ir/graph.js';
import * as loopIr from '../codegen/loop/ir.js';
import { printProgram } from '../codegen/loop/printer.js';
import type { TargetCaps } from '../codegen/loop/schedule.js';
import { CUDA_CAPS } from '../codegen/cuda/target.js';
import { verifyProgram } from '../codegen/loop/verifier.js';
import { LLVM_CAPS } from '../codegen/llvm/target.js';
import { WASM_CAPS } from '../codegen/wasm/target.js';
import { runPipeline } from '../driver/pipeline.js';

const args = process.argv.slice(2);
let reps = 5;
const files: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--reps') reps = Number(args[++i]);
  else files.push(args[i]!);
}
if (!files.length || !(reps >= 1)) throw new Error('usage: loop-compile [--reps N] MODEL...');

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const CAPS: [string, TargetCaps][] = [['wasm', WASM_CAPS], ['llvm', LLVM_CAPS], ['cuda', CUDA_CAPS]];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const log = console.log;
console.log = () => {}; // model files may print while they load (fit progress)

let total = 0;
for (const file of files) {
  const model = await loadModelFile(file);
  const graphs: Graph[] = [traceModel(model, 1).graph];
  const c = model.compiled;
  if (c) {
    const inputs = model.inputSpecs.map((s) => s.shape.map((d, i) => (i === 0 ? 1 : d ?? 1)));
    const targets = model.outputShapes.map((s, i) => {
      const b = s.map((d, j) => (j === 0 ? 1 : d ?? 1));
      return c.losses[i]!.targetDtype === 'int32' ? b.slice(0, -1) : b;
    });
    graphs.push(traceTrainStep(model, c, inputs, targets).graph);
  }
  /** CPU milliseconds of this process over one run (steadier than wall time on a shared machine) */
  const run = (): number => {
    const t0 = process.cpuUsage();
    for (const g of graphs) {
      for (const [, caps] of CAPS) {
        const { program } = runPipeline(g, { caps });
        if (verifyProgram(program).length) throw new Error(`${file}: program does not verify`);
        printProgram(program);
      }
    }
    const t = process.cpuUsage(t0);
    return (t.user + t.system) / 1000;
  };
  run(); // warm-up (JIT)
  const times: number[] = [];
  for (let r = 0; r < reps; r++) times.push(run());
  await new Promise((resolve) => setImmediate(resolve)); // WeakRefs made in a task hold their targets until it ends
  gc();
  const heap = process.memoryUsage().heapUsed / 2 ** 20;
  const interned = (loopIr as { internedCount?: () => number }).internedCount?.();
  const ms = median(times);
  total += ms;
  log(`${file.padEnd(32)} ${ms.toFixed(1).padStart(8)} ms cpu (min ${Math.min(...times).toFixed(1)})  heap ${heap.toFixed(1)} MiB${interned === undefined ? '' : `  interned ${interned}`}`);
}
log(`${'total'.padEnd(32)} ${total.toFixed(1).padStart(8)} ms`);
