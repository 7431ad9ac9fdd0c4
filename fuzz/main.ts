// `npm run fuzz -- --target wasm|llvm|cuda-emu|loop --seeds A..B [--updates] [--schedule S] [--rows | --train-rows | --keras | --keras-rows | --quant] [--runtime R]`: seeded random graphs
// against the graph interpreter; failures shrunk to .ir reproducers. A worker process does the work (worker.ts).
import { type ChildProcess, fork } from 'node:child_process';
import { Command, InvalidArgumentError } from 'commander';
import { type Batch, type Report, type Settings, commandFor, writeRepro } from './worker.js';
import { type Failure, SCHEDULES, type Schedule, TARGETS, type Target, eachSchedule, fuzzCase } from './targets.js';

interface Flags {
  target: string;
  seeds: [number, number];
  updates?: boolean;
  rows?: boolean;
  trainRows?: boolean;
  keras?: boolean;
  kerasRows?: boolean;
  quant?: boolean;
  runtime: string;
  cpu?: string;
  schedule?: string;
  out: string;
  perModule: number;
  timeout: number;
  shrinkSeconds: number;
}

function seedRange(v: string): [number, number] {
  const m = /^(\d+)\.\.(\d+)$/.exec(v);
  if (!m || Number(m[1]) >= Number(m[2])) throw new InvalidArgumentError('expected A..B with A < B (seeds A to B-1)');
  return [Number(m[1]), Number(m[2])];
}

function count(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    return n;
  };
}

const flags = new Command('fuzz')
  .description('run seeded random graphs on a target against the graph interpreter; shrink failures to .ir reproducers')
  .requiredOption('--target <target>', `${TARGETS.join(', ')} (loop: the loop-IR interpreter under a schedule)`)
  .requiredOption('--seeds <A..B>', 'the seeds A to B-1', seedRange)
  .option('--updates', 'params updated in place by the target (otherwise every update is an output)')
  .option('--rows', 'llvm, cuda-emu: graphs with a batch axis; those whose rows are independent run at 1 to 3 batches of rows through kiln_run_rows')
  .option('--train-rows', 'training steps of small random Keras models with the "rows" input (a last, smaller batch), also checked against the step traced for those rows')
  .option('--keras', 'graphs of small random Keras models, sequence (recurrent layers as scans, masks) or image (Conv2D, pooling, BatchNormalization): predict, the training step, or the split step\'s gradStep or applyGrads (checked against the fused step on the interpreter)')
  .option('--keras-rows', 'llvm, cuda-emu: as --keras, the predict graphs (batch 2 or more, rows independent) at 1 to 3 batches of rows through kiln_run_rows')
  .option('--quant', 'int8 graphs (calibrated, quantized networks; raw qmatmul / qconv chains), their int8 and dequantized values bit for bit')
  .option('--runtime <runtime>', 'llvm: hosted, or freestanding (kiln_core.c alone, the weights embedded; no --updates)', 'hosted')
  .option('--cpu <cpu>', 'llvm: -mcpu for the modules (default: the host\'s x86-64 level), e.g. icelake-server: int8 kernels as VNNI byte quads')
  .option('--schedule <schedule>', `loop only: ${Object.keys(SCHEDULES).join(', ')} (default: each; vnni only with --quant)`)
  .option('--out <dir>', 'folder for reproducers', 'fuzz-out')
  .option('--per-module <n>', 'graphs per batch: per compiled module on wasm, llvm and cuda-emu', count(1), 20)
  .option('--timeout <s>', 'limit on one native run (the worker may stay silent for this and 60 s more: a hang in the compiler or in wasm code)', count(1), 60)
  .option('--shrink-seconds <s>', 'time to shrink one failure (0: do not shrink)', count(0), 120)
  .parse()
  .opts<Flags>();

