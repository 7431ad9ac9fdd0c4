// The compiler API (`kiln/compiler`): load a model file and compile a keras model for a target.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type Emit, KilnError, type Runtime, type Target, checkCompileOptions, checkRuntime, displayPath, errorLocation, unprefixed } from './cli/common.js';
import { buildDirAtomically } from './cli/outdir.js';
import { traceModel } from './frontend/models/executor.js';
import { Model } from './frontend/models/model.js';
import { traceTrainStep } from './frontend/models/training.js';
import { NoRowsError } from './frontend/losses.js';
import { type Graph, nodeName, rebuild, topoSort } from './ir/graph.js';
import { printGraph } from './ir/printer.js';
import type { TargetEntry } from './codegen/artifacts.js';
import { WASM_CAPS, compileWasm } from './codegen/wasm/target.js';
import { LLVM_CAPS, compileLlvm } from './codegen/llvm/target.js';
import { CUDA_CAPS, compileCuda } from './codegen/cuda/target.js';
import type { TargetCaps } from './codegen/loop/schedule.js';
import { irAfter } from './driver/pipeline.js';
import { type Separability, rowSeparability } from './passes/rows.js';

export { EMITS, type Emit, KilnError, type KilnErrorOptions, TARGETS, type Target, checkCompileOptions, errorReport } from './cli/common.js';

/** What each target's schedule is chosen for. */
const TARGET_CAPS: Record<Target, TargetCaps> = { wasm: WASM_CAPS, llvm: LLVM_CAPS, cuda: CUDA_CAPS };

export interface CompileOptions {
  /** Code generator (default 'wasm'). */
  target?: Target;
  /** Directory for the artifacts, replaced whole when the compile succeeds and left as it was when it fails. */
  outDir?: string;
  /** Also compile the training step. */
  train?: boolean;
  /** Stop at a stage and return its text instead of writing artifacts: 'ir' is the traced graph. */
  emit?: Emit;
  /** Batch size of the training step, and to trace the model at with `emit` (default 1). */
  batchSize?: number;
  /**
   * The most rows one predict call runs (default 256): predict is compiled at this batch and, when more than 1, at
   * one row; the runtimes run any number of rows in chunks. A model whose rows are not independent (passes/rows.ts)
   * is compiled at batchSize and takes exactly that many rows.
   */
  maxBatch?: number;
  /** Put the weights inside the artifact (wasm: in model.wasm) so it needs no weights file. */
  embedWeights?: boolean;
  /** llvm: the CPU to compile for (opt/llc -mcpu; default the host's x86-64 level). */
  cpu?: string;
  /** llvm: cross-compile model.o for this target triple (aarch64-linux-gnu, thumbv7em-none-eabihf, ...). */
  triple?: string;
  /**
   * llvm: 'freestanding' for microcontrollers (no OS, threads, stdio, files or malloc; weights embedded as const data
   * read in place from flash; inference only), the default for a `*-none-*` triple; 'hosted' otherwise.
   */
  runtime?: Runtime;
}

export interface CompileResult {
  target: Target;
  /** The printed graph, with `emit: 'ir'`. */
  ir?: string;
  /** Paths of the artifacts written. */
  files: string[];
  /** llvm: code, weight, arena and memory bytes (and a firmware image's flash and RAM), as in manifest.json. */
  sizes?: Record<string, unknown>;
}

/**
 * The IR of a model after one pass of the pipeline (see PASS_NAMES): the graph's text after a graph pass, the
 * fusion plan after fuse, loop IR after lower and schedule (for `target`, default wasm), the memory plan after
 * memplan. Traces the inference
 * entry point, or with `train` the whole training step, which needs `model.compile(...)` first.
 * @example process.stdout.write(dumpAfter(model, 'fuse', { batchSize: 32 }));
 */
export function dumpAfter(model: Model, pass: string, options: { train?: boolean; batchSize?: number; target?: Target } = {}): string {
  const { batchSize, target } = checkCompileOptions({ dumpAfter: pass, batchSize: options.batchSize, target: options.target });
  if (!(model instanceof Model)) throw new KilnError(`dumpAfter expects a keras Model, got ${describe(model)}`);
  let graph: Graph;
  try {
    graph = options.train ? trainStepGraph(model, batchSize) : traceModel(model, batchSize).graph;
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw new KilnError(`cannot trace model '${model.name}': ${errorText(err)}`, { cause: err });
  }
  return irAfter(graph, pass, { caps: TARGET_CAPS[target] });
}

/**
 * The training step at a batch size: targets shaped like the outputs, without the class axis for sparse labels.
 * When the model's training forward pass keeps rows apart (passes/rows.ts, at batch 2 or more), the step takes the
 * int32 input "rows" and trains on that many leading rows, so that runtimes train a last, smaller batch of an epoch
 * as Keras does, padded to the compiled batch; otherwise `rows` says why it takes whole batches only.
 */
