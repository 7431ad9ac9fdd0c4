// `npm run bench:llvm`: kiln's native code (--target llvm) side by side with onnxruntime-node (CPU execution provider)
// at the same thread counts. Writes bench/results-llvm.md.
//
// Cases: the seed MLP (784-64-relu-10-softmax) inference at batch 1 and 256, its training step with Adam at batch 32
// and 256 (kiln only: no training peer is installed), a 1024x1024x1024 float32 matmul, int8 inference of the seed MLP
// and CNN against float32 and ORT's int8 (bench/int8.ts; BENCH_ONLY=int8 runs that alone), and the wall time of
// `kiln compile` of the seed MLP. kiln is timed with its own executables (`model_main --bench N`,
// `model_train --bench N`: median per call of N calls after N/10 warm-up calls, KILN_NUM_THREADS threads), each
// run REPS times as a separate process; onnxruntime is timed from this process (each `await session.run` on its own,
// median per call), next to a trivial model's time per call (the binding's overhead). Diagnostics: per-kernel times
// from rebuilt variants of each artifact, the phases of `kiln compile`, training steps with FTZ/DAZ.
// Set BENCH_QUICK=1 for a fast smoke run (writes bench/results-llvm.quick.md); BENCH_KEEP=1 keeps the temp folder.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { Builder } from '../ir/graph.js';
import { compileLlvm, hostCpu } from '../codegen/llvm/target.js';
import { readNpy, writeNpy } from '../runtime/npy.js';
import { readSafetensors } from '../runtime/safetensors.js';
import { encodeOnnx, type OnnxGraph } from './onnx.js';
import { int8Rows } from './int8.js';
import { cpuName } from './timer.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..'); // dist/bench -> repo root
const QUICK = process.env['BENCH_QUICK'] === '1';
const REPS = QUICK ? 1 : 3; // processes (kiln) / rounds (ORT) per cell; the cell is their median
const TARGET_MS = QUICK ? 200 : 1000; // timed calls per process / round
const WARM_MS = QUICK ? 100 : 500; // ORT warm-up
const COMPILE_RUNS = QUICK ? 1 : 5;
const PEAK_PER_CORE = 270; // GFLOP/s, AVX-512 FMA peak per core measured on this machine (issue 6)

const log = (s: string): void => { process.stderr.write(`${s}\n`); };

// ------------------------------------------------------------------------------------------------ timing

