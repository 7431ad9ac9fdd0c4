// The cuda target: GPU-scheduled loop IR rendered to model.cu, with model.h, the C runtime and a Makefile. Where
// nvcc is installed it builds model_main (and model_train) for the GPU; model_main_emu, the same source built
// for the CPU with KILN_CUDA_EMULATE, runs anywhere and checks the kernels against the interpreter.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { irText, manifestOf, runtimeDir } from '../artifacts.js';
import { type NativeTargetOptions, descSource, headerSource, sh } from '../native.js';
import { layoutModule } from '../loop/layout.js';
import { H100 } from '../loop/gpu.js';
import { DEFAULT_CAPS, type TargetCaps } from '../loop/schedule.js';
import { writeSafetensors } from '../../runtime/safetensors.js';
import { runPipeline } from '../../driver/pipeline.js';
import { renderCuda } from './render.js';
import { NCCL_API, NCCL_TAIL, buildNcclTrain } from './distributed.js';

/** What the cuda target schedules for: an H100/H200-class GPU (nests become grids of thread blocks). */
export const CUDA_CAPS: TargetCaps = { ...DEFAULT_CAPS, vectorWidth: 1, gpu: H100, legal: { ieeeMinMax: false } };

export interface CudaTargetOptions extends NativeTargetOptions {
  /** nvcc -arch (default sm_90: H100 and H200) */
  readonly arch?: string;
  /** Build the GPU executables with nvcc when it is installed (default true). */
  readonly nvcc?: boolean;
  /** 'nccl': model_train for data-parallel training under mpirun (entries gradStep and applyGrads; distributed.ts) */
  readonly distributed?: 'mpi' | 'nccl'; // cli/common.ts checkDistributed: only 'nccl' reaches cuda
}

/** model.h's device-memory API (kiln_cuda_host.h implements it). */
const DEVICE_API = [
  '/* The device keeps its own copy of the memory block; each kiln_<entry> call moves only its inputs in and its',
  '   outputs out, so the params and optimizer state the entries update stay on the device and the host block\'s',
  '   copies of them are stale. kiln_cuda_sync() copies them back into the host block: call it before reading or',
  '   saving weights (kiln_save_weights). After changing params in the host block, call kiln_cuda_resync(): the',
  '   next call copies the whole block to the device. Calling both around host edits loses no update. */',
  'void kiln_cuda_sync(void);',
  'void kiln_cuda_resync(void);',
  '/* Training data kept on the device: kiln_cuda_dataset(offset, data, rows, row_bytes) copies `rows` rows for the',
  '   input at byte `offset` of the block once (0; 1 where it cannot: copy rows in as before, and pass that input);',
  '   kiln_cuda_rows(rows, n) makes the next call gather rows[0..n) of every kept dataset into its input on the',
  '   device, in place of copying the input in (pass NULL for it to kiln_run_entry). */',
  'int kiln_cuda_dataset(long offset, const void *data, long rows, long row_bytes);',
  'void kiln_cuda_rows(const long *rows, long n);',
  '/* what the runtime\'s mains call (model_train.c): before they read params, and to keep the data on the device */',
  '#define KILN_SYNC_PARAMS() kiln_cuda_sync()',
  '#define KILN_DEVICE_DATASET(offset, data, rows, row_bytes) kiln_cuda_dataset(offset, data, rows, row_bytes)',
  '#define KILN_DEVICE_ROWS(rows, n) kiln_cuda_rows(rows, n)',
];

