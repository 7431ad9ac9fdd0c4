// The llvm target: LLVM IR through opt-14 and llc-14 into model.o, linked with the C runtime into
// libmodel.a, model_main and (with --train) model_train; model.h is the C API.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type TargetEntry, irText, manifestOf, runtimeDir } from '../artifacts.js';
import { type NativeTargetOptions, descSource, headerSource, objectName, sh, shConcurrently, startCompileCached, startConcurrently } from '../native.js';
import { writeSafetensors } from '../../runtime/safetensors.js';
import { dtypeBytes } from '../../ir/types.js';
import { layoutModule } from '../loop/layout.js';
import { planMemory } from '../loop/memplan.js';
import { completeFlatLast } from '../loop/flat.js';
import { elfSizes } from './elf.js';
import { FLASH_SYMBOL, splitFlash } from './flash.js';
import { firmwareSizes, writeFirmware } from './firmware.js';
import { DEFAULT_CAPS, type TargetCaps } from '../loop/schedule.js';
import { LLVM_VECTORS } from '../loop/vectorize.js';
import { type Compiled, runPipeline } from '../../driver/pipeline.js';
import { renderLlvmParts } from './render.js';
import type { DotIsa } from './vector.js';

/** The /proc/cpuinfo flags of Ice Lake server's additions to x86-64-v4 (AVX-512 VNNI's vpdpbusd for int8 among them). */
const ICELAKE_SERVER = ['avx512_vnni', 'avx512vbmi', 'avx512_vbmi2', 'avx512_bitalg', 'avx512_vpopcntdq', 'avx512ifma', 'gfni', 'vaes', 'vpclmulqdq', 'clwb', 'rdpid', 'sha_ni'];

/**
 * An explicit CPU for opt/llc: LLVM 14 does not know the newest cores, so name the x86-64 level the host reaches,
 * or icelake-server where it has all of that core's features (int8 kernels then use vpdpbusd).
 */
export function hostCpu(): string {
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '';
  } catch { /* not Linux */ }
  const has = (f: string) => new RegExp(`\\b${f}\\b`).test(flags);
  if (has('avx512f') && has('avx512vl')) return ICELAKE_SERVER.every(has) ? 'icelake-server' : 'x86-64-v4';
  if (has('avx2') && has('fma')) return 'x86-64-v3';
  return 'x86-64-v2';
}

export interface LlvmTargetOptions extends NativeTargetOptions {
  /** opt/llc -mcpu (default: the host's x86-64 level) */
  readonly cpu?: string;
  /** Outer loops run in parallel when > 1, on the runtime's pool (default: the host's cores; 1 with --triple). */
  readonly threads?: number;
  /**
   * Cross-compile model.o for another target triple (e.g. aarch64-linux-gnu, thumbv7em-none-eabihf): writes
   * the object, model.h, model_desc.c and the runtime sources to build with that target's C compiler; no executables.
   */
  readonly triple?: string;
  /**
   * a*b + c as one llvm.fmuladd (default true: fused where the CPU has FMA); false renders fmul and fadd, rounded
   * each as the graph interpreter rounds them (the fuzzer tells FMA's approximation from a miscompile this way).
   */
  readonly contract?: boolean;
  /**
   * exp, log, log1p, tanh, erf, sin, cos and pow evaluated in double (libm's, scalar lane by lane) and rounded once
   * to float, as the graph interpreter computes them (default false: the fast vector expf/logf/tanhf, within a few
   * ulp, and libm's float functions). The fuzzer tells such an approximation from a miscompile this way.
   */
  readonly exactMath?: boolean;
  /**
   * 'freestanding' (the default for a `*-none-*` triple): the runtime core alone (kiln_core.c: no threads, stdio,
   * malloc or files; error codes, no messages), params and constants in a const array that the model code reads in
   * place (flash on a microcontroller), memory = arena + inputs; inference only, weights embedded. 'hosted' (default
   * otherwise): the whole runtime.
   */
  readonly runtime?: 'hosted' | 'freestanding';
  /** A host build's kernels in at most this many modules, built by opt and llc at once (default: the host's cores). */
  readonly parts?: number;
  /** 'mpi': model_train built with mpicc for data-parallel training (entries gradStep and applyGrads, kiln_mpi.c). */
  readonly distributed?: 'mpi' | 'nccl'; // cli/common.ts checkDistributed: only 'mpi' reaches llvm
}

/** Whether a target triple names no operating system (thumbv7em-none-eabihf): it gets the freestanding runtime. */
export const bareMetal = (triple?: string): boolean => !!triple && triple.split('-').includes('none');

