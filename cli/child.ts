// The process `kiln compile` runs a model file in: it loads and compiles the model and reports to cli/main.ts,
// which enforces the timeout and explains a process that ends early. The model file's stdout is the CLI's stderr.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type Distributed, type Emit, KilnError, type Runtime, type Target, errorLocation, errorReport, sizesLine } from './common.js';
import { awaitGoAhead } from './gate.js';
import { defaultOutDir } from './outdir.js';
import { localFiles } from './typecheck.js';
import { phaseTimes, timedAsync } from '../driver/timings.js';
import type { Recorded } from './record.js';

/** What to do, from the command line (checked by main.ts). */
export interface Job {
  file: string;
  target: Target;
  emit?: Emit;
  dumpAfter?: string;
  batchSize: number;
  maxBatch: number;
  out?: string;
  train: boolean;
  embedWeights: boolean;
  cpu?: string;
  triple?: string;
  runtime?: Runtime;
  /** A .weights.h5 or .safetensors file to load into the model before compiling. */
  weights?: string;
  /** --distributed: data-parallel model_train (llvm). */
  distributed?: Distributed;
  /** --quantize int8 with the calibration samples of --calibrate (an .npy file per input) and --calibrate-method. */
  quantize?: 'int8';
  calibrate?: string[];
  calibrateMethod?: string;
  /** The parent type-checks the file meanwhile: wait for its go-ahead before compiling or printing. */
  awaitCheck: boolean;
  /** Record what the model file's run and trace read, for the direct mode (cli/record.ts). */
  record?: boolean;
}

/**
 * To the parent: the model file starts running, it has loaded, and the outcome (text for stdout, or an error's
 * lines; the milliseconds of each phase, and whether the compile cache had the artifact).
 */
export type Message = { type: 'run' } | { type: 'loaded' } | ({ type: 'end' } & Outcome);
export type Outcome = { stdout: string; phases?: Record<string, number>; cached?: boolean; direct?: { key: string; recorded: Recorded } } | { error: string };

