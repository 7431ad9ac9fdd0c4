// The compiler API (`kiln/compiler`): load a model file and compile a keras model for a target.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Distributed, type Emit, KilnError, type Runtime, type Target, checkCompileOptions as checkOptions, checkDistributed, checkQuantize, checkRuntime, displayPath, errorLocation, unprefixed } from './cli/common.js';
import { buildDirAtomically } from './cli/outdir.js';
import { traceModel } from './frontend/models/executor.js';
import { Model } from './frontend/models/model.js';
import { traceSplitStep, traceTrainStep } from './frontend/models/training.js';
import { NoRowsError } from './frontend/losses.js';
import { type Graph, nodeName, rebuild, topoSort } from './ir/graph.js';
import { printGraph } from './ir/printer.js';
import type { TargetEntry } from './codegen/artifacts.js';
import type { NativeTargetOptions } from './codegen/native.js';
import type { TargetCaps } from './codegen/loop/schedule.js';
import { PASS_NAMES, irAfter } from './driver/pipeline.js';
import { timed } from './driver/timings.js';
import { type Separability, rowSeparability } from './passes/rows.js';
import { type QuantInfo, type QuantizedGraph, calibrate, quantizeGraph } from './passes/quantize.js';
import { type CalibrationMethod, parseCalibrationMethod } from './passes/calibration.js';
import { type TypedArray, shapesEqual, sizeOf } from './ir/types.js';

export { DISTRIBUTED, type Distributed, EMITS, type Emit, KilnError, type KilnErrorOptions, TARGETS, type Target, errorReport } from './cli/common.js';

/** Validates compile options (strings from the command line included) and fills in defaults. */
export function checkCompileOptions(options: Parameters<typeof checkOptions>[0]): ReturnType<typeof checkOptions> {
  return checkOptions(options, PASS_NAMES);
}

/** A code generator: what its schedule is chosen for, and how it builds an artifact. */
interface CodeGenerator {
  caps: TargetCaps;
  build: (o: NativeTargetOptions & Required<Pick<NativeTargetOptions, 'inputs' | 'outputs'>> & { cpu?: string; triple?: string; runtime?: Runtime; distributed?: Distributed }) => string[];
}

/**
 * Loads a target's code generator now, not on first use: the kiln command does so before the model file registers
 * tsx's module hooks (every import after them goes through tsx's hooks thread, several times slower).
 */
export async function preloadCodeGenerator(target: Target): Promise<void> {
  await codeGenerator(target);
}

/** Loads a target's code generator on first use: llvm and cuda never load binaryen, `emit: 'ir'` loads none. */
async function codeGenerator(target: Target): Promise<CodeGenerator> {
  if (target === 'llvm') {
    const m = await import('./codegen/llvm/target.js');
    return { caps: m.LLVM_CAPS, build: m.compileLlvm };
  }
  if (target === 'cuda') {
    const m = await import('./codegen/cuda/target.js');
    return { caps: m.CUDA_CAPS, build: m.compileCuda };
  }
  const m = await import('./codegen/wasm/target.js');
  return { caps: m.WASM_CAPS, build: m.compileWasm };
}

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
  /**
   * llvm with train: 'mpi' builds model_train for data-parallel training under mpirun (mpicc, Open MPI): the step is
   * compiled as two entries, gradStep and applyGrads (frontend/models/training.ts traceSplitStep), and the ranks
   * all-reduce the gradients between them.
   */
  distributed?: Distributed;
  /**
   * Reuse and fill the persistent compile cache (`$XDG_CACHE_HOME/kiln`, or KILN_CACHE_DIR): artifacts keyed by the
   * traced graphs, weights, target, options, host CPU and kiln's build. The kiln command turns it on.
   */
  cache?: boolean;
  /**
   * With `cache`: called with the compile-cache key once the model is traced, before the artifact is restored or
   * built (the kiln command's direct mode, cli/direct.ts: no code of the model file runs after this).
   */
  onCacheKey?: (key: string) => void;
  /**
   * 'int8': post-training static quantization (passes/quantize.ts) of the inference entries, calibrated on
   * `calibrate`; manifest.json records each quantized tensor's scale and zero point. Every target.
   */
  quantize?: 'int8';
  /**
   * Calibration samples for `quantize`: [N, ...] rows of the model's one input (a Tensor, or a .npy's shape and
   * data); for several inputs, one such array per input in the model's input order, or a record by input name.
   */
  calibrate?: Calibration;
  /** How calibration picks activation ranges: 'minmax' (default), 'percentile' (99.99), 'percentile:P' or 'mse' (passes/quantize.ts). */
  calibrateMethod?: string;
}

