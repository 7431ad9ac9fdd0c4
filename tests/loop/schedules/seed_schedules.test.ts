// The schedule's shape on the seed examples: which recipes scheduled which kernels, for inference and the training
// step, under the llvm (AVX-512, 2 threads) and wasm caps. Structural facts from the schedule's trace, not timings
// and not the printed program: a recipe whose matcher stops taking a nest shows here (c943c98: cpu-conv's
// convOperands refused an unpadded conv's update, the seed CNN on llvm lost its conv micro-kernel and ran 10x slower,
// and no test failed).
import { beforeAll, describe, expect, it } from 'vitest';
import { LLVM_CAPS, llvmCaps } from '../../../codegen/llvm/target.js';
import { DEFAULT_CAPS, type TargetCaps } from '../../../codegen/loop/schedule.js';
import { runPipeline } from '../../../driver/pipeline.js';
import type * as keras from '../../../frontend/index.js';
import type { Expr, Stmt } from '../../../codegen/loop/ir.js';
import { printExpr } from '../../../codegen/loop/printer.js';
import { someExpr, walkStmts } from '../../../codegen/loop/visit.js';
import type * as compiler from '../../../compiler.js';
import { rng } from '../../ir/helpers.js';
import type { Graph } from '../../../ir/graph.js';
import { SEED_FILES, seedModels, seedTrainStep } from '../../seed_examples.js';

const BATCH = 64;
const CAPS: Record<string, TargetCaps> = { llvm: { ...LLVM_CAPS, threads: 2 }, wasm: DEFAULT_CAPS };

/** What the schedule did to one kernel: its fused ops, the steps applied to it (as `recipe:primitive`), its unrolled statements. */
interface KernelShape { readonly name: string; readonly ops: readonly string[]; readonly steps: ReadonlySet<string>; readonly unrolled: number }

/** Statements as rendered: an unrolled loop's body once per iteration, any other loop's once. */
const straight = (ss: readonly Stmt[]): number => ss.reduce((n, s) => n + (s.k === 'for' ? (s.kind === 'unroll' ? s.extent : 1) * straight(s.body) + (s.kind === 'unroll' ? 0 : 1) : s.k === 'if' ? 1 + straight(s.body) : 1), 0);
/** The statements unrolled loops make (each outermost unrolled loop's straight-line size). */
const unrolled = (ss: readonly Stmt[]): number => ss.reduce((n, s) => n + (s.k === 'for' ? (s.kind === 'unroll' ? s.extent * straight(s.body) : unrolled(s.body)) : s.k === 'if' ? unrolled(s.body) : 0), 0);

/**
 * The most statements a predict kernel's unrolled loops may make on llvm. Every statement is LLVM IR for opt and llc
 * to chew (the seed Transformer's cold compile is mostly opt -O3 and llc): a lane loop the target cannot run as
 * vectors is unrolled over register arrays (vectorizeLanes), so an index not seen as contiguous or a column operand
 * read across rows turns a micro-kernel's loads, or a row block's products, into scalars. Its projections'
 * `c // 8 * 8 + c % 8` (1,128 statements, 8,188 lines of IR each) and its Q·Kᵀ row block (1,648) did; the most now
 * is 312 (its first layer normalization, 8 rows of 32-wide vector code).
 */
const MOST_UNROLLED = 400;

/** The kernels of g's scheduled program (the scan and scatter kernels have schedules of their own: left out). */
function shapeOf(g: Graph, caps: TargetCaps): KernelShape[] {
  const steps = new Map<number, Set<string>>();
  const { program } = runPipeline(g, { caps, trace: (name, _, at) => {
    if (!steps.has(at.kernel)) steps.set(at.kernel, new Set());
    steps.get(at.kernel)!.add(`${at.recipe}:${name}`);
  } });
  return program.kernels.map((k, i) => ({ name: k.name, ops: k.ops, steps: steps.get(i) ?? new Set<string>(), unrolled: unrolled(k.body) }))
    .filter((k) => k.ops[0] !== 'scan' && k.ops[0] !== 'scatter_add');
}

