// Runs graphs on a target (the loop interpreter under a schedule, wasm, llvm, emulated cuda), many per compiled
// module, and compares every output and param with the graph interpreter.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { CUDA_CAPS, compileCuda } from '../codegen/cuda/target.js';
import { type TargetEntry, entryLayout } from '../codegen/artifacts.js';
import { LLVM_CAPS, compileLlvm } from '../codegen/llvm/target.js';
import { runProgram } from '../codegen/loop/interpreter.js';
import { DEFAULT_CAPS, type TargetCaps } from '../codegen/loop/schedule.js';
import { renderWasmModule } from '../codegen/wasm/render.js';
import { WASM_IMPORTS } from '../codegen/wasm/runtime.js';
import { WASM_CAPS } from '../codegen/wasm/target.js';
import { Builder, type Graph, type Node, nodeName, topoSort, updatesAsOutputs } from '../ir/graph.js';
import { type RunResult, interpret } from '../ir/interpreter.js';
import type { TypedArray } from '../ir/types.js';
import { GRAPH_PASSES, runPipeline } from '../driver/pipeline.js';
import { reductionTrees } from '../codegen/loop/reduction_trees.js';
import { readNpy, writeNpy } from '../runtime/npy.js';
import { readSafetensors } from '../runtime/safetensors.js';
import { rowSeparability } from '../passes/rows.js';
import { randomBindings, randomData, randomGraph, rng } from './random_graphs.js';
import { type TrainRows, trainRowsStep } from './train_rows.js';
import { type KerasStep, kerasStep, splitDifferences } from './keras_models.js';
import { quantStep } from './quant_graphs.js';

export const TARGETS = ['loop', 'wasm', 'llvm', 'cuda-emu'] as const;
export type Target = (typeof TARGETS)[number];

/**
 * The schedules the loop interpreter runs programs under. llvm's takes two threads and a small parallel grain, so
 * that small graphs get parallel loops too (run again in reverse, as a race detector); plain is scalar code.
 */
export const SCHEDULES = {
  wasm: WASM_CAPS,
  llvm: { ...LLVM_CAPS, threads: 2, parallelGrain: 64 },
  // llvm on a CPU with AVX-512 VNNI: int8 kernels as byte quads (dot4)
  vnni: { ...LLVM_CAPS, threads: 2, parallelGrain: 64, dot4: true, packColumns: true },
  cuda: CUDA_CAPS,
  plain: { ...DEFAULT_CAPS, vectorWidth: 1 },
} satisfies Record<string, TargetCaps>;
export type Schedule = keyof typeof SCHEDULES;

/** The schedules `--target loop` runs each graph under by default: vnni (byte quads) only for int8 graphs, the rest alike. */
export function eachSchedule(quant: boolean): Schedule[] {
  return (Object.keys(SCHEDULES) as Schedule[]).filter((s) => s !== 'vnni' || quant);
}

export type Data = Record<string, TypedArray>;

/** One graph to run: its seed (which also seeds its input data), the graph and that data. */
export interface Case {
  readonly seed: number;
  readonly graph: Graph;
  readonly inputs: Data;
  readonly params: Data;
  /** Set when the graph's rows are independent and the fuzzer runs it at any number of rows (--rows). */
  readonly rows?: Rows;
  /** A padded training step (--train-rows): also checked against the step traced for its rows. */
  readonly trainRows?: TrainRows;
  /** A random Keras model's graph, sequence or image (--keras): a training kind's split step is also checked against the fused one. */
  readonly keras?: KerasStep;
  /** Outputs compared bit for bit even on targets that approximate (int8 values and their dequantized floats). */
  readonly exact?: readonly string[];
}

/**
 * What the fuzzer's graphs are: random graphs, with a batch axis (rows), training steps with a "rows" input, or
 * graphs of random Keras models (keras: sequence models with recurrent layers as scans and masks, image models; the split training step), or int8
 * graphs (quant: calibrated and quantized networks, raw qmatmul / qconv chains).
 */
export type FuzzMode = 'graphs' | 'rows' | 'train-rows' | 'keras' | 'keras-rows' | 'quant';

/**
 * A predict graph traced at `batch` rows run on `n` rows through kiln_run_rows (chunks of `batch`, the last one
 * padded). `inputs` hold the n rows; `filler` a batch of other rows the reference pads the last chunk with.
 */