/** Rows of one of a model's inputs: shape [N, ...] and N·row values. */
export interface CalibrationData {
  readonly shape: readonly number[];
  readonly data: ArrayLike<number>;
}

/** The calibration samples of every input: one array for a model's one input, else one per input (in order, or by name). */
export type Calibration = CalibrationData | readonly CalibrationData[] | Readonly<Record<string, CalibrationData>>;

export interface QuantizeOptions {
  /** The batch size of the quantized graph (default 1). */
  batchSize?: number;
  /** How calibration picks activation ranges: 'minmax' (default), 'percentile' (99.99), 'percentile:P' or 'mse'. */
  calibrateMethod?: string;
}

/**
 * int8 post-training static quantization of a model's inference graph at a batch size (default 1), calibrated on
 * samples of its inputs, one array per input (passes/quantize.ts): the quantized graph, its params by name, and the scale and zero
 * point of each quantized tensor.
 * @example const q = quantize(model, xCalibration); interpret(q.graph, { input_layer: x }, q.params);
 */
export function quantize(model: Model, data: Calibration, options: QuantizeOptions = {}): QuantizedGraph {
  if (!(model instanceof Model)) throw new KilnError(`quantize expects a keras Model, got ${describe(model)}`);
  const unknown = Object.keys(options).filter((k) => k !== 'batchSize' && k !== 'calibrateMethod');
  if (unknown.length) throw new KilnError(`quantize: unknown option '${unknown[0]}'; options are batchSize, calibrateMethod`);
  const { batchSize } = checkCompileOptions({ batchSize: options.batchSize });
  const how = calibrationOf(options.calibrateMethod);
  return quantizeEntry(traceModel(model, batchSize).graph, new Map(model.weights.map((v) => [v.path, v.data])), data, how);
}

/** The calibration method of a `calibrateMethod` option (default minmax); one line for a bad one. */
function calibrationOf(text: string | undefined): CalibrationMethod {
  try {
    return parseCalibrationMethod(text ?? 'minmax');
  } catch (err) {
    throw new KilnError(errorText(err));
  }
}

/** Each input's calibration rows, checked against its shape: one array per input. */
function calibrationInputs(g: Graph, data: Calibration): CalibrationData[] {
  const names = g.inputs.map(nodeName);
  if (data == null || typeof data !== 'object') throw new KilnError(`quantize: no calibration data (give { shape, data } rows of each input)`);
  const out = calibrationArrays(g, names, data);
  out.forEach((d, i) => {
    if (!isCalibrationData(d)) throw new KilnError(`quantize: the calibration data of input '${names[i]}' is not { shape, data } rows`);
  });
  return out;
}

