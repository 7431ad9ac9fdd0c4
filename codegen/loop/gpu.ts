// The GPU's caps and cost models (launches, matmul tiles, threads per block) the GPU recipes use (schedules/gpu_*.ts).
//
// Semantics of the GPU axes in loop IR (the interpreter runs them in order, the CUDA renderer launches them):
// - `block` loops form the grid. They sit at the top of a kernel, each top-level block nest one launch, launches
//   in order. Block iterations are independent.
// - A `thread` loop inside a block runs its iterations on the block's threads (threadIdx.x). Sibling thread
//   loops of one block are separated by a barrier (__syncthreads), so a thread loop may read what an earlier one
//   wrote to shared memory; iterations of one thread loop must not depend on each other.
// - `shared` local arrays are declared in a block, outside thread loops: one per block. A `register` local array
//   declared in a block outside thread loops is private to each thread and keeps its values from one thread loop
//   to the next (as a thread's registers do across barriers).
import { E, type Expr, type Program, S, type Stmt, exprId } from './ir.js';
import { blockThreads, independentIterations, lexLess } from './analysis.js';
import { forEachExpr, stmtExprs, walkStmts } from './visit.js';

/** What a GPU offers the scheduler (per streaming multiprocessor unless said otherwise). */
export interface GpuCaps {
  readonly sms: number;
  readonly warp: number;
  /** warp schedulers: warps issuing per cycle */
  readonly schedulers: number;
  /** cycles before a dependent instruction may issue (a warp alone issues at most once per `latency`): an FMA's */
  readonly latency: number;
  /** cycles from a shared-memory load to its value */
  readonly sharedLatency: number;
  /** cycles from a global-memory load to its value (an L2 miss) */
  readonly globalLatency: number;
  /** 32-bit registers per SM (a thread holds at most 255) */
  readonly registersPerSm: number;
  readonly maxThreadsPerBlock: number;
  readonly maxThreadsPerSm: number;
  readonly maxBlocksPerSm: number;
  /** static shared memory per block */
  readonly sharedPerBlock: number;
  readonly sharedPerSm: number;
  /** bytes per cycle per SM from L2 */
  readonly l2BytesPerCycle: number;
}

/**
 * NVIDIA H100 SXM (sm_90); the H200 has the same SMs. Latencies as microbenchmarks of Hopper report them, rounded:
 * FMA about 4 cycles, a shared-memory load about 30, a global load that misses L1 about 500 (L2 hits ~260, HBM more).
 */
export const H100: GpuCaps = {
  sms: 132, warp: 32, schedulers: 4, latency: 4, sharedLatency: 30, globalLatency: 500, registersPerSm: 65536,
  maxThreadsPerBlock: 1024, maxThreadsPerSm: 2048, maxBlocksPerSm: 32, sharedPerBlock: 48 * 1024, sharedPerSm: 228 * 1024,
  l2BytesPerCycle: 64,
};

/** Cycles of a barrier after a thread loop (every warp of the block waits for the slowest). */
const BARRIER_CYCLES = 20;

/**
 * Cycles for a launch of `blocks` blocks of `threads` threads, each thread issuing `perThread` instructions:
 * blocks run in waves of what fits on the SMs at once (threads, blocks, shared memory and `registers` a thread
 * bound residency), and a wave takes as long as its busiest scheduler issues (each issues one warp's instruction a
 * cycle), or `path`, the cycles one warp alone takes, when too few warps share a scheduler to hide its latencies.
 * The path defaults to every instruction waiting for the one before (`latency` each); a thread with independent
 * work in flight (a register tile's FMAs) has a shorter one (matmulCycles, blockWork).
 */
export function launchCycles(blocks: number, threads: number, perThread: number, sharedBytes: number, g: GpuCaps, path = perThread * g.latency, registers = 0): number {
  const warps = Math.ceil(threads / g.warp);
  const resident = residentBlocks(warps, sharedBytes, registers, g);
  const waves = Math.ceil(blocks / (g.sms * resident));
  const warpsPerSm = Math.min(resident, Math.ceil(blocks / g.sms)) * warps;
  return waves * Math.max(path, (perThread * warpsPerSm) / g.schedulers);
}

/** Blocks of `warps` warps an SM holds at once (at least 1). */
function residentBlocks(warps: number, sharedBytes: number, registers: number, g: GpuCaps): number {
  return Math.max(1, Math.min(g.maxBlocksPerSm, Math.floor(g.maxThreadsPerSm / (warps * g.warp)),
    sharedBytes > 0 ? Math.floor(g.sharedPerSm / sharedBytes) : Infinity,
    registers > 0 ? Math.floor(g.registersPerSm / (registers * warps * g.warp)) : Infinity));
}

const divisors = (n: number, max: number): number[] => extents(n, max, false);

/**
 * A matmul's tiles: a block computes bm x bn outputs, staging bm x bk of A and bk x bn of B in shared memory per
 * step over K; each of its (bm/tm)*(bn/tn) threads accumulates a tm x tn register tile.
 */
export interface MatmulTiles {
  readonly bm: number;
  readonly bn: number;
  readonly bk: number;
  readonly tm: number;
  readonly tn: number;
}

export const tileThreads = (t: MatmulTiles): number => (t.bm / t.tm) * (t.bn / t.tn);