/** Whether nvcc is on the PATH. */
export function hasNvcc(): boolean {
  try {
    execFileSync('nvcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The Makefile: runtime/cuda/Makefile with this artifact's default GPU architecture and executables filled in. */
function makefile(arch: string, hasTrain: boolean, memoryBytes: number): string {
  let src = readFileSync(path.join(runtimeDir('cuda'), 'Makefile'), 'utf8');
  const fill = (name: string, line: string) => {
    const re = new RegExp(`^${name} \\??= .*$`, 'm');
    if (!re.test(src)) throw new Error(`runtime/cuda/Makefile has no ${name} to fill in`);
    src = src.replace(re, () => line);
  };
  fill('ARCH', `ARCH ?= ${arch}`);
  fill('MAINS', `MAINS = ${['model_main', ...(hasTrain ? ['model_train'] : [])].join(' ')}`);
  // the mains hold the memory block in a static array: past 2 GiB it must go to x86-64's large-data section, or
  // the link fails ("relocation truncated to fit")
  if (memoryBytes >= 2 ** 31 - 2 ** 24) src += '\n# the memory block is over 2 GiB: the mains\' static copy of it in the large-data section\nifeq ($(shell uname -m),x86_64)\nCFLAGS += -mcmodel=medium\nendif\n';
  return src;
}

/** Compiles the entries for the GPU and writes (and where possible builds) every artifact; returns the files. */
export function compileCuda(o: CudaTargetOptions): string[] {
  const compiled = o.entries.map((e) => ({ e, c: runPipeline(e.graph, { caps: CUDA_CAPS }) }));
  const entries = compiled.map(({ e, c }) => ({ name: e.name, program: c.program, memory: c.memory }));
  const layout = layoutModule(entries, o.embedWeights ? new Map(o.weights.map((w) => [w.name, w.data])) : undefined);
  const dir = o.outDir, arch = o.arch ?? 'sm_90';
  mkdirSync(dir, { recursive: true });
  const hasTrain = o.entries.some((e) => e.name === 'trainStep');
  writeFileSync(path.join(dir, 'model.cu'), renderCuda(entries, layout, 'model') + (o.distributed ? NCCL_TAIL : ''));
  writeFileSync(path.join(dir, 'model.h'), headerSource(o, layout, o.distributed ? [...DEVICE_API, ...NCCL_API] : DEVICE_API));
  writeFileSync(path.join(dir, 'model_desc.c'), descSource(o, compiled, layout, undefined, false));
  writeFileSync(path.join(dir, 'Makefile'), makefile(arch, hasTrain, layout.memoryBytes));
  for (const f of ['kiln_runtime.h', 'kiln_runtime.c', 'kiln_core.c', 'kiln_rows.c', 'kiln_math.c', 'kiln_cli.h', 'model_main.c', 'model_train.c']) copyFileSync(path.join(runtimeDir('c'), f), path.join(dir, f));
  for (const f of ['kiln_cuda.h', 'kiln_cuda_host.h']) copyFileSync(path.join(runtimeDir('cuda'), f), path.join(dir, f));
  writeFileSync(path.join(dir, 'weights.safetensors'), writeSafetensors(o.weights, { format: 'kiln' }));
  writeFileSync(path.join(dir, 'model.ir'), irText(compiled));
  const manifest = manifestOf('cuda', compiled, o.weights, { arenaBytes: layout.arenaBytes, memoryBytes: layout.memoryBytes }, o, { arch, ...(o.distributed ? { distributed: o.distributed } : {}) });
  writeFileSync(path.join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const mains = ['model_main', ...(hasTrain ? ['model_train'] : [])];
  const built = [...mains.map((m) => `${m}_emu`), ...(o.nvcc !== false && hasNvcc() ? mains : [])];
  // model_train for --distributed first: a missing nccl.h is said before nvcc spends time on model_main
  const distributed = o.distributed ? buildNcclTrain(dir, arch, o.nvcc !== false && hasNvcc()) : [];
  for (const m of built) sh('cuda', 'make', ['-s', m], dir);
  built.push(...distributed);
  const files = ['model.cu', 'model.h', 'kiln_cuda.h', 'kiln_cuda_host.h', 'Makefile', ...built, 'manifest.json', 'weights.safetensors', 'model.ir'];
  return files.map((f) => path.join(dir, f));
}
