// memplan: liveness-based placement of temporaries and outputs in one aligned arena.
import { DTYPES, type DType, sizeOf } from '../../ir/types.js';
import { type Buffer, E, type Expr, type Program, type Stmt, intern, loadedIndices } from './ir.js';
import { type For, exprVars, forEachExpr, forEachStmtExpr, mapExpr, mapStmtExprs, mapStmts, stmtExprs, walkStmts } from './visit.js';

export const ALIGN = 64;

/** The fewest elements of a flat block worth reducing on their own (4 KiB of float32: a few microseconds' copy). */
export const MIN_SEGMENT = 1024;

export interface MemoryPlan {
  /** Byte offset in the arena of every temp and output buffer. */
  readonly offsets: ReadonlyMap<string, number>;
  readonly arenaBytes: number;
  /** Bytes the same buffers would take without reuse. */
  readonly unsharedBytes: number;
  /** With planMemory's `flat`: those outputs side by side, and when each suffix of them is final (FlatPlan). */
  readonly flat?: FlatPlan;
}

/**
 * Outputs placed side by side in one block, in the order given, with no padding between them (gradStep's gradients,
 * state and loss: one vector for the all-reduce, read in place). `ready`: after top-level statement `at` of kernel
 * `kernel` no later statement touches the block's elements [from, end): the runtime may reduce them while the rest
 * is computed. One entry per statement after which that suffix grows, `from` decreasing.
 */
export interface FlatPlan {
  readonly offset: number;
  readonly elements: number;
  readonly ready: readonly { readonly kernel: number; readonly at: number; readonly from: number }[];
}

export function bytesOf(b: Buffer): number {
  return b.size * DTYPES[b.dtype].bytes;
}

/** Buffers each statement list loads and stores. */
export function accesses(stmts: readonly Stmt[], loads = new Set<string>(), stores = new Set<string>()): { loads: Set<string>; stores: Set<string> } {
  walkStmts(stmts, (s) => {
    if (s.k === 'store') stores.add(s.buf);
    if (s.k === 'arrive') { loads.add(s.counter); stores.add(s.counter); }
    for (const e of stmtExprs(s)) forEachExpr(e, (x) => { if (x.k === 'load') loads.add(x.buf); });
  });
  return { loads, stores };
}

/** A top-level statement of a kernel (one launch on a GPU), by kernel and position. */
interface Launch { readonly kernel: number; readonly at: number; readonly stmt: Stmt }

/**
 * Where a statement list holds a load or store: the list, the statement's position in it, the loops around it, and
 * whether an if is around it (then it need not run once per iteration).
 */
interface Site { readonly list: readonly Stmt[]; readonly at: number; readonly loops: readonly For[]; readonly idx: Expr; readonly guarded: boolean }

/** The stores of buffer `store` and the loads of buffer `load` in one launch, with where each happens. */
function sites(launch: Stmt, store: string, load: string): { stores: Site[]; loads: Site[]; assigned: Set<string> } {
  const stores: Site[] = [], loads: Site[] = [], assigned = new Set<string>();
  const visit = (list: readonly Stmt[], loops: readonly For[], guarded: boolean) => list.forEach((s, at) => {
    for (const e of stmtExprs(s)) forEachExpr(e, (x) => { if (x.k === 'load' && x.buf === load) for (const idx of loadedIndices(x)) loads.push({ list, at, loops, idx, guarded }); });
    if (s.k === 'store' && s.buf === store) stores.push({ list, at, loops, idx: s.idx, guarded });
    if (s.k === 'assign') assigned.add(s.name);
    if (s.k === 'for') visit(s.body, [...loops, s], guarded);
    if (s.k === 'if') visit(s.body, loops, true);
  });
  visit([launch], [], false);
  return { stores, loads, assigned };
}

/**
 * Whether launch w may store the new value straight into the param (buffer `b` renamed `p`): b has one store,
 * executed once per iteration of the loops around it, as many iterations as b has elements; as every element of
 * an update is written, each is written by exactly one iteration. Every read of the param in w is in that
 * iteration, at the same index, before the store (or in it): no thread or iteration sees another's new value.
 */
function inPlaceInLaunch(w: Stmt, b: Buffer, p: string): boolean {
  const { stores, loads, assigned } = sites(w, b.name, p);
  const st = stores[0];
  if (stores.length !== 1 || !st || st.guarded) return false;
  if (st.loops.reduce((n, l) => n * l.extent, 1) !== b.size) return false;
  if ([...exprVars(st.idx)].some((v) => assigned.has(v))) return false;
  return loads.every((l) => l.list === st.list && l.at <= st.at && l.idx === st.idx);
}