function calibrationArrays(g: Graph, names: string[], data: Calibration): CalibrationData[] {
  if (isCalibrationData(data)) {
    if (g.inputs.length !== 1) throw new KilnError(`quantize: calibration data covers one input, and the model has ${g.inputs.length} (${names.join(', ')}): give one array per input`);
    return [data];
  }
  if (Array.isArray(data)) {
    if (data.length !== g.inputs.length) throw new KilnError(`quantize: ${data.length} calibration arrays for the model's ${g.inputs.length} inputs (${names.join(', ')})`);
    return data as CalibrationData[];
  }
  const byName = data as Readonly<Record<string, CalibrationData>>;
  const extra = Object.keys(byName).filter((k) => !names.includes(k));
  if (extra.length) throw new KilnError(`quantize: calibration data for '${extra[0]}', which is not an input of the model (${names.join(', ')})`);
  return names.map((n) => byName[n] ?? (() => { throw new KilnError(`quantize: no calibration data for input '${n}'`); })());
}

const isCalibrationData = (d: Calibration | undefined): d is CalibrationData => d != null && !Array.isArray(d) && Array.isArray((d as CalibrationData).shape) && (d as CalibrationData).data !== undefined;

/** quantize for one traced graph: calibrated on batches of its batch size taken from the samples cyclically. */
function quantizeEntry(g: Graph, params: Map<string, TypedArray>, data: Calibration, how: CalibrationMethod): QuantizedGraph {
  const all = calibrationInputs(g, data);
  let n = 0;
  g.inputs.forEach((input, i) => {
    const d = all[i]!, [, ...rest] = input.type.shape, rows = d.shape[0] ?? 0;
    if (!shapesEqual(d.shape.slice(1), rest) || rows < 1 || d.data.length !== rows * sizeOf(rest)) {
      throw new KilnError(`quantize: calibration data of shape [${d.shape.join(', ')}] does not fit input '${nodeName(input)}' ([N, ${rest.join(', ')}], N >= 1)`);
    }
    if (i > 0 && rows !== n) throw new KilnError(`quantize: calibration data for input '${nodeName(input)}' has ${rows} rows, and for '${nodeName(g.inputs[0]!)}' ${n}: one row of each input per sample`);
    if (input.type.dtype !== 'float32' && input.type.dtype !== 'int32') throw new KilnError(`quantize: input '${nodeName(input)}' is ${input.type.dtype}; calibration takes float32 and int32 inputs`);
    n = rows;
  });
  // every batch size sees the same rows (cyclically), so entries at different batch sizes get the same ranges
  const b = g.inputs[0]!.type.shape[0]!;
  const batches = Array.from({ length: Math.ceil(n / b) }, (_, i) => new Map(g.inputs.map((input, k) => {
    const d = all[k]!, row = sizeOf(input.type.shape.slice(1));
    const x = input.type.dtype === 'int32' ? new Int32Array(b * row) : new Float32Array(b * row);
    for (let r = 0; r < b; r++) for (let j = 0, at = ((i * b + r) % n) * row; j < row; j++) x[r * row + j] = d.data[at + j]!;
    return [nodeName(input), x];
  })));
  try {
    return quantizeGraph(g, params, calibrate(g, params, batches, how));
  } catch (err) {
    throw new KilnError(errorText(err), { cause: err });
  }
}

/** The entries quantized (compile's `quantize`), with their shared params: one value per name across entries. */
function quantizeEntries(entries: TargetEntry[], params: Map<string, TypedArray>, data: Calibration, how: CalibrationMethod): { weights: Map<string, { dtype: string; shape: readonly number[]; data: TypedArray }>; tensors: Record<string, QuantInfo> } {
  const weights = new Map<string, { dtype: string; shape: readonly number[]; data: TypedArray }>();
  let tensors: Record<string, QuantInfo> = {};
  entries.forEach((e, i) => {
    const q = quantizeEntry(e.graph, params, data, how);
    entries[i] = { ...e, graph: q.graph };
    for (const p of q.graph.params) {
      const name = nodeName(p), v = q.params.get(name)!, had = weights.get(name);
      if (had && (had.data.length !== v.length || had.data.some((x, j) => x !== v[j]))) throw new KilnError(`quantize: param '${name}' quantizes differently at batch ${e.batchSize}`);
      weights.set(name, { dtype: p.type.dtype, shape: p.type.shape, data: v });
    }
    tensors = { ...tensors, ...q.tensors };
  });
  return { weights, tensors };
}