const fail = (msg: string): never => {
  console.error(`fuzz: ${msg}`);
  process.exit(1);
};
if (!(TARGETS as readonly string[]).includes(flags.target)) fail(`unknown target '${flags.target}'; targets are ${TARGETS.join(', ')}`);
if (flags.schedule !== undefined && flags.target !== 'loop') fail('--schedule is for --target loop only');
if (flags.cpu !== undefined && flags.target !== 'llvm') fail('--cpu is for --target llvm only');
if (flags.rows && flags.target !== 'llvm' && flags.target !== 'cuda-emu') fail('--rows is for --target llvm or cuda-emu only');
if (flags.rows && flags.updates) fail('--rows runs predict graphs: no --updates');
if (flags.kerasRows && flags.target !== 'llvm' && flags.target !== 'cuda-emu') fail('--keras-rows is for --target llvm or cuda-emu only');
if ([flags.rows, flags.trainRows, flags.keras, flags.kerasRows, flags.quant].filter(Boolean).length > 1) fail('--rows, --train-rows, --keras, --keras-rows and --quant: choose one');
if (flags.runtime !== 'hosted' && flags.runtime !== 'freestanding') fail(`unknown runtime '${flags.runtime}'; runtimes are hosted, freestanding`);
if (flags.runtime === 'freestanding' && flags.target !== 'llvm') fail('--runtime freestanding is for --target llvm only');
if (flags.runtime === 'freestanding' && flags.updates) fail('--runtime freestanding keeps the weights in flash: no --updates');
if (flags.schedule !== undefined && !(flags.schedule in SCHEDULES)) fail(`unknown schedule '${flags.schedule}'; schedules are ${Object.keys(SCHEDULES).join(', ')}`);

const target = flags.target as Target;
const settings: Settings = { target, updates: flags.updates ?? false, mode: flags.rows ? 'rows' : flags.trainRows ? 'train-rows' : flags.keras ? 'keras' : flags.kerasRows ? 'keras-rows' : flags.quant ? 'quant' : 'graphs', freestanding: flags.runtime === 'freestanding', ...(flags.cpu ? { cpu: flags.cpu } : {}), out: flags.out, timeoutMs: flags.timeout * 1000, shrinkMs: flags.shrinkSeconds * 1000 };
const schedules: (Schedule | undefined)[] = target !== 'loop' ? [undefined] : flags.schedule ? [flags.schedule as Schedule] : eachSchedule(!!flags.quant);

const [first, end] = flags.seeds;
const queue: Batch[] = [];
const per = flags.perModule;
for (let s = first; s < end; s += per) {
  const seeds = Array.from({ length: Math.min(per, end - s) }, (_, i) => s + i);
  for (const schedule of schedules) queue.push({ schedule, seeds });
}

let graphs = 0, mismatches = 0, crashes = 0, lastPrint = Date.now();
const approx: number[] = [];
const t0 = Date.now();
const where = (b: Batch) => `${target}${b.schedule ? ` (${b.schedule} schedule)` : ''}`;
const progress = () => `${graphs} graphs, ${mismatches} mismatches, ${crashes} crashes${target === 'llvm' ? `, ${approx.length} approx` : ''}`;

function record(b: Batch, seed: number, f: Failure, file?: string): void {
  if (f.kind === 'approx') approx.push(seed);
  else if (f.kind === 'mismatch' || f.kind === 'batch-only') mismatches++;
  else crashes++;
  const again = f.kind === 'approx' ? '' : `\n  run again: ${commandFor(settings, seed, b.schedule)}`;
  console.log(`seed ${seed} on ${where(b)}: ${f.kind}: ${f.message.split('\n').join(' | ')}${again}${file ? `\n  reproducer: ${file}` : ''}`);
}

