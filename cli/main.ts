#!/usr/bin/env node
// The `kiln` command: `kiln compile model.ts --target wasm -o build/model`.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { EMITS, KilnError, TARGETS, checkCompileOptions, compile, loadModelFile } from '../compiler.js';
import { packageRoot } from './loader.js';

interface CompileFlags {
  target: string;
  out?: string;
  train?: boolean;
  emit?: string;
  batchSize: number;
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
  .option('--emit <stage>', `print a stage instead of writing artifacts, one of: ${EMITS.join(', ')} (ir: the traced graph)`)
  .option('--batch-size <n>', 'batch size to trace the model at', positiveInt, 1)
  .action(async (file: string, flags: CompileFlags) => {
    // bad flags fail before the model file is loaded
    const { target, emit, batchSize } = checkCompileOptions(flags);
    const model = await loadModelFile(file);
    const outDir = flags.out ?? path.join('build', path.basename(file).replace(/\.m?ts$/, ''));
    const result = await compile(model, { target, emit, batchSize, outDir, train: flags.train ?? false });
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