/** k steps of a matmul's inner loop whose shared loads a thread has in flight at once (nvcc's unrolling). */
const K_UNROLL = 4;

/** Registers a thread of a tm x tn tile holds: its accumulators, a step's A and B values, indices and addresses. */
export const tileRegisters = (t: MatmulTiles): number => t.tm * t.tn + t.tm + t.tn + 24;

/**
 * One block of the tiled matmul as gpu_matmul.ts schedules it (finishMatmul's loop IR, index arithmetic as its decls
 * count, no epilogue beyond the stores): the accumulators zeroed; per step of bk along K (`steps` of them), A's and
 * B's tiles staged into shared memory by all T threads (a strided share each, one thread loop apiece), then each
 * thread's step: per k its tn values of B, and per row of its tile one value of A and tn FMAs; the stores.
 */
export function matmulBlock(t: MatmulTiles, steps: number): Stmt[] {
  const T = tileThreads(t);
  const step = steps_(`${T},${Math.ceil((t.bm * t.bk) / T)},${Math.ceil((t.bk * t.bn) / T)},${t.bk},${t.tm},${t.tn}`, () => [stage('As', T, Math.ceil((t.bm * t.bk) / T), 'a'), bStage(t, T), S.for('t1', T, section(`c${t.bk},${t.tm},${t.tn}`, () => [...indexDecls(4, E.v('t'), 'x'), S.for('kk', t.bk, [
    ...Array.from({ length: t.tn }, (_, n) => S.decl(`b${n}`, 'f32', E.load('Bs', E.add(E.mul(E.v('kk'), E.v('ldb')), E.add(E.v('x3'), E.i32(n))), 'f32'))),
    S.for('m', t.tm, [
      S.decl('av', 'f32', E.load('As', E.add(E.mul(E.v('kk'), E.v('lda')), E.add(E.v('x1'), E.v('m'))), 'f32')),
      ...tnCells(t.tn, (c, n) => S.store('acc', c, E.binary('add', E.load('acc', c, 'f32'), E.binary('mul', E.v('av', 'f32'), E.v(`b${n}`, 'f32')))), t.tn),
    ], 'unroll'),
  ])]), 'thread')]);
  return [
    S.local('As', 'f32', t.bk * (t.bm + 1), 'shared'), S.local('Bs', 'f32', t.bk * t.bn, 'shared'), S.local('acc', 'f32', t.tm * t.tn),
    S.for('t0', T, section(`z${t.tm},${t.tn}`, () => [S.for('m', t.tm, tnCells(t.tn, (c) => S.store('acc', c, E.f32(0)), t.tn), 'unroll')]), 'thread'),
    S.for('k', steps, step),
    S.for('t2', T, section(`e${t.tm},${t.tn}`, () => [...indexDecls(4, E.v('t'), 'y'), S.for('m', t.tm, tnCells(t.tn, (c) => S.store('C', E.add(E.v('y3'), c), E.load('acc', c, 'f32')), t.tn), 'unroll')]), 'thread'),
  ];
}

/** matmulBlock's step bodies by what they depend on (built once: blockWork's memo of what a loop carries keys on them). */
const stepSections = new Map<string, Stmt[]>();
const steps_ = (key: string, make: () => Stmt[]): Stmt[] => {
  let s = stepSections.get(key);
  if (!s) stepSections.set(key, (s = make()));
  return s;
};
/** matmulBlock's thread bodies by what they depend on: built once, so blockWork's memos (by body) find them again. */
const sections = new Map<string, Stmt[]>();
const section = (key: string, make: () => Stmt[]): Stmt[] => {
  let s = sections.get(key);
  if (!s) sections.set(key, (s = make()));
  return s;
};
/** n decls of index arithmetic (as lowering's decoded tile rows and columns), the last `${p}${n - 1}`. */
const indexDecls = (n: number, from: Expr, p: string): Stmt[] => Array.from({ length: n }, (_, i) => S.decl(`${p}${i}`, 'i32', E.add(i ? E.v(`${p}${i - 1}`) : from, E.i32(i + 1))));
/** A statement per cell m*tn + n of a tile row (m the unrolled row loop's variable). */
const tnCells = (tn: number, f: (cell: Expr, n: number) => Stmt, stride: number): Stmt[] => Array.from({ length: tn }, (_, n) => f(E.add(E.mul(E.v('m'), E.i32(stride)), E.i32(n)), n));
/** A tile staged into shared memory by T threads, `per` elements a thread (a global load each). */
const stage = (local: string, T: number, per: number, p: string): Stmt => S.for(`${p}t`, T, section(`s${local}${per}`, () => [S.for(`${p}r`, per, [
  ...indexDecls(6, E.add(E.mul(E.v(`${p}r`), E.v('T')), E.v('t')), p),
  S.decl(`${p}v`, 'f32', E.load(`${p}g`, E.add(E.v(`${p}5`), E.v('k')), 'f32')),
  S.store(local, E.v(`${p}5`), E.v(`${p}v`, 'f32')),
])]), 'thread');

/**
 * B's tile (staged along its rows, as a matmul's B usually is): in 4-float lanes where the threads share the groups
 * evenly (gpu_matmul.ts finishMatmul: a thread loop of min(T, groups), each group an unrolled loop of 4 copies), else
 * one element at a time. The lanes are counted as 4 copies (the model does not credit the float4 the renderer
 * may make of them).
 */