/**
 * What the llvm target schedules for on AVX-512 (and CPUs llvmCaps does not know): 16 lanes, and micro-kernel tiles
 * within 22 of its 32 registers (measured: tiles of 24 accumulators, 6 x 64 or 8 x 48, run 8x slower than 4 x 64,
 * LLVM 14 spilling them).
 * compileLlvm sets the threads.
 */
export const LLVM_CAPS: TargetCaps = { ...DEFAULT_CAPS, vectorWidth: 16, vectorRegisters: 22, fma: true, tileCode: 2048, threads: 1, vector: LLVM_VECTORS, legal: { ieeeMinMax: false } };

/**
 * The CPUs hostCpu names: x86-64 levels fixed by the psABI (v2: SSE4.2; v3: AVX2 and FMA; v4: AVX-512
 * F/BW/CD/DQ/VL) and icelake-server (v4 with VNNI): known without asking gcc, a process start on every compile for the host.
 */
interface X86Vectors { readonly avx512: boolean; readonly avx: boolean; readonly fma: boolean; readonly avx2: boolean; readonly avx512bw: boolean; readonly vnni?: boolean }
const X86_LEVELS: ReadonlyMap<string, X86Vectors> = new Map([
  ['x86-64-v2', { avx512: false, avx: false, fma: false, avx2: false, avx512bw: false }],
  ['x86-64-v3', { avx512: false, avx: true, fma: true, avx2: true, avx512bw: false }],
  ['x86-64-v4', { avx512: true, avx: true, fma: true, avx2: true, avx512bw: true }],
  ['icelake-server', { avx512: true, avx: true, fma: true, avx2: true, avx512bw: true, vnni: true }],
]);