export interface Rows {
  readonly batch: number;
  readonly n: number;
  readonly inputs: Data;
  readonly filler: Data;
}

export function makeCase(seed: number, graph: Graph, dataSeed = seed): Case {
  const [inputs, params] = randomBindings(graph, dataSeed);
  return { seed, graph, inputs: Object.fromEntries(inputs), params: Object.fromEntries(params) };
}

/** The fuzzer's graph of a seed: the extended generator's, its updates in place or (without `updates`) outputs. */
export function fuzzCase(seed: number, updates: boolean, mode: FuzzMode = 'graphs'): Case {
  if (mode === 'train-rows') {
    const s = trainRowsStep(seed);
    return { seed, ...s, graph: updates ? s.graph : updatesAsOutputs(s.graph) };
  }
  if (mode === 'keras' || mode === 'keras-rows') {
    const k = kerasStep(seed);
    const c = { seed, graph: updates ? k.graph : updatesAsOutputs(k.graph), inputs: k.inputs, params: k.params, keras: k };
    // a predict graph's rows through kiln_run_rows (random rows: token ids out of range are clamped, as Embedding does)
    return mode === 'keras-rows' && k.kind === 'predict' ? withRows(c) : c;
  }
  if (mode === 'quant') {
    const q = quantStep(seed);
    return { seed, graph: q.graph, inputs: q.inputs, params: q.params, exact: q.exact };
  }
  if (mode === 'rows') return withRows(makeCase(seed, randomGraph(seed, { extended: true, rows: 2 + Math.floor(rng(seed ^ 0x2545f491)() * 3) }).graph));
  const g = randomGraph(seed, { extended: true, scatter: true, deep: true }).graph;
  return makeCase(seed, updates ? g : updatesAsOutputs(g));
}

/** c to be run on 1 to 3 batches of rows (mostly not a whole number of batches) when its rows are independent. */
export function withRows(c: Case): Case {
  const g = c.graph, batch = g.inputs[0]?.type.shape[0];
  if (batch === undefined || batch < 2 || !rowSeparability(g).separable) return c;
  const n = 1 + Math.floor(rng(c.seed ^ 0x68e31da4)() * 3 * batch);
  const rowsOf = (seed: number, k: number): Data => Object.fromEntries(g.inputs.map((x, i) =>
    [nodeName(x), randomData({ dtype: x.type.dtype, shape: [k, ...x.type.shape.slice(1)] }, seed + i * 101)]));
  return { ...c, rows: { batch, n, inputs: rowsOf(c.seed + 17, n), filler: rowsOf(c.seed + 31, batch) } };
}

/**
 * Why a graph failed. ice: the compiler threw (or the loop program it made does not verify or reads out of
 * bounds); crash: the native executable exited non-zero or died on a signal, or wasm trapped; batch-only: wrong
 * only next to other graphs in one module (alone it is right). approx is no failure: an llvm mismatch that is gone
 * when the graph is compiled again without contracting a*b + c into one rounding and with exact math (FMA's rounding,
 * or the vector expf/logf's few ulp, amplified by later ops: a cancellation, LlvmTargetOptions.exactMath).
 */
export interface Failure {
  readonly kind: 'mismatch' | 'ice' | 'crash' | 'timeout' | 'batch-only' | 'approx';
  readonly message: string;
}
export type Outcome = Failure | undefined;

/** The failure without the numbers that change as a graph shrinks: shrinking keeps this the same. */
export function signature(f: Failure): string {
  // a mismatch in the same output or param (and a race as a race)
  const m = /^(output|param) (.+?)(?:\[\d+\])?: (.*?) -?\w/.exec(f.message);
  if (f.kind === 'mismatch' && m) return `mismatch in ${m[1]} ${m[2]}${m[3]!.includes('reversed') ? ' (reversed)' : ''}`;
  if (f.kind !== 'ice' && f.kind !== 'crash') return f.kind;
  // the message and its first detail (the verifier's first problem)
  const lines = f.message.split('\n').slice(0, 2).join(' ');
  return `${f.kind}: ${lines.replace(/%\d+ \w+/g, '%N').replace(/\[[^\]]*\]/g, '[..]').replace(/@?\w*\d+\w*/g, 'N')}`;
}

