// What the `kiln` command and the compiler API share: targets, option checks, user-facing errors and paths. No heavy
// imports here: the command parses its flags with this alone and leaves the compiler to its child process.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export const TARGETS = ['wasm', 'llvm', 'cuda'] as const;
export type Target = (typeof TARGETS)[number];
export const EMITS = ['ir'] as const;
export type Emit = (typeof EMITS)[number];

export interface KilnErrorOptions {
  /** `model.ts:3:5` (or `model.ts:`) when the problem is at a place in a user file. */
  where?: string;
  /** One `file:line:col message` line per problem, for errors that are a list (type errors). */
  diagnostics?: string[];
  cause?: unknown;
}

/** A user-facing error: the CLI prints `format()` and no stack trace (unless KILN_DEBUG=1). */
export class KilnError extends Error {
  override name = 'KilnError';
  readonly where: string | undefined;
  readonly diagnostics: string[];

  constructor(message: string, options: KilnErrorOptions = {}) {
    super(unprefixed(message), { cause: options.cause });
    this.where = options.where;
    this.diagnostics = options.diagnostics ?? [];
  }

  /** The lines to show: the diagnostics, or `where message`, or `kiln: message`. */
  format(): string {
    if (this.diagnostics.length) return this.diagnostics.join('\n');
    return this.where ? `${this.where} ${this.message}` : `kiln: ${this.message}`;
  }
}

/** What the `kiln` command prints for an error: a KilnError's lines, or one line for a bug in kiln; with `debug`, the stack too. */
export function errorReport(err: unknown, debug = false): string {
  if (err instanceof KilnError) return debug ? `${err.format()}\n${err.cause instanceof Error ? err.cause.stack : err.stack}` : err.format();
  if (debug) return err instanceof Error ? err.stack ?? String(err) : String(err);
  return `kiln: internal error: ${unprefixed(err instanceof Error ? err.message : String(err))} (KILN_DEBUG=1 shows the stack trace)`;
}

/** A message without the `kiln: ` that the wasm loader's errors (and older ones) start with: the CLI adds its own. */
export function unprefixed(message: string): string {
  return message.replace(/^(kiln: )+/, '');
}