if (!process.send) {
  console.error('kiln: cli/child.js runs under the kiln command (kiln compile ...)');
  process.exit(2);
}
// the job: an argument, or a message where cli/main.ts started this process before the command was parsed (it ends
// without one when that process does)
const job = (process.argv[2] !== undefined ? JSON.parse(process.argv[2]) : await new Promise((resolve) => {
  process.once('message', (m: { job: Job }) => resolve(m.job));
  process.once('disconnect', () => process.exit(0));
})) as Job;
const file = path.resolve(job.file);
// the wasm renderer only where the model file may run a model in-process (frontend/models/runner.ts) or the job builds wasm
const eager = /\.(fit|predict|evaluate|trainOnBatch|predictOnBatch|testOnBatch)\s*\(/;
let mayRunEagerly = true;
try {
  mayRunEagerly = !/\.m?ts$/.test(file) || localFiles(file).some((f) => eager.test(readFileSync(f, 'utf8')));
} catch {
  // a missing or unreadable model file: loadModelFile below reports it in one line
}
if (!mayRunEagerly) (globalThis as Record<symbol, unknown>)[Symbol.for('kiln.deferWasm')] = true;
const { compile, dumpAfter, loadModelFile, modelFileError, preloadCodeGenerator } = await import('../compiler.js');
// before the model file registers tsx's module hooks, through which every later import is slower (17 times the CPU
// time, measured on binaryen when the wasm target used it), so a build loads its code generator here even when the
// compile cache turns out to have the artifact
if (job.emit === undefined) await preloadCodeGenerator(job.target);
// node's start-up and this process's imports: the load phase
const loadMs = performance.now();
const debug = process.env['KILN_DEBUG'] === '1';
let running = false, ended = false;

/** Sends the outcome and exits once it is sent (the model file may leave timers that would keep this process alive). */
function end(outcome: Outcome): void {
  if (ended) return;
  ended = true;
  process.send!({ type: 'end', ...outcome } satisfies Message, () => process.exit('error' in outcome ? 1 : 0));
}

function fail(err: unknown): void {
  // an error from the model file's own callbacks, or from kiln code they call, is located in the model file
  const located = !(err instanceof KilnError) && (running || errorLocation(err, file) !== undefined);
  end({ error: errorReport(located ? modelFileError(err, file) : err, debug) });
}

// the IPC channel alone must not keep this process alive: when nothing else does while the model file runs, its
// top-level await waits on a promise that nothing can settle any more
process.channel?.unref();
process.on('beforeExit', () => {
  if (running) {
    running = false;
    end({ error: `${path.relative(process.cwd(), file) || file}: its top-level await never settles (it waits on a promise that nothing resolves)` });
  }
});
process.on('uncaughtException', fail);
const recorder = job.record && job.emit === undefined && job.dumpAfter === undefined ? await import('./record.js') : undefined;
if (recorder) (globalThis as Record<symbol, unknown>)[Symbol.for('kiln.hookPort')] = recorder.hookPort;
// tsx connects to a parent tsx process's socket when it loads and draws a random id when it registers: both before the
// recording, which would take them for the model file's use of the network and of randomness
// (timed as run: registering tsx starts its hooks thread, 100-150 ms that --timings showed in no phase)
if (recorder && /\.m?ts$/.test(file)) await timedAsync('run', async () => (await import('./run_model.js')).installHooks(file));
let recorded: { key: string; recorded: Promise<Recorded> } | undefined;

try {
  recorder?.startRecording(); // a .keras or .onnx file is read before onRun
  const asKilnError = (e: unknown) => { throw new KilnError((e as Error).message); }; // a bad file is the user's error, not kiln's
  const model = await timedAsync('run', () => loadModelFile(file, {
    check: false, // the kiln command checks (or --no-check)
    onRun: () => {
      running = true;
      process.send!({ type: 'run' } satisfies Message);
    },
  }));
  running = false;
  if (job.weights !== undefined) await timedAsync('run', () => model.loadWeights(path.resolve(job.weights!)).catch(asKilnError));
  process.send!({ type: 'loaded' } satisfies Message);
  if (job.awaitCheck) await awaitGoAhead();
  const phases = () => ({ load: loadMs, ...phaseTimes() });
  if (job.dumpAfter !== undefined) {
    end({ stdout: await dumpAfter(model, job.dumpAfter, { train: job.train, batchSize: job.batchSize, target: job.target, cpu: job.cpu }), phases: phases() });
  } else {
    const outDir = job.out ?? defaultOutDir(file);
    const { emit, target, batchSize, maxBatch, train, embedWeights, cpu, triple, runtime, distributed, quantize } = job;
    const calibrate = job.calibrate === undefined ? undefined : await Promise.all(job.calibrate.map(calibration));
    const result = await compile(model, { target, emit, batchSize, maxBatch, outDir, train, embedWeights, cpu, triple, runtime, distributed, quantize, cache: true,
      ...(calibrate ? { calibrate: calibrate.length === 1 ? calibrate[0]! : calibrate } : {}), ...(job.calibrateMethod !== undefined ? { calibrateMethod: job.calibrateMethod } : {}),
      // no code of the model file runs after this: what it read until now is what its artifact depends on
      onCacheKey: (key) => { if (recorder) recorded = { key, recorded: recorder.stopRecording() }; } });
    const stdout = (result.ir ?? '') + result.files.map((f) => `${f}\n`).join('') + (result.sizes ? `${sizesLine(result.sizes)}\n` : '');
    const direct = recorded ? { key: recorded.key, recorded: await recorded.recorded } : undefined;
    end({ stdout, phases: phases(), ...(result.cached !== undefined ? { cached: result.cached } : {}), ...(direct ? { direct } : {}) });
  }
} catch (err) {
  fail(err);
}

/** The samples of one --calibrate: a float32 (or int32, for an integer input) .npy; a bad file is one line naming it. */
async function calibration(file: string): Promise<{ shape: number[]; data: Float32Array | Int32Array }> {
  const { readNpy } = await import('../runtime/npy.js');
  try {
    const { dtype, shape, data } = readNpy(new Uint8Array(readFileSync(file)));
    if (dtype !== 'float32' && dtype !== 'int32') throw new Error(`holds ${dtype}, not float32 (or int32) samples`);
    return { shape, data: data as Float32Array | Int32Array };
  } catch (err) {
    throw new KilnError(`--calibrate ${path.relative(process.cwd(), file) || file}: ${(err as Error).message}`);
  }
}
