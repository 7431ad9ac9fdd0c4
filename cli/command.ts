// The `kiln` command: `kiln compile model.ts --target wasm -o build/model`. The model file runs, and is compiled, in a
// child process (cli/child.ts) under a time limit, so that no model file can hang, exit or print its way into the output.
import { fork } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { EMITS, KilnError, QUANTIZE, RUNTIMES, TARGETS, checkCompileOptions, checkDistributed, checkQuantize, checkRuntime, displayPath, errorReport, packageRoot } from './common.js';
import type { Job, Message } from './child.js';
import type { ExportJob } from './export_child.js';
import { parseDirect, storeDirect, timingLines } from './direct.js';
import { defaultOutDir } from './outdir.js';
import { takePrefork } from './prefork.js';
import { parseCalibrationMethod } from '../passes/calibration.js';

/** --calibrate-method: a known method, with --quantize. */
function checkCalibrateMethod(method: string, quantize: string | undefined): void {
  if (!quantize) throw new KilnError('--calibrate-method chooses how --quantize int8 calibrates, which is missing');
  try {
    parseCalibrationMethod(method);
  } catch (err) {
    throw new KilnError(`--calibrate-method: ${(err as Error).message}`);
  }
}

interface CompileFlags {
  target: string;
  out?: string;
  train?: boolean;
  embedWeights?: boolean;
  cpu?: string;
  triple?: string;
  runtime?: string;
  emit?: string;
  batchSize: number;
  maxBatch?: number;
  dumpAfter?: string;
  timeout: number;
  weights?: string;
  distributed?: string;
  quantize?: string;
  calibrate?: string[];
  calibrateMethod?: string;
  check: boolean;
  timings?: boolean;
}

// the pass names (importing the pipeline, all the loop IR and schedules: 70 ms of CPU before the compile process can
// start) only where --help shows them or --dump-after is checked against them
const PASS_NAMES = process.argv.slice(2).some((a) => /^(-h|--help|help)$/.test(a) || a.startsWith('--dump-after'))
  ? (await import('../driver/pipeline.js')).PASS_NAMES : undefined;
const { version } = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string };
const debug = process.env['KILN_DEBUG'] === '1';

const program = new Command('kiln')
  .description('Ahead-of-time compiler for neural networks written with a Keras-style TypeScript API')
  .version(version);

