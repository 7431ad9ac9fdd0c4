// --target cuda --train --distributed nccl: model_train for data-parallel training on GPUs under mpirun (the
// gradients summed on the device by NCCL, runtime/cuda/kiln_nccl.h), and model_train_emu, the same driver for the
// CPU with kiln_mpi.c's ring standing for NCCL.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { runtimeDir } from '../artifacts.js';
import { sh } from '../native.js';

/** model.h's lines for model_train.c's hooks (KILN_DEVICE_INIT, KILN_DEVICE_STEP). */
export const NCCL_API = [
  '/* --distributed nccl: model_train built with -DKILN_MPI takes a GPU per rank and an NCCL communicator, and runs',
  '   each step on the device: gradStep, the gradients weighted and summed over the ranks, applyGrads (kiln_nccl.h) */',
  'void kiln_nccl_init(int rank, int ranks);',
  'float kiln_nccl_step(unsigned char *mem, const kiln_entry *grad, const void *const *inputs, const kiln_entry *apply, long mine, long nb, long step);',
  '#define KILN_DEVICE_INIT(rank, ranks) kiln_nccl_init(rank, ranks)',
  '#define KILN_DEVICE_STEP(mem, grad, inputs, apply, mine, nb, step) kiln_nccl_step(mem, grad, inputs, apply, mine, nb, step)',
];

/**
 * KILN_ALLREDUCE(buf, n, stream), which model.cu's entries call after an all-reduce kernel (Kernel.allreduce: a
 * synchronized BatchNormalization's statistics): in model_train under MPI, kiln_nccl.h's sum over the ranks on the
 * step's stream (ncclAllReduce, captured with the rest of the step; emulated: kiln_mpi.c's ring); elsewhere one
 * process, whose buffer is its own sum.
 */
export const ALLREDUCE_HEAD = `#ifdef KILN_MPI
static void kiln_nccl_sum(float *v, long n, kiln_stream_t stream);
#define KILN_ALLREDUCE(buf, n, stream) kiln_nccl_sum((buf), (n), (stream))
#else
#define KILN_ALLREDUCE(buf, n, stream) ((void)(stream))
#endif
`;

/** The call after an all-reduce kernel that writes `at` (codegen/loop/allreduce.ts), in an entry's run function. */
export function allreduceCall(at: { buffer: string; size: number }, offsets: Readonly<Record<string, number>>): string {
  const off = offsets[at.buffer];
  if (off === undefined) throw new Error(`cuda: unknown buffer ${at.buffer}`);
  return `KILN_ALLREDUCE((float *)(mem + ${off}), ${at.size}, stream);`;
}

/** What model.cu ends with: the step, for model_train's build only (model_main is built without MPI). */
export const NCCL_TAIL = '\n#ifdef KILN_MPI\n#include "kiln_nccl.h"\n#endif\n';

/** Where NCCL is: include/nccl.h under KILN_NCCL_HOME or NCCL_HOME, else /usr/include or /usr/local/cuda/include. */
export function findNccl(env: NodeJS.ProcessEnv = process.env): { include: string; lib?: string } | undefined {
  for (const home of [env['KILN_NCCL_HOME'], env['NCCL_HOME']]) {
    if (!home) continue;
    const include = path.join(home, 'include');
    if (!existsSync(path.join(include, 'nccl.h'))) continue;
    const lib = ['lib', 'lib64'].map((l) => path.join(home, l)).find((l) => existsSync(path.join(l, 'libnccl.so')) || existsSync(path.join(l, 'libnccl.so.2')));
    return { include, ...(lib ? { lib } : {}) };
  }
  for (const include of ['/usr/include', '/usr/local/cuda/include']) if (existsSync(path.join(include, 'nccl.h'))) return { include };
  return undefined;
}

/** Open MPI's compile or link flags (mpicc --showme:compile / :link), as nvcc takes them. */
function mpiFlags(which: 'compile' | 'link'): string[] {
  let out: string;
  try {
    out = execFileSync('mpicc', [`--showme:${which}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    throw new Error(`cuda: --distributed nccl builds model_train with Open MPI's flags, but mpicc --showme:${which} failed (another MPI's mpicc?)`);
  }
  return out.split(/\s+/).filter(Boolean).flatMap((f) =>
    /^-[ILl]/.test(f) ? [f] : f.startsWith('-Wl,') ? ['-Xlinker', f.slice(4)] : ['-Xcompiler', f]);
}

/**
 * Builds model_train_emu (always: mpicc and g++) and, where `gpu`, model_train with nvcc against NCCL; the runtime's
 * objects (model_desc.o, ...) are the Makefile's, already built for model_main. Returns the executables built.
 */
export function buildNcclTrain(dir: string, arch: string, gpu: boolean): string[] {
  if (!spawnOk('mpicc')) throw new Error('cuda: --distributed nccl launches its ranks with MPI: it needs mpicc on the PATH (Open MPI: apt install openmpi-bin libopenmpi-dev)');
  const nccl = gpu ? findNccl() : undefined;
  if (gpu && !nccl) {
    throw new Error('cuda: --distributed nccl: nccl.h was not found (set KILN_NCCL_HOME or NCCL_HOME to a folder with include/nccl.h and lib/libnccl.so, or install libnccl-dev; sh scripts/nccl-dev.sh fetches it into build/nccl)');
  }
  for (const f of ['kiln_mpi.h', 'kiln_mpi.c']) copyFileSync(path.join(runtimeDir('c'), f), path.join(dir, f));
  copyFileSync(path.join(runtimeDir('cuda'), 'kiln_nccl.h'), path.join(dir, 'kiln_nccl.h'));
  const cc = ['-O2', '-std=c99', '-pthread'];
  const runtime = ['model_desc.o', 'kiln_runtime.o', 'kiln_rows.o', 'kiln_math.o'];
  sh('cuda', 'make', ['-s', ...runtime], dir);
  sh('cuda', 'mpicc', [...cc, '-DKILN_MPI', '-c', 'model_train.c', '-o', 'model_train_mpi.o'], dir);
  sh('cuda', 'mpicc', [...cc, '-c', 'kiln_mpi.c', '-o', 'kiln_mpi.o'], dir);
  sh('cuda', 'g++', ['-O2', '-fwrapv', '-DKILN_CUDA_EMULATE', '-DKILN_MPI', '-x', 'c++', '-c', 'model.cu', '-o', 'model_nccl_emu.o'], dir);
  sh('cuda', 'mpicc', ['-pthread', 'model_train_mpi.o', 'model_nccl_emu.o', 'kiln_mpi.o', ...runtime, '-lstdc++', '-lm', '-o', 'model_train_emu'], dir);
  if (!nccl) return ['model_train_emu'];
  const lib = nccl.lib === undefined ? ['-lnccl']
    : ['-L', nccl.lib, existsSync(path.join(nccl.lib, 'libnccl.so')) ? '-lnccl' : '-l:libnccl.so.2', '-Xlinker', `-rpath,${nccl.lib}`];
  sh('cuda', 'nvcc', ['-O3', `-arch=${arch}`, '-std=c++17', '-DKILN_MPI', '-I', nccl.include, ...mpiFlags('compile'), '-c', 'model.cu', '-o', 'model_nccl_gpu.o'], dir);
  sh('cuda', 'nvcc', [`-arch=${arch}`, 'model_train_mpi.o', 'model_nccl_gpu.o', 'kiln_mpi.o', ...runtime, ...lib, ...mpiFlags('link'), '-lm', '-o', 'model_train'], dir);
  return ['model_train_emu', 'model_train'];
}

function spawnOk(tool: string): boolean {
  try {
    execFileSync(tool, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