function bStage(t: MatmulTiles, T: number): Stmt {
  const groups = (t.bk * t.bn) / 4;
  if (t.bn % 4 !== 0 || !(groups <= T || groups % T === 0)) return stage('Bs', T, Math.ceil((t.bk * t.bn) / T), 'b');
  const threads = Math.min(T, groups);
  return S.for('bt', threads, section(`l${groups / threads}`, () => [S.for('br', groups / threads, [
    ...indexDecls(5, E.add(E.mul(E.v('br'), E.v('T')), E.v('t')), 'b'),
    S.for('bl', 4, [
      S.decl('bx', 'i32', E.add(E.v('b4'), E.v('bl'))),
      S.decl('bv', 'f32', E.load('bg', E.add(E.v('bx'), E.v('k')), 'f32')),
      S.store('Bs', E.v('bx'), E.v('bv', 'f32')),
    ], 'unroll'),
  ])]), 'thread');
}

const MATMUL_SCOPES: Scopes = new Map([['As', 'shared'], ['Bs', 'shared'], ['acc', 'register']]);
/** matmulBlock's work by caps and tiles (the tile chooser asks for thousands of candidates; the loop IR is the same). */
const matmulWork = new WeakMap<GpuCaps, Map<string, Work>>();

/**
 * Estimated cycles of a tiled [batch] M x K @ K x N matmul (no launch overhead): the launch estimate (launchShape's
 * blockCycles over blockWork) of matmulBlock's loop IR, so the tiles the chooser picks are those the scheduled
 * launch's estimate (`--dump-after schedule`) finds cheapest, up to the epilogue's fused ops.
 */
export function matmulCycles(M: number, N: number, K: number, batch: number, t: MatmulTiles, g: GpuCaps): number {
  const key = `${t.bm},${t.bn},${t.bk},${t.tm},${t.tn},${K / t.bk}`;
  let w = matmulWork.get(g)?.get(key);
  if (!w) {
    w = blockWork(matmulBlock(t, K / t.bk), tileThreads(t), g, MATMUL_SCOPES);
    if (!matmulWork.has(g)) matmulWork.set(g, new Map());
    matmulWork.get(g)!.set(key, w);
  }
  return blockCycles([{ grid: batch * (M / t.bm) * (N / t.bn), threads: tileThreads(t), work: w }], tileThreads(t), 4 * (t.bk * (t.bm + 1) + t.bk * t.bn), t.tm * t.tn, g);
}

/** Whether tiles fit a block: threads, shared memory, and registers under __launch_bounds__ (no spills). */
export function tilesFit(t: MatmulTiles, g: GpuCaps): boolean {
  const T = tileThreads(t), r = tileRegisters(t);
  return T <= g.maxThreadsPerBlock && t.tm * t.tn <= 64 && 4 * t.bk * (t.bm + t.bn) <= g.sharedPerBlock && r <= 255 && T * r <= g.registersPerSm;
}

/** The cheapest tiles by the cost model, every tile dividing its extent (no thread needs a bounds guard). */
export function matmulTiles(M: number, N: number, K: number, batch: number, g: GpuCaps = H100): MatmulTiles {
  return chooseTiles(M, N, K, batch, g, false, false);
}

/** Tile extents for n: its divisors up to max, and (padding it) the powers of two from 4 below 2n. */
function extents(n: number, max: number, padded: boolean): number[] {
  const out = new Set<number>();
  for (let d = 1; d <= Math.min(n, max); d++) if (n % d === 0) out.add(d);
  if (padded) for (let p = 4; p <= max && p < 2 * n; p *= 2) out.add(p);
  return [...out];
}

/**
 * The tile chooser: the cheapest tiles by matmulCycles (the scheduled launch's estimate) on the sizes padded to
 * them where padMN (M and N) and padK allow; at equal cost, tiles that divide their extents. The search goes by
 * coordinates (blocks and register tiles for the deepest step, then the step, then blocks and tiles again for that
 * step): hundreds of candidates, not the product of all.
 */
export function chooseTiles(M: number, N: number, K: number, batch: number, g: GpuCaps, padMN: boolean, padK: boolean): MatmulTiles {
  // asked again for the same sizes (reduction_trees' plan, the split-K recipe's, gpu_matmul's tiles): once each
  const key = `${M},${N},${K},${batch},${padMN},${padK}`;
  if (!chosen.has(g)) chosen.set(g, new Map());
  const memo = chosen.get(g)!.get(key);
  if (memo) return memo;
  const t = searchTiles(M, N, K, batch, g, padMN, padK);
  chosen.get(g)!.set(key, t);
  return t;
}
const chosen = new WeakMap<GpuCaps, Map<string, MatmulTiles>>();