/** The run as a row of bench/results-fuzz.md's table: target, command, graphs, mismatches, crashes, approx, time. */
function summaryRow(secs: number): string {
  const command = `npm run fuzz -- --target ${target} --seeds ${first}..${end}${flags.schedule ? ` --schedule ${flags.schedule}` : ''}${settings.updates ? ' --updates' : ''}${settings.mode !== 'graphs' ? ` --${settings.mode}` : ''}${settings.freestanding ? ' --runtime freestanding' : ''}${settings.cpu ? ` --cpu ${settings.cpu}` : ''}`;
  const time = secs < 120 ? `${secs.toFixed(0)} s` : secs < 7200 ? `${(secs / 60).toFixed(0)} min` : `${(secs / 3600).toFixed(1)} h`;
  const name = `${target === 'loop' ? `loop (${flags.schedule ? `${flags.schedule} schedule` : 'each schedule'})` : target}${settings.freestanding ? ' (freestanding)' : ''}${settings.mode !== 'graphs' ? ` (${settings.mode})` : ''}`;
  const near = target === 'llvm' ? `${approx.length}${approx.length ? ` (seeds ${approx.join(', ')})` : ''}` : '-';
  return `| ${name} | \`${command}\` | ${graphs} | ${mismatches} | ${crashes} | ${near} | ${time} |`;
}

let child: ChildProcess | undefined;
const silence = settings.timeoutMs + 60_000;

/** Runs one batch in the worker; resolves with why the worker stopped answering, or undefined when it finished. */
function runBatch(b: Batch): Promise<{ results: boolean; why?: string }> {
  child ??= fork(new URL('./worker.js', import.meta.url), [JSON.stringify(settings)], { stdio: 'inherit' });
  const c = child;
  return new Promise((resolve) => {
    let results = false, timer: NodeJS.Timeout;
    const finish = (why?: string) => {
      clearTimeout(timer);
      c.off('message', onMessage);
      c.off('exit', onExit);
      if (why) {
        c.kill('SIGKILL');
        child = undefined;
      }
      resolve({ results, why });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(`no answer from the worker for ${silence / 1000} s (the compiler or the code it made hangs)`), silence);
    };
    const onMessage = (r: Report) => {
      arm();
      if (r.type === 'results') {
        results = true;
        graphs += r.results.length;
        for (const x of r.results) if (x.failure) record(b, x.seed, x.failure, x.file);
      } else if (r.type === 'shrunk') {
        console.log(`  seed ${r.seed}: shrunk from ${r.from} to ${r.to} nodes: ${r.file}`);
      } else if (r.type === 'done') finish();
    };
    const onExit = (code: number | null, signal: string | null) => finish(`the worker died (${signal ?? `exit ${code}`})`);
    c.on('message', onMessage);
    c.on('exit', onExit);
    arm();
    c.send(b);
  });
}

console.log(`fuzz: ${target}${settings.updates ? ' with in-place updates' : ''}${settings.mode !== 'graphs' ? `, ${settings.mode}` : ''}${settings.freestanding ? ', freestanding runtime' : ''}, seeds ${first}..${end}${target === 'loop' ? `, schedules ${schedules.join(', ')}` : ''}`);
while (queue.length) {
  const b = queue.shift()!;
  const { results, why } = await runBatch(b);
  if (why && !results) {
    if (b.seeds.length > 1) {
      // find which graph of the batch hangs or kills the worker
      queue.unshift(...b.seeds.map((seed) => ({ schedule: b.schedule, seeds: [seed] })));
    } else {
      graphs++;
      const f: Failure = { kind: why.startsWith('no answer') ? 'timeout' : 'crash', message: why };
      record(b, b.seeds[0]!, f, writeRepro(settings, b.seeds[0]!, b.schedule, fuzzCase(b.seeds[0]!, settings.updates, settings.mode).graph, f));
    }
  } else if (why) {
    console.log(`  shrinking stopped: ${why}`);
  }
  if (Date.now() - lastPrint > 10_000) {
    lastPrint = Date.now();
    const s = (Date.now() - t0) / 1000;
    console.log(`[${s.toFixed(0)} s] ${progress()} (${(graphs / s).toFixed(1)} graphs/s)`);
  }
}
child?.disconnect();
const secs = (Date.now() - t0) / 1000;
console.log(`${secs.toFixed(1)} s, ${(graphs / secs).toFixed(1)} graphs/s`);
if (approx.length) console.log(`approx (right without contraction, with exact math: not failures): seeds ${approx.join(', ')}`);
console.log(`summary: ${summaryRow(secs)}`);
console.log(progress());
process.exitCode = mismatches + crashes > 0 ? 1 : 0;