const firstLines = (e: unknown, n = 3) => ((e as Error)?.message ?? String(e)).trim().split('\n').slice(0, n).join('\n');

/** An exception from the compiler; a JS error (TypeError, RangeError) with where it was thrown. */
function ice(e: unknown): Failure {
  const at = e instanceof Error && e.constructor !== Error ? /\((?:file:\/\/)?.*?([\w-]+\/[\w-]+\.[jt]s):\d+/.exec(e.stack ?? '')?.[1] : undefined;
  return { kind: 'ice', message: `${at ? `${e instanceof Error ? e.name : ''} in ${at}: ` : ''}${firstLines(e)}` };
}

/**
 * Where a target approximates (vector exp/log/tanh within 3 ulp on wasm and llvm, denormals flushed on native),
 * values within rtol 1e-5 + atol 1e-6 agree, as the targets' own tests compare them; NaN must match NaN.
 */
export function close(want: number, have: number): boolean {
  return Number.isNaN(want) ? Number.isNaN(have) : want === have || Math.abs(want - have) <= 1e-6 + 1e-5 * Math.abs(want);
}

const num = (v: number) => (Object.is(v, -0) ? '-0' : String(v));

/** Elements that differ (exactly by Object.is, or by `close`), at most two per tensor and six in all. */
function differences(checks: [string, ArrayLike<number>, ArrayLike<number> | undefined, boolean?][], exact: boolean, label: string): string[] {
  const out: string[] = [];
  for (const [what, want, have, exactOne] of checks) {
    if (!have || have.length !== want.length) { out.push(`${what}: ${have ? `${have.length} elements` : 'missing'}, want ${want.length}`); continue; }
    // integers are exact on every target (close() lets an int32 above 10^5 be off by one or more)
    let bad = 0;
    const isInt = !(want instanceof Float32Array) && !(want instanceof Float64Array);
    for (let i = 0; i < want.length; i++) {
      if (exact || exactOne || isInt ? Object.is(want[i], have[i]) : close(want[i]!, have[i]!)) continue;
      if (bad++ < 2) out.push(`${what}[${i}]: ${label} ${num(have[i]!)}, interpreter ${num(want[i]!)}`);
    }
    if (bad > 2) out.push(`${what}: ${bad} of ${want.length} elements differ`);
  }
  return out.slice(0, 6);
}

/** Outputs and params after the call; params not updated must keep their values. */
interface Got {
  readonly outputs: ReadonlyMap<string, TypedArray>;
  readonly params: ReadonlyMap<string, TypedArray>;
}

function compare(c: Case, ref: RunResult, got: Got, exact: boolean, label: string): Outcome {
  const checks: [string, ArrayLike<number>, ArrayLike<number> | undefined, boolean?][] = [
    ...[...ref.outputs].map(([k, v]): [string, TypedArray, TypedArray | undefined, boolean] => [`output ${k}`, v.data, got.outputs.get(k), c.exact?.includes(k) ?? false]),
    ...[...got.params.keys()].map((k): [string, TypedArray, TypedArray | undefined] => [`param ${k}`, ref.updates.get(k)?.data ?? c.params[k]!, got.params.get(k)]),
  ];
  const d = differences(checks, exact, label);
  return d.length ? { kind: 'mismatch', message: d.join('; ') } : undefined;
}

/**
 * The graph interpreter's result; for a GPU target, of the graph with the reduction trees its pipeline declares. The
 * pipeline picks them after the graph passes, which can change the choice (an empty slice's sum folded away leaves
 * a conv that fed it free to take a tree), so they run first here too; the CPU schedules check those passes.
 */
function reference(c: Case, caps?: TargetCaps): RunResult {
  const g = caps?.gpu ? reductionTrees(GRAPH_PASSES.reduce((x, p) => p.run(x), c.graph), caps.gpu) : c.graph;
  return c.rows ? rowsReference(c, c.rows, g) : interpret(g, c.inputs, c.params);
}

/**
 * The interpreter on c's n rows, one batch at a time. The last batch's rows past n are other random rows, not the
 * runtime's zeros: rows are independent only if they change none of the n rows.
 */
function rowsReference(c: Case, rows: Rows, g: Graph): RunResult {
  const parts = new Map<string, TypedArray[]>();
  for (let from = 0; from < rows.n; from += rows.batch) {
    const k = Math.min(rows.batch, rows.n - from);
    const chunk = Object.fromEntries(g.inputs.map((x) => {
      const name = nodeName(x), all = rows.inputs[name]!, a = rows.filler[name]!.slice(), per = a.length / rows.batch;
      a.set(all.subarray(from * per, (from + k) * per));
      return [name, a];
    }));
    for (const [name, v] of interpret(g, chunk, c.params).outputs) parts.set(name, [...(parts.get(name) ?? []), v.data.subarray(0, k * (v.data.length / rows.batch))]);
  }
  const outputs = new Map(g.outputs.map((o) => {
    const ps = parts.get(o.name)!, data = new (ps[0]!.constructor as new (n: number) => TypedArray)(ps.reduce((n, p) => n + p.length, 0));
    ps.reduce((at, p) => (data.set(p, at), at + p.length), 0);
    return [o.name, { type: { ...o.node.type, shape: [rows.n, ...o.node.type.shape.slice(1)] }, data }];
  }));
  return { outputs, updates: new Map() };
}

/**
 * A padded training step on the interpreter against the step traced for its rows: the losses and every update
 * equal bit for bit, the predictions in those rows.
 */
function trainRowsCheck(c: Case, tr: TrainRows): Outcome {
  const got = interpret(tr.padded, c.inputs, c.params), want = interpret(tr.exact, tr.exactInputs, c.params);
  const checks: [string, ArrayLike<number>, ArrayLike<number> | undefined][] = [
    ...[...want.outputs].map(([k, v]): [string, TypedArray, TypedArray | undefined] => [`output ${k}`, v.data, got.outputs.get(k)?.data.subarray(0, v.data.length)]),
    ...[...want.updates].map(([k, v]): [string, TypedArray, TypedArray | undefined] => [`param ${k}`, v.data, got.updates.get(k)?.data]),
  ];
  const d = differences(checks, true, `padded step (rows ${tr.rows} of ${tr.batch})`);
  return d.length ? { kind: 'mismatch', message: `${d.join('; ')} (interpreter: the step traced for ${tr.rows} rows)` } : undefined;
}

/** A training kind's split step (gradStep, then applyGrads on its flat outputs) against the fused step, on the interpreter. */
function splitCheck(c: Case, k: KerasStep): Outcome {
  let d: string[];
  try {
    d = k.split ? splitDifferences(k.split, c.params) : [];
  } catch (e) {
    return ice(e); // the split or fused step does not run on the interpreter (it threw in the worker, a crash)
  }
  return d.length ? { kind: 'mismatch', message: `${d.join('; ')} (interpreter: split step against the fused step; ${k.summary})` } : undefined;
}

/** The loop program under a schedule, exactly; a parallel or GPU schedule also with those loops run in reverse. */
function runLoop(c: Case, caps: TargetCaps): Outcome {
  let program;
  try {
    program = runPipeline(c.graph, { verifyEach: true, caps }).program;
  } catch (e) {
    return ice(e);
  }
  const ref = reference(c, caps);
  for (const reverse of caps.gpu || caps.threads > 1 ? [false, true] : [false]) {
    let got;
    try {
      got = runProgram(program, c.inputs, c.params, { reverse });
    } catch (e) {
      return ice(e);
    }
    const o = compare(c, ref, { outputs: got.outputs, params: got.updates }, true, reverse ? 'loop (reversed)' : 'loop');
    if (o) return o;
  }
  return undefined;
}

/** g with its params renamed `s<seed>/<name>`: graphs of one module share params by name. */
function renamed(c: Case): { name: string; graph: Graph; params: Data } {
  const prefix = `s${c.seed}/`, b = new Builder(), map = new Map<Node, Node>();
  for (const n of c.graph.inputs) map.set(n, b.leaf(n));
  for (const n of c.graph.params) map.set(n, b.param(prefix + nodeName(n), n.type));
  for (const n of topoSort(c.graph)) if (!map.has(n)) map.set(n, n.src.length ? b.emit(n.op, n.src.map((x) => map.get(x)!), n.attrs) : b.leaf(n));
  const graph = b.finish(c.graph.name, c.graph.outputs.map((o) => ({ name: o.name, node: map.get(o.node)! })),
    c.graph.updates.map((u) => ({ param: map.get(u.param)!, value: map.get(u.value)! })));
  return { name: `g${c.seed}`, graph, params: Object.fromEntries(Object.entries(c.params).map(([k, v]) => [prefix + k, v])) };
}

/** Per-case params of a module's saved params: the prefix taken off again. */
function unprefixed(c: Case, all: ReadonlyMap<string, TypedArray>): Map<string, TypedArray> {
  return new Map(Object.keys(c.params).map((k) => [k, all.get(`s${c.seed}/${k}`)!]));
}

let optimizingTier = false;

/** One wasm module of every case's entry, run in this process as the generated loader runs it. */
function runWasmModule(cases: readonly Case[]): Outcome[] | Failure {
  if (!optimizingTier) v8.setFlagsFromString('--no-liftoff'); // as WasmRunner: compile optimized at once
  optimizingTier = true;
  const named = cases.map(renamed);
  let mod, instance;
  const programs: ReturnType<typeof runPipeline>[] = [];
  try {
    for (const n of named) programs.push(runPipeline(n.graph, { caps: WASM_CAPS }));
    mod = renderWasmModule(named.map((n, i) => ({ name: n.name, program: programs[i]!.program, memory: programs[i]!.memory })));
    instance = new WebAssembly.Instance(new WebAssembly.Module(mod.binary as BufferSource), WASM_IMPORTS);
  } catch (e) {
    return ice(e);
  }
  const memory = instance.exports['memory'] as WebAssembly.Memory;
  const arrays = { float32: Float32Array, int32: Int32Array, bool: Uint8Array, int8: Int8Array } as Record<string, new (b: ArrayBuffer, o: number, n: number) => TypedArray>;
  const view = (p: { offset: number; size: number; dtype: string }) => new arrays[p.dtype]!(memory.buffer, p.offset, p.size);
  const layouts = named.map((n, i) => entryLayout(programs[i]!.program, mod.offsets[n.name]!));
  layouts.forEach((l, i) => { for (const p of l.params) view(p).set(named[i]!.params[p.name]!); });
  const outs = cases.map((c, i): Map<string, TypedArray> | Failure => {
    const l = layouts[i]!;
    l.inputs.forEach((p) => view(p).set(c.inputs[p.name]!));
    try {
      (instance.exports[named[i]!.name] as () => void)();
    } catch (e) {
      return { kind: 'crash', message: `wasm: ${firstLines(e, 1)}` };
    }
    const u8 = new Uint8Array(memory.buffer);
    for (const cp of l.copies) u8.copyWithin(cp.to, cp.from, cp.from + cp.bytes);
    return new Map(l.outputs.map((p) => [p.name, view(p).slice()]));
  });
  const params = new Map(layouts.flatMap((l) => l.params.map((p) => [p.name, view(p).slice()] as const)));
  return cases.map((c, i) => {
    const o = outs[i]!;
    return o instanceof Map ? compare(c, reference(c), { outputs: o, params: unprefixed(c, params) }, false, 'wasm') : o;
  });
}

/** fuzz_main.c (or fuzz_fs_main.c), beside this file in the sources or two levels up from dist/fuzz. */
function harnessSource(file: string): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const found = [here, path.resolve(here, '../../fuzz')].map((d) => path.join(d, file)).find(existsSync);
  if (!found) throw new Error(`fuzz: cannot find ${file}`);
  return found;
}