function searchTiles(M: number, N: number, K: number, batch: number, g: GpuCaps, padMN: boolean, padK: boolean): MatmulTiles {
  let best: MatmulTiles | undefined, bestCost = Infinity, bestPadded = true;
  const up = (n: number, t: number) => Math.ceil(n / t) * t;
  const consider = (t: MatmulTiles) => {
    if (!tilesFit(t, g)) return;
    const padded = M % t.bm !== 0 || N % t.bn !== 0 || K % t.bk !== 0;
    const c = matmulCycles(up(M, t.bm), up(N, t.bn), up(K, t.bk), batch, t, g);
    if (c < bestCost || (c === bestCost && bestPadded && !padded)) { best = t; bestCost = c; bestPadded = padded; }
  };
  const bks = extents(K, 32, padK);
  const blocks = (bk: number) => {
    for (const bm of extents(M, 128, padMN)) for (const bn of extents(N, 128, padMN)) {
      for (const tm of extents(bm, 8, false)) for (const tn of extents(bn, 8, false)) consider({ bm, bn, bk, tm, tn });
    }
  };
  blocks(Math.max(...(padK ? bks : bks.filter((d) => K % d === 0))));
  for (let round = 0; round < 2 && best; round++) {
    const b: MatmulTiles = best;
    for (const bk of bks) consider({ ...b, bk });
    if (best!.bk === b.bk) break;
    blocks(best!.bk);
  }
  return best ?? { bm: 1, bn: 1, bk: 1, tm: 1, tn: 1 };
}

/**
 * Threads per block for `points` independent iterations of `perThread` work: a divisor of points, so none is idle.
 * Ties (latency-bound launches cost the same however their threads are spread) go to the shape with the fewest
 * idle lanes (a block of 1 thread leaves 31 of its warp's 32 lanes idle), then to the most SMs busy, then to the
 * larger block.
 */
export function gridThreads(points: number, perThread: number, g: GpuCaps = H100): number {
  let best = 1, bestKey: number[] = [Infinity];
  for (const d of divisors(points, g.maxThreadsPerBlock)) {
    const blocks = points / d;
    const key = [launchCycles(blocks, d, perThread, 0, g), idleLanes(blocks, d, g), -Math.min(blocks, g.sms), -d];
    if (lexLess(key, bestKey)) { best = d; bestKey = key; }
  }
  return best;
}

/** Lanes of the launch's warps that run no thread. */
export const idleLanes = (blocks: number, threads: number, g: GpuCaps): number => blocks * (Math.ceil(threads / g.warp) * g.warp - threads);

/** Cycles a launch costs before its first block runs (a replayed CUDA graph node: about 1 µs). */
export const LAUNCH_CYCLES = 2000;
/** Instructions per reduced element (load, address, combine, loop) and per tree level (shared store, barrier, load, combine). */
const REDUCE_STEP = 4, TREE_LEVEL = 24;

/** The most threads a tree runs on in one block; a wider tree runs on W / TREE_THREADS blocks and a second launch. */
export const TREE_THREADS = 256;
/** The widest tree declared (W / TREE_THREADS blocks a row: enough to fill the GPU with a few rows). */
const MAX_TREE = 1 << 14;

/**
 * Estimated cycles of `rows` reductions of n elements each, serially per thread (W = 1), by a tree of W threads a
 * row, or (W > TREE_THREADS) by W / TREE_THREADS blocks a row, whose partials a second launch combines
 * (schedules/gpu_split_tree.ts).
 */
export function reductionCycles(rows: number, n: number, W: number, g: GpuCaps = H100, step = REDUCE_STEP): number {
  if (W === 1) {
    const T = gridThreads(rows, n * step, g);
    return LAUNCH_CYCLES + launchCycles(rows / T, T, n * step, 0, g);
  }
  const T = Math.min(W, TREE_THREADS), B = W / T;
  const first = LAUNCH_CYCLES + launchCycles(rows * B, T, (n / W) * step + Math.log2(T) * TREE_LEVEL, 4 * T, g);
  return B === 1 ? first : first + LAUNCH_CYCLES + launchCycles(rows, 1, Math.log2(B) * TREE_LEVEL, 0, g);
}

/**
 * The tree width for `rows` reductions of n elements (ir/ops.ts treeLevels): the power of two dividing n (up to
 * `max`, MAX_TREE unless said) the cost model finds cheapest, or 1 (serial) when no tree beats one thread per row.
 */
export function reductionTree(rows: number, n: number, g: GpuCaps = H100, max = MAX_TREE, step = REDUCE_STEP): number {
  let best = 1, bestCost = reductionCycles(rows, n, 1, g, step);
  for (let W = 2; W <= max && n % W === 0; W *= 2) {
    const c = reductionCycles(rows, n, W, g, step);
    if (c < bestCost) { best = W; bestCost = c; }
  }
  return best;
}

/** The widest split-K whose combine loads an output's W partials into one thread's registers. */
export const MAX_SPLIT = 64;
/**
 * The widest split-K: past MAX_SPLIT the combine is itself a declared tree on a block's threads (W/2 of them, at most
 * TREE_THREADS: each adds its two partials W/2 apart, the tree's first level, then the other levels in shared memory;
 * schedules/gpu_split_k.ts, gpu_reduce.ts).
 */
export const MAX_SPLIT_TREE = 2 * TREE_THREADS;

/**
 * Cycles of the split-K combine (schedules/gpu_split_k.ts): `rows` outputs, each loading its W partials from the
 * scratch buffer into registers, then the declared tree's levels and the store, on a grid of threads: blockWork
 * over that loop IR, as launchShape would estimate the scheduled launch (no launch overhead).
 */