const has = (k: KernelShape, ...steps: string[]) => steps.every((s) => k.steps.has(s));
const recipe = (k: KernelShape, r: string) => [...k.steps].some((s) => s.startsWith(`${r}:`));
const microKernel = (k: KernelShape, r: 'cpu-matmul' | 'cpu-conv') => has(k, `${r}:tile`, `${r}:cacheWrite`, `${r}:vectorize`);

/** What each kernel of a kind gets: a kernel that fuses the ops gets the recipe's steps (on the targets named). */
const RULES: { name: string; targets: readonly string[]; of: (k: KernelShape) => boolean; want: (k: KernelShape) => boolean }[] = [
  // the register-blocked micro-kernel: tiles, an accumulator tile, vector loops
  { name: 'a conv gets the conv micro-kernel', targets: ['llvm', 'wasm'], of: (k) => k.ops.includes('conv'), want: (k) => microKernel(k, 'cpu-conv') },
  // register panels where the output's rows and columns take a register tile, else i-k-j row caches
  { name: 'a matmul gets the matmul micro-kernel or row caches', targets: ['llvm', 'wasm'], of: (k) => k.ops.includes('matmul') && !k.ops.includes('conv'), want: (k) => microKernel(k, 'cpu-matmul') || recipe(k, 'row-caches') },
  // cpu_pool.ts: a pooling window's channels as vector lanes, the window's loops outside them
  { name: 'a pooling window gets channel lanes', targets: ['llvm', 'wasm'], of: (k) => k.ops.includes('reduce_window'), want: (k) => has(k, 'cpu-pool:cacheWrite', 'cpu-pool:reorder', 'cpu-kinds:vectorize') },
  // softmax's row maximum (and the sum beside it) as vector folds; wasm renders no fold loops
  { name: "softmax's rows are vector folds", targets: ['llvm'], of: (k) => k.ops.includes('reduce_max'), want: (k) => has(k, 'cpu-kinds:fold') },
];

/**
 * Kernels per recipe, [with the conv micro-kernel, with the matmul micro-kernel (register panels), with row caches],
 * the same on both targets at batch 64. The rules above accept row caches for any matmul, so a matmul micro-kernel
 * lost to them shows only here. When fusion or a recipe changes which kernels there are, these change: check that
 * the new schedule is the one intended, then update them.
 */
const COUNTS: Record<string, readonly [number, number, number]> = {
  'activations.ts byArgument predict': [0, 2, 1], 'activations.ts byArgument trainStep': [0, 5, 2],
  'activations.ts byLayer predict': [0, 1, 1], 'activations.ts byLayer trainStep': [0, 3, 2],
  'cnn.ts default predict': [2, 0, 1], 'cnn.ts default trainStep': [4, 1, 2],
  'custom_loop.ts default predict': [0, 1, 1], 'custom_loop.ts default trainStep': [0, 3, 2],
  'dense.ts default predict': [0, 1, 0], 'dense.ts default trainStep': [0, 2, 0],
  'functional.ts default predict': [0, 1, 1], 'functional.ts default trainStep': [0, 3, 2],
  'losses.ts default predict': [0, 1, 1], 'losses.ts default trainStep': [0, 3, 2],
  'multi_io.ts default predict': [0, 1, 1], 'multi_io.ts default trainStep': [0, 3, 3],
  'optimizers.ts default predict': [0, 1, 1], 'optimizers.ts default trainStep': [0, 3, 2],
  'sequence.ts default predict': [0, 2, 1], 'sequence.ts default trainStep': [0, 6, 1],
  'sequential.ts default predict': [0, 1, 1], 'sequential.ts default trainStep': [0, 3, 2],
  'transformer.ts default predict': [0, 6, 3], 'transformer.ts default trainStep': [0, 15, 3],
};

/** 'file.ts export entry' -> the graph */
const graphs = new Map<string, Graph>();
/** the seed CNN quantized to int8 at batch 64 (the build's quantize, calibrated on 64 random images) */
let cnn8: Graph;

