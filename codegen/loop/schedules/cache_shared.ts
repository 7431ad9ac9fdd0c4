// cacheShared: a value computed inside loop `at` of a GPU block, from a tile of an operand (per iteration of `at`),
// is computed once per tile element into a shared-memory array by a fill nest at the start of each iteration, and
// read from the array (TVM cache_read "shared" + compute_at): the A and B tiles of a GPU matmul, per step over K.
// The tile's dimensions are variables the value depends on (loops inside `at`, or a thread loop's digits), a
// dimension being the row-major index of one or more of them: the value must depend on them only through it.
// Decls of the value that the rest of the loop body reads too are copied into the fill, not moved.
// distribute: a loop's iterations shared among T workers, each taking every T-th (`for e in n` -> `for t in T {
// for r in ceil(n/T) { e = min(r*T + t, n - 1) } }`; the last iterations run iteration n-1 again): with the
// workers bound to threads, consecutive threads read consecutive elements (TVM's cooperative fetching).
import { operands } from '../analysis.js';
import { E, type Expr, S, type Scalar, type Stmt } from '../ir.js';
import { complete, digitOfExpr, independence } from './iterations.js';
import { type For, accesses, affineOf, findLoop, readsOf, replaceLoop, substStmts, varsOf } from './loops.js';
import { ancestors } from './bind.js';
import { primitive } from './primitive.js';

export interface CacheSharedArgs {
  /** a decl inside loop `at`: the value staged */
  readonly value: string;
  readonly at: string;
  /**
   * the tile's dimensions, slowest first: each the variables (outermost first) whose row-major index is its
   * coordinate (none: a dimension of one element)
   */
  readonly dims: readonly (readonly string[])[];
  readonly local: string;
  /** the block loop whose body declares the array (after its leading shared arrays) */
  readonly scope: string;
  /** the fill nest's loop variables, one per dimension */
  readonly fill: readonly string[];
  /** a prefix for the decl reading the array in the value's place (default: the value keeps its name) */
  readonly read?: string;
  /** elements left unused after each row of the last dimension (against shared-memory bank conflicts; default 0) */
  readonly pad?: number;
}

type Decl = Extract<Stmt, { k: 'decl' }>;

/** The statement list directly holding decl name inside stmts, with the loops around it (inside stmts). */
function declSite(stmts: readonly Stmt[], name: string, around: For[] = []): { list: readonly Stmt[]; loops: For[] } | undefined {
  if (stmts.some((s) => s.k === 'decl' && s.name === name)) return { list: stmts, loops: around };
  for (const s of stmts) {
    if (s.k !== 'for') continue;
    const r = declSite(s.body, name, [...around, s]);
    if (r) return r;
  }
  return undefined;
}

interface Plan {
  readonly moved: Decl[];
  /** the moved decls the rest of the body still uses (copied, not moved) */
  readonly kept: ReadonlySet<string>;
  readonly t: Scalar;
  /** per dimension: its variables with extents */
  readonly dims: { v: string; n: number }[][];
  /** the position in at's body of the statement holding the value */
  readonly pos: number;
}

/**
 * Whether e depends on the variables of each group only through the group's row-major index: every maximal
 * affine part mentioning a group has coefficients in the ratio of the group's strides.
 */
function throughCoordinates(e: Expr, groups: readonly { v: string; n: number }[][]): boolean {
  const names = new Set(groups.flat().map((g) => g.v));
  if (![...varsOf(e)].some((v) => names.has(v))) return true;
  const a = e.t === 'i32' ? affineOf(e) : undefined;
  if (a) {
    return groups.every((g) => {
      if (!g.length) return true;
      let stride = 1;
      const want = new Map<string, number>();
      for (let i = g.length - 1; i >= 0; i--) { want.set(g[i]!.v, stride); stride *= g[i]!.n; }
      const last = a.terms.get(g[g.length - 1]!.v) ?? 0;
      return g.every((x) => (a.terms.get(x.v) ?? 0) === last * want.get(x.v)!);
    });
  }
  return e.k !== 'var' && operands(e).every((x) => throughCoordinates(x, groups));
}