/** The x86 vector unit of an -mcpu name (as gcc -march knows it), or undefined where it is not an x86 CPU gcc knows. */
export function x86Vectors(cpu: string): X86Vectors | undefined {
  const level = X86_LEVELS.get(cpu);
  if (level) return level;
  if (!/^[\w.-]+$/.test(cpu)) return undefined;
  let macros: string;
  try {
    macros = execFileSync('gcc', [`-march=${cpu}`, '-dM', '-E', '-x', 'c', '/dev/null'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined; // not a -march gcc knows (another architecture's CPU, or no gcc)
  }
  const has = (m: string) => macros.includes(`#define __${m}__ 1`);
  return has('SSE2') ? { avx512: has('AVX512F'), avx: has('AVX'), fma: has('FMA'), avx2: has('AVX2'), avx512bw: has('AVX512BW'), vnni: has('AVX512VNNI') && has('AVX512VL') } : undefined;
}

const capsByCpu = new Map<string, TargetCaps>();

/**
 * LLVM_CAPS sized for the CPU's vector registers, so a micro-kernel's accumulators fit them (registerTile): AVX-512
 * keeps LLVM_CAPS (16 lanes, 22 of 32 zmm); AVX2 has 16 ymm of 8 lanes (6 x 16 tiles where the rows allow, 12
 * accumulators, as BLIS's Haswell kernel; the 4 x 64 of AVX-512 spilled half its 32 accumulators every step), and
 * row-cache blocks of 12 accumulators (8 rows of a 10-wide row, two ymm each, spilled); SSE 16 xmm of 4 lanes, no
 * FMA. CPUs that are not x86 (or that gcc does not know) keep LLVM_CAPS; x86 ones may pack int8 columns once per call
 * (packColumns), and with AVX-512 VNNI have dot4.
 */
export function llvmCaps(cpu: string | undefined): TargetCaps {
  if (cpu === undefined) return LLVM_CAPS;
  let caps = capsByCpu.get(cpu);
  if (!caps) {
    const x86 = x86Vectors(cpu);
    // (x86: a host with RAM for int8 matmuls' packed columns)
    caps = !x86 ? LLVM_CAPS : x86.avx512 ? { ...LLVM_CAPS, packColumns: true, ...(x86.vnni ? { dot4: true } : {}) }
      : { ...LLVM_CAPS, vectorWidth: x86.avx ? 8 : 4, vectorRegisters: 16, rowAccumulators: 12, fma: x86.fma, packColumns: true };
    capsByCpu.set(cpu, caps);
  }
  return caps;
}

/**
 * The int16 pair dot product (dot2) instruction of a target, checked at compile time from the triple and -mcpu:
 * pmaddwd of the widest x86 vectors the CPU has (AVX-VNNI CPUs then get vpdpwssd), the Cortex-M's DSP SMLAD; with
 * AVX-512 VNNI also dot4 as vpdpbusd (llvmCaps gives the scheduler dot4 on those CPUs).
 */
export function dotIsa(cpu: string | undefined, triple: string | undefined): DotIsa | undefined {
  if (triple?.startsWith('thumbv7em')) return 'dsp';
  if ((triple && !triple.startsWith('x86_64')) || !cpu) return undefined;
  const x86 = x86Vectors(cpu);
  return !x86 ? undefined : x86.avx512bw ? (x86.vnni ? 'avx512vnni' : 'avx512') : x86.avx2 ? 'avx2' : 'sse2';
}

/** gcc's flags for a hosted artifact's C, and the runtime's objects it links that are the same for every model. */
const HOST_CC = ['-O2', '-std=c99', '-pthread'], HOST_OBJECTS = ['kiln_runtime', 'kiln_rows', 'kiln_math', 'model_main'];

/**
 * Compiles the hosted runtime's objects into `dir` (`npm run build`'s postbuild: cli/prebuild.ts), where compiles find
 * them (native.ts prebuiltObjectDir); returns their files. Only the objects of the current runtime sources stay.
 */
export function prebuildHostObjects(dir: string): string[] {
  const rt = runtimeDir('c'), out = mkdtempSync(path.join(os.tmpdir(), 'kiln-prebuild-'));
  try {
    startCompileCached('llvm', HOST_CC, HOST_OBJECTS.map((f) => [path.join(rt, `${f}.c`), path.join(out, `${f}.o`)]), dir)();
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  const keep = new Set(HOST_OBJECTS.map((f) => objectName(HOST_CC, path.join(rt, `${f}.c`))));
  for (const f of readdirSync(dir)) if (!keep.has(f)) rmSync(path.join(dir, f), { force: true });
  return [...keep].map((f) => path.join(dir, f));
}

/** Compiles the entries and writes/builds every artifact; returns the files. */
export function compileLlvm(o: LlvmTargetOptions): string[] {
  const freestanding = (o.runtime ?? (bareMetal(o.triple) ? 'freestanding' : 'hosted')) === 'freestanding';
  if (freestanding && !o.embedWeights) throw new Error('the freestanding runtime reads no files: its weights must be embedded (--embed-weights)');
  if (freestanding && o.entries.some((e) => e.name === 'trainStep')) throw new Error('the freestanding runtime runs inference only (no --train)');
  // parallel loops for the host's cores (the pool takes KILN_NUM_THREADS at run time); none in a cross-compiled
  // object, which may run where there are no threads
  // a Cortex-M4 by default for ARMv7E-M (LLVM's generic one has no FPU, which the hard-float ABI needs)
  const cpu = o.cpu ?? (o.triple ? (o.triple.startsWith('thumbv7em') ? 'cortex-m4' : undefined) : hostCpu());
  const caps: TargetCaps = { ...llvmCaps(!o.triple || o.triple.startsWith('x86_64') ? cpu : undefined), threads: freestanding ? 1 : o.threads ?? (o.triple ? 1 : os.availableParallelism()),
    // params change only at kiln_init where no entry updates them: what is computed from them alone, once per init
    prepack: !freestanding && o.entries.every((e) => e.name === 'predict' || e.name === 'predict_1') };
  const compiled = o.entries.map((e) => ({ e, c: flatGrads(e, runPipeline(e.graph, { caps }), o.distributed === 'mpi') }));
  const entries = compiled.map(({ e, c }) => ({ name: e.name, program: c.program, memory: c.memory }));
  const values = new Map(o.weights.map((w) => [w.name, w.data]));
  const full = layoutModule(entries, o.embedWeights && !freestanding ? values : undefined);
  const split = freestanding ? splitFlash(entries, full, values) : undefined;
  const layout = split?.ram ?? full;
  const flash = split && { symbol: FLASH_SYMBOL, data: split.data };
  const dir = o.outDir;
  mkdirSync(dir, { recursive: true });
  const machine = [...(o.triple ? [`-mtriple=${o.triple}`] : []), ...(cpu ? [`-mcpu=${cpu}`] : [])];
  const hosted = !o.triple && !freestanding;
  const flashDecl = flash ? [`/* params and constants, read in place (flash): KILN_FLASH_BYTES bytes */\n#define KILN_FLASH_BYTES ${flash.data.length}L\nextern const unsigned char ${FLASH_SYMBOL}[];`] : [];
  writeFileSync(path.join(dir, 'model.h'), headerSource(o, layout, flashDecl));
  writeFileSync(path.join(dir, 'model_desc.c'), descSource(o, compiled, layout, flash));
  const rt = runtimeDir('c');
  const sources = freestanding ? ['kiln_runtime.h', 'kiln_core.c', 'kiln_rows.c', 'kiln_math.c']
    : ['kiln_runtime.h', 'kiln_runtime.c', 'kiln_core.c', 'kiln_rows.c', 'kiln_math.c', 'kiln_cli.h', 'model_main.c', 'model_train.c'];
  for (const f of sources) copyFileSync(path.join(rt, f), path.join(dir, f));
  const cc = HOST_CC;
  const hasTrain = o.entries.some((e) => e.name === 'trainStep' || e.name === 'gradStep');
  const mpi = o.distributed === 'mpi';
  const mains = ['model_main', ...(hasTrain && !mpi ? ['model_train'] : [])];
  // on the host, each module's opt and llc start as soon as it is rendered, while the next renders, and gcc compiles
  // model_desc.c and the runtime's objects the cache lacks meanwhile (a new cache's 0.8 s of gcc, after llc before):
  // model.o is the same as when they run after the render (tests/llvm/parts.test.ts)
  const waits = hosted ? [
    startCompileCached('llvm', cc, [...HOST_OBJECTS, ...mains.filter((m) => !HOST_OBJECTS.includes(m))].map((f) => [path.join(dir, `${f}.c`), path.join(dir, `${f}.o`)])),
    startConcurrently('llvm', [[['gcc', [...cc, '-c', 'model_desc.c', '-o', 'model_desc.o']]]], dir),
  ] : [];
  const stem = (p: number) => (p === 0 ? 'model' : `model.${p}`);
  const toolsOf = (p: number, parts: number): [string, string[]][] => [
    ['opt-14', ['-O3', ...machine, `${stem(p)}.ll`, '-o', `${stem(p)}.bc`]],
    // static code for a bare-metal image; PIC wherever an OS may link it into a PIE (the freestanding runtime on the
    // host: a table of constants addressed absolutely fails to link there)
    ['llc-14', ['-O3', ...machine, `-relocation-model=${freestanding && bareMetal(o.triple) ? 'static' : 'pic'}`, '-filetype=obj', `${stem(p)}.bc`, '-o', parts === 1 ? 'model.o' : `${stem(p)}.part.o`]],
  ];
  // a host build's kernels in one module per core (opt and llc use one core each: the Transformer's 0.85 s of them
  // was a third of its cold compile), their objects linked into model.o; model.ll holds the entries
  const parts = hosted ? o.parts ?? os.availableParallelism() : 1;
  let modules: string[];
  try {
    modules = renderLlvmParts(entries, layout, 'model', parts, { contract: o.contract ?? true, exactMath: o.exactMath ?? false },
      split && { symbol: FLASH_SYMBOL, bytes: split.data.length, offsets: split.flash }, dotIsa(cpu, o.triple), (ir, p, n) => {
        writeFileSync(path.join(dir, `${stem(p)}.ll`), ir);
        if (hosted) waits.push(startConcurrently('llvm', [toolsOf(p, n)], dir));
      });
  } catch (e) {
    for (const wait of waits) try { wait(); } catch { /* the render's error is the one to report */ }
    throw e;
  }
  if (!hosted) for (const [cmd, args] of toolsOf(0, 1)) sh('llvm', cmd, args, dir);
  // every one waited for (they write into dir), the first failure reported
  const failures = waits.flatMap((wait) => { try { wait(); return []; } catch (e) { return [e]; } });
  if (failures.length) throw failures[0];
  // the parts as one relocatable object, as users link model.o; on the host libmodel.a after it in the same shell
  // (each process this one starts and waits for is a fork of it first: 10-50 ms each, more where it is loaded)
  const ld: [string, string[]][] = modules.length > 1 ? [['ld', ['-r', '-o', 'model.o', ...modules.map((_, p) => `${stem(p)}.part.o`)]]] : [];
  if (hosted) shConcurrently('llvm', [[...ld, ['ar', ['rcs', 'libmodel.a', 'model.o', 'model_desc.o', 'kiln_runtime.o', 'kiln_rows.o', 'kiln_math.o']]]], dir);
  else for (const [cmd, args] of ld) sh('llvm', cmd, args, dir);
  const model = elfSizes(readFileSync(path.join(dir, 'model.o')), 'model.o');
  const sizes: Record<string, unknown> = {
    modelCodeBytes: model.code, weightBytes: o.weights.reduce((n, w) => n + w.data.length * dtypeBytes(w.dtype), 0),
    arenaBytes: layout.arenaBytes, memoryBytes: layout.memoryBytes, ...(flash ? { flashBytes: flash.data.length } : {}),
    // what model.o needs beyond the runtime: libm's functions (expf, ...) the kernels call (not the compiler's own
    // helpers, __aeabi_*, or the GOT)
    libm: model.undefined.filter((f) => !f.startsWith('kiln_') && !f.startsWith('_')),
  };
  const meta = { cpu: cpu ?? null, ...(o.triple ? { triple: o.triple } : {}), runtime: freestanding ? 'freestanding' : 'hosted', ...(o.distributed ? { distributed: o.distributed } : {}), sizes };
  const manifest = () => manifestOf('llvm', compiled, o.weights, { arenaBytes: layout.arenaBytes, memoryBytes: layout.memoryBytes }, o, meta);
  if (!hosted) {
    const files = [...sources, 'model.o', 'model.h', 'model_desc.c', 'manifest.json'];
    const fw = o.triple && writeFirmware(dir, o.triple, compiled[0]!.e);
    if (fw) {
      files.push('firmware');
      const built = firmwareSizes(dir);
      if (built) Object.assign(sizes, built);
    }
    // the weights as a file: a hosted build loads it; a freestanding one has them embedded (for tools that read them)
    writeFileSync(path.join(dir, 'weights.safetensors'), writeSafetensors(o.weights, { format: 'kiln' }));
    files.push('weights.safetensors');
    writeFileSync(path.join(dir, 'manifest.json'), `${JSON.stringify(manifest(), null, 2)}\n`);
    return files.map((f) => path.join(dir, f));
  }
  sizes['runtimeCodeBytes'] = ['kiln_runtime.o', 'kiln_rows.o', 'kiln_math.o'].reduce((n, f) => n + elfSizes(readFileSync(path.join(dir, f)), f).code, 0);
  shConcurrently('llvm', mains.map((m) => [['gcc', [...cc, `${m}.o`, 'libmodel.a', '-lm', '-o', m]]]), dir);
  if (mpi) buildMpiTrain(dir, cc);
  writeFileSync(path.join(dir, 'manifest.json'), `${JSON.stringify(manifest(), null, 2)}\n`);
  writeFileSync(path.join(dir, 'weights.safetensors'), writeSafetensors(o.weights, { format: 'kiln' }));
  writeFileSync(path.join(dir, 'model.ir'), irText(compiled));
  const files = ['model.o', 'libmodel.a', 'model.h', 'kiln_runtime.h', 'model_main', ...(hasTrain ? ['model_train'] : []), 'manifest.json', 'weights.safetensors', 'model.ir'];
  return files.map((f) => path.join(dir, f));
}

/**
 * Under MPI, gradStep's outputs before its preds (gradients, state, loss: traceSplitStep) side by side at the arena's
 * start, where applyGrads's input is: the all-reduce works on them in place and applyGrads reads them there, no copy.
 * The entry calls kiln_grads_ready after each statement that completes a segment of them, so the reduction of the
 * last layers' gradients overlaps the rest of the backward pass (kiln_mpi.c).
 */
function flatGrads(e: TargetEntry, c: Compiled, mpi: boolean): Compiled {
  if (mpi && e.name === 'applyGrads') return { ...c, memory: planMemory(c.program, { input: 'grads' }) }; // where gradStep's block lies
  if (!mpi || e.name !== 'gradStep') return c;
  const names = e.graph.outputs.map((x) => x.name);
  const preds = names.findIndex((n) => n.startsWith('pred/'));
  const flat = preds < 0 ? names : names.slice(0, preds), program = completeFlatLast(c.program, flat);
  return { ...c, program, memory: planMemory(program, { flat }) };
}

/** model_train for data-parallel training: model_train.c with -DKILN_MPI and kiln_mpi.c, compiled and linked by mpicc. */
function buildMpiTrain(dir: string, cc: readonly string[]): void {
  try {
    execFileSync('mpicc', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('llvm: --distributed mpi needs mpicc on the PATH (Open MPI: apt install openmpi-bin libopenmpi-dev)');
  }
  for (const f of ['kiln_mpi.h', 'kiln_mpi.c']) copyFileSync(path.join(runtimeDir('c'), f), path.join(dir, f));
  // -O3: the all-reduce's loops over the gradients vectorized
  sh('llvm', 'mpicc', [...cc, '-O3', '-DKILN_MPI', 'model_train.c', 'kiln_mpi.c', 'libmodel.a', '-lm', '-o', 'model_train'], dir);
}