beforeAll(async () => {
  const { dist, models } = await seedModels();
  const { quantize } = (await import('../../../dist/compiler.js')) as unknown as typeof compiler;
  const r = rng(3);
  cnn8 = quantize(models.get('cnn.ts default')!, { shape: [BATCH, 28, 28, 1], data: Float32Array.from({ length: BATCH * 784 }, () => r()) }, { batchSize: BATCH }).graph;
  const seen = new Set<keras.Model>(); // a model exported twice (default and by name) once
  for (const [name, m] of models) {
    if (seen.has(m)) continue;
    seen.add(m);
    const traced = dist.traceModel(m, BATCH);
    graphs.set(`${name} predict`, traced.graph);
    // a model its file does not compile trains as the seed MLP does (bench, golden tests)
    if (!m.compiled) m.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    // the whole-batch training step, updates in place (compile's partial-batch step adds only the rows mask)
    graphs.set(`${name} trainStep`, seedTrainStep(dist, m, BATCH).graph);
  }
}, 300_000);

it('counts kernels for every model the seed examples build, inference and training step', () => {
  expect([...graphs.keys()].sort()).toEqual(Object.keys(COUNTS).sort());
});

it.each(Object.keys(CAPS))('the seed CNN\'s global average pool gets channel lanes (cpu-pool) on %s', (target) => {
  // the kernel summing conv2d_1's ReLU over 12 x 12 positions per image and channel (no matmul, no softmax maximum)
  const gap = shapeOf(graphs.get('cnn.ts default predict')!, CAPS[target]!).filter((k) => k.ops.includes('reduce_sum') && !k.ops.includes('reduce_max'));
  expect(gap.map((k) => has(k, 'cpu-pool:cacheWrite', 'cpu-pool:reorder', 'cpu-kinds:vectorize'))).toEqual([true]);
});

it.each(Object.keys(CAPS))('the seed CNN in int8 on %s: its first conv and the max pooling after it are one kernel, one requantize per pooled output', (target) => {
  // fuse.ts pooledQconv, pool_tile.ts: the 64 x 28 x 28 x 8 conv outputs never stored, 64 x 14 x 14 x 8 pooled ones
  // computed by one requantize statement (vector lanes) in the register tile's epilogue
  const steps = new Map<number, Set<string>>();
  const { program } = runPipeline(cnn8, { caps: CAPS[target]!, trace: (name, _, at) => {
    if (!steps.has(at.kernel)) steps.set(at.kernel, new Set());
    steps.get(at.kernel)!.add(name);
  } });
  const i = program.kernels.findIndex((k) => k.ops.includes('reduce_window'));
  const k = program.kernels[i]!;
  expect(k.ops).toContain('qconv');
  expect(steps.get(i)).toContain('poolTile');
  expect(JSON.stringify(k.body).split('"op":"qmulhi"').length - 1).toBe(1);
  let times = 0;
  const walk = (ss: readonly Stmt[], n: number): void => ss.forEach((x) => { if (x.k === 'for') walk(x.body, n * x.extent); else if (x.k === 'store' && program.buffers.find((b) => b.name === x.buf)?.dtype === 'int8') times += n; });
  walk(k.body, 1);
  expect(times).toBe(BATCH * 14 * 14 * 8);
  expect(program.buffers.filter((b) => b.dtype === 'int8' && b.size === BATCH * 28 * 28 * 8)).toEqual([]);
});

it('the int8 seed CNN\'s second conv packs its input, read in place, as a vector loop of byte quads (llvm, AVX-512 VNNI)', () => {
  // conv2d_1 reads its 8 input channels as quads in place (pair_dot.ts inPlace): its packing nest stores
  // pack16(pack8(x + 128, ...)) of 4 consecutive int8 elements, which simplify makes one word read (xor 0x80808080),
  // contiguous in the lanes: a vector copy-with-xor, not 4 byte loads, shifts and ors per word in a scalar loop
  const { program } = runPipeline(cnn8, { caps: { ...llvmCaps('icelake-server'), threads: 2 } });
  const packs: string[] = [];
  for (const k of program.kernels) {
    walkStmts(k.body, (s, loops) => {
      if (s.k !== 'store' || !s.buf.startsWith('pairs_') || !someExpr(s.value, (e) => e.k === 'load' && e.quad)) return;
      packs.push(`${k.ops.join(',')}: ${loops[loops.length - 1]!.kind} ${printExpr(s.value).replace(/quad\(\w+\[.*\]\)/, 'quad(x[..])')}`);
    });
  }
  expect(packs).toEqual(['qconv: vector xor(quad(x[..]), -2139062144)']);
});