program.command('compile')
  .description('compile a model file (a .ts file that `export default`s a built keras model, a Keras 3 .keras file or an ONNX file)')
  .argument('<model>', 'the model file: model.ts, model.keras or model.onnx')
  .option('-t, --target <target>', `code generator: ${TARGETS.join(', ')}`, 'wasm')
  .option('-o, --out <dir>', 'output directory, replaced whole when the compile succeeds (default: build/<model file name>)')
  .option('--train', 'also compile the training step')
  .option('--distributed <backend>', '--train: build model_train for data-parallel training under mpirun, backend: mpi (llvm), nccl (cuda)')
  .option('--cpu <cpu>', 'llvm: CPU to compile for (default: the host x86-64 level, e.g. x86-64-v4)')
  .option('--triple <triple>', 'llvm: cross-compile model.o for a target triple, e.g. aarch64-linux-gnu, thumbv7em-none-eabihf')
  .option('--runtime <runtime>', `llvm: the C runtime, one of: ${RUNTIMES.join(', ')} (freestanding: no OS, threads, files or malloc; weights in flash; the default for a *-none-* triple)`)
  .option('--weights <file>', 'load these weights (.weights.h5 or .safetensors, e.g. model_train\'s output) into the model before compiling')
  .option('--embed-weights', 'store the weights inside the artifact (no weights file needed at run time)')
  .option('--quantize <kind>', `post-training quantization of the inference entries, one of: ${QUANTIZE.join(', ')} (every target; needs --calibrate)`)
  .option('--calibrate <file.npy>', '--quantize: calibration samples of the model\'s input, shape [N, ...] (repeat it for each input of a multi-input model, in order)', (f: string, fs: string[] = []) => [...fs, f])
  .option('--calibrate-method <method>', '--quantize: how activation ranges are chosen: minmax (default), percentile (99.99), percentile:P, mse')
  .option('--emit <stage>', `print a stage instead of writing artifacts, one of: ${EMITS.join(', ')} (ir: the traced graph)`)
  .option('--batch-size <n>', 'batch size of the training step (and to trace the model at for --emit and --dump-after)', positiveInt, 1)
  .option('--max-batch <n>', 'the most rows one predict call runs at once; more run in chunks (default 256)', positiveInt)
  .option('--dump-after <pass>', `print the IR after a pass instead of writing artifacts (with --train, of the training step), one of: ${PASS_NAMES?.join(', ') ?? '(kiln compile --help lists them)'}`)
  .option('--timeout <seconds>', 'stop a model file (and its compile) that runs longer than this; 0: no limit', nonNegative, 120)
  .option('--no-check', 'do not type-check the model file (a check of unchanged files comes from the cache anyway)')
  .option('--timings', 'print the milliseconds of each phase (load, check, run, trace, passes, render, external tools, write) on stderr')
  .action(async (file: string, flags: CompileFlags) => {
    // bad flags fail before the model file is loaded
    const { target, emit, batchSize, maxBatch, dumpAfter } = checkCompileOptions(flags, PASS_NAMES ?? []);
    const runtime = checkRuntime({ ...flags, target });
    const distributed = checkDistributed({ ...flags, target });
    const quantize = checkQuantize({ ...flags, target });
    for (const f of flags.calibrate ?? []) if (!existsSync(f)) throw new KilnError(`--calibrate: no file ${displayPath(f)}`);
    if (flags.calibrateMethod !== undefined) checkCalibrateMethod(flags.calibrateMethod, quantize);
    const job: Job = {
      file, target, emit, batchSize, maxBatch, dumpAfter, out: flags.out, train: flags.train ?? false,
      embedWeights: flags.embedWeights ?? false, cpu: flags.cpu, triple: flags.triple, runtime, weights: flags.weights, distributed,
      awaitCheck: flags.check && checked(file), record: process.env['KILN_DIRECT'] !== '0' && parseDirect(process.argv.slice(2)) !== undefined, ...(quantize ? { quantize, calibrate: flags.calibrate!.map((f) => path.resolve(f)), calibrateMethod: flags.calibrateMethod } : {}),
    };
    process.exitCode = await runChild(job, flags.timeout, './child.js', flags.timings ?? false);
  });

program.command('export')
  .description('export a model file to another format: ONNX (opset 17, a dynamic batch dimension, weights as initializers)')
  .argument('<model>', 'the model file: model.ts, model.keras or model.onnx')
  .requiredOption('-f, --format <format>', 'the format to write: onnx')
  .option('-o, --out <file>', 'the file to write, replaced when the export succeeds (default: build/<model file name>.onnx)')
  .option('--timeout <seconds>', 'stop a model file (and its export) that runs longer than this; 0: no limit', nonNegative, 120)
  .option('--no-check', 'do not type-check the model file')
  .action(async (file: string, flags: { format: string; out?: string; timeout: number; check: boolean }) => {
    if (flags.format !== 'onnx') throw new KilnError(`unknown format '${flags.format}'; formats are onnx`);
    const job: ExportJob = { file, format: 'onnx', out: flags.out, awaitCheck: flags.check && checked(file) };
    process.exitCode = await runChild(job, flags.timeout, './export_child.js');
  });

const cache = program.command('cache').description('the persistent caches: compiled artifacts, type checks, runtime objects, direct-mode entries');
cache.command('info').description('print where the cache is and what it holds').action(async () => {
  const { cacheInfo } = await import('./cache.js');
  process.stdout.write(cacheInfo(await objectDir()));
});
cache.command('clear').description('remove every cached artifact, type check, runtime object and direct-mode entry').action(async () => {
  const { clearCache } = await import('./cache.js');
  process.stdout.write(clearCache(await objectDir()));
});

/** Where the llvm and cuda targets cache the runtime's objects. */
async function objectDir(): Promise<string> {
  return (await import('../codegen/native.js')).objectCacheDir();
}

