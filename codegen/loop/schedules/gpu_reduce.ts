// Recipe: declared reduction trees (codegen/loop/tree_reduce.ts) on a block's threads. gpu_grid.ts gives a nest
// whose rows hold trees one row per block (a launch of one-thread blocks); treeThreads then runs each tree's W
// partials on W threads of the block, its partials in shared memory, and every tree level as a thread loop (a
// barrier after each), so the combination order stays the declared one: the result is bit for bit the serial
// evaluation of the same tree. Fits a row body of pure decls, trees (separated by pure decls) and a tail after the
// last tree, which runs on one thread.
import { E, type Expr, S, type Stmt } from '../ir.js';
import { assigned } from '../analysis.js';
import type { Recipe } from './index.js';
import { type For, substStmts } from './loops.js';
import { primitive } from './primitive.js';
import { splitTree } from './gpu_split_tree.js';
import { warpTree } from './warp_tree.js';
import { TREE_THREADS } from '../gpu.js';

/** The most threads a CUDA block holds. */
const MAX_BLOCK_THREADS = 1024;

/** One tree as lowering emits it: local P[W]; init loop; partial loops (ko, ki); level loops; `decl acc = P[0]`. */
export interface Tree {
  readonly local: Extract<Stmt, { k: 'local' }>;
  readonly init: For;
  readonly outer: For;
  readonly inner: For;
  /** per level (W/2 first): the loop, or the bare store of the last level (its unit loop dropped) */
  readonly levels: readonly Stmt[];
  readonly acc: Extract<Stmt, { k: 'decl' }>;
}

export type Part = { k: 'decl'; s: Stmt } | { k: 'tree'; t: Tree };

const storesTo = (s: Stmt | undefined, P: string): boolean => s?.k === 'store' && s.buf === P;

/** The tree starting at body[i], and the index after it, or undefined. */
function treeAt(body: readonly Stmt[], i: number): [Tree, number] | undefined {
  const local = body[i], init = body[i + 1], outer = body[i + 2];
  if (local?.k !== 'local' || local.scope !== 'register' || init?.k !== 'for' || outer?.k !== 'for') return undefined;
  const P = local.name, W = local.size;
  if (init.extent !== W || init.body.length !== 1 || !storesTo(init.body[0], P)) return undefined;
  const inner = outer.body[0];
  if (outer.body.length !== 1 || inner?.k !== 'for' || inner.extent !== W || !storesTo(inner.body[inner.body.length - 1], P)) return undefined;
  const levels: Stmt[] = [];
  let j = i + 3;
  for (let s = W >> 1; s >= 1; s >>= 1, j++) {
    const l = body[j];
    const ok = l?.k === 'for' ? l.extent === s && l.body.length === 1 && storesTo(l.body[0], P) : s === 1 && storesTo(l, P);
    if (!ok) return undefined;
    levels.push(l!);
  }
  const acc = body[j];
  if (acc?.k !== 'decl' || acc.init.k !== 'load' || acc.init.buf !== P) return undefined;
  return [{ local, init, outer, inner, levels, acc }, j + 1];
}

/** A row body as pure decls and trees, then the tail (from the statement after the last tree), or undefined. */
export function treeParts(body: readonly Stmt[]): { parts: Part[]; tail: Stmt[] } | undefined {
  const parts: Part[] = [];
  let i = 0, last = -1;
  while (i < body.length) {
    const t = treeAt(body, i);
    if (t) { parts.push({ k: 'tree', t: t[0] }); i = t[1]; last = parts.length; continue; }
    const s = body[i]!;
    if (s.k !== 'decl') break;
    parts.push({ k: 'decl', s });
    i++;
  }
  if (last < 0) return undefined;
  // decls after the last tree belong to the tail; a decl before it must never be assigned (every thread computes it)
  const tail = [...parts.slice(last).map((p) => (p as { s: Stmt }).s), ...body.slice(i)];
  const kept = parts.slice(0, last);
  const changed = assigned([...body]);
  if (kept.some((p) => p.k === 'decl' && p.s.k === 'decl' && changed.has(p.s.name))) return undefined;
  return { parts: kept, tail };
}

