// Data-parallel training under mpirun (kiln compile --train --distributed mpi): k ranks with per-rank batch B/k
// train what one rank with batch B trains, bit for bit from run to run and with the all-reduce overlapped with the
// backward pass or not; a rank that dies ends the others.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hasTool } from '../../codegen/llvm/firmware.js';
import { checkDistributed } from '../../cli/common.js';
import { compile } from '../../compiler.js';
import * as keras from '../../frontend/index.js';
import { readNpy, writeNpy } from '../../runtime/npy.js';
import { ensureBuilt, root } from '../built.js';
import { readTensors, relativeDiff, seedMlpAccuracy } from '../native.js';

const missing = ['mpicc', 'mpirun'].filter((t) => !hasTool(t));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-mpi-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
// we may run as root (CI); two to four ranks share this machine's cores
const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', OMPI_MCA_rmaps_base_oversubscribe: '1' };
const cli = path.join(root, 'dist/cli/main.js');

/** Compiles a model file with --train --distributed mpi at a per-rank batch; returns the artifact's folder. */
function compileMpi(file: string, batch: number): string {
  const dir = path.join(tmp, `${path.basename(file, '.ts')}-b${batch}`);
  execFileSync(process.execPath, [cli, 'compile', file, '--target', 'llvm', '--train', '--distributed', 'mpi', '--batch-size', String(batch), '-o', dir], { cwd: root, env });
  return dir;
}

/**
 * A small MLP without Dropout, so that 1 rank and k ranks train the same function; its last two layers' gradients
 * (more than MIN_SEGMENT values) are reduced while the first layer's are computed.
 */
function mlp(): keras.Model {
  const model = keras.Sequential([keras.layers.Dense(32, { activation: 'relu', inputShape: [64] }), keras.layers.Dense(48, { activation: 'relu' }), keras.layers.Dense(10, { activation: 'softmax' })]);
  model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  return model;
}

/** `mpirun -np ranks dir/model_train args` in tmp; returns stdout. */
function mpirun(ranks: number, dir: string, args: string[], extra: NodeJS.ProcessEnv = {}): string {
  return execFileSync('mpirun', ['--oversubscribe', '-np', String(ranks), path.join(dir, 'model_train'), ...args], { cwd: tmp, env: { ...env, ...extra } }).toString();
}

/** Rows of a fixed pseudo-random classification set: 64 features, 10 classes. */
function writeData(rows: number, tag: string): void {
  let s = 12345;
  const next = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const x = Float32Array.from({ length: rows * 64 }, () => Math.fround(next() * 2 - 1));
  const y = Int32Array.from({ length: rows }, () => Math.floor(next() * 10));
  writeFileSync(path.join(tmp, `x${tag}.npy`), writeNpy('float32', [rows, 64], x));
  writeFileSync(path.join(tmp, `y${tag}.npy`), writeNpy('int32', [rows], y));
}

describe('--distributed: one-line errors', () => {
  it.each([
    [{ distributed: 'gloo', train: true, target: 'llvm' }, "unknown distributed backend 'gloo'; backends are mpi, nccl"],
    [{ distributed: 'mpi', target: 'llvm' }, '--distributed mpi trains data-parallel: it needs --train'],
    [{ distributed: 'mpi', train: true, target: 'wasm' }, '--distributed mpi builds model_train for the llvm target only, not wasm'],
    [{ distributed: 'mpi', train: true, target: 'llvm', triple: 'aarch64-linux-gnu' }, '--distributed mpi builds for this machine: it cannot be combined with --triple'],
  ])('%j', (o, message) => {
    expect(() => checkDistributed(o)).toThrow(message);
  });

  it('the kiln command says so before loading the model file', () => {
    ensureBuilt();
    const r = spawnSync(process.execPath, [cli, 'compile', 'no-such-file.ts', '--target', 'wasm', '--train', '--distributed', 'mpi'], { cwd: root });
    expect(r.status).toBe(1);
    expect(r.stderr.toString().trim()).toBe('kiln: --distributed mpi builds model_train for the llvm target only, not wasm');
  });
});