function run(cmd: string, args: string[], cwd: string, timeoutMs: number): Failure | undefined {
  try {
    execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, env: { ...process.env, KILN_NUM_THREADS: '2' } });
    return undefined;
  } catch (e) {
    const err = e as { code?: string; signal?: string; status?: number; stderr?: Buffer };
    if (err.code === 'ETIMEDOUT') return { kind: 'timeout', message: `${path.basename(cmd)} ran longer than ${timeoutMs / 1000} s` };
    const why = err.signal ? `killed by ${err.signal}` : `exit ${err.status}: ${err.stderr?.toString().trim().split('\n')[0] ?? ''}`;
    return { kind: 'crash', message: `${path.basename(cmd)} ${why}` };
  }
}

/**
 * How native modules are built: `freestanding`, llvm only: the runtime core alone (kiln_core.c, the weights
 * embedded, read in place), run by fuzz_fs_main.c on raw .bin files; `contract`: llvm's a*b + c in one rounding; `exactMath`: transcendental functions as the interpreter computes them.
 */
export interface NativeMode {
  readonly freestanding?: boolean;
  /** llvm: -mcpu */
  readonly cpu?: string;
  readonly contract?: boolean;
  readonly exactMath?: boolean;
}

const RAW = { float32: Float32Array, int32: Int32Array, bool: Uint8Array, int8: Int8Array } as Record<string, new (b: ArrayBuffer) => TypedArray>;

