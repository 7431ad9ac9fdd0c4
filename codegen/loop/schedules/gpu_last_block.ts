// Primitive and recipe: the last-block combine. A split-K matmul (gpu_split_k.ts) is two launches: A, whose blocks
// each store one partial tile (`G[p*rows + x]`, block loop p over the W partials, the other block loops the output
// tile), and C, a grid over the outputs x that loads each output's W partials back (`G[w*rows + x]`), runs the
// declared levels and the row's tail (an optimizer's update). Here C runs inside A: each block, after storing its
// partial tile, arrives at its tile's counter (loop IR `arrive`, kiln_cuda.h KILN_ARRIVE); the last of the tile's W
// blocks runs C's body for every output of the tile, over the same threads and outputs as its own partial's stores.
// Each output's partials are still combined by the declared levels in order, so the result is bit for bit; the
// counters are zeroed by a one-block nest before A (horizontal.ts moves it into the launch before) and set back to 0
// by each tile's last block. A split tree's partials (gpu_split_tree.ts: `G[x*W + p]`, one output a block, the
// levels in place in G) are taken the same way. The recipe applies it to split-K where the cost model finds one
// launch cheaper than two.
import { type GpuCaps, launchShape } from '../gpu.js';
import { accesses } from '../memplan.js';
import { E, type Expr, S, type Stmt } from '../ir.js';
import { forEachExpr, forEachStmtExpr, mapChildren, mapStmtExprs as mapOwnExprs, walkStmts } from '../visit.js';
import { simplifyIndices } from './cleanup.js';
import { dropDeadDecls } from './dead_decls.js';
import { renamed } from './gpu_loops.js';
import type { Recipe } from './index.js';
import { type For, affineOf, declaredNames, ownExprs, substExpr, substStmts } from './loops.js';
import { primitive } from './primitive.js';

export interface LastBlockArgs {
  /** the partials buffer of a split-K matmul or a split tree (stored by one launch, used by a later one) */
  readonly partials: string;
}

/** The largest number of output tiles (counters): one block of threads zeroes them. */
const MAX_TILES = 1024;

const isLaunch = (s: Stmt): s is For => s.k === 'for' && s.kind === 'block';

/** The output index while parsing (no IR name has a dot). */
const X = 'x.out';

/** The buffers statements load and store, their own local arrays left out. */
function bufferAccesses(stmts: readonly Stmt[]): { loads: Set<string>; stores: Set<string> } {
  const a = accesses(stmts), locals = new Set<string>();
  walkStmts(stmts, (s) => { if (s.k === 'local') locals.add(s.name); });
  for (const x of locals) { a.loads.delete(x); a.stores.delete(x); }
  return a;
}

/** e with every subexpression equal to s*g + t (affine: exactly these terms) replaced by x; g and t left elsewhere. */
function flatten(e: Expr, g: string, t: string, T: number, x: Expr): Expr {
  const a = affineOf(e);
  if (a && a.c === 0 && a.terms.size === 2 && a.terms.get(g) === T && a.terms.get(t) === 1) return x;
  return mapChildren(e, (c) => flatten(c, g, t, T, x));
}

/** The value of an integer index expression where env binds its variables (non-negative operands), or undefined. */
function evalIndex(e: Expr, env: ReadonlyMap<string, number>): number | undefined {
  if (e.k === 'const') return e.v;
  if (e.k === 'var') return env.get(e.name);
  if (e.k !== 'binary' || e.t !== 'i32') return undefined;
  const a = evalIndex(e.a, env), b = evalIndex(e.b, env);
  if (a === undefined || b === undefined || a < 0 || b < 0) return undefined;
  switch (e.op) {
    case 'add': return a + b;
    case 'sub': return a - b;
    case 'mul': return a * b;
    case 'idiv': return b > 0 ? Math.floor(a / b) : undefined;
    case 'mod': return b > 0 ? a % b : undefined;
    default: return undefined;
  }
}

/** The most index evaluations accessesPartials makes (outputs times the values of the loops around each access). */
const MAX_CHECKED = 1 << 22;

/**
 * Whether every access of G in the statements (C's body at output X, of `rows`) is one of that output's W partials,
 * G[X*sx + w*sp] for some w < W, the index computed through the body's i32 decls; checked for every output and every
 * value of the loops around the access.
 */