export const RUNTIMES = ['hosted', 'freestanding'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/**
 * The llvm target's runtime: freestanding for a triple without an operating system (`*-none-*`), else hosted; a
 * value that contradicts the triple, --train or the missing --embed-weights is an error.
 */
export function checkRuntime(o: { target: string; runtime?: string; triple?: string; train?: boolean; embedWeights?: boolean }): Runtime | undefined {
  const bare = o.triple !== undefined && o.triple.split('-').includes('none');
  if (o.runtime === undefined && !bare) return undefined;
  if (o.runtime !== undefined && !(RUNTIMES as readonly string[]).includes(o.runtime)) throw new KilnError(`unknown runtime '${o.runtime}'; runtimes are ${RUNTIMES.join(', ')}`);
  if (o.target !== 'llvm') throw new KilnError(`--runtime${o.runtime === undefined ? ' freestanding (implied by --triple)' : ''} is for the llvm target, not ${o.target}`);
  if (o.runtime === 'hosted' && bare) throw new KilnError(`triple '${o.triple}' has no operating system: it takes --runtime freestanding, not hosted`);
  if (o.runtime === 'hosted') return 'hosted';
  if (o.train) throw new KilnError(`the freestanding runtime${o.runtime === undefined ? ` (implied by --triple ${o.triple})` : ''} runs inference only: it cannot compile --train`);
  if (!o.embedWeights) throw new KilnError(`the freestanding runtime${o.runtime === undefined ? ` (implied by --triple ${o.triple})` : ''} reads no files: it needs --embed-weights`);
  return 'freestanding';
}

/** The one line `kiln compile` prints for an llvm artifact's sizes (manifest.json's `sizes`). */
export function sizesLine(sizes: Record<string, unknown>): string {
  const b = (key: string, label: string, from: Record<string, unknown> = sizes) =>
    typeof from[key] === 'number' ? [`${label} ${(from[key] as number).toLocaleString('en-US')} B`] : [];
  const fw = sizes['firmware'] as Record<string, unknown> | undefined;
  const parts = [...b('modelCodeBytes', 'model code'), ...b('runtimeCodeBytes', 'runtime code'), ...b('codeFlashBytes', 'code flash without weights'),
    ...b('weightBytes', 'weights'), ...b('arenaBytes', 'arena'), ...b('memoryBytes', 'memory')];
  const image = fw ? `; firmware image: ${[...b('flashBytes', 'flash', fw), ...b('ramBytes', 'RAM', fw)].join(', ')}` : '';
  return `sizes: ${parts.join(', ')}${image}`;
}

/** The most rows one predict call runs at once unless --max-batch says otherwise (the memory block is sized for it). */
export function defaultMaxBatch(options: { triple?: string } = {}): number {
  // a microcontroller's RAM holds one row's arena, not 256
  return options.triple?.split('-').includes('none') ? 1 : 256;
}

/**
 * Validates compile options (strings from the command line included) and fills in defaults; `passNames`, the
 * pipeline's (driver/pipeline.ts PASS_NAMES: given by the caller, which has loaded it), checks `dumpAfter`.
 */
export function checkCompileOptions(options: { target?: string; emit?: string; batchSize?: number; maxBatch?: number; triple?: string; dumpAfter?: string }, passNames: readonly string[]): { target: Target; emit?: Emit; batchSize: number; maxBatch: number; dumpAfter?: string } {
  const target = options.target ?? 'wasm';
  if (!(TARGETS as readonly string[]).includes(target)) throw new KilnError(`unknown target '${target}'; targets are ${TARGETS.join(', ')}`);
  if (options.emit !== undefined && !(EMITS as readonly string[]).includes(options.emit)) {
    throw new KilnError(`cannot emit '${options.emit}'; choose one of ${EMITS.join(', ')}`);
  }
  if (options.dumpAfter !== undefined && !passNames.includes(options.dumpAfter)) {
    throw new KilnError(`unknown pass '${options.dumpAfter}'; passes are ${passNames.join(', ')}`);
  }
  if (options.dumpAfter !== undefined && options.emit !== undefined) throw new KilnError('choose one of --emit and --dump-after');
  const batchSize = options.batchSize ?? 1;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new KilnError(`batch size must be a positive integer, got ${batchSize}`);
  const maxBatch = options.maxBatch ?? defaultMaxBatch(options);
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new KilnError(`max batch must be a positive integer, got ${maxBatch}`);
  return { target: target as Target, emit: options.emit as Emit | undefined, batchSize, maxBatch, dumpAfter: options.dumpAfter };
}

/** The quantization kinds of --quantize. */
export const QUANTIZE = ['int8'] as const;

/**
 * Checks --quantize and --calibrate: a known kind, calibration data with it (and only with it), inference only, and a
 * target that renders the quantized kernels (every one).
 */
export function checkQuantize(o: { target: string; quantize?: string; calibrate?: unknown; train?: boolean }): 'int8' | undefined {
  if (o.quantize === undefined) {
    if (o.calibrate !== undefined) throw new KilnError('--calibrate gives calibration data for --quantize int8, which is missing');
    return undefined;
  }
  if (!(QUANTIZE as readonly string[]).includes(o.quantize)) throw new KilnError(`unknown quantization '${o.quantize}'; choose one of ${QUANTIZE.join(', ')}`);
  if (o.calibrate === undefined) throw new KilnError(`--quantize ${o.quantize} needs calibration data (--calibrate samples.npy)`);
  if (o.train) throw new KilnError(`--quantize ${o.quantize} and --train contradict each other: a quantized model is for inference only`);
  return 'int8';
}

export { packageRoot } from './root.js';

/** How a user file is shown in messages: relative to the working directory. */
export function displayPath(file: string): string {
  return path.relative(process.cwd(), file) || file;
}

/** `file:line:col` of the first stack frame of `err` inside `file` (tsx's source maps give .ts positions). */
export function errorLocation(err: unknown, file: string): string | undefined {
  const stack = err instanceof Error ? err.stack ?? '' : '';
  const names = [file, pathToFileURL(file).href];
  for (const frame of stack.split('\n')) {
    if (!frame.trimStart().startsWith('at ')) continue;
    for (const name of names) {
      const i = frame.indexOf(`${name}:`);
      const m = i < 0 ? null : /^:(\d+):(\d+)/.exec(frame.slice(i + name.length));
      if (m) return `${displayPath(file)}:${m[1]}:${m[2]}`;
    }
  }
  return undefined;
}

/** Data-parallel training backends (`--distributed`). */
export const DISTRIBUTED = ['mpi', 'nccl'] as const;
export type Distributed = (typeof DISTRIBUTED)[number];

/** Checks `distributed` against the other options: one line for an unknown value or a build that cannot use it. */
export function checkDistributed(o: { distributed?: string; target?: string; train?: boolean; triple?: string }): Distributed | undefined {
  if (o.distributed === undefined) return undefined;
  if (!(DISTRIBUTED as readonly string[]).includes(o.distributed)) throw new KilnError(`unknown distributed backend '${o.distributed}'; backends are ${DISTRIBUTED.join(', ')}`);
  if (!o.train) throw new KilnError(`--distributed ${o.distributed} trains data-parallel: it needs --train`);
  // the CPU sums over MPI, the GPU with NCCL (both launched by mpirun)
  const target = o.target ?? 'wasm', wants = o.distributed === 'mpi' ? 'llvm' : 'cuda';
  if (target === 'cuda' && o.distributed === 'mpi') throw new KilnError('--distributed mpi is for the llvm target: on cuda the gradients are summed by NCCL, --distributed nccl (still launched with mpirun)');
  if (target === 'llvm' && o.distributed === 'nccl') throw new KilnError('--distributed nccl is for the cuda target: on llvm the gradients are summed over MPI, --distributed mpi');
  if (target !== wants) throw new KilnError(`--distributed ${o.distributed} builds model_train for the ${wants} target only, not ${target}`);
  if (o.triple !== undefined) throw new KilnError(`--distributed ${o.distributed} builds for this machine: it cannot be combined with --triple`);
  return o.distributed as Distributed;
}