function plan(body: readonly Stmt[], a: CacheSharedArgs): Plan | string {
  const at = findLoop(body, a.at), scope = findLoop(body, a.scope);
  if (!at) return `no loop '${a.at}' in the kernel`;
  if (!scope) return `no loop '${a.scope}' in the kernel`;
  if (scope.kind !== 'block') return `loop '${a.scope}' is not a block loop (shared memory belongs to a block)`;
  if (scope !== at && !findLoop(scope.body, a.at)) return `loop '${a.at}' is not inside loop '${a.scope}'`;
  const between = (function path(ss: readonly Stmt[], acc: For[]): For[] | undefined {
    for (const s of ss) if (s.k === 'for') { if (s.v === a.at) return acc; const r = path(s.body, [...acc, s]); if (r) return r; }
    return undefined;
  })(scope.body, []) ?? [];
  const thread = [...between, at].find((l) => l.kind === 'thread');
  if (thread) return `loop '${a.at}' is inside thread loop '${thread.v}' (a shared tile is filled by the whole block)`;
  if (a.fill.length !== a.dims.length || !a.dims.length) return `${a.dims.length} dimensions for ${a.fill.length} fill loops`;
  if (a.pad !== undefined && !(Number.isInteger(a.pad) && a.pad >= 0)) return `padding ${a.pad} is not a non-negative integer`;
  const site = declSite(at.body, a.value);
  if (!site) return `'${a.value}' is not a decl inside loop '${a.at}'`;
  const pos = at.body.findIndex((s) => s.k === 'decl' ? s.name === a.value : s.k === 'for' && !!declSite([s], a.value));
  // the decls of the value's body that compute it
  // the decls computing the value: in its own body (moved), or in bodies around it inside `at` (copied)
  const outer = [at.body, ...site.loops.slice(0, -1).map((l) => l.body)].flatMap((b) => b.filter((s): s is Decl => s.k === 'decl'));
  const own = site.list.filter((s): s is Decl => s.k === 'decl');
  const decls = new Map([...outer, ...own].map((d) => [d.name, d] as const));
  const need = new Set<string>();
  const dimNames = new Set(a.dims.flat());
  const visit = (name: string): void => {
    if (need.has(name)) return;
    need.add(name);
    for (const v of varsOf(decls.get(name)!.init)) if (decls.has(v) && !dimNames.has(v)) visit(v);
  };
  visit(a.value);
  const moved = [...outer, ...own].filter((d) => need.has(d.name));
  // a decl the rest of the body uses too, or of a body around it, is copied into the fill and kept
  const rest = site.list.filter((s) => !moved.includes(s as Decl));
  const kept = new Set([...need].filter((n) => n !== a.value && (readsOf(rest).has(n) || outer.some((d) => d.name === n))));
  for (let grew = true; grew;) {
    grew = false;
    for (const d of moved) {
      if (kept.has(d.name) || d.name === a.value || ![...kept].some((x) => varsOf(decls.get(x)!.init).has(d.name))) continue;
      kept.add(d.name);
      grew = true;
    }
  }
  // the dimensions' variables: loops around the value inside `at`, or digits of such a loop's index decoded there
  const inside = new Map(site.loops.map((l) => [l.v, l]));
  const allDecls = new Map<string, Decl>();
  const gather = (ss: readonly Stmt[]): void => ss.forEach((s) => { if (s.k === 'decl') allDecls.set(s.name, s); if (s.k === 'for') gather(s.body); });
  gather(at.body);
  const assigned = accesses(at.body).assigned;
  const dims: { v: string; n: number }[][] = [];
  const digitsOf = new Map<string, { s: number; e?: number; name: string }[]>();
  for (const d of a.dims) {
    const group: { v: string; n: number }[] = [];
    for (const v of d) {
      const l = inside.get(v);
      if (l) { group.push({ v, n: l.extent }); continue; }
      const decl = allDecls.get(v);
      // a unit digit (`f // S % 1`) is the constant 0
      if (decl && !assigned.has(v) && decl.init.k === 'const' && decl.init.v === 0) { group.push({ v, n: 1 }); continue; }
      const dg = decl && !assigned.has(v) ? digitOfExpr(decl.init) : undefined;
      const over = dg?.x.k === 'var' ? inside.get(dg.x.name) : undefined;
      if (!dg || !over) return `'${v}' is neither a loop around '${a.value}' inside '${a.at}' nor a digit of one`;
      digitsOf.set(over.v, [...(digitsOf.get(over.v) ?? []), { s: dg.s, e: dg.e, name: v }]);
      group.push({ v, n: dg.e ?? Math.ceil(over.extent / dg.s) });
    }
    dims.push(group);
  }
  // every combination of the dimensions' values occurs: the digits of a loop decode all of it
  for (const [lv, ds] of digitsOf) {
    const l = inside.get(lv)!;
    const all = [...allDecls.values()].flatMap((x) => {
      const dg = assigned.has(x.name) ? undefined : digitOfExpr(x.init);
      return dg && dg.x.k === 'var' && dg.x.name === lv ? [{ name: x.name, x: dg.x, s: dg.s, e: dg.e }] : [];
    });
    if (!complete(all, { lo: 0, hi: l.extent - 1 }) || ds.some((d) => !all.some((x) => x.name === d.name))) return `the digits of loop '${lv}' do not decode it`;
  }
  const dimVars = new Set(dims.flat().map((g) => g.v));
  if (dimVars.size !== dims.flat().length) return 'a variable is named twice in the dimensions';
  for (const s of moved) {
    for (const v of varsOf(s.init)) {
      if (need.has(v) || dimVars.has(v)) continue;
      if (inside.has(v) || allDecls.has(v)) return `'${s.name}' depends on '${v}', which is not a dimension of the tile`;
      if (assigned.has(v)) return `'${s.name}' reads '${v}', which is assigned in loop '${a.at}'`;
    }
    if (!throughCoordinates(s.init, dims)) return `'${s.name}' depends on the variables of a dimension other than through its index`;
  }
  const written = new Set(accesses(at.body).arrays.filter((x) => x.write).map((x) => x.array));
  const loadsWritten = (e: Expr): string | undefined => (e.k === 'load' && written.has(e.buf) ? e.buf : operands(e).map(loadsWritten).find((x) => x));
  for (const s of moved) {
    const w = loadsWritten(s.init);
    if (w) return `'${s.name}' loads '${w}', which loop '${a.at}' writes`;
  }
  const t = moved.find((s) => s.name === a.value)!.t;
  return { moved, kept, t, dims, pos };
}

