// Horizontal fusion of GPU launches: independent block nests of a kernel (ordered by dependence level) become one
// launch, their grids side by side (a block loop of one iteration holding them: gpu.ts launchParts), where the cost
// model finds one launch cheaper than several. A small buffer that one nest updates and the earlier nests of the
// group read is read by them from a copy taken one launch before (Adam's iteration counter, read by every update's
// bias correction), so the nest updating it joins the group too.
import { type Buffer, E, type Program, S, type Stmt, intern, scalarOf } from '../ir.js';
import { type GpuCaps, launchShape } from '../gpu.js';
import { accesses } from '../memplan.js';
import { type For, mapExpr, mapStmtExprs, mapStmts, walkStmts } from '../visit.js';
import { renamed } from './gpu_loops.js';
import { declaredNames } from './loops.js';

/** The largest buffer copied so that its writer may join its readers' launch (one block of threads copies it). */
const SNAPSHOT_MAX = 1024;

interface Launch {
  readonly kernel: number;
  /** the block nests it runs (one: a plain launch) */
  parts: For[];
}

const isLaunch = (s: Stmt): s is For => s.k === 'for' && s.kind === 'block';

/** A name no loop, decl or local array of the statements has, starting with `prefix`. */
function freshName(body: readonly Stmt[], prefix: string, taken: Set<string>): string {
  declaredNames(body, taken);
  let i = 0;
  while (taken.has(`${prefix}${i}`)) i++;
  taken.add(`${prefix}${i}`);
  return `${prefix}${i}`;
}

/** The launch's statement: its one nest, or its nests under a block loop of one iteration. */
function launchStmt(l: Launch, name: () => string): For {
  return l.parts.length === 1 ? l.parts[0]! : (S.for(name(), 1, l.parts, 'block') as For);
}

/** The buffers the nests load and store (not their own local arrays: two nests may each have one of a name). */
function bufferAccesses(nests: readonly Stmt[]): { loads: Set<string>; stores: Set<string> } {
  const a = accesses(nests), locals = new Set<string>();
  walkStmts(nests, (s) => { if (s.k === 'local') locals.add(s.name); });
  for (const x of locals) {
    a.loads.delete(x);
    a.stores.delete(x);
  }
  return a;
}

/** Buffers one set of nests stores that the other loads or stores. */
function clashes(a: readonly Stmt[], b: readonly Stmt[]): { aStoresBLoads: string[]; other: string[] } {
  const x = bufferAccesses(a), y = bufferAccesses(b);
  const aStoresBLoads: string[] = [], other: string[] = [];
  for (const buf of x.stores) (y.stores.has(buf) ? other : y.loads.has(buf) ? aStoresBLoads : []).push(buf);
  for (const buf of y.stores) if (x.loads.has(buf) || x.stores.has(buf)) other.push(buf);
  return { aStoresBLoads, other };
}

/**
 * The nests of a kernel in launch order by level: a nest's level is above that of every earlier nest storing what
 * it loads or stores, or loading what it stores (at least that level where the buffer is small enough to copy),
 * so the nests of one level are independent; within a level they keep their order (a reader of what a later nest
 * of its level stores runs in an earlier launch or in the same, from the copy).
 */
function byLevel(nests: readonly For[], small: (buf: string) => boolean): { nest: For; level: number }[] {
  const acc = nests.map((n) => bufferAccesses([n]));
  const level: number[] = [];
  nests.forEach((_, j) => {
    let l = 0;
    for (let i = 0; i < j; i++) {
      const a = acc[i]!, b = acc[j]!;
      const after = [...a.stores].some((x) => b.loads.has(x) || b.stores.has(x));
      const war = [...b.stores].filter((x) => a.loads.has(x));
      if (after || war.length) l = Math.max(l, level[i]! + (after || war.some((x) => !small(x)) ? 1 : 0));
    }
    level.push(l);
  });
  return nests.map((nest, i) => ({ nest, level: level[i]! })).sort((x, y) => x.level - y.level);
}

/**
 * Nests that load nothing (a last-block combine's counters zeroed: gpu_last_block.ts) move to the end of the kernel
 * before, where that is all launches, none of which uses what they store (nor the nests before them in their own
 * kernel): there they depend on nothing and join its first launch rather than start their kernel with one.
 */
