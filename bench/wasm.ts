// `npm run bench:wasm`: kiln's compiled WebAssembly vs TF.js's `wasm` (XNNPACK) and `cpu` backends on the
// seed MLP (784-64-10 with dropout), one thread each side, all in this one process; this machine's SIMD128 peak and
// each kernel's share of it; the compiled artifact (model.mjs) on 1 and 2 threads, SIMD128 and relaxed SIMD,
// interleaved with TF.js-wasm. Writes bench/results.md.
//
// Method: each case is warmed up (at least 200 calls and 1 s, so that V8 has tiered the wasm up from Liftoff
// to TurboFan; at most 5 s), then timed in ROUNDS rounds of N calls where N
// is chosen so one round takes >= 100 ms; the reported number is the median over rounds of the mean time
// per call, in microseconds. Set BENCH_QUICK=1 for a fast smoke run (fewer rounds, shorter warm-up).
import { spawnSync } from 'node:child_process';
import v8 from 'node:v8';
import { pathToFileURL } from 'node:url';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import * as keras from '../frontend/index.js';
import { tracedFor } from '../frontend/models/executor.js';
import { runTrainStep, traceTrainStep } from '../frontend/models/training.js';
import { runnerFor } from '../frontend/models/runner.js';
import { WasmRunner } from '../codegen/wasm/runtime.js';
import { renderWasm } from '../codegen/wasm/render.js';
import { runPipeline } from '../driver/pipeline.js';
import { type Graph, nodeName } from '../ir/graph.js';
import type { TypedArray } from '../ir/types.js';
import { flops, simdPeak } from './wasm_peak.js';
import { type Timer, type Timing, cpuMs, cpuName, summarize, timeAsync as timeCalls, timeSync as time, wallMs } from './timer.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..'); // dist/bench -> repo root
const QUICK = process.env['BENCH_QUICK'] === '1';
const WARMUP_CALLS = QUICK ? 20 : 200;
const WARMUP_MIN_MS = QUICK ? 300 : 1000;
const WARMUP_MAX_MS = QUICK ? 1000 : 5000;
const ROUNDS = QUICK ? 3 : 10;
const ROUND_MS = QUICK ? 30 : 100;

// ---------------------------------------------------------------------------------------------- timing

/** Wall-clock timing: warm-up until at least WARMUP_CALLS calls and WARMUP_MIN_MS (at least 5 calls, at most WARMUP_MAX_MS). */
const TIMER: Timer = {
  clock: wallMs,
  warming: (calls, ms) => calls < 5 || (ms < WARMUP_MAX_MS && (calls < WARMUP_CALLS || ms < WARMUP_MIN_MS)),
  rounds: ROUNDS,
  roundMs: ROUND_MS,
};
const now = wallMs;
const timeSync = (fn: () => void): Timing => time(fn, TIMER);
const timeAsync = (fn: () => Promise<unknown>): Promise<Timing> => timeCalls(fn, TIMER);

const log = (s: string): void => { process.stderr.write(s + '\n'); };
const fmt = (t: Timing | undefined): string => (t ? (t.us >= 100 ? t.us.toFixed(0) : t.us.toFixed(1)) : 'n/a');

// ------------------------------------------------------------------------------------------------ data

/** Deterministic pixels in [0, 1) and labels in [0, 10). */
function makeData(n: number): { x: Float32Array; y: Int32Array } {
  let s = 12345 >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const x = new Float32Array(n * 784);
  for (let i = 0; i < x.length; i++) x[i] = next();
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = Math.floor(next() * 10);
  return { x, y };
}

const MAXB = 256;
const data = makeData(MAXB);
const xOf = (b: number): Float32Array => data.x.subarray(0, b * 784);
const yOf = (b: number): Int32Array => data.y.subarray(0, b);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return a.length === b.length ? m : Infinity;
}

// ------------------------------------------------------------------------------------------------ kiln