/** Whether the file is TypeScript that exists (the child process reports a missing or unsupported file). */
function checked(file: string): boolean {
  return /\.m?ts$/.test(file) && existsSync(file);
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function nonNegative(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of seconds');
  return n;
}

/**
 * Runs the job in cli/child.ts (or `script`), type-checking the model file here at the same time when the job awaits
 * the check: type errors are reported first, instead of anything else, and the child writes nothing unless the check
 * passed. Copies the outcome to stdout/stderr and returns the exit code.
 */
async function runChild(job: Job | ExportJob, timeout: number, script: string, timings = false): Promise<number> {
  const shown = displayPath(path.resolve(job.file));
  // the child's stdout is this process's stderr: whatever the model file prints stays out of the output
  // the compile process main.ts started (its start is the load phase's) takes the job as a message
  const early = script === './child.js' ? takePrefork() : undefined;
  const forkedAt = early?.at ?? performance.now();
  early?.child.send({ type: 'job', job }, () => {});
  const child = early?.child ?? fork(new URL(script, import.meta.url), [JSON.stringify(job)], { stdio: [0, 2, 2, 'ipc'], detached: true });
  // the compile process leads a process group of its own (detached, in cli/prefork.ts too): killing the group ends
  // what it started as well (the llvm target's opt and llc run in a shell's background, where SIGINT is ignored, and
  // a SIGKILL of the compile process alone left them writing into the output's staging folder)
  const group = () => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // nothing left of it
    }
  };
  const kill = () => {
    group();
    child.kill('SIGKILL');
  };
  // the limit bounds the check too: a hung tsc is killed with the compile process
  const abort = new AbortController();
  let interrupted: NodeJS.Signals | undefined;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      // this process ends by the signal once the compile process has (below: its staging folder is removed first)
      interrupted = signal;
      kill();
      abort.abort();
    });
  }
  let checkMs = 0, checkCached = false, checking = job.awaitCheck;
  const check = job.awaitCheck ? typeCheck(path.resolve(job.file), abort.signal).then((r) => {
    checking = false;
    checkMs = r.ms;
    checkCached = r.cached;
    if (r.errors) kill(); // nothing the model file does matters now
    return r.errors;
  }) : Promise.resolve(undefined);
  check.catch(() => {}); // reported below, once the compile process has ended
  let phase = 'start' as 'start' | 'run' | 'loaded', timedOut = false;
  const timer = timeout > 0 ? setTimeout(() => {
    timedOut = true;
    kill();
    abort.abort();
  }, timeout * 1000) : undefined;
  let end: Extract<Message, { type: 'end' }> | undefined;
  const closed = await new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: Error }>((resolve) => {
    child.on('message', (m: Message) => {
      if (m.type === 'end') end = m;
      else phase = m.type;
      // the model file has run: it may go on once the check has passed (a job that does not await the check goes on
      // by itself and may have ended: a 'go' sent then failed with EPIPE, reported as an internal error). A send to a
      // compile process that has just ended fails into the callback, not as an 'error' event: its 'close' reports it
      if (m.type === 'loaded' && job.awaitCheck) check.then((errors) => { if (!errors && child.connected) child.send({ type: 'go' }, () => {}); }, () => {});
    });
    // 'close', not 'exit': it comes after the last message
    child.on('close', (code, signal) => resolve({ code, signal }));
    child.on('error', (error) => resolve({ error }));
  });
  clearTimeout(timer);
  // whatever the compile process left running (it was killed, or died), and the staging folder it was building
  group();
  if (!('format' in job) && child.pid !== undefined) removeStaging(job.out ?? defaultOutDir(job.file), child.pid);
  if (interrupted) {
    process.kill(process.pid, interrupted);
    return 1;
  }
  let errors: string | undefined;
  try {
    errors = await check;
  } catch (err) {
    // killed at the time limit: the check is to blame when the model file had run and waited for it
    if (!timedOut) console.error(errorReport(err, debug));
    else if (checking && phase === 'loaded') console.error(`kiln: type-checking ${shown} did not finish within ${timeout} s (--timeout sets the limit; --no-check skips the check)`);
    if (!timedOut || phase === 'loaded') return 1;
  }
  if (errors) {
    console.error(errors);
    return 1;
  }
  if ('error' in closed) {
    console.error(errorReport(closed.error, debug));
    return 1;
  }
  if (end) {
    if ('error' in end) console.error(end.error);
    else {
      process.stdout.write(end.stdout);
      const direct = closed.code === 0 ? await storeDirectEntry(job, end) : undefined;
      if (timings && end.phases) printTimings(end.phases, forkedAt, job.awaitCheck ? { ms: checkMs, cached: checkCached } : undefined, end.cached, direct);
    }
    return closed.code ?? 1;
  }
  const { code, signal } = closed;
  if (timedOut) {
    console.error(phase === 'loaded'
      ? `kiln: ${'format' in job ? 'exporting' : 'compiling'} ${shown} did not finish within ${timeout} s (--timeout sets the limit)`
      : `${shown}: did not finish within ${timeout} s (an endless loop or a promise that never settles?)`);
  } else if (phase === 'run') {
    console.error(signal ? `${shown}: the process was killed by ${signal} while the model file ran` : `${shown} called process.exit(${code}) while loading`);
  } else {
    console.error(`kiln: internal error: the compile process ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`);
  }
  return 1;
}