export function combineCycles(rows: number, W: number, g: GpuCaps): number {
  const T = gridThreads(rows, 3 * W, g), P = 'P', cell = (i: Expr) => E.load(P, i, 'f32');
  const levels = treeWidths(W).map((w) => S.for(`l${w}`, w, [S.store(P, E.v(`l${w}`), E.binary('add', cell(E.v(`l${w}`)), cell(E.add(E.v(`l${w}`), E.i32(w)))))]));
  const body = [S.for('t', T, [
    S.local(P, 'f32', W), S.for('p', W, [S.store(P, E.v('p'), E.load('G', E.add(E.mul(E.v('p'), E.v('rows')), E.v('t')), 'f32'))]),
    ...levels, S.store('C', E.v('t'), cell(E.i32(0))),
  ], 'thread')];
  const w = blockWork(body, T, g, new Map([[P, 'register']]));
  return blockCycles([{ grid: Math.ceil(rows / T), threads: T, work: w }], T, 0, W, g);
}

/** A tree's level widths, W/2 first (ir/ops.ts treeLevels). */
const treeWidths = (W: number): number[] => { const out: number[] = []; for (let s = W >> 1; s >= 1; s >>= 1) out.push(s); return out; };

/**
 * How a float matmul's K sum runs on the GPU, by the cost model (launches included): tiled in shared memory
 * (W = 1), as a declared tree of W partials a row on a block's threads (reductionCycles), or split over K (split):
 * a tiled matmul of W x batch partial tiles, partial p summing k = p, p + W, ... in order (the declared tree's
 * partial p), then a combine launch running the tree's levels per output. The tree and the split declare the same
 * order (`tree: W`), so reduction_trees.ts declares W and the schedule (gpu_split_k.ts) asks again which of the two.
 */
export function matmulPlan(M: number, N: number, K: number, batch: number, g: GpuCaps = H100, step = REDUCE_STEP): { W: number; split: boolean; cycles: number } {
  const up = (n: number, t: number) => Math.ceil(n / t) * t;
  const tiled = (m: number, n: number, k: number, b: number) => {
    const t = chooseTiles(m, n, k, b, g, true, true);
    return LAUNCH_CYCLES + matmulCycles(up(m, t.bm), up(n, t.bn), up(k, t.bk), b, t, g);
  };
  const rows = batch * M * N;
  let best = { W: 1, split: false, cycles: tiled(M, N, K, batch) };
  for (let W = 2; W <= MAX_TREE && K % W === 0; W *= 2) {
    const tree = reductionCycles(rows, K, W, g, step);
    if (tree < best.cycles) best = { W, split: false, cycles: tree };
    if (W > MAX_SPLIT_TREE) continue;
    const combine = W <= MAX_SPLIT ? LAUNCH_CYCLES + combineCycles(rows, W, g) : reductionCycles(rows, W, W / 2, g);
    const split = tiled(M, N, K / W, batch * W) + combine;
    if (split < best.cycles) best = { W, split: true, cycles: split };
  }
  return best;
}

/**
 * Instructions per reduced element of a conv's tree as lower.ts writes its tap (a weight gradient's: the input
 * position's digits of the flat step, two loads at clamped im2col indices, the add), and with padding the bounds
 * check and the guarded add as well: the scheduled split-tree launches of the seed CNN's kernel gradients at batch
 * 1024 estimate about 28 (conv2, valid) and 52 (conv1, padded) a step (`--dump-after schedule`), not REDUCE_STEP.
 */
export const convStep = (padded: boolean): number => (padded ? 52 : 28);

/**
 * A conv as matmulPlan sees an M x K @ K x N matmul (implicit GEMM: M = output positions, or for a weight
 * gradient written as a conv the taps kh·kw·ci; N = output channels; K = the taps summed): tiled (W = 1), a tree
 * of W partials on a block's threads at the conv's step cost, or split-K over tiles (gpu_split_k.ts, gpu_conv.ts).
 */
export const convPlan = (M: number, N: number, K: number, padded: boolean, g: GpuCaps = H100): { W: number; split: boolean; cycles: number } =>
  matmulPlan(M, N, K, 1, g, convStep(padded));

type For = Extract<Stmt, { k: 'for' }>;

/** The perfectly nested loops at the top of a nest whose iterations are all independent. */
export function parallelChain(loop: For, pure: ReadonlyMap<string, Stmt>): For[] {
  const chain = [loop];
  const visible = new Map(pure); // the chain's own variables are visible to the loops inside it
  for (;;) {
    const last = chain[chain.length - 1]!;
    visible.set(last.v, last);
    const inner = last.body[0];
    if (last.body.length !== 1 || inner?.k !== 'for' || inner.kind === 'unroll') return chain;
    if (!independentIterations(inner, visible, new Set())) return chain;
    chain.push(inner);
  }
}

/**
 * A thread's work: instructions it issues (a shared-memory read counts SHARED_ISSUE: an SM reads one warp's 32
 * floats of shared memory a cycle but issues 4 warps' instructions), its latency path (cycles it takes alone) and
 * the global loads it issues (the L2 bound).
 */
interface Work { readonly issue: number; readonly path: number; readonly global: number; readonly mem: number }

/** Issue slots of a shared-memory read (4 schedulers to one shared-memory port). */
const SHARED_ISSUE = 4;

/** Scopes of a launch's local arrays by name (anything else loaded is a global buffer). */
type Scopes = ReadonlyMap<string, 'shared' | 'register'>;