it('the int8 seed CNN on llvm (AVX-512 VNNI): the first conv packs one group per position (groups slide), the second\'s steps have no divisions', () => {
  // pair_dot.ts slides: conv2d's quads (3 taps of a window column) are group 0 at 28 + 2 positions per row, not 3
  // groups at 28; cpu_qmatmul.ts: conv2d_1's 18 in-place steps (tap = g / 2: a division per step) unrolled, folded
  const { program } = runPipeline(cnn8, { caps: { ...llvmCaps('icelake-server'), threads: 2 } });
  const pairs = program.buffers.filter((b) => b.name.startsWith('pairs_')).map((b) => b.size).sort((a, b) => a - b);
  expect(pairs).toEqual([BATCH * 4, BATCH * 392, BATCH * 28 * 30]); // (and the dense layer's 16 inputs, 4 quads a row)
  // (an i32 division is `div` once legalized)
  const divided: string[] = [];
  for (const k of program.kernels) {
    walkStmts(k.body, (s) => {
      if (s.k !== 'for' || s.kind === 'unroll' || !JSON.stringify(s.body).includes('"op":"dot4"')) return; // (unrolled: constants)
      const uses = (e: Expr): boolean => e.k === 'var' ? e.name === s.v : e.k === 'binary' ? uses(e.a) || uses(e.b) : false;
      walkStmts(s.body, (x) => {
        if (x.k === 'decl' && someExpr(x.init, (e) => e.k === 'binary' && ['idiv', 'div', 'mod'].includes(e.op) && uses(e.a))) divided.push(`${k.name}: ${s.v}`);
      });
    });
  }
  expect(divided).toEqual([]);
});

it('the int8 seed CNN on llvm with 2 threads: its convs in three parallel regions, no serial nest over the images', () => {
  // cpu_kinds.ts mergeProducers: the first conv's quantize, then its packing (and the packing's slid groups) with
  // its compute; the second conv's in-place packing with its compute (its 18 steps expanded: affine reads)
  const caps = { ...llvmCaps('icelake-server'), threads: 2 };
  const { program } = runPipeline(cnn8, { caps });
  const tops = program.kernels.filter((k) => k.ops.includes('qconv')).map((k) => k.body.filter((x) => x.k === 'for' && x.extent === BATCH).map((x) => (x.k === 'for' ? x.kind : '')));
  expect(tops).toEqual([['parallel', 'parallel'], ['parallel']]); // (the loops over the images)
});

describe.each(Object.keys(CAPS))('the seed examples scheduled for %s', (target) => {
  it.each(SEED_FILES.filter((f) => f !== 'tensors'))('examples/seed/%s.ts: each kind of kernel gets its recipe', (file) => {
    const mine = [...graphs].filter(([k]) => k.startsWith(`${file}.ts `));
    expect(mine.length).toBeGreaterThan(0);
    for (const [name, g] of mine) {
      const kernels = shapeOf(g, CAPS[target]!);
      for (const rule of RULES.filter((r) => r.targets.includes(target))) {
        const missed = kernels.filter((k) => rule.of(k) && !rule.want(k)).map((k) => `${k.name} [${k.ops.join(', ')}]: ${[...k.steps].join(' ') || 'nothing applied'}`);
        expect(missed, `${name}: ${rule.name}`).toEqual([]);
      }
      if (target === 'llvm' && name.endsWith(' predict')) {
        expect(kernels.filter((k) => k.unrolled > MOST_UNROLLED).map((k) => `${k.name}: ${k.unrolled}`), `${name}: kernels unrolling more than ${MOST_UNROLLED} statements`).toEqual([]);
      }
      const count = (p: (k: KernelShape) => boolean) => kernels.filter(p).length;
      expect([count((k) => microKernel(k, 'cpu-conv')), count((k) => microKernel(k, 'cpu-matmul')), count((k) => recipe(k, 'row-caches'))], `${name}: kernels with [the conv micro-kernel, the matmul micro-kernel, row caches]`).toEqual(COUNTS[name]);
    }
  });
});
