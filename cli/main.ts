#!/usr/bin/env node
// The `kiln` command: `kiln compile model.ts --target wasm -o build/model`. The model file runs, and is compiled, in a
// child process (cli/child.ts) under a time limit, so that no model file can hang, exit or print its way into the output.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { EMITS, KilnError, RUNTIMES, TARGETS, checkCompileOptions, checkDistributed, checkRuntime, displayPath, errorReport, packageRoot } from './common.js';
import type { Job, Message } from './child.js';
import type { ExportJob } from './export_child.js';
import { PASS_NAMES } from '../driver/pipeline.js';

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
}

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
  .option('--emit <stage>', `print a stage instead of writing artifacts, one of: ${EMITS.join(', ')} (ir: the traced graph)`)
  .option('--batch-size <n>', 'batch size of the training step (and to trace the model at for --emit and --dump-after)', positiveInt, 1)
  .option('--max-batch <n>', 'the most rows one predict call runs at once; more run in chunks (default 256)', positiveInt)
  .option('--dump-after <pass>', `print the IR after a pass instead of writing artifacts (with --train, of the training step), one of: ${PASS_NAMES.join(', ')}`)
  .option('--timeout <seconds>', 'stop a model file (and its compile) that runs longer than this; 0: no limit', nonNegative, 120)
  .action(async (file: string, flags: CompileFlags) => {
    // bad flags fail before the model file is loaded
    const { target, emit, batchSize, maxBatch, dumpAfter } = checkCompileOptions(flags);
    const runtime = checkRuntime({ ...flags, target });
    const distributed = checkDistributed({ ...flags, target });
    const job: Job = {
      file, target, emit, batchSize, maxBatch, dumpAfter, out: flags.out, train: flags.train ?? false,
      embedWeights: flags.embedWeights ?? false, cpu: flags.cpu, triple: flags.triple, runtime, weights: flags.weights, distributed,
    };
    process.exitCode = await runChild(job, flags.timeout);
  });

program.command('export')
  .description('export a model file to another format: ONNX (opset 17, a dynamic batch dimension, weights as initializers)')
  .argument('<model>', 'the model file: model.ts, model.keras or model.onnx')
  .requiredOption('-f, --format <format>', 'the format to write: onnx')
  .option('-o, --out <file>', 'the file to write, replaced when the export succeeds (default: build/<model file name>.onnx)')
  .option('--timeout <seconds>', 'stop a model file (and its export) that runs longer than this; 0: no limit', nonNegative, 120)
  .action(async (file: string, flags: { format: string; out?: string; timeout: number }) => {
    if (flags.format !== 'onnx') throw new KilnError(`unknown format '${flags.format}'; formats are onnx`);
    const job: ExportJob = { file, format: 'onnx', out: flags.out };
    process.exitCode = await runChild(job, flags.timeout, './export_child.js');
  });

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

/** Runs the job in cli/child.ts, copies its outcome to stdout/stderr and returns the exit code. */
function runChild(job: Job | ExportJob, timeout: number, script = './child.js'): Promise<number> {
  const shown = displayPath(path.resolve(job.file));
  // the child's stdout is this process's stderr: whatever the model file prints stays out of the output
  const child = fork(new URL(script, import.meta.url), [JSON.stringify(job)], { stdio: [0, 2, 2, 'ipc'] });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      child.kill('SIGKILL');
      process.kill(process.pid, signal);
    });
  }
  let phase: 'start' | 'run' | 'loaded' = 'start', timedOut = false;
  const timer = timeout > 0 ? setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeout * 1000) : undefined;
  let ended = false;
  return new Promise((resolve) => {
    child.on('message', (m: Message) => {
      if (m.type !== 'end') {
        phase = m.type;
        return;
      }
      ended = true;
      if ('error' in m) console.error(m.error);
      else process.stdout.write(m.stdout);
    });
    // 'close', not 'exit': it comes after the last message
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (ended) return resolve(code ?? 1);
      if (timedOut) {
        console.error(phase === 'loaded'
          ? `kiln: ${'format' in job ? 'exporting' : 'compiling'} ${shown} did not finish within ${timeout} s (--timeout sets the limit)`
          : `${shown}: did not finish within ${timeout} s (an endless loop or a promise that never settles?)`);
      } else if (phase === 'run') {
        console.error(signal ? `${shown}: the process was killed by ${signal} while the model file ran` : `${shown} called process.exit(${code}) while loading`);
      } else {
        console.error(`kiln: internal error: the compile process ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`);
      }
      resolve(1);
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      console.error(errorReport(err, debug));
      resolve(1);
    });
  });
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