/**
 * Removes the folder a killed compile process `pid` was building `outDir` in (cli/outdir.ts buildDirAtomically's
 * `.<name>.kiln-<pid>-*` beside it): the next compile would, but until then it is half an output.
 */
function removeStaging(outDir: string, pid: number): void {
  const target = existsSync(outDir) ? realpathSync(outDir) : path.resolve(outDir), prefix = `.${path.basename(target)}.kiln-${pid}-`;
  try {
    for (const name of readdirSync(path.dirname(target))) if (name.startsWith(prefix)) rmSync(path.join(path.dirname(target), name), { recursive: true, force: true });
  } catch {
    // no folder to look in: nothing was built
  }
}

/**
 * Stores the direct-mode entry (cli/direct.ts) of a compile that succeeded, from what its compile process recorded;
 * returns what --timings says about it.
 */
async function storeDirectEntry(job: Job | ExportJob, end: Extract<Message, { type: 'end'; stdout: string }>): Promise<{ ms: number; note: string } | undefined> {
  if (!end.direct) return undefined;
  const start = performance.now(), { recorded, key } = end.direct;
  if ('volatile' in recorded) return { ms: 0, note: `not stored: the model file used ${recorded.volatile}` };
  const file = path.resolve(job.file);
  const local = checked(file) ? (await import('./typecheck.js')).localFiles(file) : [];
  storeDirect(process.argv.slice(2), recorded, key, end.stdout, local);
  return { ms: performance.now() - start, note: 'stored for the direct mode' };
}

/** The type check of a model file (cli/typecheck.ts, loaded only here): its error lines, if any, and its time. */
async function typeCheck(file: string, signal: AbortSignal): Promise<{ errors?: string; ms: number; cached: boolean }> {
  const start = performance.now();
  const { checkModelFile, formatDiagnostic } = await import('./typecheck.js');
  const { diagnostics, cached } = await checkModelFile(file, signal);
  const ms = performance.now() - start;
  return { ...(diagnostics.length ? { errors: diagnostics.map(formatDiagnostic).join('\n') } : {}), ms, cached };
}

/**
 * `--timings`, on stderr: each phase's milliseconds. load is this process's start until it started the compile
 * process, plus that one's start and imports; check runs in this process at the same time as load and run.
 */
function printTimings(phases: Record<string, number>, forkedAt: number, check: { ms: number; cached: boolean } | undefined, cached: boolean | undefined, direct: { ms: number; note: string } | undefined): void {
  const rows: [string, number, string][] = [['load', forkedAt + (phases['load'] ?? 0), '']];
  if (check) rows.push(['check', check.ms, check.cached ? 'from the cache; beside load and run' : 'beside load and run']);
  for (const name of ['run', 'trace', 'passes', 'render', 'external tools', 'write']) {
    const note = name === 'write' && cached !== undefined ? (cached ? 'compile cache hit' : 'compile cache miss: stored') : '';
    if (phases[name] !== undefined || name === 'write') rows.push([name, phases[name] ?? 0, note]);
  }
  if (direct) rows.push(['direct', direct.ms, direct.note]);
  rows.push(['total', performance.now(), 'wall, this command']);
  console.error(timingLines(rows));
}

// `kiln ... | head` closes stdout early: stop quietly
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(0);
});

try {
  await program.parseAsync();
} catch (err) {
  process.exitCode = 1;
  console.error(errorReport(err, debug));
}