function trainStepEntry(model: Model, batchSize: number): TargetEntry {
  const c = model.compiled;
  if (!c) throw new KilnError(`model '${model.name}' is not compiled: the training step needs model.compile({ optimizer, loss }) in the model file`);
  const batched = (shape: readonly (number | null)[]) => shape.map((d, i) => (i === 0 ? batchSize : d ?? 1));
  const inputs = model.inputSpecs.map((s) => batched(s.shape));
  const targets = model.outputShapes.map((s, i) => (c.losses[i]!.targetDtype === 'int32' ? batched(s).slice(0, -1) : batched(s)));
  const whole = (reason: string): TargetEntry => ({ name: 'trainStep', graph: traceTrainStep(model, c, inputs, targets).graph, batchSize, rows: { separable: false, reason } });
  if (model.inputSpecs.some((s) => s.name === 'rows')) return whole("a model input is named 'rows', the training step's count of rows");
  const forward = trainingRows(model, Math.max(batchSize, 2));
  if (forward.separable) {
    try {
      return { name: 'trainStep', graph: traceTrainStep(model, c, inputs, targets, { partial: true }).graph, batchSize };
    } catch (err) {
      if (err instanceof NoRowsError) return whole(`its loss has no per-row values (${errorText(err)})`);
      throw err;
    }
  }
  return whole(`its training forward pass mixes rows: ${forward.reason}`);
}

/**
 * Whether the training forward pass at a batch size keeps rows apart, so that a batch padded after its first rows
 * trains those rows exactly. Random values drawn for the whole batch (Dropout's) are taken as one more row-wise
 * input: element i of a random_uniform depends only on (seed, counter, i), so the first r rows of a draw for the
 * batch are the draw for r rows, as fit's smaller last batch makes it.
 */
function trainingRows(model: Model, batchSize: number): Separability {
  const g = traceModel(model, batchSize, true).graph;
  const drawn = rebuild(g, (b, n) => (n.op === 'random_uniform' && n.type.shape[0] === batchSize ? b.input(`random/${n.id}`, n.type) : undefined));
  const used = new Set(topoSort({ ...drawn, inputs: [] }));
  return rowSeparability({ ...drawn, inputs: drawn.inputs.filter((n) => nodeName(n) !== 'rng_counter' || used.has(n)) });
}

function trainStepGraph(model: Model, batchSize: number): Graph {
  return trainStepEntry(model, batchSize).graph;
}

/**
 * Compiles a built keras model for a target, or with `emit` returns an intermediate stage as text.
 * @example const { ir } = await compile(model, { emit: 'ir' });
 */
export async function compile(model: Model, options: CompileOptions = {}): Promise<CompileResult> {
  const { target, emit, batchSize, maxBatch } = checkCompileOptions(options);
  const runtime = checkRuntime({ ...options, target });
  if (!(model instanceof Model)) throw new KilnError(`compile expects a keras Model, got ${describe(model)}`);
  if (emit === 'ir') {
    let graph;
    try {
      graph = options.train ? trainStepGraph(model, batchSize) : traceModel(model, batchSize).graph;
    } catch (err) {
      if (err instanceof KilnError) throw err;
      throw new KilnError(`cannot trace model '${model.name}': ${errorText(err)}`, { cause: err });
    }
    return { target, ir: printGraph(graph), files: [] };
  }
  if (!options.outDir) throw new KilnError('compile needs an output directory (outDir)');
  const entries: TargetEntry[] = [];
  try {
    entries.push(...predictEntries(model, batchSize, maxBatch));
    if (options.train) entries.push(trainStepEntry(model, batchSize));
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw new KilnError(`cannot trace model '${model.name}': ${errorText(err)}`, { cause: err });
  }
  const vars = [...model.weights, ...(options.train ? model.compiled!.optimizer.variables : [])];
  const weights = vars.map((v) => ({ name: v.path, dtype: v.dtype, shape: v.shape, data: v.data }));
  const io = {
    inputs: model.inputSpecs.map((s) => ({ name: s.name, shape: [...s.shape], dtype: s.dtype })),
    outputs: model.outputNames.map((name, i) => ({ name, shape: [...model.outputShapes[i]!], dtype: entries[0]!.graph.outputs[i]!.node.type.dtype })),
  };
  let files: string[];
  try {
    files = buildDirAtomically(options.outDir, (outDir) => {
      const common = { outDir, entries, weights, ...io, embedWeights: options.embedWeights };
      return target === 'llvm' ? compileLlvm({ ...common, cpu: options.cpu, triple: options.triple, runtime })
        : target === 'cuda' ? compileCuda(common) : compileWasm(common);
    });
  } catch (err) {
    throw new KilnError(errorText(err), { cause: err });
  }
  const manifest = files.find((f) => path.basename(f) === 'manifest.json');
  const sizes = target === 'llvm' && manifest ? (JSON.parse(readFileSync(manifest, 'utf8')) as { sizes?: Record<string, unknown> }).sizes : undefined;
  return { target, files, ...(sizes ? { sizes } : {}) };
}

/** Whether the model traces at `batch` rows. */
function traces(model: Model, batch: number): boolean {
  try {
    traceModel(model, batch);
    return true;
  } catch {
    return false;
  }
}