export interface CompileResult {
  target: Target;
  /** The printed graph, with `emit: 'ir'`. */
  ir?: string;
  /** Paths of the artifacts written. */
  files: string[];
  /** llvm: code, weight, arena and memory bytes (and a firmware image's flash and RAM), as in manifest.json. */
  sizes?: Record<string, unknown>;
  /** With `cache`: whether the artifact came from the compile cache. */
  cached?: boolean;
}

/**
 * The IR of a model after one pass of the pipeline (see PASS_NAMES): the graph's text after a graph pass, the
 * fusion plan after fuse, loop IR after lower and schedule (for `target`, default wasm), the memory plan after
 * memplan (llvm: for `cpu`, default the host's). Traces the inference
 * entry point, or with `train` the whole training step, which needs `model.compile(...)` first.
 * @example process.stdout.write(await dumpAfter(model, 'fuse', { batchSize: 32 }));
 */
export async function dumpAfter(model: Model, pass: string, options: { train?: boolean; batchSize?: number; target?: Target; cpu?: string } = {}): Promise<string> {
  const { batchSize, target } = checkCompileOptions({ dumpAfter: pass, batchSize: options.batchSize, target: options.target });
  if (!(model instanceof Model)) throw new KilnError(`dumpAfter expects a keras Model, got ${describe(model)}`);
  let graph: Graph;
  try {
    graph = options.train ? trainStepGraph(model, batchSize) : traceModel(model, batchSize).graph;
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw new KilnError(`cannot trace model '${model.name}': ${errorText(err)}`, { cause: err });
  }
  // llvm schedules for the CPU it compiles for (register tiles sized to its vector registers), as compile does
  const llvm = target === 'llvm' ? await import('./codegen/llvm/target.js') : undefined;
  return irAfter(graph, pass, { caps: llvm ? llvm.llvmCaps(options.cpu ?? llvm.hostCpu()) : (await codeGenerator(target)).caps });
}

/**
 * The training step at a batch size: targets shaped like the outputs, without the class axis for sparse labels.
 * When the model's training forward pass keeps rows apart (passes/rows.ts, at batch 2 or more), the step takes the
 * int32 input "rows" and trains on that many leading rows, so that runtimes train a last, smaller batch of an epoch
 * as Keras does, padded to the compiled batch; otherwise `rows` says why it takes whole batches only.
 */
function trainStepEntry(model: Model, batchSize: number): TargetEntry {
  return trainStepEntries(model, batchSize, false)[0]!;
}