interface Timing {
  /** median over REPS of the median microseconds per call */
  us: number;
  lo: number;
  hi: number;
  calls: number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function summarize(meds: number[], calls: number): Timing {
  return { us: median(meds), lo: Math.min(...meds), hi: Math.max(...meds), calls };
}

const num = (us: number): string => (us >= 1000 ? us.toFixed(0) : us >= 100 ? us.toFixed(1) : us.toFixed(2));
const fmt = (t: Timing | undefined): string => (t ? num(t.us) : 'n/a');
const ratio = (peer: Timing | undefined, kiln: Timing | undefined): string => (peer && kiln ? `${(peer.us / kiln.us).toFixed(2)}x` : 'n/a');
const span = (t: Timing | undefined): string => (t ? `${num(t.lo)}–${num(t.hi)}` : '');

/** Runs `exe ... --bench N ...` (kiln's executables) and parses `median X us`. */
function benchOnce(exe: string, args: readonly string[], n: number, threads: number): number {
  const r = spawnSync(exe, ['--bench', String(n), ...args], {
    cwd: path.dirname(exe),
    env: { ...process.env, KILN_NUM_THREADS: String(threads) },
    encoding: 'utf8',
  });
  const m = /median ([\d.]+) us/.exec(r.stdout ?? '');
  if (r.status !== 0 || !m) throw new Error(`${exe} --bench ${n} failed (${r.status}): ${(r.stderr || r.stdout).trim()}`);
  return Number(m[1]);
}

/** kiln: a probe sizes N so that one process times about TARGET_MS, then REPS processes. */
function benchKiln(exe: string, args: readonly string[], threads: number, targetMs = TARGET_MS): Timing {
  const probe = benchOnce(exe, args, 5, threads);
  const n = Math.max(10, Math.min(500_000, Math.round((targetMs * 1000) / Math.max(probe, 0.05))));
  const meds: number[] = [];
  for (let r = 0; r < REPS; r++) meds.push(benchOnce(exe, args, n, threads));
  return summarize(meds, n);
}

/** ORT from Node: warm-up, then REPS rounds of individually timed calls; each round's median, then their median. */
async function benchOrt(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<Timing> {
  const t0 = performance.now();
  for (let i = 0; i < 5 || performance.now() - t0 < WARM_MS; i++) await session.run(feeds);
  const meds: number[] = [];
  let calls = 0;
  for (let r = 0; r < REPS; r++) {
    const times: number[] = [];
    const r0 = performance.now();
    while (times.length < 5 || performance.now() - r0 < TARGET_MS) {
      const a = process.hrtime.bigint();
      await session.run(feeds);
      times.push(Number(process.hrtime.bigint() - a) / 1000);
    }
    calls = times.length;
    meds.push(median(times));
  }
  return summarize(meds, calls);
}

function ortOptions(threads: number): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
}

// ------------------------------------------------------------------------------------------------ data

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Deterministic pixels in [0, 1) and labels in [0, 10). */
function makeData(rows: number): { x: Float32Array; y: Int32Array } {
  const next = lcg(12345);
  const x = new Float32Array(rows * 784);
  for (let i = 0; i < x.length; i++) x[i] = next();
  const y = new Int32Array(rows);
  for (let i = 0; i < rows; i++) y[i] = Math.floor(next() * 10);
  return { x, y };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

// ------------------------------------------------------------------------------------------------ helpers

const KILN = path.join(root, 'dist', 'cli', 'main.js');
const SEQUENTIAL = path.join(root, 'examples', 'seed', 'sequential.ts');
const LOSSES = path.join(root, 'examples', 'seed', 'losses.ts');

/** `node dist/cli/main.js compile ...`; returns the wall milliseconds of the whole command. */
function kilnCompile(args: readonly string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [KILN, 'compile', ...args], { cwd: root, encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`kiln compile ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
  return ms;
}

function timeCmd(cmd: string, args: readonly string[], cwd: string): number {
  const t0 = performance.now();
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  return performance.now() - t0;
}

interface Manifest {
  entries: Record<string, {
    inputs: { name: string; shape: number[]; dtype: string }[];
    outputs: { name: string; shape: number[]; dtype: string }[];
    kernels: { name: string; ops: string[] }[];
  }>;
}
const manifestOf = (dir: string): Manifest => JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;

/** The seed MLP as ONNX with the weights kiln wrote (MatMul, Add, Relu, MatMul, Add, Softmax). */
function mlpOnnx(weightsFile: string, batch: number, inputName: string, outputName: string): Uint8Array {
  const { tensors } = readSafetensors(new Uint8Array(readFileSync(weightsFile))) // a copy: the readers slice(), which on a Buffer is a view;
  const w = (name: string) => {
    const t = tensors.find((x) => x.name === name);
    if (!t || t.dtype !== 'float32') throw new Error(`weights: no float32 tensor ${name}`);
    return { name: name.replace('/', '_'), shape: t.shape, data: t.data as Float32Array };
  };
  const g: OnnxGraph = {
    name: 'seed_mlp',
    initializers: [w('dense/kernel'), w('dense/bias'), w('dense_1/kernel'), w('dense_1/bias')],
    inputs: [{ name: inputName, shape: [batch, 784] }],
    outputs: [{ name: outputName, shape: [batch, 10] }],
    nodes: [
      { op: 'MatMul', inputs: [inputName, 'dense_kernel'], outputs: ['h0'] },
      { op: 'Add', inputs: ['h0', 'dense_bias'], outputs: ['h1'] },
      { op: 'Relu', inputs: ['h1'], outputs: ['h2'] },
      { op: 'MatMul', inputs: ['h2', 'dense_1_kernel'], outputs: ['h3'] },
      { op: 'Add', inputs: ['h3', 'dense_1_bias'], outputs: ['h4'] },
      { op: 'Softmax', inputs: ['h4'], outputs: [outputName] },
    ],
  };
  return encodeOnnx(g);
}

// ----------------------------------------------------------------------- where kiln's time goes (variants)

interface KernelTime { kernel: string; us: number }
interface Breakdown { whole: Timing; none: Timing; kernels: KernelTime[]; noinline: Timing }

/**
 * Rebuilds an artifact's executable from a changed model.ll, in DIR/v_TAG: the same opt/llc flags as codegen/llvm/target.ts,
 * the new model.o swapped into a copy of libmodel.a, the executable's C file linked against it. Returns the executable.
 */
function buildVariant(dir: string, exeName: string, tag: string, ll: string): string {
  const cpu = hostCpu();
  const v = path.join(dir, `v_${tag}`);
  mkdirSync(v, { recursive: true });
  writeFileSync(path.join(v, 'model.ll'), ll);
  execFileSync('opt-14', ['-O3', `-mcpu=${cpu}`, 'model.ll', '-o', 'model.bc'], { cwd: v });
  // a host build's kernels in several modules (target.ts parts): the changed first one linked with the others' objects
  const others = readdirSync(dir).filter((f) => /^model\.\d+\.part\.o$/.test(f)).map((f) => path.join(dir, f));
  execFileSync('llc-14', ['-O3', `-mcpu=${cpu}`, '-relocation-model=pic', '-filetype=obj', 'model.bc', '-o', others.length ? 'model.part.o' : 'model.o'], { cwd: v });
  if (others.length) execFileSync('ld', ['-r', '-o', 'model.o', 'model.part.o', ...others], { cwd: v });
  copyFileSync(path.join(dir, 'libmodel.a'), path.join(v, 'libmodel.a'));
  execFileSync('ar', ['r', 'libmodel.a', 'model.o'], { cwd: v });
  execFileSync('gcc', ['-O2', '-std=c99', '-pthread', `-I${dir}`, path.join(dir, `${exeName}.c`), 'libmodel.a', '-lm', '-o', exeName], { cwd: v });
  if (!existsSync(path.join(v, 'weights.safetensors'))) symlinkSync(path.join(dir, 'weights.safetensors'), path.join(v, 'weights.safetensors'));
  return path.join(v, exeName);
}

/**
 * model_train rebuilt with flush-to-zero and denormals-are-zero set in MXCSR at the start of main (threads the
 * runtime creates later inherit it): a diagnostic for slow denormal arithmetic in long runs. Undefined if the
 * C file's main cannot be found.
 */
function buildFtzTrain(dir: string): string | undefined {
  const src = readFileSync(path.join(dir, 'model_train.c'), 'utf8');
  const main = /^int main\(int argc, char \*\*argv\) \{$/m;
  if (!main.test(src)) return undefined;
  const v = path.join(dir, 'v_ftz');
  mkdirSync(v, { recursive: true });
  writeFileSync(path.join(v, 'model_train.c'), src.replace(main, (m) => `#include <xmmintrin.h>\n${m}\n  _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ | DAZ */`));
  execFileSync('gcc', ['-O2', '-std=c99', '-pthread', `-I${dir}`, 'model_train.c', path.join(dir, 'libmodel.a'), '-lm', '-o', 'model_train'], { cwd: v });
  if (!existsSync(path.join(v, 'weights.safetensors'))) symlinkSync(path.join(dir, 'weights.safetensors'), path.join(v, 'weights.safetensors'));
  return path.join(v, 'model_train');
}

/**
 * Per-kernel times, 1 thread: the artifact's model.ll rebuilt (same opt/llc/gcc flags) with the entry function
 * `kiln_<entry>` calling only one of its kernels, so each kernel is timed alone with the rest of the call (inputs
 * copied in, outputs out) around it; and once calling none (that rest alone). Kernels run on whatever the skipped
 * kernels would have left in memory (zeros), which does not change their work. Also the whole entry rebuilt with
 * every kernel function `noinline` (opt otherwise inlines them into `kiln_<entry>`).
 */
function breakdown(dir: string, exeName: 'model_main' | 'model_train', entry: string, args: readonly string[]): Breakdown | undefined {
  const ll = readFileSync(path.join(dir, 'model.ll'), 'utf8');
  const re = new RegExp(`^(define void @kiln_${entry}\\([^)]*\\)[^{\\n]*\\{\\n)([\\s\\S]*?)(\\n\\}\\n)`, 'm');
  const m = re.exec(ll);
  if (!m) return undefined;
  const lines = m[2]!.split('\n');
  const calls = lines.map((l, i) => ({ i, k: /^\s*call \w+ @(\w+)\(/.exec(l)?.[1] })).filter((c) => c.k !== undefined) as { i: number; k: string }[];
  if (!calls.length) return undefined;
  const withOnly = (keep: number | undefined): string =>
    ll.replace(re, (_all, head: string, _body: string, tail: string) => head + lines.filter((_l, i) => !calls.some((c) => c.i === i) || i === keep).join('\n') + tail);
  const t = (exe: string): Timing => benchKiln(exe, args, 1, TARGET_MS / 2);
  const whole = t(path.join(dir, exeName));
  const none = t(buildVariant(dir, exeName, 'none', withOnly(undefined)));
  const kernels = calls.map((c, j) => ({ kernel: c.k.replace(new RegExp(`^${entry}_`), ''), us: t(buildVariant(dir, exeName, `k${j}`, withOnly(c.i))).us }));
  const noinline = t(buildVariant(dir, exeName, 'noinline', ll.replace(/^(define internal (?![^@\n]*@kiln_v\d+_)[^{\n]*?)\s*\{$/gm, '$1 noinline {')));
  return { whole, none, kernels, noinline };
}

// ------------------------------------------------------------------------------------------------ main

interface InferRow { batch: number; threads: number; kiln: Timing; ort: Timing; flop: number }
interface TrainRow { batch: number; threads: number; kiln: Timing; early: number; ftz?: Timing }
interface MatmulRow { threads: number; kiln: Timing; ort: Timing }
interface BreakdownRow { tag: string; b: Breakdown; kernels: { name: string; ops: string[] }[]; flop: Record<string, number> }

async function main(): Promise<void> {
  const started = new Date();
  const loadBefore = os.loadavg();
  const tmp = mkdtempSync(path.join(tmpdir(), 'kiln-bench-llvm-'));
  const cpu = hostCpu();
  const checks: string[] = [];
  const breakdowns: BreakdownRow[] = [];
  try {
    // ------------------------------------------------------------------ int8 (BENCH_ONLY=int8: this section alone)
    const int8 = await int8Rows(tmp, { root, benchKiln, benchOrt, ortOptions, kilnCompile, log }, lcg(4242));
    if (process.env['BENCH_ONLY'] === 'int8') {
      process.stdout.write(`load average before / after: ${loadBefore.map((v) => v.toFixed(2)).join(' ')} / ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}\n\n${int8.join('\n')}`);
      return;
    }

    // ------------------------------------------------------------------ compile time (the whole command)
    log('compile: kiln compile examples/seed/sequential.ts --target llvm (whole command)');
    const compileMs: number[] = [];
    for (let i = 0; i < COMPILE_RUNS; i++) compileMs.push(kilnCompile([SEQUENTIAL, '--target', 'llvm', '-o', path.join(tmp, `compile${i}`)]));
    // its phases, in a fresh process each, and the external tools re-run alone in the artifact folder
    const phases: Record<string, number>[] = [];
    for (let i = 0; i < Math.min(COMPILE_RUNS, 3); i++) {
      const r = spawnSync(process.execPath, [path.join(here, 'compile-phases.js'), SEQUENTIAL, path.join(tmp, `phases${i}`)], { cwd: root, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`compile phases failed: ${r.stderr}`);
      phases.push(JSON.parse(r.stdout) as Record<string, number>);
    }
    const phase = (k: string): number => median(phases.map((p) => p[k] ?? 0));
    const cdir = path.join(tmp, 'compile0');
    const tool = (cmd: string, args: string[]): number => {
      try {
        return median([0, 1, 2].map(() => timeCmd(cmd, args, cdir)));
      } catch {
        return NaN; // the artifact's build steps changed under this diagnostic
      }
    };
    const optMs = tool('opt-14', ['-O3', `-mcpu=${cpu}`, 'model.ll', '-o', 'model_t.bc']);
    const llcMs = tool('llc-14', ['-O3', `-mcpu=${cpu}`, '-relocation-model=pic', '-filetype=obj', 'model_t.bc', '-o', 'model_t.o']);
    const gccMs = tool('sh', ['-c', 'for f in model_desc kiln_runtime kiln_rows kiln_math; do gcc -O2 -std=c99 -pthread -c $f.c -o t_$f.o; done; ar rcs t_lib.a model_t.o t_model_desc.o t_kiln_runtime.o t_kiln_rows.o t_kiln_math.o; gcc -O2 -std=c99 -pthread model_main.c t_lib.a -lm -o t_model_main']);
    const gccRuntimeMs = tool('gcc', ['-O2', '-std=c99', '-pthread', '-c', 'kiln_runtime.c', '-o', 't2_kiln_runtime.o']);
    const nodeMs = median([0, 1, 2].map(() => timeCmd(process.execPath, ['-e', '0'], root)));

    // ------------------------------------------------------------------ ORT's fixed cost per call from Node
    const ident = encodeOnnx({ name: 'identity', initializers: [], nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }], inputs: [{ name: 'x', shape: [1, 1] }], outputs: [{ name: 'y', shape: [1, 1] }] });
    const identSession = await ort.InferenceSession.create(ident, ortOptions(1));
    log('ORT: a trivial model (Identity on one float) from Node');
    const ortFixed = await benchOrt(identSession, { x: new ort.Tensor('float32', Float32Array.of(1), [1, 1]) });
    await identSession.release();

    // ------------------------------------------------------------------ seed MLP inference
    const data = makeData(2048);
    const infer: InferRow[] = [];
    for (const batch of [1, 256]) {
      const dir = path.join(tmp, `infer_b${batch}`);
      log(`inference, batch ${batch}: compiling`);
      kilnCompile([SEQUENTIAL, '--target', 'llvm', '--batch-size', String(batch), '-o', dir]);
      const man = manifestOf(dir).entries['predict']!;
      const inName = man.inputs[0]!.name, outName = man.outputs[0]!.name;
      const x = data.x.slice(0, batch * 784);
      writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [batch, 784], x));
      execFileSync(path.join(dir, 'model_main'), [path.join(dir, 'x.npy'), '--out', path.join(dir, 'out')], { cwd: dir });
      const kilnOut = readNpy(new Uint8Array(readFileSync(path.join(dir, 'out', `${outName.replace(/\//g, '_')}.npy`)))).data as Float32Array;
      const onnx = mlpOnnx(path.join(dir, 'weights.safetensors'), batch, inName, outName);
      writeFileSync(path.join(dir, 'seed_mlp.onnx'), onnx);
      const feeds = { [inName]: new ort.Tensor('float32', x, [batch, 784]) };
      for (const threads of [1, 2]) {
        const session = await ort.InferenceSession.create(onnx, ortOptions(threads));
        const ortOut = (await session.run(feeds))[outName]!.data as Float32Array;
        checks.push(`inference batch ${batch}, ${threads} thread(s): max |kiln − ORT| = ${maxAbsDiff(kilnOut, ortOut).toExponential(2)} over ${kilnOut.length} outputs`);
        log(`inference, batch ${batch}, ${threads} thread(s): kiln`);
        const kiln = benchKiln(path.join(dir, 'model_main'), [path.join(dir, 'x.npy'), '--out', path.join(dir, 'out')], threads);
        log(`inference, batch ${batch}, ${threads} thread(s): ORT (kiln ${fmt(kiln)} us)`);
        const ortT = await benchOrt(session, feeds);
        await session.release();
        log(`  ORT ${fmt(ortT)} us`);
        infer.push({ batch, threads, kiln, ort: ortT, flop: 2 * batch * (784 * 64 + 64 * 10) });
      }
      log(`inference, batch ${batch}: per-kernel variants`);
      const bd = breakdown(dir, 'model_main', 'predict', [path.join(dir, 'x.npy'), '--out', path.join(dir, 'out')]);
      if (bd) breakdowns.push({ tag: `inference, batch ${batch}`, b: bd, kernels: manifestOf(dir).entries['predict']!.kernels, flop: { k0_matmul: 2 * batch * 784 * 64 } });
    }

    // ------------------------------------------------------------------ seed MLP training step (Adam)
    const train: TrainRow[] = [];
    for (const batch of [32, 256]) {
      const dir = path.join(tmp, `train_b${batch}`);
      log(`training step, batch ${batch}: compiling`);
      kilnCompile([LOSSES, '--target', 'llvm', '--train', '--batch-size', String(batch), '-o', dir]);
      const rows = batch * 8;
      writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [rows, 784], data.x.subarray(0, rows * 784)));
      writeFileSync(path.join(dir, 'y.npy'), writeNpy('int32', [rows], data.y.subarray(0, rows)));
      const ftzExe = buildFtzTrain(dir);
      for (const threads of [1, 2]) {
        log(`training step, batch ${batch}, ${threads} thread(s): kiln`);
        const targs = [path.join(dir, 'x.npy'), path.join(dir, 'y.npy')];
        const kiln = benchKiln(path.join(dir, 'model_train'), targs, threads);
        const ftz = ftzExe ? benchKiln(ftzExe, targs, threads) : undefined;
        const early = median([0, 1, 2].map(() => benchOnce(path.join(dir, 'model_train'), targs, 100, threads)));
        log(`  kiln ${fmt(kiln)} us, first 100 steps ${num(early)} us, with FTZ/DAZ ${fmt(ftz)} us`);
        train.push({ batch, threads, kiln, early, ftz });
      }
      log(`training step, batch ${batch}: per-kernel variants`);
      const bd = breakdown(dir, 'model_train', 'trainStep', [path.join(dir, 'x.npy'), path.join(dir, 'y.npy')]);
      if (bd) breakdowns.push({ tag: `training step, batch ${batch}`, b: bd, kernels: manifestOf(dir).entries['trainStep']!.kernels, flop: {} });
    }

    // ------------------------------------------------------------------ 1024^3 matmul
    const N = 1024;
    const mmFlop = 2 * N * N * N;
    const mdir = path.join(tmp, 'matmul');
    log('matmul 1024^3: compiling with compileLlvm');
    const gb = new Builder();
    const A = gb.input('a', { dtype: 'float32', shape: [N, N] });
    const B = gb.input('b', { dtype: 'float32', shape: [N, N] });
    const graph = gb.finish('matmul', [{ name: 'c', node: gb.emit('matmul', [A, B]) }]);
    const c0 = performance.now();
    compileLlvm({ outDir: mdir, entries: [{ name: 'predict', graph, batchSize: N }], weights: [] });
    const matmulCompileMs = performance.now() - c0;
    const rnd = lcg(777);
    const a = Float32Array.from({ length: N * N }, () => rnd() * 2 - 1);
    const bm = Float32Array.from({ length: N * N }, () => rnd() * 2 - 1);
    writeFileSync(path.join(mdir, 'a.npy'), writeNpy('float32', [N, N], a));
    writeFileSync(path.join(mdir, 'b.npy'), writeNpy('float32', [N, N], bm));
    execFileSync(path.join(mdir, 'model_main'), [path.join(mdir, 'a.npy'), path.join(mdir, 'b.npy'), '--out', path.join(mdir, 'out')], { cwd: mdir });
    const kc = readNpy(new Uint8Array(readFileSync(path.join(mdir, 'out', 'c.npy')))).data as Float32Array;
    let refErr = 0; // a float64 reference on 256 sampled entries
    const pick = lcg(99);
    for (let s = 0; s < 256; s++) {
      const i = Math.floor(pick() * N), j = Math.floor(pick() * N);
      let acc = 0;
      for (let k = 0; k < N; k++) acc += a[i * N + k]! * bm[k * N + j]!;
      refErr = Math.max(refErr, Math.abs(acc - kc[i * N + j]!));
    }
    checks.push(`matmul 1024³: max |kiln − float64 reference| over 256 sampled entries = ${refErr.toExponential(2)}`);
    const monnx = encodeOnnx({
      name: 'matmul', initializers: [], nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['c'] }],
      inputs: [{ name: 'a', shape: [N, N] }, { name: 'b', shape: [N, N] }], outputs: [{ name: 'c', shape: [N, N] }],
    });
    writeFileSync(path.join(mdir, 'matmul.onnx'), monnx);
    const mfeeds = { a: new ort.Tensor('float32', a, [N, N]), b: new ort.Tensor('float32', bm, [N, N]) };
    const matmul: MatmulRow[] = [];
    for (const threads of [1, 2]) {
      log(`matmul 1024^3, ${threads} thread(s): kiln`);
      const kiln = benchKiln(path.join(mdir, 'model_main'), [path.join(mdir, 'a.npy'), path.join(mdir, 'b.npy'), '--out', path.join(mdir, 'out')], threads);
      const session = await ort.InferenceSession.create(monnx, ortOptions(threads));
      const oc = (await session.run(mfeeds))['c']!.data as Float32Array;
      checks.push(`matmul 1024³, ${threads} thread(s): max |kiln − ORT| = ${maxAbsDiff(kc, oc).toExponential(2)} over ${oc.length} outputs`);
      log(`matmul 1024^3, ${threads} thread(s): ORT (kiln ${fmt(kiln)} us)`);
      const ortT = await benchOrt(session, mfeeds);
      await session.release();
      matmul.push({ threads, kiln, ort: ortT });
    }
    log('matmul 1024^3: per-kernel variants');
    const mbd = breakdown(mdir, 'model_main', 'predict', [path.join(mdir, 'a.npy'), path.join(mdir, 'b.npy'), '--out', path.join(mdir, 'out')]);
    if (mbd) breakdowns.push({ tag: 'matmul 1024³', b: mbd, kernels: manifestOf(mdir).entries['predict']!.kernels, flop: { k0_matmul: mmFlop } });
    const loadAfter = os.loadavg();

