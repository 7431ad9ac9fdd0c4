// Primitive and recipe: the last-block combine. A split-K matmul (gpu_split_k.ts) is two launches: A, whose blocks
// each store one partial tile (`G[p*rows + x]`, block loop p over the W partials, the other block loops the output
// tile), and C, a grid over the outputs x that loads each output's W partials back (`G[w*rows + x]`), runs the
// declared levels and the row's tail (an optimizer's update). Here C runs inside A: each block, after storing its
// partial tile, arrives at its tile's counter (loop IR `arrive`, kiln_cuda.h KILN_ARRIVE); the last of the tile's W
// blocks runs C's body for every output of the tile, over the same threads and outputs as its own partial's stores.
// Each output's partials are still combined by the declared levels in order, so the result is bit for bit; the
// counters are zeroed by a one-block nest before A (horizontal.ts moves it into the launch before) and set back to 0
// by each tile's last block. The recipe applies it where the cost model finds one launch cheaper than two.
import { type GpuCaps, launchShape } from '../gpu.js';
import { accesses } from '../memplan.js';
import { E, type Expr, S, type Stmt } from '../ir.js';
import { forEachExpr, forEachStmtExpr, mapChildren, mapStmtExprs as mapOwnExprs, walkStmts } from '../visit.js';
import { simplifyIndices } from './cleanup.js';
import { dropDeadDecls } from './dead_decls.js';
import { renamed } from './gpu_loops.js';
import type { Recipe } from './index.js';
import { type For, affineOf, declaredNames, ownExprs, substStmts } from './loops.js';
import { primitive } from './primitive.js';

export interface LastBlockArgs {
  /** the partials buffer of a split-K matmul (stored by one launch, loaded by a later one) */
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

/** The most outputs whose partials' loads loadsPartials checks one by one. */
const MAX_CHECKED = 1 << 20;

/**
 * Whether every load of G in the statements (C's body at output X) is of that output's partial w for each w of a
 * loop of W iterations: G[w*rows + X], the index computed through the body's i32 decls; checked for every output.
 */
function loadsPartials(body: readonly Stmt[], G: string, rows: number, W: number): boolean {
  const sites: { idx: Expr; decls: [string, Expr][]; w: string }[] = [];
  const visit = (ss: readonly Stmt[], decls: [string, Expr][], loop: string | undefined): boolean => ss.every((s) => {
    if (s.k === 'decl' && s.t === 'i32') decls.push([s.name, s.init]);
    let ok = true;
    for (const e of ownExprs(s)) forEachExpr(e, (x) => {
      if (x.k !== 'load' || x.buf !== G) return;
      if (loop === undefined) ok = false;
      else sites.push({ idx: x.idx, decls: [...decls], w: loop });
    });
    if (s.k === 'for') return ok && visit(s.body, [...decls], s.extent === W ? s.v : loop);
    if (s.k === 'if') return ok && visit(s.body, [...decls], loop);
    return ok;
  });
  if (!visit(body, [], undefined) || rows * 2 * sites.length > MAX_CHECKED) return false;
  return sites.every(({ idx, decls, w }) => {
    for (let x = 0; x < rows; x++) for (const p of [0, W - 1]) {
      const env = new Map<string, number>([[X, x], [w, p]]);
      for (const [n, init] of decls) { const v = evalIndex(init, env); if (v !== undefined) env.set(n, v); }
      if (evalIndex(idx, env) !== p * rows + x) return false;
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
  const idx = affineOf(store.idx);
  const p = blocks.find((b) => idx && idx.terms.get(b.v)! * b.extent === buf.size);
  if (!idx || !p) return `no block loop of launch ${A.v} strides '${G}' by its partials`;
  const rows = idx.terms.get(p.v)!, W = p.extent;
  let other = 0;
  walkStmts([thread], (s) => { if (s.k === 'store' && s !== store) other++; });
  if (other) return `the thread loop storing '${G}' stores more`;
  // C: a block loop over a thread loop, its iterations the outputs g*T + t (guarded when they pass rows)
  const cThread = C.body.length === 1 ? C.body[0]! : undefined;
  if (blocks.length < 2 || cThread?.k !== 'for' || cThread.kind !== 'thread') return `launch ${C.v} is no grid of one thread loop`;
  const T = cThread.extent;
  let body = cThread.body;
  const guard = body.length === 1 && body[0]!.k === 'if' ? body[0]! : undefined;
  if (guard?.k === 'if') {
    const c = guard.cond, cond = c.k === 'binary' && c.op === 'lt' ? affineOf(c.a) : undefined;
    if (!cond || c.k !== 'binary' || c.b.k !== 'const' || c.b.v !== rows || flatten(c.a, C.v, cThread.v, T, E.i32(0)) !== E.i32(0)) return `launch ${C.v}'s guard is not its outputs' count`;
    body = guard.body;
  } else if (C.extent * T !== rows) return `launch ${C.v} covers ${C.extent * T} outputs, not ${rows}`;
  // C's body at output X: every use of its block and thread index is the output g*T + t; it loads G at w*rows + X
  const f = (e: Expr) => flatten(e, C.v, cThread.v, T, E.v(X));
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
  if (!loadsPartials(combine, G, rows, W)) return `launch ${C.v} loads '${G}' other than at its output's partials`;
  return { ai, ci, A, C, blocks, p, rows, W, thread, store, combine };
}

/** Why C cannot run inside A's blocks (what it touches clashes with A or with the launches it moves before). */
function clash(k: { body: readonly Stmt[] }, r: { ai: number; ci: number; A: For; C: For }, G: string): string | undefined {
  const c = bufferAccesses([r.C]), a = bufferAccesses([r.A]);
  for (const b of c.stores) if (a.loads.has(b) || a.stores.has(b)) return `launch ${r.C.v} stores '${b}', which launch ${r.A.v} uses`;
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
    // the thread loop of A's stores, each store of G[p*rows + x] now C's body at x
    const outputAt = substStmts([S.decl(x, 'i32', store.idx)], new Map([[p.v, E.i32(0)]]))[0]!;
    const swap = (ss: readonly Stmt[]): Stmt[] => ss.flatMap((s): Stmt[] => (s === store ? [outputAt, ...combine] : s.k === 'for' || s.k === 'if' ? [{ ...s, body: swap(s.body) }] : [s]));
    const mine = [...declaredNames([thread])];
    const names = new Map(mine.map((n) => [n, k.fresh(n.replace(/_?\d+$/, ''))]));
    const copy = renamed(swap([thread]), names);
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