export const cacheShared = primitive<CacheSharedArgs>({
  name: 'cacheShared',
  check: (k, a) => {
    const p = plan(k.body, a);
    return typeof p === 'string' ? p : undefined;
  },
  apply: (k, a) => {
    const p = plan(k.body, a) as Plan;
    const extent = (g: { n: number }[]) => g.reduce((n, x) => n * x.n, 1);
    // the row (last dimension) padded: its stride in the array
    const stride = (d: number) => extent(p.dims[d]!) + (d === p.dims.length - 1 ? a.pad ?? 0 : 0);
    const coord = (g: { v: string; n: number }[]) => g.reduce((acc: Expr, x) => E.add(E.mul(acc, E.i32(x.n)), E.v(x.v)), E.i32(0));
    const at = (coords: readonly Expr[]) => coords.reduce((acc: Expr, c, d) => E.add(E.mul(acc, E.i32(stride(d))), c), E.i32(0));
    // the fill: each dimension's last variable takes the coordinate, the others 0 (the value depends on their index only)
    const sub = new Map<string, Expr>();
    p.dims.forEach((g, d) => g.forEach((x, i) => sub.set(x.v, i === g.length - 1 ? E.v(a.fill[d]!) : E.i32(0))));

    // the fill's decls get fresh names (the value's keeps its own, now a load of the array)
    for (const d of p.moved) sub.set(d.name, E.v(k.fresh(d.name.replace(/\d+$/, '')), d.t));
    const fresh = (n: string) => (sub.get(n) as { name: string }).name;
    const decls = substStmts(p.moved, sub).map((d) => ({ ...(d as Decl), name: fresh((d as Decl).name) }));
    let fill: Stmt[] = [...decls, S.store(a.local, at(a.fill.map((f) => E.v(f))), E.v(fresh(a.value), p.t))];
    for (let d = p.dims.length - 1; d >= 0; d--) fill = [S.for(a.fill[d]!, extent(p.dims[d]!), fill)];
    const read = E.load(a.local, at(p.dims.map(coord)), p.t);
    const movedSet = new Set<Stmt>(p.moved.filter((d) => !p.kept.has(d.name)));
    const readName = a.read === undefined ? a.value : k.fresh(a.read);
    const swap = (ss: readonly Stmt[]): Stmt[] => ss.flatMap((s): Stmt[] => {
      if (s.k === 'decl' && s.name === a.value) return [S.decl(readName, p.t, read)];
      if (movedSet.has(s)) return [];
      return s.k === 'for' ? [{ ...s, body: swap(s.body) }] : [s];
    });
    const renamed = (ss: Stmt[]) => (readName === a.value ? ss : substStmts(ss, new Map([[a.value, E.v(readName, p.t)]])));
    let body = replaceLoop(k.body, a.at, (l) => [{ ...l, body: [...swap(l.body.slice(0, p.pos)), ...fill, ...renamed(swap(l.body.slice(p.pos)))] }]);
    body = replaceLoop(body, a.scope, (l) => {
      const i = l.body.findIndex((s) => s.k !== 'local' || s.scope !== 'shared');
      const n = i < 0 ? l.body.length : i;
      return [{ ...l, body: [...l.body.slice(0, n), S.local(a.local, p.t, p.dims.reduce((m, _, d) => m * stride(d), 1), 'shared'), ...l.body.slice(n)] }];
    });
    return { body };
  },
});

