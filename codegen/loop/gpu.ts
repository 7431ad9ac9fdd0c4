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
import type { Expr, Program, Stmt } from './ir.js';
import { blockThreads, independentIterations, lexLess } from './analysis.js';
import { forEachExpr, walkStmts } from './visit.js';

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

const divisors = (n: number, max: number): number[] => {
  const out: number[] = [];
  for (let d = 1; d <= Math.min(n, max); d++) if (n % d === 0) out.push(d);
  return out;
};

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
 * Estimated cycles of a tiled [batch] M x K @ K x N matmul: the issue bound (every resident warp's instructions over
 * the schedulers) or one warp's latency path, whichever is longer (launchCycles). Per step of bk along K a thread
 * stages its share of A's and B's tiles (global loads: the path waits globalLatency once, the loads are
 * independent), then per k loads its tm + tn values from shared memory and issues its tm*tn FMAs, independent of
 * each other (no wait between them; the same accumulator's next FMA waits `latency`): a register tile issues tm*tn
 * FMAs where one output a thread issues 1, for the same wait, and reads tm + tn shared values for tm*tn FMAs instead
 * of 2 for 1. nvcc unrolls the constant-extent k loop, so K_UNROLL k's shared loads are in flight at once: the path
 * waits sharedLatency once per K_UNROLL k.
 */
export function matmulCycles(M: number, N: number, K: number, batch: number, t: MatmulTiles, g: GpuCaps): number {
  const T = tileThreads(t), steps = K / t.bk;
  const loads = Math.ceil((t.bm * t.bk) / T) + Math.ceil((t.bk * t.bn) / T);
  // per step: global loads into shared (with address arithmetic), shared reads (an SM reads 32 floats of shared
  // memory per cycle but issues 4 x 32 FMAs: a shared read costs 4 FMA slots), FMAs, two barriers
  const perStep = 4 * loads + 4 * t.bk * (t.tm + t.tn) + t.bk * t.tm * t.tn + 16;
  const perThread = steps * perStep + 2 * t.tm * t.tn;
  const kPath = g.sharedLatency / Math.min(K_UNROLL, t.bk) + t.tm + t.tn + Math.max(g.latency, t.tm * t.tn);
  const stepPath = g.globalLatency + 4 * loads + 2 * BARRIER_CYCLES + t.bk * kPath;
  const path = steps * stepPath + 2 * t.tm * t.tn + g.globalLatency;
  const blocks = batch * (M / t.bm) * (N / t.bn);
  const shared = 4 * t.bk * (t.bm + t.bn);
  const compute = launchCycles(blocks, T, perThread, shared, g, path, tileRegisters(t));
  const l2 = (blocks * steps * shared) / (g.sms * g.l2BytesPerCycle);
  return Math.max(compute, l2);
}

/** Whether tiles fit a block: threads, shared memory, and registers under __launch_bounds__ (no spills). */
export function tilesFit(t: MatmulTiles, g: GpuCaps): boolean {
  const T = tileThreads(t), r = tileRegisters(t);
  return T <= g.maxThreadsPerBlock && t.tm * t.tn <= 64 && 4 * t.bk * (t.bm + t.bn) <= g.sharedPerBlock && r <= 255 && T * r <= g.registersPerSm;
}

/** The cheapest tiles by the cost model (every tile divides its extent, so no thread needs a bounds guard). */
export function matmulTiles(M: number, N: number, K: number, batch: number, g: GpuCaps = H100): MatmulTiles {
  let best: MatmulTiles | undefined, bestCost = Infinity;
  for (const bm of divisors(M, 128)) for (const bn of divisors(N, 128)) {
    for (const tm of divisors(bm, 8)) for (const tn of divisors(bn, 8)) {
      for (const bk of divisors(K, 32)) {
        const t = { bm, bn, bk, tm, tn };
        if (!tilesFit(t, g)) continue;
        const c = matmulCycles(M, N, K, batch, t, g);
        if (c < bestCost) { best = t; bestCost = c; }
      }
    }
  }
  return best!;
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
export function reductionCycles(rows: number, n: number, W: number, g: GpuCaps = H100): number {
  if (W === 1) {
    const T = gridThreads(rows, n * REDUCE_STEP, g);
    return LAUNCH_CYCLES + launchCycles(rows / T, T, n * REDUCE_STEP, 0, g);
  }
  const T = Math.min(W, TREE_THREADS), B = W / T;
  const first = LAUNCH_CYCLES + launchCycles(rows * B, T, (n / W) * REDUCE_STEP + Math.log2(T) * TREE_LEVEL, 4 * T, g);
  return B === 1 ? first : first + LAUNCH_CYCLES + launchCycles(rows, 1, Math.log2(B) * TREE_LEVEL, 0, g);
}

/**
 * The tree width for `rows` reductions of n elements (ir/ops.ts treeLevels): the power of two dividing n (up to
 * `max`, MAX_TREE unless said) the cost model finds cheapest, or 1 (serial) when no tree beats one thread per row.
 */
export function reductionTree(rows: number, n: number, g: GpuCaps = H100, max = MAX_TREE): number {
  let best = 1, bestCost = reductionCycles(rows, n, 1, g);
  for (let W = 2; W <= max && n % W === 0; W *= 2) {
    const c = reductionCycles(rows, n, W, g);
    if (c < bestCost) { best = W; bestCost = c; }
  }
  return best;
}

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

/** A thread's instructions and its latency path (cycles it takes alone: each instruction waits for the one before). */
interface Work { readonly issue: number; readonly path: number }

/**
 * Instructions one thread of a block issues for the block's body run on `threads` threads, and their path: every
 * instruction waits `latency` for the one before, except that the iterations of an unrolled loop that are
 * independent (a register tile's FMAs, its epilogue's stores) issue back to back, each waiting only for its own
 * operands: the loop's path is one iteration's plus the others' issue.
 */
function blockWork(body: readonly Stmt[], threads: number, g: GpuCaps): Work {
  let issue = 0, path = 0;
  const add = (w: Work, times = 1) => { issue += times * w.issue; path += times * w.path; };
  const plain = (n: number): Work => ({ issue: n, path: n * g.latency });
  for (const s of body) {
    if (s.k === 'if') { add(plain(1)); add(blockWork(s.body, threads, g)); } // a guarded tail costs as much as a full tile
    else if (s.k === 'warpTree') add(plain(4 * Math.log2(s.size) + BARRIER_CYCLES)); // a shuffle, a combine a level
    else if (s.k !== 'for') add(plain(1));
    else if (s.kind === 'thread') {
      const w = threadWork(s.body, g);
      add({ issue: Math.ceil(s.extent / threads) * w.issue + BARRIER_CYCLES, path: Math.ceil(s.extent / threads) * w.path + BARRIER_CYCLES * g.latency });
    } else {
      const w = blockWork(s.body, threads, g), one = w.issue ? w : plain(1);
      if (s.kind === 'unroll' && tileIterations(s)) add({ issue: s.extent * one.issue, path: one.path + (s.extent - 1) * one.issue });
      else add(one, s.extent);
    }
  }
  return { issue, path };
}

/** A thread loop's body (statements of one thread: no thread loops inside). */
const threadWork = (body: readonly Stmt[], g: GpuCaps): Work => {
  const w = blockWork(body, 1, g);
  return w.issue ? w : { issue: 1, path: g.latency };
};

function mentions(e: Expr, v: string): boolean {
  let found = false;
  forEachExpr(e, (x) => { if (x.k === 'var' && x.name === v) found = true; });
  return found;
}

/** Whether an unrolled loop's iterations are independent: no scalar assigned, each array element stored by one. */
function tileIterations(loop: For): boolean {
  let ok = true;
  walkStmts(loop.body, (s) => {
    if (s.k === 'assign' || s.k === 'warpTree' || (s.k === 'store' && !mentions(s.idx, loop.v))) ok = false;
  });
  return ok;
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

/**
 * Cycles of one launch running the parts' blocks side by side on blocks of `threads` threads, the longest of three
 * bounds: the slowest block alone (a warp issues once per `latency`), every warp's instructions over the SMs'
 * schedulers (a part's warps beyond its own threads leave at once and issue nothing), and every block's time over
 * the block slots the SMs hold at once (all blocks are `threads` wide: that is what bounds residency). A single
 * nest is launchCycles.
 */
export function partsCycles(parts: readonly { grid: number; threads: number; work: number; path?: number }[], threads: number, shared: number, g: GpuCaps, registers = 0): number {
  const pathOf = (x: { work: number; path?: number }) => x.path ?? x.work * g.latency;
  if (parts.length === 1) return launchCycles(parts[0]!.grid, threads, parts[0]!.work, shared, g, pathOf(parts[0]!), registers);
  const warps = Math.ceil(threads / g.warp);
  const resident = residentBlocks(warps, shared, registers, g);
  const slowest = Math.max(...parts.map(pathOf));
  const issued = parts.reduce((n, x) => n + x.grid * Math.ceil(x.threads / g.warp) * x.work, 0) / (g.sms * g.schedulers);
  const slots = parts.reduce((n, x) => n + x.grid * pathOf(x), 0) / (g.sms * resident);
  return Math.max(slowest, issued, slots);
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
  const parts = chains.map((c) => {
    const w = blockWork(c.body, block, g);
    return { grid: c.grid, threads: blockThreads(c.body), work: w.issue, path: w.path };
  });
  const grid = parts.reduce((n, x) => n + x.grid, 0);
  // a thread's registers: its register arrays' elements, and about 24 more for indices and addresses (as tileRegisters)
  const cycles = LAUNCH_CYCLES + partsCycles(parts, block, shared, g, registers ? registers + 24 : 0);
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