/** The block's statements with each tree on W threads (fresh names from `fresh`), the tail on one thread. */
function threaded(parts: readonly Part[], tail: readonly Stmt[], fresh: (p: string) => string): Stmt[] {
  const out: Stmt[] = [];
  const thread = (l: For): Stmt => ({ ...l, kind: 'thread' });
  for (const p of parts) {
    if (p.k === 'decl') { out.push(p.s); continue; }
    const { local, init, outer, inner, levels, acc } = p.t;
    out.push({ ...local, scope: 'shared' }, thread(init));
    // each partial's elements in their order: the partials' loop outside (their iterations are independent)
    out.push(thread({ ...inner, body: [{ ...outer, body: inner.body }] }));
    for (const l of levels) out.push(l.k === 'for' ? thread(l) : S.for(fresh('tl'), 1, [l], 'thread'));
    out.push(acc);
  }
  if (tail.length) out.push(S.for(fresh('tz'), 1, [...tail], 'thread'));
  return out;
}

/** The innermost block loop of a launch and the unit thread loop that is its whole body, or undefined. */
export function unitLaunch(top: Stmt): { block: For; thread: For } | undefined {
  if (top.k !== 'for' || top.kind !== 'block') return undefined;
  let b: For = top;
  while (b.body.length === 1 && b.body[0]!.k === 'for' && b.body[0]!.kind === 'block') b = b.body[0] as For;
  const t = b.body[0];
  return b.body.length === 1 && t?.k === 'for' && t.kind === 'thread' && t.extent === 1 ? { block: b, thread: t } : undefined;
}

export interface TreeThreadsArgs {
  /** a top-level launch (its outermost block loop) of one-thread blocks whose row holds trees */
  readonly launch: string;
}

export const treeThreads = primitive<TreeThreadsArgs>({
  name: 'treeThreads',
  check: (k, a) => {
    const top = k.body.find((s) => s.k === 'for' && s.v === a.launch);
    if (!top) return `no top-level launch '${a.launch}'`;
    const u = unitLaunch(top);
    if (!u) return `launch '${a.launch}' is not of one-thread blocks`;
    const tp = treeParts(u.thread.body);
    if (!tp) return `the row of launch '${a.launch}' holds no tree in the form lowering emits`;
    // a tree wider than a block runs split over blocks (gpu_split_tree.ts) when it is the row's only one
    return tp.parts.some((p) => p.k === 'tree' && p.t.local.size > MAX_BLOCK_THREADS) ? `a tree wider than ${MAX_BLOCK_THREADS} threads does not fit a block` : undefined;
  },
  apply: (k, a) => {
    const swap = (s: Stmt): Stmt => {
      if (s.k !== 'for' || s.kind !== 'block') return s;
      const u = unitLaunch(s)!;
      if (s !== u.block) return { ...s, body: s.body.map(swap) };
      const zero = new Map<string, Expr>([[u.thread.v, E.i32(0)]]);
      const { parts, tail } = treeParts(substStmts(u.thread.body, zero))!;
      return { ...s, body: threaded(parts, tail, k.fresh) };
    };
    return { body: k.body.map((s) => (s.k === 'for' && s.v === a.launch ? swap(s) : s)) };
  },
});

export const gpuReduce: Recipe = {
  name: 'gpu-reduce',
  run: (s, caps) => {
    if (!caps.gpu) return;
    // a tree wider than a block: over blocks and a second launch (gpu_split_tree.ts); else on one block's threads
    for (const top of [...s.body]) {
      if (top.k === 'for' && top.kind === 'block' && !s.try(splitTree, { launch: top.v, threads: TREE_THREADS })) s.try(treeThreads, { launch: top.v });
    }
    // the trees' last levels (16 to 1) on one warp, in registers
    for (const top of [...s.body]) if (top.k === 'for' && top.kind === 'block') s.try(warpTree, { launch: top.v });
  },
};
