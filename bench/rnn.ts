// `npm run bench:rnn`: the training step of Embedding(10000, 64) → LSTM(128) → Dense(1) at sequence length 200,
// batch 32 (bench/rnn_model.ts): kiln's llvm (model_train --bench) and wasm (model.mjs) artifacts against TF.js's
// `wasm` backend (XNNPACK) on the same model, one thread each, in interleaved rounds.
//
// Method: both artifacts are compiled with the CLI, every case runs one warm-up step, then ROUNDS rounds run each case
// once in turn (llvm: one `model_train --bench 1` process, its own warm-up step not counted); the reported figure is the
// median over rounds, in milliseconds per step. BENCH_QUICK=1: one round. Prints a markdown table and the machine.
// The in-process cases (kiln wasm, TF.js wasm: one thread each) also report the process's CPU time per step
// (process.cpuUsage), which a loaded machine changes far less than the wall time.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import { writeNpy } from '../runtime/npy.js';
import { cpuName } from './timer.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..'); // dist/bench -> repo root
const ROUNDS = process.env['BENCH_QUICK'] === '1' ? 1 : 3;
const BATCH = 32, LEN = 200, VOCAB = 10000;

const log = (s: string) => process.stderr.write(`${s}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function run(cmd: string, args: string[], env: Record<string, string> = {}): string {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

function compile(dir: string, target: string): void {
  const model = path.join(root, 'bench', 'rnn_model.ts');
  run(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), 'compile', model, '--train', '--batch-size', String(BATCH), '--target', target, '-o', dir]);
}

/**
 * TF.js's wasm backend has no UnsortedSegmentSum, the Embedding's gradient (TF.js 4: "Kernel 'UnsortedSegmentSum' not
 * registered for backend 'wasm'"): a plain JS scatter-add here (32 x 200 rows of 64, well under a millisecond).
 */
function registerSegmentSum(): void {
  type WasmBackend = { readSync(id: tf.DataId): ArrayLike<number>; makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo; typedArrayFromHeap(t: tf.TensorInfo): Float32Array };
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum', backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const b = backend as unknown as WasmBackend, x = inputs['x']!, ids = inputs['segmentIds']!;
      const xs = b.readSync(x.dataId), is = b.readSync(ids.dataId), n = is.length, inner = n ? xs.length / n : 0;
      const out = b.makeOutput([Number(attrs?.['numSegments']), ...x.shape.slice(ids.shape.length)], 'float32');
      const o = b.typedArrayFromHeap(out);
      o.fill(0);
      for (let i = 0; i < n; i++) for (let j = 0; j < inner; j++) o[is[i]! * inner + j]! += xs[i * inner + j]!;
      return out;
    },
  });
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const tmp = mkdtempSync(path.join(tmpdir(), 'kiln-rnn-'));
  try {
    const x = Int32Array.from({ length: BATCH * LEN }, (_, i) => (i * 7919 + 13) % VOCAB);
    const y = Float32Array.from({ length: BATCH }, (_, i) => i % 2);
    writeFileSync(path.join(tmp, 'x.npy'), writeNpy('int32', [BATCH, LEN], x));
    writeFileSync(path.join(tmp, 'y.npy'), writeNpy('float32', [BATCH, 1], y));

    log('compiling llvm and wasm…');
    compile(path.join(tmp, 'llvm'), 'llvm');
    compile(path.join(tmp, 'wasm'), 'wasm');

    const cases: { name: string; step: () => number | Promise<number>; inProcess?: boolean }[] = [];
    const train = path.join(tmp, 'llvm', 'model_train');
    cases.push({
      name: 'kiln llvm',
      step: () => {
        const out = run(train, ['--batch-size', String(BATCH), '--bench', '1', path.join(tmp, 'x.npy'), path.join(tmp, 'y.npy')], { KILN_NUM_THREADS: '1' });
        const m = /median ([0-9.]+) us/.exec(out);
        if (!m) throw new Error(`model_train --bench printed no median: ${out.slice(-500)}`);
        return Number(m[1]) / 1000;
      },
    });
    const mod = await import(pathToFileURL(path.join(tmp, 'wasm', 'model.mjs')).href) as { load(o: object): Promise<{ trainStep(i: ArrayLike<number>[]): unknown }> };
    const km = await mod.load({ threads: 1, relaxedSimd: false });
    cases.push({ name: 'kiln wasm', inProcess: true, step: () => { const t = performance.now(); km.trainStep([x, y]); return performance.now() - t; } });

    const req = createRequire(import.meta.url);
    tfwasm.setThreadsCount(1);
    tfwasm.setWasmPaths(path.dirname(req.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + path.sep);
    if (!(await tf.setBackend('wasm'))) throw new Error('TF.js backend wasm failed to initialize');
    registerSegmentSum();
    const tm = tf.sequential({
      layers: [
        tf.layers.embedding({ inputDim: VOCAB, outputDim: 64, inputLength: LEN }),
        tf.layers.lstm({ units: 128 }),
        tf.layers.dense({ units: 1, activation: 'sigmoid' }),
      ],
    });
    tm.compile({ optimizer: 'adam', loss: 'binaryCrossentropy' });
    const tx = tf.tensor2d(x, [BATCH, LEN], 'int32'), ty = tf.tensor2d(y, [BATCH, 1]);
    cases.push({ name: 'TF.js wasm', inProcess: true, step: async () => { const t = performance.now(); await tm.trainOnBatch(tx, ty); return performance.now() - t; } });

    const times = new Map<string, number[]>(cases.map((c) => [c.name, []])), cpus = new Map<string, number[]>(cases.map((c) => [c.name, []]));
    for (const c of cases) { log(`warm-up ${c.name}…`); await c.step(); }
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of cases) {
        const before = process.cpuUsage();
        const ms = await c.step();
        const used = process.cpuUsage(before);
        times.get(c.name)!.push(ms);
        if (c.inProcess) cpus.get(c.name)!.push((used.user + used.system) / 1000);
        log(`round ${r + 1} ${c.name}: ${ms.toFixed(0)} ms${c.inProcess ? `, CPU ${cpus.get(c.name)!.at(-1)!.toFixed(0)} ms` : ''}`);
      }
    }
    const tfjs = median(times.get('TF.js wasm')!);
    console.log(`CPU: ${cpuName()}, ${os.cpus().length} cores; load average before ${loadBefore}, after ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}; ${ROUNDS} round(s)`);
    const tfjsCpu = median(cpus.get('TF.js wasm')!);
    console.log('| training step, len 200, batch 32, 1 thread | ms (median) | rounds (ms) | vs TF.js wasm | CPU ms (median) | CPU vs TF.js wasm |');
    console.log('|---|---:|---|---:|---:|---:|');
    for (const [name, ts] of times) {
      const cpu = cpus.get(name)!, c = cpu.length ? median(cpu) : undefined;
      const cpuCols = c === undefined ? '– | –' : `${c.toFixed(0)} | ${(tfjsCpu / c).toFixed(2)}x`;
      console.log(`| ${name} | ${median(ts).toFixed(0)} | ${ts.map((t) => t.toFixed(0)).join(', ')} | ${(tfjs / median(ts)).toFixed(2)}x | ${cpuCols} |`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
