#!/usr/bin/env node
// The `kiln` command: `kiln compile model.ts --target wasm -o build/model`.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { EMITS, KilnError, TARGETS, checkCompileOptions, compile, dumpAfter, loadModelFile } from '../compiler.js';
import { PASS_NAMES } from '../passes/pipeline.js';
import { packageRoot } from './loader.js';

interface CompileFlags {
  target: string;
  out?: string;
  train?: boolean;
  embedWeights?: boolean;
  cpu?: string;
  triple?: string;
  emit?: string;
  batchSize: number;
  dumpAfter?: string;
}

const { version } = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string };
const debug = process.env['KILN_DEBUG'] === '1';

const program = new Command('kiln')
  .description('Ahead-of-time compiler for neural networks written with a Keras-style TypeScript API')
  .version(version);

program.command('compile')
  .description('compile a model file (a .ts file that `export default`s a built keras model)')
  .argument('<model>', 'the model file')
  .option('-t, --target <target>', `code generator: ${TARGETS.join(', ')}`, 'wasm')
  .option('-o, --out <dir>', 'output directory (default: build/<model file name>)')
  .option('--train', 'also compile the training step')
  .option('--cpu <cpu>', 'llvm: CPU to compile for (default: the host x86-64 level, e.g. x86-64-v4)')
  .option('--triple <triple>', 'llvm: cross-compile model.o for a target triple, e.g. aarch64-linux-gnu, thumbv7em-none-eabihf')
  .option('--embed-weights', 'store the weights inside the artifact (no weights file needed at run time)')
  .option('--emit <stage>', `print a stage instead of writing artifacts, one of: ${EMITS.join(', ')} (ir: the traced graph)`)
  .option('--batch-size <n>', 'batch size to trace the model at', positiveInt, 1)
  .option('--dump-after <pass>', `print the IR after a pass instead of writing artifacts (with --train, of the training step), one of: ${PASS_NAMES.join(', ')}`)
  .action(async (file: string, flags: CompileFlags) => {
    // bad flags fail before the model file is loaded
    const { target, emit, batchSize, dumpAfter: pass } = checkCompileOptions(flags);
    const model = await loadModelFile(file);
    if (pass !== undefined) {
      process.stdout.write(dumpAfter(model, pass, { train: flags.train ?? false, batchSize, target }));
      return;
    }
    const outDir = flags.out ?? path.join('build', path.basename(file).replace(/\.m?ts$/, ''));
    const result = await compile(model, { target, emit, batchSize, outDir, train: flags.train ?? false, embedWeights: flags.embedWeights ?? false, cpu: flags.cpu, triple: flags.triple });
    if (result.ir !== undefined) process.stdout.write(result.ir);
    for (const f of result.files) console.log(f);
  });

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
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
  if (err instanceof KilnError) {
    console.error(err.format());
    if (debug) console.error(err.cause instanceof Error ? err.cause.stack : err.stack);
  } else if (debug) {
    console.error(err);
  } else {
    console.error(`kiln: internal error: ${err instanceof Error ? err.message : String(err)} (KILN_DEBUG=1 shows the stack trace)`);
  }
}