/** One statement's work: it waits for the one before and for its loads (global, shared or register latency). */
function stmtWork(s: Stmt, scopes: Scopes, g: GpuCaps): Work {
  let issue = 1, wait = g.latency, global = 0;
  for (const e of stmtExprs(s)) forEachExpr(e, (x) => {
    if (x.k !== 'load') return;
    const scope = scopes.get(x.buf);
    if (scope === 'register') return;
    if (scope === 'shared') { issue += SHARED_ISSUE - 1; wait = Math.max(wait, g.sharedLatency); return; }
    global++;
    wait = Math.max(wait, g.globalLatency);
  });
  return { issue, path: wait, global, mem: wait > g.latency ? wait : 0 };
}

/**
 * Instructions one thread of a block issues for the block's body run on `threads` threads, and their path, by data
 * dependence: a statement issues after the one before (one a cycle) once what it reads is ready (a decl's value,
 * an array's last store), and its result is ready its latency later (stmtWork: a global load's, a shared load's, an
 * FMA's), so independent loads are in flight together; a thread loop ends in a barrier that waits for everything
 * before it. A loop's iterations overlap where they can (nvcc unrolls constant-extent loops, K_UNROLL iterations in
 * flight): the loop's path is one iteration's, then per further iteration the longest of its issue, what it
 * carries (an accumulation's one combine, or all of it where an iteration needs the last one's results: carried)
 * and its memory latency over K_UNROLL. So a register tile's independent FMAs issue back to back, and a loop of
 * global loads pays their latency about once.
 */
function blockWork(body: readonly Stmt[], threads: number, g: GpuCaps, scopes: Scopes): Work {
  let issue = 0, global = 0, mem = 0, clock = 0, end = 0;
  const ready = new Map<string, number>();
  const run = (s: Stmt, w: Work, barrier = false) => {
    const rw = readsWrites(s);
    let start = barrier ? Math.max(clock, end) : clock;
    for (const [name, t] of ready) if (t > start && rw.reads.has(name)) start = t;
    const finish = start + w.path;
    for (const d of rw.writes) ready.set(d, finish);
    clock = barrier ? finish : start + w.issue;
    end = Math.max(end, finish);
    issue += w.issue; global += w.global; mem = Math.max(mem, w.mem);
  };
  for (const s of body) {
    if (s.k === 'if') { const w = blockWork(s.body, threads, g, scopes), c = stmtWork(s, scopes, g); run(s, { issue: c.issue + w.issue, path: c.path + w.path, global: c.global + w.global, mem: Math.max(c.mem, w.mem) }); } // a guarded tail costs as much as a full tile
    else if (s.k === 'warpTree') run(s, { issue: 4 * Math.log2(s.size) + BARRIER_CYCLES, path: (4 * Math.log2(s.size) + BARRIER_CYCLES) * g.latency, global: 0, mem: 0 }); // a shuffle, a combine a level
    else if (s.k === 'arrive') run(s, { issue: 2 * BARRIER_CYCLES + 2, path: 2 * BARRIER_CYCLES + 2 * g.globalLatency, global: 1, mem: g.globalLatency }, true); // a fence, an atomic's round trip, two barriers
    else if (s.k === 'local') continue;
    else if (s.k !== 'for') run(s, stmtWork(s, scopes, g));
    else if (s.kind === 'thread') {
      const w = threadWork(s, g, scopes), n = Math.ceil(s.extent / threads);
      // a barrier after the loop: every thread's results are in before the next thread loop starts
      run(s, { issue: n * w.issue + BARRIER_CYCLES, path: loopPath(s, w, n, g) + BARRIER_CYCLES, global: n * w.global, mem: w.mem }, true);
    } else {
      const w = blockWork(s.body, threads, g, scopes), one = w.issue ? w : { ...w, issue: 1, path: g.latency };
      run(s, { issue: s.extent * one.issue, path: loopPath(s, one, s.extent, g), global: s.extent * one.global, mem: one.mem });
    }
  }
  return { issue, path: end, global, mem };
}

/** The names a statement reads (variables, arrays) and writes (a decl or assign's name, a store's array), nested ones included. */
type ReadsWrites = { readonly reads: ReadonlySet<string>; readonly writes: ReadonlySet<string> };
const rwMemo = new WeakMap<object, ReadsWrites>();
function readsWrites(s: Stmt): ReadsWrites {
  if (s.k === 'for') return bodyReadsWrites(s.body);
  let m = rwMemo.get(s);
  if (m) return m;
  const reads = new Set<string>(), writes = new Set<string>();
  for (const e of stmtExprs(s)) forEachExpr(e, (y) => { if (y.k === 'var') reads.add(y.name); else if (y.k === 'load') reads.add(y.buf); });
  if (s.k === 'decl' || s.k === 'assign') writes.add(s.name);
  else if (s.k === 'store') writes.add(s.buf);
  else if (s.k === 'warpTree') { reads.add(s.local); writes.add(s.local); }
  else if (s.k === 'arrive') { reads.add(s.counter).add(s.local); writes.add(s.counter).add(s.local); }
  else if (s.k === 'if') { const b = bodyReadsWrites(s.body); b.reads.forEach((x) => reads.add(x)); b.writes.forEach((x) => writes.add(x)); }
  rwMemo.set(s, (m = { reads, writes }));
  return m;
}
function bodyReadsWrites(body: readonly Stmt[]): ReadsWrites {
  let m = rwMemo.get(body);
  if (m) return m;
  const reads = new Set<string>(), writes = new Set<string>();
  for (const x of body) { const r = readsWrites(x); r.reads.forEach((y) => reads.add(y)); r.writes.forEach((y) => writes.add(y)); }
  rwMemo.set(body, (m = { reads, writes }));
  return m;
}