describe.skipIf(missing.length > 0)(`model_train under mpirun${missing.length ? `: skipped, ${missing.join(' and ')} not installed (openmpi-bin, libopenmpi-dev)` : ''}`, () => {
  const dirs = new Map<number, string>();
  beforeAll(async () => {
    ensureBuilt();
    const model = mlp(); // one model: the same initial weights in every build
    for (const b of [16, 8, 4]) {
      const outDir = path.join(tmp, `mlp-b${b}`);
      await compile(model, { target: 'llvm', train: true, distributed: 'mpi', batchSize: b, maxBatch: 1, outDir });
      dirs.set(b, outDir);
    }
    writeData(150, '150'); // 10 steps of 16: the last has 6 rows, which leaves ranks 2 and 3 of 4 none
  }, 240_000);

  it('2 and 4 ranks with per-rank batch 16/k give the weights 1 rank with batch 16 gives after 10 steps (within 1e-6), and those are fit\'s', () => {
    mpirun(1, dirs.get(16)!, ['--out', 'r1.safetensors', 'x150.npy', 'y150.npy']);
    const log = mpirun(2, dirs.get(8)!, ['--out', 'r2.safetensors', 'x150.npy', 'y150.npy']);
    mpirun(4, dirs.get(4)!, ['--out', 'r4.safetensors', 'x150.npy', 'y150.npy']);
    expect(log).toMatch(/^Epoch 1\/1\n10\/10 - .* - loss: \d\.\d{4}\nSaved trained weights to r2.safetensors\n$/); // rank 0 alone prints
    expect(relativeDiff(path.join(tmp, 'r1.safetensors'), path.join(tmp, 'r2.safetensors'))).toBeLessThanOrEqual(1e-6);
    expect(relativeDiff(path.join(tmp, 'r1.safetensors'), path.join(tmp, 'r4.safetensors'))).toBeLessThanOrEqual(1e-6);
    // the reference: fit on the interpreter, same initial weights, the same 10 batches in file order
    mpirun(2, dirs.get(8)!, ['--no-shuffle', '--out', 'r2n.safetensors', 'x150.npy', 'y150.npy']);
    const initial = readTensors(path.join(dirs.get(16)!, 'weights.safetensors'));
    const model = mlp();
    model.setWeights(model.weights.map((w, i) => new keras.Tensor('float32', w.shape, initial[i]!.data as Float32Array)));
    const data = (f: string) => new Uint8Array(readFileSync(path.join(tmp, f)));
    const xs = readNpy(data('x150.npy')), ys = readNpy(data('y150.npy'));
    model.fit(new keras.Tensor('float32', [150, 64], xs.data as Float32Array), new keras.Tensor('int32', [150], ys.data as Int32Array),
      { batchSize: 16, epochs: 1, shuffle: false, verbose: 0, backend: 'interpreter' });
    const trained = readTensors(path.join(tmp, 'r2n.safetensors'));
    model.weights.forEach((w, i) => {
      const got = trained[i]!.data, scale = Math.max(...Array.from(w.data, Math.abs));
      for (let k = 0; k < got.length; k++) expect(Math.abs(got[k]! - w.data[k]!)).toBeLessThanOrEqual(1e-5 * scale);
    });
  }, 120_000);

  it('two runs on 4 ranks write bitwise identical weights, and so does a run that all-reduces after the backward pass (--no-overlap)', () => {
    mpirun(4, dirs.get(4)!, ['--epochs', '2', '--overlap', '--out', 'a.safetensors', 'x150.npy', 'y150.npy']);
    mpirun(4, dirs.get(4)!, ['--epochs', '2', '--overlap', '--out', 'b.safetensors', 'x150.npy', 'y150.npy']);
    mpirun(4, dirs.get(4)!, ['--epochs', '2', '--no-overlap', '--out', 'c.safetensors', 'x150.npy', 'y150.npy']);
    const a = readFileSync(path.join(tmp, 'a.safetensors'));
    expect(a.equals(readFileSync(path.join(tmp, 'b.safetensors')))).toBe(true);
    expect(a.equals(readFileSync(path.join(tmp, 'c.safetensors')))).toBe(true);
  }, 120_000);

  it('2 ranks overlap the all-reduce with the backward pass (segments), with the bits of --no-overlap', () => {
    const bench = mpirun(2, dirs.get(8)!, ['--overlap', '--bench', '3', 'x150.npy', 'y150.npy']);
    expect(bench).toMatch(/^median [\d.]+ us \(all-reduce [\d.]+ us, [\d.]+ us of it exposed, 2 segments\)\n$/);
    expect(mpirun(2, dirs.get(8)!, ['--no-overlap', '--bench', '3', 'x150.npy', 'y150.npy'])).toMatch(/, 1 segment\)\n$/);
    // by default, overlapping only where a core is left for the communication thread (all ranks run on this machine)
    const byDefault = mpirun(2, dirs.get(8)!, ['--bench', '3', 'x150.npy', 'y150.npy']);
    expect(byDefault).toMatch(os.cpus().length > 2 ? /, 2 segments\)\n$/ : /, 1 segment\)\n$/);
    mpirun(2, dirs.get(8)!, ['--overlap', '--out', 'o.safetensors', 'x150.npy', 'y150.npy']);
    mpirun(2, dirs.get(8)!, ['--no-overlap', '--out', 'n.safetensors', 'x150.npy', 'y150.npy']);
    expect(readFileSync(path.join(tmp, 'o.safetensors')).equals(readFileSync(path.join(tmp, 'n.safetensors')))).toBe(true);
  }, 120_000);

  it('a global batch that is not a multiple of the ranks\' batch is refused in one line', () => {
    const r = spawnSync('mpirun', ['-np', '2', path.join(dirs.get(8)!, 'model_train'), '--batch-size', '8', 'x150.npy', 'y150.npy'], { cwd: tmp, env });
    expect(r.status).not.toBe(0);
    expect(r.stderr.toString()).toContain('model_train (rank 0/2): the gradStep was compiled for 8 rows per rank: on 2 ranks the batch size is 16, not 8');
  }, 60_000);

  describe('a rank that dies or hangs ends the others', () => {
    let job: ChildProcess | undefined;
    afterEach(() => { job?.kill('SIGKILL'); });

    /** Starts a long training on 2 ranks; resolves with rank 1's pid once the first epoch is done. */
    async function start(extra: NodeJS.ProcessEnv): Promise<{ pid: number; ended: Promise<{ code: number | null; stderr: string }> }> {
      writeData(20000, 'big');
      job = spawn('mpirun', ['-np', '2', path.join(dirs.get(8)!, 'model_train'), '--epochs', '100000', '--overlap', '--out', 'never.safetensors', 'xbig.npy', 'ybig.npy'], { cwd: tmp, env: { ...env, ...extra } });
      let stdout = '', stderr = '';
      job.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
      const ended = new Promise<{ code: number | null; stderr: string }>((resolve) => job!.on('close', (code) => resolve({ code, stderr })));
      await new Promise<void>((resolve, reject) => {
        job!.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); if (stdout.includes('Epoch 2/')) resolve(); });
        void ended.then(({ stderr: e }) => reject(new Error(`mpirun ended early: ${e}`)));
      });
      // the ranks are mpirun's children; rank 1 is the one whose environment says so
      const children = execFileSync('ps', ['--ppid', String(job.pid), '-o', 'pid=']).toString().trim().split(/\s+/).map(Number);
      const pid = children.find((p) => readFileSync(`/proc/${p}/environ`, 'latin1').split('\0').includes('OMPI_COMM_WORLD_RANK=1'));
      expect(pid).toBeDefined();
      return { pid: pid!, ended };
    }

    it('killed: mpirun ends rank 0 and names the rank', async () => {
      const { pid, ended } = await start({});
      process.kill(pid, 'SIGKILL');
      const { code, stderr } = await ended;
      expect(code).not.toBe(0);
      expect(stderr).toMatch(/process rank 1 .* exited on signal 9/);
      expect(readdirSync(tmp)).not.toContain('never.safetensors');
    }, 120_000);

    it('stopped: rank 0 gives up on the (overlapped) all-reduce after KILN_MPI_TIMEOUT seconds and says why', async () => {
      const { pid, ended } = await start({ KILN_MPI_TIMEOUT: '2' });
      process.kill(pid, 'SIGSTOP');
      const { code, stderr } = await ended;
      expect(code).not.toBe(0);
      expect(stderr).toMatch(/model_train \(rank 0\/2\): the all-reduce of step \d+ got no answer from the other ranks within 2 s: a rank died or hangs/);
    }, 120_000);
  });

  it('the seed MLP trained on 2 ranks (per-rank batch 16, global 32) reaches 90% held-out accuracy on the bundled digits', () => {
    const dir = compileMpi('examples/seed/losses.ts', 16);
    const [[xTrain, yTrain], [xTest, yTest]] = keras.datasets.mnist.loadData({ trainCount: 8000 });
    writeFileSync(path.join(tmp, 'digits_x.npy'), writeNpy('float32', [8000, 784], xTrain.data));
    writeFileSync(path.join(tmp, 'digits_y.npy'), writeNpy('int32', [8000], yTrain.data));
    const log = mpirun(2, dir, ['--epochs', '5', '--out', 'digits.safetensors', 'digits_x.npy', 'digits_y.npy']);
    expect(log).toMatch(/Epoch 5\/5\n250\/250/);
    expect(seedMlpAccuracy(readTensors(path.join(tmp, 'digits.safetensors')), xTest, yTest)).toBeGreaterThanOrEqual(0.9);
  }, 240_000);
});