export interface DistributeArgs {
  readonly loop: string;
  /** workers: the outer loop's extent */
  readonly threads: number;
  readonly outer: string;
  readonly inner: string;
}

export const distribute = primitive<DistributeArgs>({
  name: 'distribute',
  check: (k, a) => {
    const l = findLoop(k.body, a.loop);
    if (!l) return `no loop '${a.loop}' in the kernel`;
    if (l.kind !== 'serial') return `loop '${a.loop}' is ${l.kind}`;
    if (!Number.isInteger(a.threads) || a.threads < 1) return `${a.threads} workers is not a positive integer`;
    const why = independence(l, ancestors(k.body, a.loop));
    if (why) return why;
    // the repeated last iterations must find what the first run of it found
    const acc = accesses(l.body);
    const w = new Set(acc.arrays.filter((x) => x.write).map((x) => x.array));
    const both = acc.arrays.find((x) => !x.write && w.has(x.array));
    return both ? `it reads '${both.array}', which it writes (running an iteration again may change it)` : undefined;
  },
  apply: (k, a) => ({
    body: replaceLoop(k.body, a.loop, (l) => {
      // clamped where the workers' shares overrun the extent (the last iterations repeat); an even share needs none,
      // so the index stays affine and bind proves the iterations apart without the repeats' argument
      const flat = E.add(E.mul(E.v(a.inner), E.i32(a.threads)), E.v(a.outer));
      const e = l.extent % a.threads === 0 ? flat : E.binary('min', flat, E.i32(l.extent - 1));
      return [S.for(a.outer, a.threads, [S.for(a.inner, Math.ceil(l.extent / a.threads), [S.decl(l.v, 'i32', e), ...l.body])])];
    }),
  }),
});