function accessesPartials(body: readonly Stmt[], G: string, rows: number, W: number, sx: number, sp: number): boolean {
  const sites: { idx: Expr; decls: [string, Expr][]; loops: For[] }[] = [];
  const visit = (ss: readonly Stmt[], decls: [string, Expr][], loops: For[]): void => ss.forEach((s) => {
    if (s.k === 'decl' && s.t === 'i32') decls.push([s.name, s.init]);
    for (const e of ownExprs(s)) forEachExpr(e, (x) => { if (x.k === 'load' && x.buf === G) sites.push({ idx: x.idx, decls: [...decls], loops }); });
    if (s.k === 'store' && s.buf === G) sites.push({ idx: s.idx, decls: [...decls], loops });
    if (s.k === 'for') visit(s.body, [...decls], [...loops, s]);
    if (s.k === 'if') visit(s.body, [...decls], loops);
  });
  visit(body, [], []);
  const evaluations = sites.reduce((n, x) => n + rows * x.loops.reduce((m, l) => m * l.extent, 1), 0);
  if (evaluations > MAX_CHECKED) return false;
  return sites.every(({ idx, decls, loops }) => {
    for (let x = 0; x < rows; x++) {
      const values = loops.reduce((n, l) => n * l.extent, 1);
      for (let v = 0; v < values; v++) {
        const env = new Map<string, number>([[X, x]]);
        let rest = v;
        for (const l of loops) { env.set(l.v, rest % l.extent); rest = Math.floor(rest / l.extent); }
        for (const [n, init] of decls) { const d = evalIndex(init, env); if (d !== undefined) env.set(n, d); }
        const at = evalIndex(idx, env), off = at === undefined ? -1 : at - x * sx;
        if (!(off >= 0 && off % sp === 0 && off / sp < W)) return false;
      }
    }
    return true;
  });
}

/** The store of G inside a statement list, with the path of statements down to it, or how many there are. */
function storesOf(body: readonly Stmt[], G: string): { s: Extract<Stmt, { k: 'store' }>; path: Stmt[] }[] {
  const out: { s: Extract<Stmt, { k: 'store' }>; path: Stmt[] }[] = [];
  const visit = (ss: readonly Stmt[], path: Stmt[]) => {
    for (const s of ss) {
      if (s.k === 'store' && s.buf === G) out.push({ s, path });
      if (s.k === 'for' || s.k === 'if') visit(s.body, [...path, s]);
    }
  };
  visit(body, []);
  return out;
}