/**
 * predict at maxBatch and at one row when its rows are independent (analysed at batch 2 or more: at 1 a broadcast of
 * the batch axis looks like any other), else at batchSize alone.
 */
function predictEntries(model: Model, batchSize: number, maxBatch: number): TargetEntry[] {
  // a model that only traces at its own batch (an ONNX file exported with a fixed batch) runs at that batch
  let probe: Graph, rows: Separability;
  try {
    probe = traceModel(model, Math.max(maxBatch, 2)).graph;
    rows = rowSeparability(probe);
  } catch (err) {
    // a model that traces at 1 and at 2 rows takes any batch: it fails at maxBatch for its size (memory), and a model
    // that then takes exactly batchSize rows is not what was asked for
    if (maxBatch > 2 && traces(model, 1) && traces(model, 2)) {
      throw new KilnError(`cannot trace model '${model.name}' at its max batch of ${maxBatch} rows (${errorText(err)}); give a smaller max batch (--max-batch)`);
    }
    const reason = `it cannot be traced at ${Math.max(maxBatch, 2)} rows (${errorText(err)})`;
    return [{ name: 'predict', graph: traceModel(model, batchSize).graph, batchSize, rows: { separable: false, reason } }];
  }
  if (!rows.separable) return [{ name: 'predict', graph: traceModel(model, batchSize).graph, batchSize, rows }];
  if (maxBatch === 1) return [{ name: 'predict', graph: traceModel(model, 1).graph, batchSize: 1, rows }];
  return [{ name: 'predict', graph: probe, batchSize: maxBatch, rows }, { name: 'predict_1', graph: traceModel(model, 1).graph, batchSize: 1, rows }];
}

/**
 * Loads a model file: type-checks it, runs it, and returns its default export, which must be a built keras Model.
 * Every problem is a KilnError located in the file where possible. `onRun` is called when the type check has passed,
 * just before the file runs. This runs the file in this process: the `kiln` command runs it in a child process
 * (cli/child.ts) to bound its time and keep its output apart.
 */
export async function loadModelFile(file: string, options: { onRun?: () => void } = {}): Promise<Model> {
  const abs = path.resolve(file);
  const shown = displayPath(abs);
  if (!existsSync(abs)) throw new KilnError(`cannot find model file ${shown}`);
  if (/\.onnx$/i.test(abs)) return (await import('./cli/loader.js')).loadOnnxFile(abs);
  // a .keras file (Keras 3's or kiln's model.save) is rebuilt from its config; a bad file is the user's error
  if (/\.keras$/i.test(abs)) return (await import('./frontend/saving/index.js')).loadModel(abs).catch((e: unknown) => { throw new KilnError((e as Error).message); });
  if (!/\.m?ts$/.test(abs)) throw new KilnError(`${shown}: a model file must be TypeScript (.ts or .mts), a .keras file or an .onnx file`);
  // ts-morph and tsx load here, not when kiln/compiler is imported: compiling a model needs neither
  const { importModelFile, typeCheck } = await import('./cli/loader.js');
  const diagnostics = typeCheck(abs);
  if (diagnostics.length) throw new KilnError(`${diagnostics.length} type error(s) in ${shown}`, { diagnostics });
  options.onRun?.();
  let mod: Record<string, unknown>;
  // errors thrown deep in kiln (fit traces the training step) need the whole stack to reach the model file's frame
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = Infinity;
  try {
    mod = await importModelFile(abs);
  } catch (err) {
    throw modelFileError(err, abs);
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  const model = mod['default'];
  const hint = 'a model file must `export default` a built keras model (keras.Sequential or keras.Model)';
  if (!('default' in mod)) throw new KilnError(`${shown} has no default export; ${hint}`);
  if (!(model instanceof Model)) throw new KilnError(`${shown}: the default export is ${describe(model)}, not a keras model; ${hint}`);
  if (!model.built) {
    throw new KilnError(`${shown}: model '${model.name}' is not built: give its first layer an inputShape, start it with keras.Input, or call model.build(shape)`);
  }
  return model;
}

/** A KilnError for an error thrown while a model file (absolute path) runs, located at its innermost frame in the file. */
export function modelFileError(err: unknown, file: string): KilnError {
  return new KilnError(errorText(err), { where: errorLocation(err, file) ?? `${displayPath(file)}:`, cause: err });
}

/** One line for an error thrown by user code: JavaScript's own errors keep their name. */
function errorText(err: unknown): string {
  if (!(err instanceof Error)) return `uncaught ${String(err)}`;
  const builtin = ['TypeError', 'ReferenceError', 'RangeError', 'SyntaxError', 'EvalError', 'URIError'].includes(err.name);
  return (builtin ? `${err.name}: ${err.message}` : unprefixed(err.message)).replace(/\s*\n\s*/g, ' ');
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'function' && 'className' in v && 'name' in v) return `a ${String(v.className)} layer '${String(v.name)}'`;
  if (typeof v === 'object' || typeof v === 'function') return `a ${v.constructor?.name ?? typeof v}`;
  return `a ${typeof v} (${String(v)})`;
}