/**
 * Updates written in place: where an update's new value is a temp stored by one launch that may store it into
 * the param (inPlaceInLaunch) and no later launch reads the param's old value, the temp is renamed the param,
 * so no copy follows the call (on every target). A launch followed by readers of the old value in its kernel
 * moves after them when it neither reads what they write nor writes what they read or write (Adam's iteration
 * counter, read by every later update).
 */
export function updateInPlace(prog: Program): Program {
  let p = prog;
  for (const u of prog.updates) {
    const param = p.params.find((x) => x.name === u.name)?.buffer;
    const b = p.buffers.find((x) => x.name === u.buffer);
    const pb = p.buffers.find((x) => x.name === param);
    if (!param || !b || !pb || b.kind !== 'temp' || b.size !== pb.size || b.dtype !== pb.dtype) continue;
    if (p.updates.filter((v) => v.buffer === b.name).length !== 1 || p.outputs.some((o) => o.buffer === b.name)) continue;
    const launches: Launch[] = p.kernels.flatMap((k, kernel) => k.body.map((stmt, at) => ({ kernel, at, stmt })));
    const acc = launches.map((l) => accesses([l.stmt]));
    if (acc.some((a) => a.stores.has(param))) continue;
    const writers = launches.flatMap((l, i) => (acc[i]!.stores.has(b.name) ? [i] : []));
    const wi = writers[0];
    if (writers.length !== 1 || wi === undefined || !inPlaceInLaunch(launches[wi]!.stmt, b, param)) continue;
    const w = launches[wi]!, aw = acc[wi]!;
    const readers = launches.flatMap((_, i) => (i > wi && acc[i]!.loads.has(param) ? [i] : []));
    const last = readers[readers.length - 1] ?? wi;
    // moving w after launches wi+1..last: the same kernel, and no buffer one writes that the other touches
    // (a top-level statement on a CPU may also read scalars that one in between assigns)
    const vars = new Set<string>();
    forEachStmtExpr([w.stmt], (e) => { if (e.k === 'var') vars.add(e.name); });
    const assigns = (s: Stmt) => { let hit = false; walkStmts([s], (x) => { if (x.k === 'assign' && vars.has(x.name)) hit = true; }); return hit; };
    const clash = (i: number) => launches[i]!.kernel !== w.kernel || assigns(launches[i]!.stmt)
      || [...aw.stores].some((x) => acc[i]!.loads.has(x) || acc[i]!.stores.has(x)) || [...acc[i]!.stores].some((x) => aw.loads.has(x));
    if (launches.slice(wi + 1, last + 1).some((_, j) => clash(wi + 1 + j))) continue;
    const rename = (e: Expr) => mapExpr(e, (x) => (x.k === 'load' && x.buf === b.name ? intern({ ...x, buf: param }) : x));
    const renamed = (body: readonly Stmt[]) => mapStmts(body, (s) => {
      const t = mapStmtExprs(s, rename);
      return t.k === 'store' && t.buf === b.name ? { ...t, buf: param } : t;
    });
    const kernels = p.kernels.map((k, ki) => {
      let body = k.body;
      if (ki === w.kernel && last > wi) {
        const to = launches[last]!.at;
        body = [...body.slice(0, w.at), ...body.slice(w.at + 1, to + 1), w.stmt, ...body.slice(to + 1)];
      }
      return { ...k, body: renamed(body) };
    });
    p = { ...p, kernels, buffers: p.buffers.filter((x) => x !== b), updates: p.updates.map((v) => (v.name === u.name ? { name: u.name, buffer: param } : v)) };
  }
  return p;
}

/**
 * Places temps and outputs: a buffer is live from the first kernel that stores it to the last that loads it
 * (outputs to the end); buffers whose lifetimes do not overlap share bytes. Greedy by size, first fit.
 * `flat`: names of float32 outputs to place side by side at the arena's start (FlatPlan); ignored unless each has
 * a buffer of its own. `input`: the name of an input to place at the arena's start instead, kept to the end
 * (applyGrads's "grads": where gradStep's block is, so the reduced vector is read where it lies).
 */
/**
 * The most bytes of temps and outputs that a program run by several threads keeps apart (no buffer placed where
 * another was): a parallel loop's threads each write their own slab of a buffer, and a later buffer reusing those
 * bytes cuts them into other slabs, so every call moves the lines between the cores' caches (the int8 seed CNN at
 * batch 64 on 2 threads: 86 -> 72 us with its 769 KB apart, not 516 KB shared; float32 CNN unchanged). Past this,
 * the memory counts more than the cache traffic.
 */
export const THREADED_APART_BYTES = 8 << 20;