/**
 * One native module (llvm, or cuda built for the CPU) of every case's entry, run by fuzz_main (or fuzz_fs_main);
 * a case with rows runs its n rows through kiln_run_rows (argument `<entry>:<n>`).
 */
function runNativeModule(target: 'llvm' | 'cuda-emu', cases: readonly Case[], dir: string, timeoutMs: number, mode: NativeMode = {}): Outcome[] | Failure {
  rmSync(dir, { recursive: true, force: true });
  const named = cases.map(renamed);
  const fs = mode.freestanding ?? false;
  // model_main --entry takes any entry name; the type lists the CLI's two
  const entries = named.map((n, i) => {
    const rows = cases[i]!.rows;
    return { name: n.name as TargetEntry['name'], graph: n.graph, batchSize: rows?.batch ?? 1, ...(rows ? { rows: { separable: true as const } } : {}) };
  });
  const weights = named.flatMap((n) => n.graph.params.map((p) => ({ name: nodeName(p), dtype: p.type.dtype as 'float32', shape: p.type.shape, data: n.params[nodeName(p)]! })));
  try {
    if (target === 'llvm') compileLlvm({ outDir: dir, threads: 2, entries, weights, contract: mode.contract ?? true, exactMath: mode.exactMath ?? false, ...(mode.cpu ? { cpu: mode.cpu } : {}), ...(fs ? { runtime: 'freestanding', embedWeights: true } : {}) });
    else compileCuda({ outDir: dir, entries, weights, nvcc: false });
    const objects = fs ? ['-DKILN_FREESTANDING', 'kiln_core.c', 'kiln_rows.c', 'kiln_math.c', 'model_desc.c', 'model.o']
      : target === 'llvm' ? ['libmodel.a'] : ['model_emu.o', 'model_desc.o', 'kiln_runtime.o', 'kiln_rows.o', 'kiln_math.o', '-lstdc++'];
    execFileSync('gcc', ['-O2', '-std=c99', '-pthread', '-I', '.', harnessSource(fs ? 'fuzz_fs_main.c' : 'fuzz_main.c'), ...objects, '-lm', '-o', 'fuzz_main'], { cwd: dir, stdio: 'pipe' });
  } catch (e) {
    const err = e as { stderr?: Buffer };
    return ice(err.stderr?.length ? err.stderr.toString() : e);
  }
  cases.forEach((c, i) => {
    const d = path.join(dir, named[i]!.name);
    mkdirSync(d);
    c.graph.inputs.forEach((n, k) => {
      const data = (c.rows?.inputs ?? c.inputs)[nodeName(n)]!;
      const shape = c.rows ? [c.rows.n, ...n.type.shape.slice(1)] : n.type.shape;
      writeFileSync(path.join(d, `in${k}.${fs ? 'bin' : 'npy'}`), fs ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : writeNpy(n.type.dtype, shape, data));
    });
  });
  const failed = run(path.join(dir, 'fuzz_main'), named.map((n, i) => `${n.name}${cases[i]!.rows ? `:${cases[i]!.rows!.n}` : ''}`), dir, timeoutMs);
  if (failed) return failed;
  const params = fs ? new Map<string, TypedArray>() : new Map(readSafetensors(new Uint8Array(readFileSync(path.join(dir, 'params.safetensors')))).tensors.map((t) => [t.name, t.data]));
  return cases.map((c, i) => {
    const out = (k: number, dtype: string) => {
      const bytes = readFileSync(path.join(dir, named[i]!.name, `out${k}.${fs ? 'bin' : 'npy'}`));
      return fs ? new RAW[dtype]!(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) : readNpy(new Uint8Array(bytes)).data;
    };
    const outputs = new Map(c.graph.outputs.map((o, k) => [o.name, out(k, o.node.type.dtype)]));
    return compare(c, reference(c, TARGET_CAPS[target]), { outputs, params: fs ? params : unprefixed(c, params) }, false, fs ? 'llvm (freestanding)' : target);
  });
}