/** The two launches and what the rewrite needs, or why the last-block combine does not apply. */
function parse(k: { body: readonly Stmt[]; buffers: readonly { name: string; size: number }[] }, a: LastBlockArgs) {
  const G = a.partials, buf = k.buffers.find((b) => b.name === G);
  if (!buf) return `no buffer '${G}'`;
  const ai = k.body.findIndex((s) => isLaunch(s) && bufferAccesses([s]).stores.has(G));
  const ci = k.body.findIndex((s, i) => i > ai && isLaunch(s) && bufferAccesses([s]).loads.has(G));
  if (ai < 0 || ci < 0) return `no launch storing '${G}' and a later one loading it`;
  const A = k.body[ai] as For, C = k.body[ci] as For;
  // A: nested block loops, one of them p (stride rows, W partials), the store in one thread loop of the block body
  const blocks: For[] = [A];
  for (let b = A; b.body.length === 1 && isLaunch(b.body[0]!);) blocks.push((b = b.body[0] as For));
  const inner = blocks[blocks.length - 1]!.body;
  const stores = storesOf(inner, G);
  if (stores.length !== 1 || storesOf([A], G).length !== 1) return `launch ${A.v} stores '${G}' more than once`;
  const { s: store, path } = stores[0]!;
  const thread = path[0];
  if (thread?.k !== 'for' || thread.kind !== 'thread') return `the store of '${G}' is not in a thread loop of the block`;
  // C: a block loop over a thread loop, its iterations the outputs g*T + t (guarded when they pass rows)
  const cThread = C.body.length === 1 ? C.body[0]! : undefined;
  if (blocks.length < 2 || cThread?.k !== 'for' || cThread.kind !== 'thread') return `launch ${C.v} is no grid of one thread loop`;
  const T = cThread.extent;
  let body = cThread.body;
  const guard = body.length === 1 && body[0]!.k === 'if' ? body[0]! : undefined;
  const rows = guard?.k === 'if' && guard.cond.k === 'binary' && guard.cond.b.k === 'const' ? guard.cond.b.v : C.extent * T;
  // A's partial p: a block loop over the W = size/rows partials, G[p*rows + x] (split-K) or G[x*W + p] (split tree)
  const idx = affineOf(store.idx), W = buf.size / rows;
  const p = blocks.find((b) => idx && b.extent === W && (idx.terms.get(b.v) === rows || idx.terms.get(b.v) === 1));
  if (!idx || !p || !Number.isInteger(W)) return `no block loop of launch ${A.v} runs the partials of '${G}'`;
  const sp = idx.terms.get(p.v)!, sx = sp === rows ? 1 : W;
  // the rest of the store's index (p = 0) is its output x times sx
  if ([...idx.terms].some(([v, c]) => v !== p.v && c % sx !== 0) || idx.c % sx !== 0) return `launch ${A.v} stores '${G}' other than by output and partial`;
  let other = 0;
  walkStmts([thread], (s) => { if (s.k === 'store' && s !== store) other++; });
  if (other) return `the thread loop storing '${G}' stores more`;
  if (guard?.k === 'if') {
    const c = guard.cond, cond = c.k === 'binary' && c.op === 'lt' ? affineOf(c.a) : undefined;
    if (!cond || c.k !== 'binary' || c.b.k !== 'const' || c.b.v !== rows || flatten(c.a, C.v, cThread.v, T, E.i32(0)) !== E.i32(0)) return `launch ${C.v}'s guard is not its outputs' count`;
    body = guard.body;
  } else if (C.extent * T !== rows) return `launch ${C.v} covers ${C.extent * T} outputs, not ${rows}`;
  // C's body at output X: every use of its block and thread index is the output g*T + t; it loads G at w*rows + X
  // (one thread a block: the block index is the output)
  const one = new Map([[cThread.v, E.i32(0)], [C.v, E.v(X)]]);
  const f = (e: Expr) => (T === 1 ? substExpr(e, one) : flatten(e, C.v, cThread.v, T, E.v(X)));
  const at = (ss: readonly Stmt[]): Stmt[] => ss.map((s): Stmt => {
    const t = mapOwnExprs(s, f);
    return t.k === 'for' || t.k === 'if' ? { ...t, body: at(t.body) } : t;
  });
  const combine = at(body);
  let bad: string | undefined;
  forEachStmtExpr(combine, (e) => {
    if (e.k === 'var' && (e.name === C.v || e.name === cThread.v)) bad ??= `launch ${C.v} uses its block or thread index other than as its output`;
  });
  if (bad) return bad;
  if (!accessesPartials(combine, G, rows, W, sx, sp)) return `launch ${C.v} uses '${G}' other than at its output's partials`;
  return { ai, ci, A, C, blocks, p, rows, W, sx, thread, store, combine };
}

/** Why C cannot run inside A's blocks (what it touches clashes with A or with the launches it moves before). */
function clash(k: { body: readonly Stmt[] }, r: { ai: number; ci: number; A: For; C: For }, G: string): string | undefined {
  const c = bufferAccesses([r.C]), a = bufferAccesses([r.A]);
  // G: C's accesses are its output's partials (accessesPartials), stored before the last block arrives
  if (a.loads.has(G)) return `launch ${r.A.v} loads '${G}'`;
  for (const b of c.stores) if (b !== G && (a.loads.has(b) || a.stores.has(b))) return `launch ${r.C.v} stores '${b}', which launch ${r.A.v} uses`;
  for (const b of c.loads) if (b !== G && a.stores.has(b)) return `launch ${r.C.v} loads '${b}', which launch ${r.A.v} stores`;
  for (const l of k.body.slice(r.ai + 1, r.ci)) {
    const x = bufferAccesses([l]);
    for (const b of x.stores) if (c.loads.has(b) || c.stores.has(b)) return `a launch between stores '${b}', which launch ${r.C.v} uses`;
    for (const b of c.stores) if (x.loads.has(b)) return `a launch between loads '${b}', which launch ${r.C.v} stores`;
  }
  return undefined;
}

