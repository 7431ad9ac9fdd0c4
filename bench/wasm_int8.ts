// `node dist/bench/wasm_int8.js`: kiln-wasm int8 (`--quantize int8`) vs kiln-wasm float32 on the seed MLP (batch 256)
// and the seed CNN (batch 64), each compiled by the CLI and run through its shipped loader (model.mjs, the SIMD128
// build, one thread), timed in CPU time (process.cpuUsage: a loaded machine's waits are not counted). Prints
// markdown rows for bench/results.md. Run from the repository root (the examples and data are read from there).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeNpy } from '../runtime/npy.js';
import { type Timer, type Timing, cpuMs, cpuName, timeSync } from './timer.js';

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');
/** CPU time: 1.5 s of warm-up, then the median of 7 rounds of >= 300 ms. */
const TIMER: Timer = { clock: cpuMs, warming: (_, ms) => ms < 1500, rounds: 7, roundMs: 300 };

type Predict = (xs: Float32Array[]) => Float32Array[];

async function loadPredict(dir: string): Promise<Predict> {
  const mod = await import(pathToFileURL(path.join(dir, 'model.mjs')).href) as { load: (o: object) => Promise<{ predict: Predict }> };
  const m = await mod.load({ threads: 1, relaxedSimd: false });
  return (xs) => m.predict(xs);
}

function machine(): string {
  const nproc = spawnSync('nproc', { encoding: 'utf8' }).stdout.trim();
  return `${cpuName()}, nproc ${nproc}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`;
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-wasm-int8-'));
  let seed = 12345;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const rows: string[] = [];
  try {
    for (const c of [{ model: 'seed MLP', file: 'examples/seed/sequential.ts', batch: 256, shape: [784] }, { model: 'seed CNN', file: 'examples/seed/cnn.ts', batch: 64, shape: [28, 28, 1] }]) {
      const x = Float32Array.from({ length: c.batch * c.shape.reduce((a, d) => a * d, 1) }, rand);
      const xf = path.join(tmp, `x${c.batch}.npy`), dir = path.join(tmp, c.model.replace(/\W/g, ''));
      writeFileSync(xf, writeNpy('float32', [c.batch, ...c.shape], x));
      const compile = (out: string, extra: string[]) => execFileSync(process.execPath, [cli, 'compile', c.file, '--target', 'wasm', '--batch-size', String(c.batch), ...extra, '-o', out], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, KILN_DIRECT: '0' } });
      compile(`${dir}_f32`, []);
      compile(dir, ['--quantize', 'int8', '--calibrate', xf]);
      const f32 = await loadPredict(`${dir}_f32`), int8 = await loadPredict(dir);
      // the two predict the same classes on most rows (a sanity check, not a test)
      const [pf] = f32([x]), [pi] = int8([x]);
      let agree = 0;
      for (let r = 0; r < c.batch; r++) {
        const am = (v: Float32Array) => { let m = 0; for (let j = 1; j < 10; j++) if (v[r * 10 + j]! > v[r * 10 + m]!) m = j; return m; };
        if (am(pf!) === am(pi!)) agree++;
      }
      const tf = timeSync(() => f32([x]), TIMER), ti = timeSync(() => int8([x]), TIMER);
      const f = (t: Timing) => (t.us >= 1000 ? t.us.toFixed(0) : t.us.toFixed(1));
      rows.push(`| ${c.model} | ${c.batch} | ${f(tf)} | ${f(ti)} | ${(tf.us / ti.us).toFixed(2)}x | ${f({ ...ti, us: ti.minUs })}–${f({ ...ti, us: ti.maxUs })} | ${agree}/${c.batch} |`);
      process.stderr.write(`${rows[rows.length - 1]}\n`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`machine: ${machine()}\n`);
  console.log('| model | batch | kiln-wasm f32 (µs CPU) | kiln-wasm int8 (µs CPU) | f32 / int8 | int8 range (µs) | argmax agrees |');
  console.log('|---|---:|---:|---:|---:|---|---:|');
  for (const r of rows) console.log(r);
}

await main();