function hoistResets(p: Program): Program {
  const bodies = p.kernels.map((k) => [...k.body]);
  for (let i = 1; i < bodies.length; i++) {
    const prev = bodies[i - 1]!;
    if (!prev.length || prev.some((s) => !isLaunch(s)) || p.kernels[i - 1]!.allreduce || p.kernels[i]!.allreduce) continue;
    const keep: Stmt[] = [];
    for (const s of bodies[i]!) {
      const a = isLaunch(s) ? bufferAccesses([s]) : undefined, used = bufferAccesses([...prev, ...keep]);
      if (a && !a.loads.size && a.stores.size && ![...a.stores].some((b) => used.loads.has(b) || used.stores.has(b))) {
        // loop names are unique per kernel: a name the kernel before has already is renamed
        const there = declaredNames(prev), taken = new Set([...there, ...declaredNames(bodies[i]!)]);
        prev.push(renamed([s], new Map([...declaredNames([s])].filter((n) => there.has(n)).map((n) => [n, freshName([], `${n}_`, taken)])))[0]!);
      } else keep.push(s);
    }
    bodies[i] = keep;
  }
  return bodies.every((b, i) => b.length === p.kernels[i]!.body.length) ? p : { ...p, kernels: p.kernels.map((k, i) => ({ ...k, body: bodies[i]! })) };
}

/**
 * Merges the launches of each kernel level by level (byLevel), consecutive ones while they are independent (no
 * nest stores a buffer another loads or stores, except the copied reads above) and the estimate of the merged
 * launch is below theirs together.
 */
export function fuseLaunches(program: Program, g: GpuCaps): Program {
  const p = hoistResets(program);
  const launches: (Launch & { level: number })[] = [];
  const small = (b: string) => (p.buffers.find((x) => x.name === b)?.size ?? Infinity) <= SNAPSHOT_MAX;
  const kernels = p.kernels.map((k, kernel) => {
    if (!k.body.length || !k.body.every(isLaunch)) return false;
    for (const { nest, level } of byLevel(k.body as For[], small)) launches.push({ kernel, level, parts: [nest] });
    return true;
  });
  const buffers: Buffer[] = [...p.buffers];
  const taken = new Map<number, Set<string>>();
  const names = (kernel: number): Set<string> => {
    let t = taken.get(kernel);
    if (!t) taken.set(kernel, (t = new Set()));
    return t;
  };
  const fresh = (kernel: number, prefix: string) => freshName(p.kernels[kernel]!.body, prefix, names(kernel));
  const cycles = (l: Launch) => launchShape('', launchStmt(l, () => 'hf'), g).cycles;
  const out: (Launch & { level: number })[] = [];
  for (const l of launches) {
    const group = out[out.length - 1];
    if (!group || group.kernel !== l.kernel || group.level !== l.level) {
      out.push(l);
      continue;
    }
    const { aStoresBLoads: read, other } = clashes(l.parts, group.parts);
    // what l stores and the group only reads: the group reads it from a copy the launch before takes
    const before = out[out.length - 2];
    // the copy joins the launch before, which must come right before the group (no kernel between it skips) and
    // not store the buffer itself
    const adjacent = before !== undefined && kernels.slice(before.kernel, l.kernel + 1).every(Boolean);
    if (other.length || (read.length && (!adjacent || !read.every(small) || read.some((b) => bufferAccesses(before!.parts).stores.has(b))))) {
      out.push(l);
      continue;
    }
    const merged: Launch = { kernel: l.kernel, parts: [...group.parts, ...l.parts] };
    const shape = launchShape('', launchStmt(merged, () => 'hf'), g);
    if (shape.shared > g.sharedPerBlock || shape.cycles >= cycles(group) + cycles(l)) {
      out.push(l);
      continue;
    }
    for (const b of read) {
      const src = buffers.find((x) => x.name === b)!;
      let n = 0;
      while (buffers.some((x) => x.name === `${b}_old${n}`)) n++;
      const copy: Buffer = { name: `${b}_old${n}`, dtype: src.dtype, size: src.size, kind: 'temp' };
      buffers.push(copy);
      const t = scalarOf(src.dtype);
      const i = fresh(before!.kernel, 'hs');
      const nest = S.for(fresh(before!.kernel, 'hb'), 1, [S.for(i, src.size, [S.store(copy.name, E.v(i), E.load(b, E.v(i), t))], 'thread')], 'block') as For;
      before!.parts.push(nest);
      const rename = (s: Stmt) => mapStmtExprs(s, (e) => mapExpr(e, (x) => (x.k === 'load' && x.buf === b ? intern({ ...x, buf: copy.name }) : x)));
      group.parts = group.parts.map((n) => mapStmts([n], rename)[0] as For);
    }
    group.parts.push(...l.parts);
  }
  const bodies = p.kernels.map((k, i) => (kernels[i] ? [] as Stmt[] : k.body));
  for (const l of out) (bodies[l.kernel] as Stmt[]).push(launchStmt(l, () => fresh(l.kernel, 'hf')));
  return { ...p, buffers, kernels: p.kernels.map((k, i) => ({ ...k, body: bodies[i]! })) };
}