/** trainStepEntry's entry, or split (`split`) into gradStep and applyGrads for data-parallel training. */
function trainStepEntries(model: Model, batchSize: number, split: boolean): TargetEntry[] {
  const c = model.compiled;
  if (!c) throw new KilnError(`model '${model.name}' is not compiled: the training step needs model.compile({ optimizer, loss }) in the model file`);
  const batched = (shape: readonly (number | null)[]) => shape.map((d, i) => (i === 0 ? batchSize : d ?? 1));
  const inputs = model.inputSpecs.map((s) => batched(s.shape));
  const targets = model.outputShapes.map((s, i) => (c.losses[i]!.targetDtype === 'int32' ? batched(s).slice(0, -1) : batched(s)));
  const trace = (partial: boolean, rows?: Separability): TargetEntry[] => {
    const r = rows ? { rows } : {};
    if (!split) return [{ name: 'trainStep', graph: traceTrainStep(model, c, inputs, targets, { partial }).graph, batchSize, ...r }];
    const { grad, apply } = traceSplitStep(model, c, inputs, targets, { partial });
    // applyGrads takes no rows: its batch is the gradStep's, for the runtime's checks
    return [{ name: 'gradStep', graph: grad, batchSize, ...r }, { name: 'applyGrads', graph: apply, batchSize, ...r }];
  };
  const whole = (reason: string): TargetEntry[] => trace(false, { separable: false, reason });
  if (model.inputSpecs.some((s) => s.name === 'rows')) return whole("a model input is named 'rows', the training step's count of rows");
  const forward = trainingRows(model, Math.max(batchSize, 2));
  if (forward.separable) {
    try {
      return trace(true);
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
  const distributed = checkDistributed({ ...options, target });
  const quantized = checkQuantize({ ...options, target });
  if (options.calibrateMethod !== undefined && !quantized) throw new KilnError(`calibrateMethod '${options.calibrateMethod}' is for quantize: 'int8', which is missing`);
  const how = quantized ? calibrationOf(options.calibrateMethod) : undefined;
  if (!(model instanceof Model)) throw new KilnError(`compile expects a keras Model, got ${describe(model)}`);
  if (emit === 'ir') {
    let graph;
    try {
      graph = options.train ? trainStepGraph(model, batchSize) : traceModel(model, batchSize).graph;
    } catch (err) {
      if (err instanceof KilnError) throw err;
      throw new KilnError(`cannot trace model '${model.name}': ${errorText(err)}`, { cause: err });
    }
    if (quantized) graph = quantize(model, options.calibrate!, { batchSize, ...(options.calibrateMethod !== undefined ? { calibrateMethod: options.calibrateMethod } : {}) }).graph;
    return { target, ir: printGraph(graph), files: [] };
  }
  if (!options.outDir) throw new KilnError('compile needs an output directory (outDir)');
  const entries: TargetEntry[] = [];
  try {
    timed('trace', () => {
      entries.push(...predictEntries(model, batchSize, maxBatch));
      if (options.train) entries.push(...trainStepEntries(model, batchSize, distributed !== undefined));
    });
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw new KilnError(`cannot trace model '${model.name}': ${errorText(err)}`, { cause: err });
  }
  const vars = [...model.weights, ...(options.train ? model.compiled!.optimizer.variables : [])];
  let weights = vars.map((v) => ({ name: v.path, dtype: v.dtype as string, shape: v.shape, data: v.data }));
  let quantization: Record<string, QuantInfo> | undefined;
  if (quantized) {
    const q = timed('passes', () => quantizeEntries(entries, new Map(model.weights.map((v) => [v.path, v.data])), options.calibrate!, how!));
    weights = [...q.weights].map(([name, w]) => ({ name, ...w, shape: [...w.shape] }));
    quantization = q.tensors;
  }
  const io = {
    inputs: model.inputSpecs.map((s) => ({ name: s.name, shape: [...s.shape], dtype: s.dtype })),
    outputs: model.outputNames.map((name, i) => ({ name, shape: [...model.outputShapes[i]!], dtype: entries[0]!.graph.outputs[i]!.node.type.dtype })),
  };
  const built = { cpu: options.cpu, triple: options.triple, runtime, embedWeights: options.embedWeights, distributed };
  const cache = options.cache ? await import('./cli/cache.js') : undefined;
  // an llvm build without --cpu is for the host's x86-64 level
  const host = cache && target === 'llvm' ? `${process.arch} ${(await import('./codegen/llvm/target.js')).hostCpu()}` : '';
  const key = cache && timed('trace', () => cache.hashOf(['kiln compile cache 1', cache.kilnFingerprint(), target, host,
    JSON.stringify({ ...built, batchSize, maxBatch, train: options.train ?? false }), JSON.stringify(io),
    ...entries.flatMap((e) => [e.name, String(e.batchSize), JSON.stringify(e.rows ?? null), printGraph(e.graph)]),
    ...weights.flatMap((w) => [w.name, w.dtype, JSON.stringify(w.shape), bytesOf(w.data)])]));
  if (key !== undefined) options.onCacheKey?.(key);
  const outDir = options.outDir;
  let files: string[] | undefined, cached = false;
  try {
    // a hit loads no code generator (for wasm, no binaryen); a damaged entry is a miss
    if (key !== undefined && cache!.hasArtifact(key)) {
      files = timed('write', () => {
        try {
          return buildDirAtomically(outDir, (dir) => cache!.restoreArtifact(key, dir) ?? throwMiss());
        } catch (err) {
          if (err instanceof CacheMiss) return undefined;
          throw err;
        }
      });
      cached = files !== undefined;
    }
    if (!files) {
      const gen = await codeGenerator(target);
      files = timed('write', () => buildDirAtomically(outDir, (dir) => {
        const made = timed('render', () => gen.build({ outDir: dir, entries, weights: weights as NativeTargetOptions['weights'], ...io, ...built }));
        // each quantized tensor's scale and zero point, in the manifest
        const manifest = path.join(dir, 'manifest.json');
        if (quantization && existsSync(manifest)) writeFileSync(manifest, `${JSON.stringify({ ...JSON.parse(readFileSync(manifest, 'utf8')) as object, quantization }, null, 2)}\n`);
        if (key !== undefined) cache!.storeArtifact(key, dir, made);
        return made;
      }));
    }
  } catch (err) {
    throw new KilnError(errorText(err), { cause: err });
  }
  const manifest = files.find((f) => path.basename(f) === 'manifest.json');
  const sizes = target === 'llvm' && manifest ? (JSON.parse(readFileSync(manifest, 'utf8')) as { sizes?: Record<string, unknown> }).sizes : undefined;
  return { target, files, ...(sizes ? { sizes } : {}), ...(key !== undefined ? { cached } : {}) };
}

class CacheMiss extends Error {}

function throwMiss(): never {
  throw new CacheMiss('compile cache miss');
}

/** A tensor's bytes as they are in memory, for hashing. */
function bytesOf(data: ArrayLike<number>): Uint8Array {
  const typed = ArrayBuffer.isView(data) ? data : Float64Array.from(data);
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
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
 * just before the file runs; `check: false` skips the check (the `kiln` command checks in its own process, at the
 * same time). This runs the file in this process: the `kiln` command runs it in a child process (cli/child.ts) to
 * bound its time and keep its output apart.
 */
export async function loadModelFile(file: string, options: { onRun?: () => void; check?: boolean } = {}): Promise<Model> {
  const abs = path.resolve(file);
  const shown = displayPath(abs);
  if (!existsSync(abs)) throw new KilnError(`cannot find model file ${shown}`);
  if (/\.onnx$/i.test(abs)) return (await import('./cli/run_model.js')).loadOnnxFile(abs);
  // a .keras file (Keras 3's or kiln's model.save) is rebuilt from its config; a bad file is the user's error
  if (/\.keras$/i.test(abs)) return (await import('./frontend/saving/index.js')).loadModel(abs).catch((e: unknown) => { throw new KilnError((e as Error).message); });
  if (!/\.m?ts$/.test(abs)) throw new KilnError(`${shown}: a model file must be TypeScript (.ts or .mts), a .keras file or an .onnx file`);
  if (options.check !== false) await checkModelFile(abs);
  options.onRun?.();
  // tsx loads here, not when kiln/compiler is imported: compiling a model does not need it
  const { importModelFile } = await import('./cli/run_model.js');
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

/** Type-checks a model file (absolute path; cached per content, cli/typecheck.ts); its errors as one KilnError. */
export async function checkModelFile(file: string): Promise<void> {
  const { checkModelFile: check, formatDiagnostic } = await import('./cli/typecheck.js');
  const { diagnostics } = await check(file);
  if (diagnostics.length) throw new KilnError(`${diagnostics.length} type error(s) in ${displayPath(file)}`, { diagnostics: diagnostics.map(formatDiagnostic) });
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