export function planMemory(p: Program, options: { flat?: readonly string[]; input?: string; threads?: number } = {}): MemoryPlan {
  const placed = p.buffers.filter((b) => b.kind === 'temp' || b.kind === 'output');
  const apart = (options.threads ?? 1) > 1 && placed.reduce((n, b) => n + bytesOf(b), 0) <= THREADED_APART_BYTES;
  const first = new Map<string, number>(), last = new Map<string, number>();
  p.kernels.forEach((k, i) => {
    const { loads, stores } = accesses(k.body);
    for (const b of stores) if (!first.has(b)) first.set(b, i);
    for (const b of [...loads, ...stores]) last.set(b, i);
  });
  const flatBufs = (options.flat ?? []).map((name) => {
    const o = p.outputs.find((x) => x.name === name);
    return o && p.outputs.filter((x) => x.buffer === o.buffer).length === 1 ? p.buffers.find((b) => b.name === o.buffer && b.kind === 'output' && b.dtype === 'float32') : undefined;
  });
  const flat = flatBufs.length > 0 && flatBufs.every((b) => b !== undefined) ? flatBufs as Buffer[] : [];
  const pinned = p.buffers.find((b) => b.kind === 'input' && b.name === p.inputs.find((x) => x.name === options.input)?.buffer);
  const end = p.kernels.length;
  // outputs and new param values are read by the caller after the last kernel
  const keep = new Set(p.updates.map((u) => u.buffer));
  const live = (b: Buffer): [number, number] => [first.get(b.name) ?? 0, b.kind === 'output' || keep.has(b.name) ? end : last.get(b.name) ?? 0];
  const order = [...placed].sort((a, b) => bytesOf(b) - bytesOf(a) || a.name.localeCompare(b.name));
  const spots: { name: string; off: number; bytes: number; live: [number, number] }[] = [];
  const offsets = new Map<string, number>();
  let arena = 0, at = 0;
  // the flat block first, live from its first store on: element offsets, one float32 each
  const starts = flat.map((b) => (at += b.size) - b.size);
  flat.forEach((b, i) => offsets.set(b.name, starts[i]! * 4));
  if (flat.length) {
    arena = Math.max(ALIGN, Math.ceil(at * 4 / ALIGN) * ALIGN);
    spots.push({ name: '(flat)', off: 0, bytes: arena, live: [Math.min(...flat.map((b) => first.get(b.name) ?? 0)), end] });
  } else if (pinned) {
    offsets.set(pinned.name, 0);
    arena = Math.max(ALIGN, Math.ceil(bytesOf(pinned) / ALIGN) * ALIGN);
    spots.push({ name: pinned.name, off: 0, bytes: arena, live: [0, end] });
  }
  for (const b of order) {
    if (offsets.has(b.name)) continue;
    const bytes = Math.max(ALIGN, Math.ceil(bytesOf(b) / ALIGN) * ALIGN);
    const lv = live(b);
    const clashes = spots.filter((s) => apart || (s.live[0] <= lv[1] && lv[0] <= s.live[1])).sort((x, y) => x.off - y.off);
    let off = 0;
    for (const c of clashes) {
      if (off + bytes <= c.off) break;
      off = Math.max(off, c.off + c.bytes);
    }
    spots.push({ name: b.name, off, bytes, live: lv });
    offsets.set(b.name, off);
    arena = Math.max(arena, off + bytes);
  }
  const plan = { offsets, arenaBytes: arena, unsharedBytes: placed.reduce((n, b) => n + bytesOf(b), 0) };
  if (!flat.length) return plan;
  // after each top-level statement, the suffix of the block whose buffers no later statement loads or stores
  // (an unwritten one: none)
  const launches = p.kernels.flatMap((k, kernel) => k.body.map((stmt, at) => ({ kernel, at, stmt })));
  const lastAt = new Map<string, number>();
  launches.forEach((l, i) => { const { loads, stores } = accesses([l.stmt]); for (const b of [...loads, ...stores]) lastAt.set(b, i); });
  const ready: { kernel: number; at: number; from: number }[] = [];
  let from = at;
  for (let i = 0; i < launches.length && from > 0; i++) {
    let j = flat.length;
    while (j > 0 && (lastAt.get(flat[j - 1]!.name) ?? -1) <= i) j--;
    const f = j === flat.length ? at : starts[j]!;
    // a segment is reduced by a ring of its own (2(k-1) messages, a thread's wake-up): not for fewer than
    // MIN_SEGMENT elements, which wait for the next segment (or the end)
    if (f < from && (from - f >= MIN_SEGMENT || f === 0)) ready.push({ kernel: launches[i]!.kernel, at: launches[i]!.at, from: from = f });
  }
  return { ...plan, flat: { offset: 0, elements: at, ready } };
}

/** Bytes an op-by-op executor would allocate: every non-leaf value of the graph (for comparison). */
export function intermediateBytes(values: readonly { dtype: DType; shape: readonly number[] }[]): number {
  return values.reduce((n, v) => n + sizeOf(v.shape) * DTYPES[v.dtype].bytes, 0);
}