export interface RunOptions {
  /** The loop interpreter's schedule (loop target only). */
  readonly schedule?: Schedule;
  /** A folder for native modules. */
  readonly workDir: string;
  /** Limit on one native executable's run. */
  readonly timeoutMs: number;
  /** Called at the start and before each graph run again (alone, or without contraction and with exact math): the worker is alive. */
  readonly alive?: () => void;
  /** llvm: the freestanding runtime (no updates: the weights are in flash). */
  readonly freestanding?: boolean;
  /** llvm: -mcpu */
  readonly cpu?: string;
}

/** The schedule each compiled target's pipeline runs with. */
const TARGET_CAPS: Record<Exclude<Target, 'loop'>, TargetCaps> = { wasm: WASM_CAPS, llvm: { ...LLVM_CAPS, threads: 2 }, 'cuda-emu': CUDA_CAPS };

/**
 * Each case's outcome. wasm, llvm and cuda-emu put every case the pipeline compiles into one module; when the
 * module fails as a whole, or a case fails in it, the case is run again alone, and that run decides. An llvm
 * mismatch is run once more without contraction and with exact math: right then, it is approx.
 */
export function runCases(target: Target, cases: readonly Case[], o: RunOptions): Outcome[] {
  o.alive?.();
  // a padded training step (or a split one) wrong on the interpreter already: no target needs to run it
  const wrong = cases.map((c) => (c.trainRows && trainRowsCheck(c, c.trainRows)) || (c.keras && splitCheck(c, c.keras)));
  if (wrong.some(Boolean)) {
    const rest = cases.filter((_, i) => !wrong[i]), ran = rest.length ? runCases(target, rest, o) : [];
    return cases.map((c, i) => wrong[i] ?? ran[rest.indexOf(c)]);
  }
  if (target === 'loop') return cases.map((c) => runLoop(c, SCHEDULES[o.schedule ?? 'wasm']));
  const module = (cs: readonly Case[]) => {
    if (cs.length === 1) o.alive?.(); // each graph run again alone
    return target === 'wasm' ? runWasmModule(cs) : runNativeModule(target, cs, o.workDir, o.timeoutMs, { freestanding: o.freestanding, cpu: o.cpu });
  };
  // internal compiler errors first, one graph at a time: one would fail the whole module
  const outcomes = cases.map((c): Outcome => {
    try {
      runPipeline(c.graph, { caps: TARGET_CAPS[target] });
      return undefined;
    } catch (e) {
      return ice(e);
    }
  });
  const rest = cases.filter((_, i) => !outcomes[i]);
  if (!rest.length) return outcomes;
  const all = module(rest);
  const inModule = rest.map((_, i) => (Array.isArray(all) ? all[i] : all));
  const alone = rest.map((c, i) => {
    if (!inModule[i] || rest.length === 1) return inModule[i];
    const a = module([c]);
    return Array.isArray(a) ? a[0] : a;
  });
  // wrong in the module but right alone: the graphs disturb each other (a stray write, shared memory)
  const seeds = `seeds ${rest.map((c) => c.seed).join(', ')}`;
  if (!Array.isArray(all) && !alone.some(Boolean)) alone[0] = { kind: 'batch-only', message: `${all.message} (module of ${seeds})` };
  if (Array.isArray(all)) all.forEach((x, i) => { if (x && !alone[i]) alone[i] = { kind: 'batch-only', message: `${x.message} (module of ${seeds})` }; });
  rest.forEach((c, i) => { outcomes[cases.indexOf(c)] = alone[i]; });
  // an llvm mismatch that compiling without contraction and with exact math removes is FMA's rounding or the vector
  // math's approximation, not a miscompile
  if (target === 'llvm') {
    outcomes.forEach((f, i) => {
      if (f?.kind !== 'mismatch') return;
      o.alive?.();
      const plain = runNativeModule('llvm', [cases[i]!], o.workDir, o.timeoutMs, { freestanding: o.freestanding, cpu: o.cpu, contract: false, exactMath: true });
      if (Array.isArray(plain) && !plain[0]) outcomes[i] = { kind: 'approx', message: `${f.message} (right without contraction, with exact math)` };
    });
  }
  return outcomes;
}