    // ------------------------------------------------------------------ report
    const ortVersion = ort.env.versions.node ?? ort.env.versions.common ?? '?';
    const llvmVersion = /LLVM version ([\d.]+)/.exec(execFileSync('opt-14', ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
    const la = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' ');
    const compileMed = median(compileMs);
    const gflops = (t: Timing, flop: number): number => flop / (t.us * 1e3);
    const L: string[] = [];
    L.push('# kiln-llvm vs onnxruntime-node — seed MLP, training step, 1024³ matmul, compile time, int8', '');
    L.push('Reproduce from the repository root with:', '', '    npm run bench:llvm', '');
    L.push(`- date: ${started.toISOString()}`);
    L.push(`- node: ${process.version} (${process.platform}/${process.arch})`);
    L.push(`- machine: ${cpuName()} (KVM guest), nproc = ${os.cpus().length}; kiln compiles with \`-mcpu=${cpu}\` (LLVM ${llvmVersion})`);
    L.push(`- onnxruntime-node ${ortVersion}, CPU execution provider, graph optimization level \`all\`, \`intraOpNumThreads\` = the thread count, \`interOpNumThreads\` 1, sequential execution`);
    L.push(`- load average before / after the run: ${la(loadBefore)} / ${la(loadAfter)} (other processes on the machine add noise; with a load above 1, 2-thread numbers are the least reliable)`);
    L.push(`- kiln: its own executables, \`KILN_NUM_THREADS=T model_main --bench N x.npy\` / \`model_train --bench N x.npy y.npy\` (the median per call of N calls after N/10 warm-up calls; inputs copied in and outputs out on every call), N sized so one process times about ${TARGET_MS} ms; ${REPS} process(es) per cell, the cell is the median of their medians (range in the last column)`);
    L.push(`- ORT: from this Node process, each \`await session.run(feeds)\` timed on its own after ${WARM_MS} ms of warm-up, ${REPS} round(s) of about ${TARGET_MS} ms, the median of the round medians. This includes the N-API binding and one promise per call: a trivial model (Identity on one float) costs **${fmt(ortFixed)} µs** per call this way, an upper bound on that overhead. (ORT's profiler was tried for an in-library time, but at these sizes it inflates what it measures, more than doubling it with 2 threads, so it is not used.)`);
    L.push('- ratios are ORT time / kiln time (> 1: kiln faster); microseconds unless marked; lower is better', '');

    L.push('## Seed MLP inference (784-64-relu-10-softmax, same weights)', '');
    L.push('| batch | threads | kiln (µs) | ORT (µs) | ORT / kiln | kiln GFLOP/s | kiln range (µs) | ORT range (µs) |');
    L.push('|---:|---:|---:|---:|---:|---:|---|---|');
    for (const r of infer) L.push(`| ${r.batch} | ${r.threads} | ${fmt(r.kiln)} | ${fmt(r.ort)} | ${ratio(r.ort, r.kiln)} | ${gflops(r.kiln, r.flop).toFixed(1)} | ${span(r.kiln)} | ${span(r.ort)} |`);
    L.push('');
    L.push(`At batch 256 the model is ${(infer[2]!.flop / 1e6).toFixed(1)} MFLOP: ${((infer[2]!.flop / (PEAK_PER_CORE * 1e9)) * 1e6).toFixed(0)} µs at the FMA peak of one core, ${((infer[2]!.flop / (2 * PEAK_PER_CORE * 1e9)) * 1e6).toFixed(0)} µs on two.`, '');

    L.push('## Seed MLP training step (Adam, sparse categorical cross-entropy, dropout 0.2)', '');
    L.push('kiln only: no training peer runs on this machine. PyTorch is not installed (`import torch` fails), and onnxruntime-node has no training API. The PyTorch column is the issue\'s numbers (PyTorch 1.13 with OpenBLAS, 2 threads, measured elsewhere), not measured here.', '');
    L.push('| batch | threads | steps timed per process | kiln (µs) | kiln range (µs) | diagnostic: kiln, first 100 steps (µs) | diagnostic: kiln with FTZ/DAZ (µs) | PyTorch, from the issue (µs) |');
    L.push('|---:|---:|---:|---:|---|---:|---:|---:|');
    for (const r of train) L.push(`| ${r.batch} | ${r.threads} | ${r.kiln.calls} | ${fmt(r.kiln)} | ${span(r.kiln)} | ${num(r.early)} | ${fmt(r.ftz)} | ${r.threads === 2 ? (r.batch === 32 ? '≈210' : '≈450') : ''} |`);
    L.push('');
    L.push('`model_train --bench N` runs N/10 + N steps of real training (Adam, on 8 batches of this synthetic data in turn) and takes the median. Where a gradient stays exactly 0 (e.g. a ReLU unit that is off for every sample), Adam\'s first moment decays by β1 = 0.9 per step and reaches the denormal range after some 800 steps; x86 handles denormal operands slowly, so later steps get slower. That FTZ/DAZ removes the slowdown shows denormals are the cause. Diagnostics: `model_train --bench 100` (the first 110 steps, median of 3 processes), and the same artifact with `model_train.c` setting flush-to-zero / denormals-are-zero in MXCSR at start-up; the runtime does not set them today.', '');

    L.push('## 1024×1024×1024 float32 matmul', '');
    L.push(`A graph of two inputs [1024, 1024] and one matmul, built with \`ir/graph.ts\`'s Builder and compiled with \`compileLlvm\` (${matmulCompileMs.toFixed(0)} ms in process); ORT runs a one-node ONNX MatMul on the same inputs. 2·1024³ = ${(mmFlop / 1e9).toFixed(3)} GFLOP per call. Peak = ${PEAK_PER_CORE} GFLOP/s per core (the AVX-512 FMA peak the issue measured here) × threads. Both times include getting the 4 MiB inputs in and the output out (kiln copies them into its memory block).`, '');
    L.push('| threads | kiln (ms) | kiln GFLOP/s | kiln % of peak | ORT (ms) | ORT GFLOP/s | ORT % of peak | ORT / kiln |');
    L.push('|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of matmul) {
      const peak = PEAK_PER_CORE * r.threads, kg = gflops(r.kiln, mmFlop), og = gflops(r.ort, mmFlop);
      L.push(`| ${r.threads} | ${(r.kiln.us / 1000).toFixed(2)} | ${kg.toFixed(1)} | ${((100 * kg) / peak).toFixed(1)}% | ${(r.ort.us / 1000).toFixed(2)} | ${og.toFixed(1)} | ${((100 * og) / peak).toFixed(1)}% | ${ratio(r.ort, r.kiln)} |`);
    }
    L.push('');

    L.push('## Compile time', '');
    L.push('| what | time |', '|---|---:|');
    L.push(`| \`node dist/cli/main.js compile examples/seed/sequential.ts --target llvm -o <tmpdir>\`, whole command (median of ${COMPILE_RUNS}: ${compileMs.map((m) => m.toFixed(0)).join(', ')} ms) | ${(compileMed / 1000).toFixed(2)} s |`);
    L.push('');
    L.push(`Where it goes (diagnostic): the same compile in-process in a fresh Node process (\`dist/bench/compile-phases.js\`, median of ${phases.length}), and the external tools re-run alone on its files (median of 3):`, '');
    L.push('| phase | ms |', '|---|---:|');
    L.push(`| \`node -e 0\` (Node start-up alone) | ${nodeMs.toFixed(0)} |`);
    L.push(`| process start until the script's first line | ${phase('processStartToMain').toFixed(0)} |`);
    L.push(`| import \`kiln/compiler\` and the CLI loader (ts-morph, tsx, binaryen, frontend, passes, codegen) | ${phase('importCompiler').toFixed(0)} |`);
    L.push(`| type-check the model file (ts-morph) | ${phase('typeCheck').toFixed(0)} |`);
    L.push(`| run the model file (tsx) | ${phase('importModelFile').toFixed(0)} |`);
    L.push(`| \`compile()\`: trace, passes, render LLVM IR, opt, llc, gcc, write artifacts | ${phase('compile').toFixed(0)} |`);
    L.push(`| … \`opt-14 -O3\` alone | ${optMs.toFixed(0)} |`);
    L.push(`| … \`llc-14 -O3\` alone | ${llcMs.toFixed(0)} |`);
    L.push(`| … gcc alone: 4 runtime objects, ar, link model_main (of which \`kiln_runtime.c\`: ${gccRuntimeMs.toFixed(0)}) | ${gccMs.toFixed(0)} |`);
    L.push(`| … the rest: trace, passes, LLVM IR rendering, writing files | ${Number.isNaN(optMs + llcMs + gccMs) ? 'n/a' : Math.max(0, phase('compile') - optMs - llcMs - gccMs).toFixed(0)} |`);
    L.push('');

    const kin = (b: number, t: number) => infer.find((r) => r.batch === b && r.threads === t)!.kiln;
    const ktr = (b: number, t: number) => train.find((r) => r.batch === b && r.threads === t)!.kiln;
    const pct = (t: number) => (100 * gflops(matmul.find((m) => m.threads === t)!.kiln, mmFlop)) / (PEAK_PER_CORE * t);
    const goals: [string, string, string, boolean][] = [
      ['seed MLP inference, batch 1 (1 thread)', '≤ 2.5 µs (ORT ≈ 8 µs)', `${fmt(kin(1, 1))} µs`, kin(1, 1).us <= 2.5],
      ['seed MLP inference, batch 256, 2 threads', '≤ 60 µs (ORT ≈ 68 µs)', `${fmt(kin(256, 2))} µs`, kin(256, 2).us <= 60],
      ['training step (Adam), batch 32, 2 threads', '≤ 60 µs', `${fmt(ktr(32, 2))} µs`, ktr(32, 2).us <= 60],
      ['training step (Adam), batch 256, 2 threads', '≤ 250 µs', `${fmt(ktr(256, 2))} µs`, ktr(256, 2).us <= 250],
      ['1024³ matmul, 1 thread', '≥ 75% of peak', `${pct(1).toFixed(1)}%`, pct(1) >= 75],
      ['1024³ matmul, 2 threads', '≥ 75% of peak', `${pct(2).toFixed(1)}%`, pct(2) >= 75],
      ['`kiln compile` seed MLP to llvm, whole command', '< 3 s', `${(compileMed / 1000).toFixed(2)} s`, compileMed < 3000],
    ];
    L.push('## Goals (issue 6) against this run', '');
    L.push('| goal | target | kiln | verdict |', '|---|---|---:|---|');
    for (const [g, t, v, ok] of goals) L.push(`| ${g} | ${t} | ${v} | ${ok ? 'met' : '**not met**'} |`);
    L.push('');

    if (breakdowns.length) {
      L.push('## Where kiln\'s time goes (diagnostic, 1 thread)', '');
      L.push('Each artifact\'s `model.ll` rebuilt with the same opt/llc/gcc flags, its entry function calling only one kernel (the rest of the call, copying inputs in and outputs out, around it), or none; each kernel\'s own time is its variant minus the empty one. A kernel-only variant does not train, so it never meets the denormals of the section above: where the whole call is well above the sum, that is them. Also the whole entry with every kernel function marked `noinline`: opt inlines the kernels into the entry function, and that changes how it vectorizes them.', '');
      L.push('| case | part | µs | share of kernel sum | GFLOP/s | ops fused |', '|---|---|---:|---:|---:|---|');
      for (const { tag, b, kernels, flop } of breakdowns) {
        const own = b.kernels.map((k) => ({ ...k, own: Math.max(0, k.us - b.none.us) }));
        const sum = own.reduce((x, k) => x + k.own, 0);
        L.push(`| ${tag} | whole call (as built) | ${fmt(b.whole)} | | | |`);
        L.push(`| | no kernel (copies in/out, call overhead) | ${fmt(b.none)} | | | |`);
        for (const k of own) {
          const f = flop[k.kernel];
          L.push(`| | ${k.kernel} | ${num(k.own)} | ${sum > 0 ? ((100 * k.own) / sum).toFixed(0) : '?'}% | ${f ? (f / (k.own * 1e3)).toFixed(1) : ''} | ${kernels.find((x) => x.name === k.kernel)?.ops.join(', ') ?? ''} |`);
        }
        L.push(`| | kernels' sum + no kernel / whole call | ${num(sum + b.none.us)} / ${fmt(b.whole)} | | | |`);
        L.push(`| | whole call, kernels \`noinline\` | ${fmt(b.noinline)} | | | |`);
      }
      L.push('');
    }

    L.push(...int8);
    L.push('## Sanity checks (same weights, same inputs)', '');
    for (const c of checks) L.push(`- ${c}`);
    L.push('');
    const outFile = path.join(root, 'bench', QUICK ? 'results-llvm.quick.md' : 'results-llvm.md');
    writeFileSync(outFile, L.join('\n'));
    process.stdout.write(L.join('\n'));
    log(`\nwrote ${path.relative(root, outFile)}`);
  } finally {
    if (process.env['BENCH_KEEP'] === '1') log(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