function seedMlp(): keras.Model {
  keras.utils.setRandomSeed(7);
  const model = keras.Sequential([
    keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
    keras.layers.Dropout(0.2),
    keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
  model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  return model;
}

interface KilnInfer { raw: Timing; predict: Timing; firstCallMs: number; out: Float32Array }
interface KilnTrain { raw: Timing; step: Timing; firstCallMs: number; loss: number }

function kilnInference(model: keras.Model, b: number): KilnInfer {
  const x = new keras.Tensor('float32', [b, 784], xOf(b).slice());
  // First call: trace + pass pipeline + render to wasm + binaryen -O3 + instantiate, then one run.
  const t0 = now();
  const first = model.predict(x, { batchSize: b, verbose: 0 }) as keras.Tensor;
  const firstCallMs = now() - t0;
  const traced = tracedFor(model, b);
  const runner = runnerFor(traced.graph, 'wasm');
  if (!(runner instanceof WasmRunner)) throw new Error('runnerFor(graph, "wasm") did not give a WasmRunner');
  const inputName = nodeName(traced.graph.inputs[0]!);
  const params: Record<string, TypedArray> = {};
  for (const v of traced.variables) params[v.path] = v.data;
  runner.write('inputs', { [inputName]: x.data });
  runner.write('params', params);
  const raw = timeSync(() => runner.runRaw());
  const out = Float32Array.from(runner.view(runner.program.outputs[0]!.buffer) as Float32Array);
  const d = maxAbsDiff(out, first.data as Float32Array);
  if (d > 1e-6) log(`  WARNING: kiln raw runner and predict() differ by ${d} at batch ${b}`);
  const predict = timeSync(() => { model.predict(x, { batchSize: b, verbose: 0 }); });
  return { raw, predict, firstCallMs, out };
}

function kilnTraining(model: keras.Model, b: number): KilnTrain {
  const comp = model.compiled!;
  const x = new keras.Tensor('float32', [b, 784], xOf(b).slice());
  const yd = comp.losses[0]!.targetDtype === 'int32' ? yOf(b).slice() : Float32Array.from(yOf(b));
  const y = new keras.Tensor(comp.losses[0]!.targetDtype, [b], yd);
  const t0 = now();
  const step = traceTrainStep(model, comp, [[b, 784]], [[b]]);
  const out0 = runTrainStep(step, model, [x], [y], comp.optimizer.iterations.data[0]!);
  const firstCallMs = now() - t0;
  const loss = out0.get('loss')!.item();
  // Full step as fit() runs it: bind inputs + weights + Adam slots, run, copy updates back into the variables.
  const stepT = timeSync(() => { runTrainStep(step, model, [x], [y], comp.optimizer.iterations.data[0]!); });
  // The compiled step alone, on what is already in linear memory.
  const runner = runnerFor(step.graph, 'wasm');
  if (!(runner instanceof WasmRunner)) throw new Error('runnerFor(graph, "wasm") did not give a WasmRunner');
  const bind: Record<string, TypedArray> = { rng_counter: Int32Array.of(1) };
  bind[model.inputSpecs[0]!.name] = x.data;
  bind[`target/${model.outputNames[0]!}`] = y.data;
  const params: Record<string, TypedArray> = {};
  for (const v of step.variables) params[v.path] = v.data;
  runner.write('inputs', bind);
  runner.write('params', params);
  const raw = timeSync(() => runner.runRaw());
  return { raw, step: stepT, firstCallMs, loss };
}

// ------------------------------------------------------------------------------------ kernel breakdown

interface KernelTime { name: string; ops: string; us: number; flop: number }

const cpuNow = cpuMs;

/** A short fixed-CPU-time measurement for the per-kernel breakdown (0.5 s warm-up, median of 5 rounds of >= 100 ms). */
function timeShort(fn: () => void): number {
  const w0 = cpuNow();
  while (cpuNow() - w0 < (QUICK ? 100 : 500)) fn();
  const per: number[] = [];
  for (let r = 0; r < (QUICK ? 3 : 5); r++) {
    let n = 0;
    const t0 = cpuNow();
    while (cpuNow() - t0 < (QUICK ? 30 : 100)) { fn(); n++; }
    per.push((cpuNow() - t0) / n);
  }
  return summarize(per, 0).us;
}

/**
 * Diagnostic: each fused kernel of a graph rendered as a module of its own and timed alone, on the memory
 * image the whole program leaves after one run (same memory plan, so the same offsets).
 */
function kernelBreakdown(graph: Graph, fill: (r: WasmRunner) => void): KernelTime[] {
  const c = runPipeline(graph);
  const full = new WasmRunner(c.program, renderWasm(c.program, c.memory));
  fill(full);
  full.runRaw();
  const memOf = (r: WasmRunner): Uint8Array => new Uint8Array(r.view(c.program.buffers[0]!.name).buffer as ArrayBuffer);
  const image = memOf(full).slice();
  return c.program.kernels.map((k) => {
    const art = renderWasm({ ...c.program, kernels: [k] }, c.memory);
    const r = new WasmRunner(c.program, art);
    const mem = memOf(r);
    const same = JSON.stringify(art.layout.offsets) === JSON.stringify(full.artifact.layout.offsets) && mem.length === image.length;
    if (same) mem.set(image); else fill(r);
    return { name: k.name, ops: [...new Set(k.ops)].join(', '), us: timeShort(() => r.runRaw()), flop: flops(k.body) };
  });
}

// ----------------------------------------------------------------------------------------------- TF.js

interface TfResult {
  infer: Map<number, { predict: Timing; ops: Timing; out: Float32Array }>;
  train: Map<number, { step: Timing; loss: number }>;
  binary?: string;
}

async function tfSuite(backend: 'wasm' | 'cpu', weights: keras.Tensor[]): Promise<TfResult> {
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend '${backend}' failed to initialize`);
  await tf.ready();
  const build = (): tf.Sequential => {
    const m = tf.sequential({
      layers: [
        tf.layers.dense({ units: 64, activation: 'relu', inputShape: [784] }),
        tf.layers.dropout({ rate: 0.2 }),
        tf.layers.dense({ units: 10, activation: 'softmax' }),
      ],
    });
    m.setWeights(weights.map((w) => tf.tensor(w.data as Float32Array, w.shape as number[], 'float32')));
    return m;
  };
  const res: TfResult = { infer: new Map(), train: new Map() };
  const m = build();
  const [k1, b1, k2, b2] = m.getWeights() as [tf.Tensor2D, tf.Tensor1D, tf.Tensor2D, tf.Tensor1D];
  for (const b of [1, 256]) {
    const xt = tf.tensor2d(xOf(b), [b, 784]);
    const run = (): Float32Array => {
      const o = tf.tidy(() => m.predict(xt, { batchSize: b }) as tf.Tensor); // TF.js defaults to batches of 32
      const d = o.dataSync() as Float32Array;
      o.dispose();
      return d;
    };
    const out = Float32Array.from(run());
    const before = tf.memory().numTensors;
    const predict = timeSync(() => { run(); });
    // The same math on TF.js's fused ops, without the Layers API (a lower bound on TF.js's per-call cost).
    const ops = timeSync(() => {
      const o = tf.tidy(() => tf.softmax(tf.fused.matMul({ a: tf.fused.matMul({ a: xt, b: k1, bias: b1, activation: 'relu' }), b: k2, bias: b2 })));
      o.dataSync();
      o.dispose();
    });
    if (tf.memory().numTensors !== before) log(`  WARNING: TF.js ${backend} leaked ${tf.memory().numTensors - before} tensors`);
    res.infer.set(b, { predict, ops, out });
    xt.dispose();
  }
  m.dispose();
  for (const b of [32, 256]) {
    const mt = build();
    mt.compile({ optimizer: tf.train.adam(0.001), loss: 'sparseCategoricalCrossentropy' });
    const xt = tf.tensor2d(xOf(b), [b, 784]);
    const yt = tf.tensor1d(Float32Array.from(yOf(b)), 'float32');
    const loss = (await mt.trainOnBatch(xt, yt)) as number;
    const step = await timeAsync(() => mt.trainOnBatch(xt, yt));
    res.train.set(b, { step, loss });
    xt.dispose();
    yt.dispose();
    mt.dispose();
  }
  return res;
}

// --------------------------------------------------------------------------------------------- compile

interface CompileResult { ok: boolean; medianMs?: number; runsMs?: number[]; message: string }

function kilnCompile(nodeFlags: string[]): CompileResult {
  const cli = path.join(root, 'dist', 'cli', 'main.js');
  const runs: number[] = [];
  const n = QUICK ? 2 : 5;
  for (let i = 0; i < n; i++) {
    const dir = mkdtempSync(path.join(tmpdir(), 'kiln-bench-'));
    const t0 = now();
    const r = spawnSync(process.execPath, [...nodeFlags, cli, 'compile', 'examples/seed/sequential.ts', '--target', 'wasm', '-o', dir], { cwd: root, encoding: 'utf8' });
    const ms = now() - t0;
    rmSync(dir, { recursive: true, force: true });
    if (r.status !== 0) {
      const msg = `${(r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' / ')}`;
      return { ok: false, message: `exit ${r.status}: ${msg}` };
    }
    runs.push(ms);
  }
  const s = [...runs].sort((a, b) => a - b);
  return { ok: true, medianMs: s[s.length >> 1]!, runsMs: runs, message: 'ok' };
}

// ------------------------------------------------------------------------------------ artifact: threads

interface ArtifactModel {
  threads: number;
  relaxedSimd: boolean;
  predict(x: Float32Array[]): Float32Array[];
  trainStep(x: (Float32Array | Int32Array)[]): Float32Array[];
  close(): void;
}

interface ArtifactCase { label: string; kind: 'predict' | 'train'; peer: boolean; threads: number; relaxed: boolean; run: () => unknown }

/**
 * The seed MLP compiled by the CLI (--train, batch 256) and loaded through its model.mjs with 1 and 2 threads,
 * SIMD128 and (where the engine has it) relaxed SIMD, timed round by round interleaved with TF.js-wasm, so that
 * the machine's changing load falls on every case alike; each cell is the median over rounds.
 */
async function artifactSuite(weights: keras.Tensor[], relaxed: boolean): Promise<{ cases: ArtifactCase[]; us: Map<ArtifactCase, number[]> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-bench-artifact-'));
  const file = path.join(dir, 'mlp.ts'), out = path.join(dir, 'out');
  writeFileSync(file, `import * as keras from 'kiln';
const model = keras.Sequential([
  keras.layers.Dense(64, { activation: 'relu', inputShape: [784] }),
  keras.layers.Dropout(0.2),
  keras.layers.Dense(10, { activation: 'softmax' }),
]);
model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
export default model;
`);
  const r = spawnSync(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), 'compile', file, '--target', 'wasm', '--train', '--batch-size', '256', '-o', out], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kiln compile failed: ${r.stderr}`);
  const { load } = await import(pathToFileURL(path.join(out, 'model.mjs')).href) as { load: (o: object) => Promise<ArtifactModel> };
  const x = xOf(256), y = yOf(256), counter = Int32Array.of(1);
  const cases: ArtifactCase[] = [];
  const models: ArtifactModel[] = [];
  for (const rel of relaxed ? [false, true] : [false]) {
    for (const threads of [1, 2]) {
      const m = await load({ threads, relaxedSimd: rel });
      models.push(m);
      const name = `kiln ${threads} thread${threads > 1 ? 's' : ''}${rel ? ', relaxed SIMD' : ''}`;
      cases.push({ label: name, kind: 'predict', peer: false, threads, relaxed: rel, run: () => m.predict([x]) });
      cases.push({ label: name, kind: 'train', peer: false, threads, relaxed: rel, run: () => m.trainStep([x, y, counter]) });
    }
  }
  if (!(await tf.setBackend('wasm'))) throw new Error('TF.js backend wasm failed to initialize');
  const tm = tf.sequential({ layers: [
    tf.layers.dense({ units: 64, activation: 'relu', inputShape: [784] }),
    tf.layers.dropout({ rate: 0.2 }),
    tf.layers.dense({ units: 10, activation: 'softmax' }),
  ] });
  tm.setWeights(weights.map((w) => tf.tensor(w.data as Float32Array, w.shape as number[], 'float32')));
  tm.compile({ optimizer: tf.train.adam(0.001), loss: 'sparseCategoricalCrossentropy' });
  const xt = tf.tensor2d(x, [256, 784]), yt = tf.tensor1d(Float32Array.from(y), 'float32');
  cases.push({ label: 'TF.js wasm (1 thread)', kind: 'predict', peer: true, threads: 1, relaxed: false, run: () => {
    const o = tf.tidy(() => tm.predict(xt, { batchSize: 256 }) as tf.Tensor);
    o.dataSync();
    o.dispose();
  } });
  // trainOnBatch is async, but on the wasm backend its work is done when the promise settles; awaited below
  cases.push({ label: 'TF.js wasm (1 thread)', kind: 'train', peer: true, threads: 1, relaxed: false, run: () => tm.trainOnBatch(xt, yt) });
  const once = async (c: ArtifactCase) => { await c.run(); };
  const calls = new Map<ArtifactCase, number>();
  for (const c of cases) { // warm-up, and calls per round of about ROUND_MS
    const t0 = now();
    let n = 0;
    while (TIMER.warming(n, now() - t0)) { await once(c); n++; }
    const t1 = now();
    let k = 0;
    while (now() - t1 < ROUND_MS) { await once(c); k++; }
    calls.set(c, Math.max(1, k));
  }
  const us = new Map<ArtifactCase, number[]>(cases.map((c) => [c, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) {
      const n = calls.get(c)!, t0 = now();
      for (let i = 0; i < n; i++) await once(c);
      us.get(c)!.push(((now() - t0) / n) * 1000);
    }
  }
  for (const m of models) m.close();
  tm.dispose();
  xt.dispose();
  yt.dispose();
  rmSync(dir, { recursive: true, force: true });
  return { cases, us };
}

const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b), mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

// ------------------------------------------------------------------------------------------------ main

function machine(): { cpu: string; nproc: string } {
  const r = spawnSync('nproc', { encoding: 'utf8' });
  return { cpu: cpuName(), nproc: r.status === 0 ? r.stdout.trim() : 'unknown' };
}

async function main(): Promise<void> {
  // Node 20 compiles relaxed SIMD only behind this flag (set before any module is compiled)
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  const started = new Date();
  const loadBefore = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  log('SIMD128 peak…');
  const peak = { mulAdd: simdPeak(false)!, madd: simdPeak(true) };
  const peakBest = Math.max(peak.mulAdd, peak.madd ?? 0);
  // TF.js wasm: one thread, binaries straight from the npm package.
  const req = createRequire(import.meta.url);
  const wasmDir = path.dirname(req.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  tfwasm.setThreadsCount(1);
  tfwasm.setWasmPaths(wasmDir + path.sep);

  const model = seedMlp();
  const weights = model.getWeights();

  log('kiln-wasm inference…');
  const kInfer = new Map<number, KilnInfer>();
  for (const b of [1, 256]) kInfer.set(b, kilnInference(model, b));
  log('kiln-wasm training…');
  const kTrain = new Map<number, KilnTrain>();
  for (const b of [32, 256]) {
    model.setWeights(weights); // same starting point for every batch size
    kTrain.set(b, kilnTraining(model, b));
  }

  log('kiln-wasm per-kernel breakdown…');
  const breakdown: { label: string; total: number; kernels: KernelTime[] }[] = [];
  try {
    const fillInfer = (b: number) => (r: WasmRunner): void => {
      const t = tracedFor(model, b);
      const params: Record<string, TypedArray> = {};
      for (const v of t.variables) params[v.path] = v.data;
      r.write('inputs', { [nodeName(t.graph.inputs[0]!)]: xOf(b) });
      r.write('params', params);
    };
    const fillTrain = (step: { variables: keras.Variable[] }, b: number) => (r: WasmRunner): void => {
      const params: Record<string, TypedArray> = {};
      for (const v of step.variables) params[v.path] = v.data;
      r.write('inputs', { rng_counter: Int32Array.of(1), [model.inputSpecs[0]!.name]: xOf(b), [`target/${model.outputNames[0]!}`]: yOf(b) });
      r.write('params', params);
    };
    for (const b of [256]) {
      const ks = kernelBreakdown(tracedFor(model, b).graph, fillInfer(b));
      breakdown.push({ label: `inference, batch ${b}`, total: kInfer.get(b)!.raw.us, kernels: ks });
    }
    for (const b of [32, 256]) {
      const step = traceTrainStep(model, model.compiled!, [[b, 784]], [[b]]);
      breakdown.push({ label: `train step, batch ${b}`, total: kTrain.get(b)!.raw.us, kernels: kernelBreakdown(step.graph, fillTrain(step, b)) });
    }
  } catch (e) {
    log(`  per-kernel breakdown skipped: ${(e as Error).message}`);
  }

  log('TF.js wasm…');
  const tfw = await tfSuite('wasm', weights);
  tfw.binary = `simd=${String(tf.env().getBool('WASM_HAS_SIMD_SUPPORT'))}, multithread=${String(tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT'))}, threads=${tfwasm.getThreadsCount()}`;
  log('kiln artifact on 1 and 2 threads, interleaved with TF.js wasm…');
  const loadArtifact = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const art = await artifactSuite(weights, peak.madd !== undefined);
  const loadArtifactAfter = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  log('TF.js cpu…');
  const tfc = await tfSuite('cpu', weights);

  log('kiln compile (CLI)…');
  const comp = kilnCompile([]);
  // Diagnostic only: the same command with V8 kept on its baseline wasm compiler (binaryen's own wasm is then
  // not re-compiled by TurboFan in the background while it runs).
  const compLiftoff = comp.ok ? kilnCompile(['--liftoff-only']) : undefined;

  // ------------------------------------------------------------------------------------------ report
  const ratio = (peer: Timing | undefined, k: Timing | undefined): string => (peer && k ? `${(peer.us / k.us).toFixed(2)}x` : 'n/a');
  const lines: string[] = [];
  const p = (s = ''): void => { lines.push(s); };
  const m = machine();
  p('# kiln-wasm vs TF.js — seed MLP (784-64-10, dropout 0.2)');
  p();
  p('Reproduce from the repository root with:');
  p();
  p('    npm run bench:wasm');
  p();
  p(`- date: ${started.toISOString()}`);
  p(`- node: ${process.version} (${process.platform}/${process.arch})`);
  p(`- machine: ${m.cpu}, nproc = ${m.nproc}`);
  p(`- TF.js ${tf.version.tfjs}; wasm backend ${tfwasm.version_wasm} (${tfw.binary}); cpu backend is plain JS`);
  p('- one thread each side, all in one Node process; kiln runs its compiled WebAssembly (SIMD128) in-process');
  p(`- load average before / after the run: ${loadBefore} / ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (other processes on the machine add noise)`);
  p(`- method: warm-up of at least ${WARMUP_CALLS} calls and ${WARMUP_MIN_MS / 1000} s (V8 tiers wasm up from Liftoff to TurboFan meanwhile; at most ${WARMUP_MAX_MS / 1000} s), then ${ROUNDS} rounds of N calls with N chosen so a round takes >= ${ROUND_MS} ms;`);
  p('  each cell is the median over rounds of the mean time per call, in microseconds (lower is better)');
  if (QUICK) p('- **BENCH_QUICK=1: smoke-run settings, numbers are indicative only**');
  p();
  p('Columns: **kiln raw** = the compiled module alone (`runner.runRaw()` on inputs and weights already in linear memory);');
  p('**kiln API** = `model.predict(x, { batchSize })` / `runTrainStep` (what `fit` runs per batch: bind inputs, copy weights and Adam slots in,');
  p('run, copy outputs and updates out); **TF.js** = `tf.tidy(() => model.predict(x, { batchSize }))` + `dataSync()` / `await model.trainOnBatch(x, y)`');
  p('with `adam` and `sparseCategoricalCrossentropy`, same initial weights. Ratios are peer time / kiln time (> 1: kiln faster).');
  p();
  p('| case | kiln raw (µs) | kiln API (µs) | TF.js wasm (µs) | TF.js cpu (µs) | raw vs wasm | raw vs cpu | API vs wasm | API vs cpu |');
  p('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const b of [1, 256]) {
    const k = kInfer.get(b)!, w = tfw.infer.get(b)!.predict, c = tfc.infer.get(b)!.predict;
    p(`| inference, batch ${b} | ${fmt(k.raw)} | ${fmt(k.predict)} | ${fmt(w)} | ${fmt(c)} | ${ratio(w, k.raw)} | ${ratio(c, k.raw)} | ${ratio(w, k.predict)} | ${ratio(c, k.predict)} |`);
  }
  for (const b of [32, 256]) {
    const k = kTrain.get(b)!, w = tfw.train.get(b)!.step, c = tfc.train.get(b)!.step;
    p(`| train step (Adam), batch ${b} | ${fmt(k.raw)} | ${fmt(k.step)} | ${fmt(w)} | ${fmt(c)} | ${ratio(w, k.raw)} | ${ratio(c, k.raw)} | ${ratio(w, k.step)} | ${ratio(c, k.step)} |`);
  }
  p();
  p('TF.js without the Layers API (same inference as `tf.fused.matMul` ×2 + `tf.softmax`, `dataSync()`), for reference:');
  p();
  p('| case | TF.js wasm ops (µs) | TF.js cpu ops (µs) | kiln raw vs wasm ops |');
  p('|---|---:|---:|---:|');
  for (const b of [1, 256]) {
    const w = tfw.infer.get(b)!.ops, c = tfc.infer.get(b)!.ops;
    p(`| inference, batch ${b} | ${fmt(w)} | ${fmt(c)} | ${ratio(w, kInfer.get(b)!.raw)} |`);
  }
  p();
  p('Compile time:');
  p();
  p('| what | time |');
  p('|---|---:|');
  const cmd = 'node dist/cli/main.js compile examples/seed/sequential.ts --target wasm -o <tmpdir>';
  if (comp.ok) {
    p(`| \`${cmd}\`, whole command (median of ${comp.runsMs!.length} runs: ${comp.runsMs!.map((x) => x.toFixed(0)).join(', ')} ms) | ${(comp.medianMs! / 1000).toFixed(2)} s |`);
    if (compLiftoff) p(`| diagnostic: same command as \`node --liftoff-only …\` (median of ${compLiftoff.runsMs?.length ?? 0} runs; not the goal's command) | ${compLiftoff.ok ? `${(compLiftoff.medianMs! / 1000).toFixed(2)} s` : `failed: ${compLiftoff.message}`} |`);
  } else {
    p(`| \`${cmd}\` | not available (${comp.message.replace(/\|/g, '\\|')}) |`);
  }
  for (const b of [1, 256]) p(`| in-process first \`predict\` at batch ${b} (trace + passes + render + binaryen + instantiate + run) | ${kInfer.get(b)!.firstCallMs.toFixed(0)} ms |`);
  for (const b of [32, 256]) p(`| in-process first training step at batch ${b} (trace + autodiff + passes + render + binaryen + instantiate + run) | ${kTrain.get(b)!.firstCallMs.toFixed(0)} ms |`);
  p();

  // Goals of issue 5.
  const best = (b: number): { t: Timing; name: string } => {
    const w = tfw.train.get(b)!.step, c = tfc.train.get(b)!.step;
    return w.us <= c.us ? { t: w, name: 'wasm' } : { t: c, name: 'cpu' };
  };
  const verdict = (v: number, goal: number): string => (v >= goal ? '**met**' : '**not met**');
  if (breakdown.length) {
    p('Where kiln\'s time goes (diagnostic): each fused kernel rendered as a module of its own and timed alone in CPU time');
    p('of this process (`process.cpuUsage`: one thread, so other processes\' load counts far less than in wall time; 0.5 s');
    p('warm-up, median of 5 rounds of >= 100 ms), with GFLOP/s of the matmuls it contains where that is the bulk:');
    p();
    p(`GFLOP/s counts every f32 add, subtract, multiply and divide the kernel's loop IR executes; % of peak is against this machine's SIMD128 peak below (${peakBest.toFixed(1)} GFLOP/s).`);
    p();
    p('| case | kernel | ops fused | µs | share of kernel sum | GFLOP/s | % of SIMD128 peak |');
    p('|---|---|---|---:|---:|---:|---:|');
    for (const bd of breakdown) {
      const sum = bd.kernels.reduce((a, k) => a + k.us, 0);
      for (const k of bd.kernels) p(`| ${bd.label} | ${k.name} | ${k.ops} | ${fmt({ us: k.us } as Timing)} | ${((100 * k.us) / sum).toFixed(0)}% | ${(k.flop / k.us / 1e3).toFixed(1)} | ${((100 * k.flop) / k.us / 1e3 / peakBest).toFixed(0)}% |`);
      p(`| ${bd.label} | sum of kernels / whole run (kiln raw above) | | ${fmt({ us: sum } as Timing)} / ${fmt({ us: bd.total } as Timing)} | | | |`);
    }
    const mm = breakdown.find((b) => b.label === 'inference, batch 256')?.kernels[0];
    if (mm) p(`\nThe first Dense layer's matmul (256×784 · 784×64, ${(2 * 256 * 784 * 64 / 1e6).toFixed(1)} MFLOP) runs at ${(2 * 256 * 784 * 64 / mm.us / 1e3).toFixed(1)} GFLOP/s in kiln (kernel ${mm.name}); TF.js-wasm's whole fused-ops inference at batch 256 reaches ${(2 * 256 * (784 * 64 + 64 * 10) / tfw.infer.get(256)!.ops.us / 1e3).toFixed(1)} GFLOP/s.`);
    p();
  }
  p('## SIMD128 peak of this machine');
  p();
  p(`A register-resident loop of ${12} independent f32x4 multiply-adds (acc = acc * x + y), best of 9 runs of about 0.1 s of CPU time:`);
  p();
  p('| instructions | GFLOP/s (one thread) |');
  p('|---|---:|');
  p(`| f32x4.mul + f32x4.add | ${peak.mulAdd.toFixed(1)} |`);
  p(`| f32x4.relaxed_madd | ${peak.madd === undefined ? 'not supported by this engine' : peak.madd.toFixed(1)} |`);
  p();
  p('## The artifact on threads, interleaved with TF.js-wasm (issue 17)');
  p();
  p('The seed MLP compiled with `kiln compile mlp.ts --target wasm --train --batch-size 256` and loaded through its');
  p('`model.mjs` (`load({ threads, relaxedSimd })`), its own initial weights; `predict` of 256 rows and `trainStep` of 256 rows');
  p('(Adam), as a user calls them (inputs copied in, outputs copied out). Every case is timed in turn within each of');
  p(`${ROUNDS} rounds (calls per round chosen for about ${ROUND_MS} ms), so the machine's load falls on all alike; cells are the`);
  p('median over rounds, µs per call; ratios are TF.js-wasm time / kiln time from the same rounds.');
  p(`Load average before / after this part: ${loadArtifact} / ${loadArtifactAfter}.`);
  p();
  p('| case | predict b256 (µs) | vs TF.js-wasm | trainStep b256 (µs) | vs TF.js-wasm |');
  p('|---|---:|---:|---:|---:|');
  const cell = (label: string, kind: 'predict' | 'train') => art.cases.find((c) => c.label === label && c.kind === kind)!;
  const med = (c: ArtifactCase) => median(art.us.get(c)!);
  const peerOf = (kind: 'predict' | 'train') => med(art.cases.find((c) => c.peer && c.kind === kind)!);
  for (const label of [...new Set(art.cases.map((c) => c.label))]) {
    const a = cell(label, 'predict'), b = cell(label, 'train');
    p(`| ${label} | ${fmt({ us: med(a) } as Timing)} | ${(peerOf('predict') / med(a)).toFixed(2)}x | ${fmt({ us: med(b) } as Timing)} | ${(peerOf('train') / med(b)).toFixed(2)}x |`);
  }
  p();
  const goal = (what: string, target: number, label: string, kind: 'predict' | 'train') => {
    const c = art.cases.find((x) => x.label === label && x.kind === kind);
    if (!c) return;
    const v = peerOf(kind) / med(c);
    p(`| ${what} (${label}) | >= ${target}x | ${v.toFixed(2)}x | ${v >= target ? '**met**' : '**not met**'} |`);
  };
  p('Goals (issue 17) against this run:');
  p();
  p('| goal | target | kiln vs TF.js-wasm | verdict |');
  p('|---|---|---:|---|');
  for (const rel of ['', ', relaxed SIMD']) {
    goal('inference batch 256, 1 thread', 1.25, `kiln 1 thread${rel}`, 'predict');
    goal('inference batch 256, 2 threads', 2.2, `kiln 2 threads${rel}`, 'predict');
    goal('training step batch 256, 1 thread', 6, `kiln 1 thread${rel}`, 'train');
    goal('training step batch 256, 2 threads', 6, `kiln 2 threads${rel}`, 'train');
  }
  p();
  p('Goals (issue 5) against this run:');
  p();
  p('| goal | target | kiln raw | kiln API | verdict (raw / API) |');
  p('|---|---|---:|---:|---|');
  {
    const w = tfw.infer.get(256)!.predict, k = kInfer.get(256)!;
    const r1 = w.us / k.raw.us, r2 = w.us / k.predict.us;
    p(`| inference batch 256, throughput vs TF.js-wasm | >= 1.5x | ${r1.toFixed(2)}x | ${r2.toFixed(2)}x | ${verdict(r1, 1.5)} / ${verdict(r2, 1.5)} |`);
  }
  {
    const w = tfw.infer.get(1)!.predict, k = kInfer.get(1)!;
    const r1 = w.us / k.raw.us, r2 = w.us / k.predict.us;
    p(`| inference batch 1, latency vs TF.js-wasm | >= 3x lower | ${r1.toFixed(2)}x | ${r2.toFixed(2)}x | ${verdict(r1, 3)} / ${verdict(r2, 3)} |`);
  }
  for (const b of [32, 256]) {
    const { t, name } = best(b), k = kTrain.get(b)!;
    const r1 = t.us / k.raw.us, r2 = t.us / k.step.us;
    p(`| training step batch ${b} vs faster TF.js backend (${name}) | >= 3x | ${r1.toFixed(2)}x | ${r2.toFixed(2)}x | ${verdict(r1, 3)} / ${verdict(r2, 3)} |`);
  }
  if (comp.ok) {
    const s = comp.medianMs! / 1000;
    p(`| \`kiln compile\` seed MLP to wasm, whole command | < 2 s | ${s.toFixed(2)} s | | ${s < 2 ? '**met**' : '**not met**'} |`);
  } else {
    p(`| \`kiln compile\` seed MLP to wasm, whole command | < 2 s | not available | | **not measured** (CLI: ${comp.message.replace(/\|/g, '\\|')}) |`);
  }
  p();
  p('Sanity checks (same weights, same inputs):');
  p();
  for (const b of [1, 256]) {
    const k = kInfer.get(b)!.out;
    p(`- inference batch ${b}: max |kiln − TF.js wasm| = ${maxAbsDiff(k, tfw.infer.get(b)!.out).toExponential(2)}, max |kiln − TF.js cpu| = ${maxAbsDiff(k, tfc.infer.get(b)!.out).toExponential(2)}`);
  }
  for (const b of [32, 256]) {
    p(`- first training-step loss at batch ${b} (dropout masks differ): kiln ${kTrain.get(b)!.loss.toFixed(4)}, TF.js wasm ${tfw.train.get(b)!.loss.toFixed(4)}, TF.js cpu ${tfc.train.get(b)!.loss.toFixed(4)}`);
  }
  p();
  p('Calls per timing round (N): ' + [
    ...[1, 256].map((b) => `infer b${b}: kiln raw ${kInfer.get(b)!.raw.calls}, API ${kInfer.get(b)!.predict.calls}, tfw ${tfw.infer.get(b)!.predict.calls}, tfc ${tfc.infer.get(b)!.predict.calls}`),
    ...[32, 256].map((b) => `train b${b}: kiln raw ${kTrain.get(b)!.raw.calls}, API ${kTrain.get(b)!.step.calls}, tfw ${tfw.train.get(b)!.step.calls}, tfc ${tfc.train.get(b)!.step.calls}`),
  ].join('; ') + '.');
  p();

  const md = lines.join('\n');
  const outFile = process.env['BENCH_OUT'] ?? path.join(root, 'bench', 'results.md');
  const prev = (() => { try { return readFileSync(outFile, 'utf8'); } catch { return ''; } })();
  // Keep any hand-written notes below the marker.
  const marker = '<!-- notes: kept across runs -->';
  const notes = prev.includes(marker) ? prev.slice(prev.indexOf(marker)) : '';
  writeFileSync(outFile, md + (notes ? '\n' + notes : ''));
  process.stdout.write(md + '\n');
  log(`wrote ${path.relative(process.cwd(), outFile) || outFile}`);
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