/** The path of n iterations of a loop whose one iteration is w (see blockWork). */
function loopPath(loop: For, w: Work, n: number, g: GpuCaps): number {
  if (n <= 1) return n * w.path;
  const c = carried(loop);
  const step = c === 'serial' ? w.path : Math.max(w.issue, c === 'accumulate' ? g.latency : 0, w.mem / K_UNROLL);
  return w.path + (n - 1) * step;
}

/** A thread loop's body (statements of one thread: no thread loops inside), by loop, caps and scopes. */
const threadWorks = new WeakMap<readonly Stmt[], { g: GpuCaps; scopes: Scopes; w: Work }>();
const threadWork = (loop: For, g: GpuCaps, scopes: Scopes): Work => {
  const m = threadWorks.get(loop.body);
  if (m && m.g === g && m.scopes === scopes) return m.w;
  const b = blockWork(loop.body, 1, g, scopes), w = b.issue ? b : { ...b, issue: 1, path: g.latency };
  threadWorks.set(loop.body, { g, scopes, w });
  return w;
};

function mentions(e: Expr, vs: ReadonlySet<string>): boolean {
  let found = false;
  forEachExpr(e, (x) => { if (x.k === 'var' && vs.has(x.name)) found = true; });
  return found;
}

/**
 * What one iteration of a loop needs from the one before: nothing (every element it stores has an index that varies
 * with the loop, through the body's decls), only accumulations (`x = x op e`, `L[i] = L[i] op e`: the next
 * iteration's loads and products go ahead, only the combine waits), or anything (serial).
 */
function carried(loop: For): 'independent' | 'accumulate' | 'serial' {
  const memo = carriedMemo.get(loop.body)?.get(loop.v);
  if (memo) return memo;
  const kind = carriedKind(loop);
  if (!carriedMemo.has(loop.body)) carriedMemo.set(loop.body, new Map());
  carriedMemo.get(loop.body)!.set(loop.v, kind);
  return kind;
}
const carriedMemo = new WeakMap<readonly Stmt[], Map<string, 'independent' | 'accumulate' | 'serial'>>();

function carriedKind(loop: For): 'independent' | 'accumulate' | 'serial' {
  const varying = new Set([loop.v]), own = new Set<string>();
  let kind: 'independent' | 'accumulate' = 'independent';
  // x op e (or e op x): the statement's own old value combined once
  const accumulates = (v: Expr, self: (x: Expr) => boolean) => v.k === 'binary' && (self(v.a) || self(v.b));
  // false as soon as an iteration needs the one before beyond an accumulation (the rest need not be looked at)
  const visit = (ss: readonly Stmt[]): boolean => ss.every((s) => {
    if (s.k === 'decl' && mentions(s.init, varying)) varying.add(s.name);
    if (s.k === 'local') own.add(s.name); // an array of the iteration's own: its stores carry nothing
    if (s.k === 'warpTree' || s.k === 'arrive') return false;
    if (s.k === 'assign') {
      if (!accumulates(s.value, (x) => x.k === 'var' && x.name === s.name)) return false;
      kind = 'accumulate';
    }
    if (s.k === 'store' && !own.has(s.buf) && !mentions(s.idx, varying)) {
      if (!accumulates(s.value, (x) => x.k === 'load' && x.buf === s.buf && exprId(x.idx) === exprId(s.idx))) return false;
      kind = 'accumulate';
    }
    return s.k === 'for' || s.k === 'if' ? visit(s.body) : true;
  });
  return visit(loop.body) ? kind : 'serial';
}

/** A launch of a GPU-scheduled kernel: its grid, block, shared bytes and the cost model's estimate (cycles). */
export interface LaunchShape {
  readonly kernel: string;
  readonly grid: number;
  readonly block: number;
  readonly shared: number;
  /** elements of register arrays a thread holds (a matmul's tm x tn accumulator tile, a cached row) */
  readonly registers: number;
  readonly cycles: number;
  /** block nests the launch runs side by side (more than 1: horizontally fused) */
  readonly nests: number;
}

/**
 * The block nests one launch runs: a block loop of one iteration whose body is two or more block nests is a
 * horizontally fused launch (schedules/horizontal.ts): its grid is theirs side by side, each block running one
 * nest (the first nest's blocks first); any other top-level block nest is one launch by itself.
 */
export function launchParts(top: For): readonly For[] {
  const merged = top.extent === 1 && top.body.length > 1 && top.body.every((s) => s.k === 'for' && s.kind === 'block');
  return merged ? (top.body as For[]) : [top];
}

/** A block nest's directly nested block loops (its grid, outermost first) and the body of the innermost. */
export function blockChain(top: For): { blocks: For[]; grid: number; body: readonly Stmt[] } {
  const blocks = [top];
  let b = top;
  while (b.body.length === 1 && b.body[0]!.k === 'for' && b.body[0]!.kind === 'block') blocks.push(b = b.body[0] as For);
  return { blocks, grid: blocks.reduce((n, x) => n * x.extent, 1), body: b.body };
}