export const lastBlock = primitive<LastBlockArgs>({
  name: 'lastBlock',
  check: (k, a) => {
    const r = parse(k, a);
    if (typeof r === 'string') return r;
    const tiles = r.blocks.reduce((n, b) => (b === r.p ? n : n * b.extent), 1);
    if (tiles > MAX_TILES) return `${tiles} output tiles, more counters than one block zeroes`;
    return clash(k, r, a.partials);
  },
  apply: (k, a) => {
    const r = parse(k, a) as Exclude<ReturnType<typeof parse>, string>;
    const { A, C, blocks, p, thread, store } = r;
    // the tile's counter: the other block loops' row-major index
    const tileLoops = blocks.filter((b) => b !== p), tiles = tileLoops.reduce((n, b) => n * b.extent, 1);
    const tile = tileLoops.reduce((acc: Expr, b) => E.add(E.mul(acc, E.i32(b.extent)), E.v(b.v)), E.i32(0));
    const counter = k.fresh('tiles'), last = k.fresh('last'), x = k.fresh('x');
    const combine = substStmts(r.combine, new Map([[X, E.v(x)]]));
    // the thread loop of A's stores, each store of a partial of output x now C's body at x
    const rest = substExpr(store.idx, new Map([[p.v, E.i32(0)]]));
    const outputAt = S.decl(x, 'i32', r.sx === 1 ? rest : E.binary('idiv', rest, E.i32(r.sx)));
    const swap = (ss: readonly Stmt[]): Stmt[] => ss.flatMap((s): Stmt[] => (s === store ? [outputAt, ...combine] : s.k === 'for' || s.k === 'if' ? [{ ...s, body: swap(s.body) }] : [s]));
    // every name the copy declares (the thread loop's and the combine's) fresh: the block's own are in scope
    const swapped = swap([thread]), mine = [...declaredNames(swapped)].filter((n) => n !== x);
    const copy = renamed(swapped, new Map(mine.map((n) => [n, k.fresh(n.replace(/_?\d+$/, ''))])));
    const innermost = blocks[blocks.length - 1]!;
    const body = [S.local(last, 'i32', 1, 'shared'), ...innermost.body, S.arrive(counter, tile, r.W, last), S.if(E.binary('ne', E.load(last, E.i32(0), 'i32'), E.i32(0)), copy)];
    const rebuild = (i: number): Stmt => (i === blocks.length - 1 ? { ...innermost, body } : { ...blocks[i]!, body: [rebuild(i + 1)] });
    const zb = k.fresh('zb'), zt = k.fresh('zt');
    const zero = S.for(zb, 1, [S.for(zt, tiles, [S.store(counter, E.v(zt), E.i32(0))], 'thread')], 'block');
    const out = k.body.flatMap((s) => (s === A ? [zero, rebuild(0)] : s === C ? [] : [s]));
    return { body: out, buffers: [...k.buffers, { name: counter, dtype: 'int32', size: tiles, kind: 'temp' }] };
  },
});

/**
 * The last-block combine for each split-K partials buffer of the kernel, where the cost model finds the merged
 * launch cheaper than the two (the counters' zeroing is left out: horizontal.ts runs it in the launch before).
 */
export const gpuLastBlock: Recipe = {
  name: 'gpu-last-block',
  run: (s, caps) => {
    const g: GpuCaps | undefined = caps.gpu;
    if (!g) return;
    // split-K's partials only: a split tree's combine (gpu_split_tree.ts) the primitive takes too, but its launch is
    // mostly merged with other combines by horizontal.ts, and the seed CNN at b1024 was 1.7% slower by the model
    // with its split trees' combines in their last blocks (13 launches, 876,797 cycles, against 14 and 862,501)
    for (const b of s.program.buffers.filter((x) => x.name.startsWith('splitk'))) {
      const args = { partials: b.name };
      if (s.check(lastBlock, args) !== undefined) continue;
      const view = { body: s.body, buffers: s.program.buffers, fresh: (x: string) => s.fresh(x) };
      const r = parse(view, args) as Exclude<ReturnType<typeof parse>, string>;
      const trial = lastBlock.apply(view, args).body.filter(isLaunch), merged = trial.find((x) => bufferAccesses([x]).stores.has(b.name))!;
      // the counters' zeroing joins the kernel before where that is all launches (horizontal.ts), else costs one
      const prev = s.program.kernels[s.kernel - 1];
      const zero = prev?.body.length && prev.body.every(isLaunch) && !prev.allreduce ? 0 : launchShape('', trial[trial.indexOf(merged) - 1]!, g).cycles;
      if (launchShape('', merged, g).cycles + zero >= launchShape('', r.A, g).cycles + launchShape('', r.C, g).cycles) continue;
      s.apply(lastBlock, args);
      const loop = s.body.find((x): x is For => isLaunch(x) && bufferAccesses([x]).stores.has(b.name))!.v;
      s.try(dropDeadDecls, { loop });
      s.try(simplifyIndices, { loop });
    }
  },
};
