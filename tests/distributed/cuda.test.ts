// Data-parallel training on GPUs (kiln compile --target cuda --train --distributed nccl): the whole driver emulated
// on the CPU under mpirun (kiln_mpi.c's ring standing for NCCL) against one rank and against the llvm MPI build, and
// model_train compiled by nvcc for sm_90 against NCCL's header and library where they are found (no GPU here).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDistributed } from '../../cli/common.js';
import { findNccl } from '../../codegen/cuda/distributed.js';
import { hasNvcc } from '../../codegen/cuda/target.js';
import { hasTool } from '../../codegen/llvm/firmware.js';
import { compile } from '../../compiler.js';
import * as keras from '../../frontend/index.js';
import { writeNpy } from '../../runtime/npy.js';
import { root } from '../built.js';
import { readTensors, relativeDiff } from '../native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kiln-nccl-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', OMPI_MCA_rmaps_base_oversubscribe: '1' };
const nvcc = hasNvcc();

/** NCCL for the nvcc build: installed, or fetched by scripts/nccl-dev.sh (pip) into build/nccl; undefined if neither. */
function ncclHome(): string | undefined {
  if (findNccl()) return process.env['KILN_NCCL_HOME'] ?? process.env['NCCL_HOME'] ?? '';
  if (!hasTool('pip')) return undefined;
  const r = spawnSync('sh', [path.join(root, 'scripts/nccl-dev.sh')], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}
const home = nvcc ? ncclHome() : '';
const missing = [...['mpicc', 'mpirun'].filter((t) => !hasTool(t)), ...(home === undefined ? ['nccl.h (nvcc is installed: sh scripts/nccl-dev.sh fetches it)'] : [])];

/** The MLP of tests/distributed/mpi.test.ts with a Dropout: each rank draws its rows' mask by their global index. */
function mlp(): keras.Model {
  const model = keras.Sequential([
    keras.layers.Dense(32, { activation: 'relu', inputShape: [64] }), keras.layers.Dropout(0.3, { seed: 5 }), keras.layers.Dense(10, { activation: 'softmax' }),
  ]);
  model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  return model;
}

/** `mpirun -np ranks dir/exe args` in tmp; returns stdout. */
function mpirun(ranks: number, exe: string, args: string[], extra: NodeJS.ProcessEnv = {}): string {
  return execFileSync('mpirun', ['--oversubscribe', '-np', String(ranks), exe, ...args], { cwd: tmp, env: { ...env, ...extra } }).toString();
}

describe('--distributed on cuda: one-line errors', () => {
  it.each([
    [{ distributed: 'mpi', train: true, target: 'cuda' }, '--distributed mpi is for the llvm target: on cuda the gradients are summed by NCCL, --distributed nccl (still launched with mpirun)'],
    [{ distributed: 'nccl', train: true, target: 'llvm' }, '--distributed nccl is for the cuda target: on llvm the gradients are summed over MPI, --distributed mpi'],
    [{ distributed: 'nccl', train: true, target: 'wasm' }, '--distributed nccl builds model_train for the cuda target only, not wasm'],
    [{ distributed: 'nccl', target: 'cuda' }, '--distributed nccl trains data-parallel: it needs --train'],
  ])('%j', (o, message) => {
    expect(() => checkDistributed(o)).toThrow(message);
  });

  it.skipIf(!nvcc)('with nvcc but no nccl.h, the compile says so in one line', async () => {
    const none = { ...process.env };
    delete none['KILN_NCCL_HOME'];
    delete none['NCCL_HOME'];
    if (findNccl(none)) return; // installed system-wide: nothing to refuse
    const saved = { k: process.env['KILN_NCCL_HOME'], n: process.env['NCCL_HOME'] };
    delete process.env['KILN_NCCL_HOME'];
    delete process.env['NCCL_HOME'];
    try {
      await expect(compile(mlp(), { target: 'cuda', train: true, distributed: 'nccl', batchSize: 4, maxBatch: 1, outDir: path.join(tmp, 'no-nccl') }))
        .rejects.toThrow(/^cuda: --distributed nccl: nccl\.h was not found \(set KILN_NCCL_HOME/);
    } finally {
      if (saved.k !== undefined) process.env['KILN_NCCL_HOME'] = saved.k;
      if (saved.n !== undefined) process.env['NCCL_HOME'] = saved.n;
    }
    expect(existsSync(path.join(tmp, 'no-nccl'))).toBe(false); // no half-written artifact
  }, 120_000);
});

describe.skipIf(missing.length > 0)(`cuda model_train under mpirun${missing.length ? `: skipped, ${missing.join(' and ')} not found` : ''}`, () => {
  const dirs = new Map<string, string>();
  beforeAll(async () => {
    if (home) process.env['KILN_NCCL_HOME'] = home;
    const model = mlp(); // one model: the same initial weights in every build
    for (const [target, distributed, b] of [['cuda', 'nccl', 16], ['cuda', 'nccl', 8], ['llvm', 'mpi', 8]] as const) {
      const outDir = path.join(tmp, `${target}-b${b}`);
      // the 1-rank reference runs emulated only: nvcc off the PATH saves its two builds
      const PATH = process.env['PATH'];
      if (b === 16) process.env['PATH'] = (PATH ?? '').split(':').filter((d) => !existsSync(path.join(d, 'nvcc'))).join(':');
      try {
        await compile(model, { target, train: true, distributed, batchSize: b, maxBatch: 1, outDir });
      } finally {
        process.env['PATH'] = PATH;
      }
      dirs.set(`${target}-${b}`, outDir);
    }
    // 10 steps of 16: the last has 6 rows, all rank 0's, which leaves rank 1 none
    let s = 12345;
    const next = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
    writeFileSync(path.join(tmp, 'x.npy'), writeNpy('float32', [150, 64], Float32Array.from({ length: 150 * 64 }, () => Math.fround(next() * 2 - 1))));
    writeFileSync(path.join(tmp, 'y.npy'), writeNpy('int32', [150], Int32Array.from({ length: 150 }, () => Math.floor(next() * 10))));
  }, 400_000);

  it('emulated: 2 ranks at 8 rows give the weights 1 rank at 16 gives after 10 steps (within 1e-6), and the llvm MPI build\'s', () => {
    const exe = (k: string) => path.join(dirs.get(k)!, 'model_train_emu');
    mpirun(1, exe('cuda-16'), ['--out', 'c1.safetensors', 'x.npy', 'y.npy']);
    const r = spawnSync('mpirun', ['--oversubscribe', '-np', '2', exe('cuda-8'), '--out', 'c2.safetensors', 'x.npy', 'y.npy'],
      { cwd: tmp, env: { ...env, KILN_CUDA_PROFILE: '1' }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const log = r.stdout;
    // one call (one graph launch on a GPU) per step: 10 steps, the first of which copies the whole block in
    expect(r.stderr.match(/kiln cuda: inputs \d+ bytes in per call over \d+ calls/g)).toEqual(Array(2).fill(expect.stringMatching(/ over 9 calls$/)));
    mpirun(2, path.join(dirs.get('llvm-8')!, 'model_train'), ['--out', 'l2.safetensors', 'x.npy', 'y.npy']);
    expect(log).toMatch(/^Epoch 1\/1\n10\/10 - .* - loss: \d\.\d{4}\nSaved trained weights to c2.safetensors\n$/); // rank 0 alone prints
    const c1 = path.join(tmp, 'c1.safetensors'), c2 = path.join(tmp, 'c2.safetensors');
    const initial = path.join(dirs.get('cuda-16')!, 'weights.safetensors');
    const kernel = (f: string) => readTensors(f)[0]!.data;
    expect(Math.max(...kernel(c1).map((v, i) => Math.abs(v - kernel(initial)[i]!)))).toBeGreaterThan(1e-3); // it trained
    expect(relativeDiff(c1, c2)).toBeLessThanOrEqual(1e-6); // 2.5e-7 seen
    // llvm fuses a*b + c (FMA) and schedules its sums otherwise: the same training within float rounding (3.3e-7 seen)
    expect(relativeDiff(path.join(tmp, 'l2.safetensors'), c2)).toBeLessThanOrEqual(1e-5);
  }, 120_000);

  it('the step is captured whole: gradStep, the weighting, the all-reduce on the step\'s stream, the division and applyGrads in one kiln_call', () => {
    const src = readFileSync(path.join(dirs.get('cuda-8')!, 'kiln_nccl.h'), 'utf8');
    const body = (f: string) => src.slice(src.indexOf(`${f}(`)).split(/\n}\n/)[0]!;
    const run = body('static void kiln_nccl_run');
    const calls = [...run.matchAll(/\b(kiln_run_\w+|KILN_NCCL_\w+|kiln_nccl_sum)\(/g)].map((m) => m[1]);
    expect(calls).toEqual(['kiln_run_gradStep', 'KILN_NCCL_COPY', 'KILN_NCCL_SCALE', 'kiln_nccl_sum', 'KILN_NCCL_SCALE', 'KILN_NCCL_COPY', 'kiln_run_applyGrads']);
    expect(body('static void kiln_nccl_sum')).toMatch(/ncclAllReduce\(v, v, \(size_t\)n, ncclFloat, ncclSum, kiln_nccl_comm, stream\)/); // the captured stream
    const step = body('extern "C" float kiln_nccl_step');
    expect(step.match(/\bkiln_call\(/g)).toEqual(['kiln_call(']); // one graph per step
    expect(step).toContain('kiln_call(mem, kiln_nccl_run, &step_graph,');
    expect(step).not.toMatch(/kiln_run_\w+\(|ncclAllReduce|kiln_nccl_sum/);
  });

  it.skipIf(!nvcc)('nvcc builds model_train for sm_90 against NCCL: it calls ncclAllReduce, and without a GPU says so in one line', () => {
    const exe = path.join(dirs.get('cuda-8')!, 'model_train');
    const undefinedSyms = execFileSync('nm', ['-D', '--undefined-only', exe]).toString();
    for (const f of ['ncclAllReduce', 'ncclCommInitRank', 'ncclGetUniqueId', 'MPI_Bcast', 'MPI_Comm_split_type']) expect(undefinedSyms).toContain(f);
    expect(JSON.parse(readFileSync(path.join(dirs.get('cuda-8')!, 'manifest.json'), 'utf8'))).toMatchObject({ arch: 'sm_90', distributed: 'nccl' });
    const r = spawnSync('mpirun', ['-np', '1', exe, 'x.npy', 'y.npy'], { cwd: tmp, env, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/^kiln: (no CUDA device \(or driver\) found|the CUDA driver .* is older than)/m);
  }, 60_000);
});