/** The scopes of the local arrays declared in a block body. */
function scopesOf(body: readonly Stmt[]): Map<string, 'shared' | 'register'> {
  const out = new Map<string, 'shared' | 'register'>();
  walkStmts(body, (s) => { if (s.k === 'local') out.set(s.name, s.scope); });
  return out;
}

/** A part of a launch: `grid` blocks of `threads` threads (of the launch's wider blocks), each thread doing `work`. */
interface Part { readonly grid: number; readonly threads: number; readonly work: Work }

/**
 * Cycles of one launch (no launch overhead) running the parts' blocks side by side on blocks of `threads` threads,
 * register arrays of `registers` elements a thread (about 24 more registers for indices and addresses, as
 * tileRegisters): a single nest is launchCycles (waves of resident blocks; issue or path), several the longest of
 * the slowest block alone, every warp's instructions over the SMs' schedulers (a part's warps beyond its own
 * threads leave at once and issue nothing), and every block's time over the block slots the SMs hold at once (all
 * blocks are `threads` wide: that is what bounds residency); and never less than the global loads' bytes over L2's
 * bandwidth.
 */
function blockCycles(parts: readonly Part[], threads: number, shared: number, registers: number, g: GpuCaps): number {
  const regs = registers ? registers + 24 : 0;
  const l2 = parts.reduce((n, x) => n + x.grid * x.threads * x.work.global * 4, 0) / (g.sms * g.l2BytesPerCycle);
  if (parts.length === 1) return Math.max(l2, launchCycles(parts[0]!.grid, threads, parts[0]!.work.issue, shared, g, parts[0]!.work.path, regs));
  const warps = Math.ceil(threads / g.warp);
  const resident = residentBlocks(warps, shared, regs, g);
  const slowest = Math.max(...parts.map((x) => x.work.path));
  const issued = parts.reduce((n, x) => n + x.grid * Math.ceil(x.threads / g.warp) * x.work.issue, 0) / (g.sms * g.schedulers);
  const slots = parts.reduce((n, x) => n + x.grid * x.work.path, 0) / (g.sms * resident);
  return Math.max(slowest, issued, slots, l2);
}

/**
 * The parts of one block nest: its blocks, and where their body ends in an arrive and an if on it (a last-block
 * combine, schedules/gpu_last_block.ts), the if's body as a part of its own: grid/count blocks (one a counter),
 * each after its own work.
 */
function chainParts(c: { grid: number; body: readonly Stmt[] }, block: number, g: GpuCaps): Part[] {
  const scopes = scopesOf(c.body), threads = blockThreads(c.body), n = c.body.length;
  const arrive = c.body[n - 2], tail = c.body[n - 1];
  if (arrive?.k !== 'arrive' || tail?.k !== 'if') return [{ grid: c.grid, threads, work: blockWork(c.body, block, g, scopes) }];
  const own = blockWork(c.body.slice(0, -1), block, g, scopes), last = blockWork(tail.body, block, g, scopes);
  return [{ grid: c.grid, threads, work: own }, { grid: Math.ceil(c.grid / arrive.count), threads, work: { ...last, path: own.path + last.path } }];
}

/** A launch's shape and estimate (one or more block nests: launchParts). */
export function launchShape(kernel: string, top: For, g: GpuCaps = H100): LaunchShape {
  const chains = launchParts(top).map(blockChain);
  const block = Math.max(...chains.map((c) => blockThreads(c.body)));
  let shared = 0, registers = 0;
  for (const c of chains) {
    let r = 0;
    walkStmts(c.body, (s) => {
      if (s.k === 'local' && s.scope === 'shared') shared += (s.t === 'bool' ? 1 : 4) * s.size; // bools in bytes (cuda/render.ts)
      if (s.k === 'local' && s.scope === 'register') r += s.size;
    });
    registers = Math.max(registers, r);
  }
  const parts = chains.flatMap((c) => chainParts(c, block, g));
  const grid = chains.reduce((n, c) => n + c.grid, 0);
  const cycles = LAUNCH_CYCLES + blockCycles(parts, block, shared, registers, g);
  return { kernel, grid, block, shared, registers, cycles: Math.round(cycles), nests: parts.length };
}

/** The launches of a GPU-scheduled program, in order (each top-level block nest of each kernel is one). */
export function launchShapes(p: Program, g: GpuCaps = H100): LaunchShape[] {
  return p.kernels.flatMap((k) => k.body.flatMap((top) => (top.k === 'for' && top.kind === 'block' ? [launchShape(k.name, top, g)] : [])));
}

/** One comment line per launch (as `--dump-after schedule` ends for a GPU target), then the total estimate. */
export function describeLaunches(p: Program, g: GpuCaps = H100): string {
  const ls = launchShapes(p, g);
  const lines = ls.map((l) => `# launch ${l.kernel}: grid ${l.grid}${l.nests > 1 ? ` (${l.nests} nests)` : ''} x block ${l.block}${l.shared ? `, ${l.shared} B shared` : ''}${l.registers ? `, register arrays of ${l.registers} a thread` : ''}, estimate ${l.cycles} cycles`);
  return `${lines.join('\n')}\n# ${ls.length} launches, estimate ${ls.reduce((a, l) => a + l.cycles, 0)} cycles\n`;
}
