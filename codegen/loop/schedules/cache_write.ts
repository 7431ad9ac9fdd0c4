// cacheWrite: a loop body's scalar accumulator becomes an element of a local array over the loops around it
// (TVM cache_write to a local scope): `for i { for j { acc = 0; for k { acc = acc + ... }; use(acc) } }` ->
// `local A[I*J]; for i { for j { A[i*J+j] = 0; for k { A[i*J+j] = A[i*J+j] + ... }; use(A[i*J+j]) } }`.
// Each iteration owns its element, so values are unchanged; the reduction loop can then be distributed
// (fission) and moved outward (reorder), as register tiles and row caches need.
// accumulateInto: an accumulator whose value is then stored into a local array accumulates there directly:
// `acc = 0; for k { acc = acc + ... }; R[e] = acc` -> `R[e] = 0; for k { R[e] = R[e] + ... }`.
import { E, type Expr, S, type Scalar, type Stmt } from '../ir.js';
import { type For, accesses, chain, mapStmtExprs, readsOf, replaceLoop, replaceParent, substExpr } from './loops.js';
import { primitive } from './primitive.js';

export interface CacheWriteArgs {
  /** the accumulator: a decl directly in the body of the last loop of `loops` */
  readonly acc: string;
  /** a perfect nest, outermost first; the array has one element per iteration of it */
  readonly loops: readonly string[];
  /** the new local array */
  readonly local: string;
  /**
   * How the statements after the accumulation read the value: 'inline' loads the element at each use; a name
   * declares it once as that scalar, after the last statement that updates the accumulator.
   */
  readonly read: 'inline' | { readonly decl: string };
  /** where the array is declared in the body holding the nest: just before it, or after that body's leading locals */
  readonly place: 'before' | 'start';
}

/** The decl named acc directly in the statements, and its index there. */
function declAt(stmts: readonly Stmt[], acc: string): number {
  return stmts.findIndex((s) => s.k === 'decl' && s.name === acc);
}

/** Replaces reads of variable `name` by `by`. */
function replaceVar(stmts: readonly Stmt[], name: string, by: Expr): Stmt[] {
  return mapStmtExprs(stmts, (e) => (e.k === 'var' && e.name === name ? by : e));
}

/** Assigns to acc become stores of cell (reads of acc in them read the cell). */
function assignsToStores(stmts: readonly Stmt[], acc: string, cell: (v: Expr) => Stmt, load: Expr): Stmt[] {
  return stmts.map((s): Stmt => {
    if (s.k === 'assign' && s.name === acc) return cell(substExpr(s.value, new Map([[acc, load]])));
    if (s.k === 'for') return { ...s, body: assignsToStores(s.body, acc, cell, load) };
    return replaceVar([s], acc, load)[0]!;
  });
}

const assignsTo = (s: Stmt, acc: string): boolean => (s.k === 'assign' && s.name === acc) || (s.k === 'for' && s.body.some((x) => assignsTo(x, acc)));

export const cacheWrite = primitive<CacheWriteArgs>({
  name: 'cacheWrite',
  check: (k, a) => {
    if (!a.loops.length) return 'no loops to cache over';
    let nest: For[];
    try {
      nest = chain(k.body, a.loops[0]!, a.loops[a.loops.length - 1]!);
    } catch (e) {
      return (e as Error).message;
    }
    if (nest.length !== a.loops.length || nest.some((l, i) => l.v !== a.loops[i])) return `loops ${a.loops.join(', ')} are not one perfect nest in this order`;
    const inner = nest[nest.length - 1]!.body;
    const d = declAt(inner, a.acc);
    if (d < 0) return `'${a.acc}' is not declared directly in the body of loop '${a.loops[a.loops.length - 1]}'`;
    return undefined;
  },
  apply: (k, a) => {
    const nest = chain(k.body, a.loops[0]!, a.loops[a.loops.length - 1]!);
    const inner = nest[nest.length - 1]!;
    const d = declAt(inner.body, a.acc), decl = inner.body[d] as Extract<Stmt, { k: 'decl' }>;
    let idx: Expr = E.i32(0);
    for (const l of nest) idx = E.add(E.mul(idx, E.i32(l.extent)), E.v(l.v));
    const t: Scalar = decl.t, cell = E.load(a.local, idx, t);
    const store = (v: Expr) => S.store(a.local, idx, v);
    const before = inner.body.slice(0, d), after = inner.body.slice(d + 1);
    const last = after.reduce((n, s, i) => (assignsTo(s, a.acc) ? i : n), -1);
    const updating = assignsToStores(after.slice(0, last + 1), a.acc, store, cell);
    let rest = after.slice(last + 1);
    let reads: Stmt[] = [];
    if (a.read === 'inline') {
      // a store of the value itself stores a scalar read from the cell (as lowering stores values it declared),
      // and later statements read that scalar
      let read: Expr = cell;
      rest = rest.flatMap((st) => {
        const x = replaceVar([st], a.acc, read)[0]!;
        if (st.k !== 'store' || st.value.k !== 'var' || st.value.name !== a.acc || read !== cell) return [x];
        const y = k.fresh('y');
        read = E.v(y, t);
        return [S.decl(y, t, cell), { ...st, value: read }];
      });
    } else {
      reads = [S.decl(a.read.decl, t, cell)];
      rest = replaceVar(rest, a.acc, E.v(a.read.decl, t));
    }
    const body = [...before, store(decl.init), ...updating, ...reads, ...rest];
    const top = nest[0]!.v;
    const withBody = replaceLoop(k.body, inner.v, (l) => [{ ...l, body }]);
    return {
      body: replaceParent(withBody, top, (stmts) => {
        const at = a.place === 'before' ? stmts.findIndex((s) => s.k === 'for' && s.v === top) : leadingLocals(stmts);
        return [...stmts.slice(0, at), S.local(a.local, t, nest.reduce((n, l) => n * l.extent, 1)), ...stmts.slice(at)];
      }),
    };
  },
});

/** The number of local declarations at the start of a body. */
export function leadingLocals(stmts: readonly Stmt[]): number {
  const i = stmts.findIndex((s) => s.k !== 'local');
  return i < 0 ? stmts.length : i;
}

export interface AccumulateIntoArgs {
  readonly acc: string;
}

/** The accumulator's decl, its updates and the store of its value, in one statement list: [decl, store] positions. */
function accumulation(body: readonly Stmt[], acc: string): { stmts: readonly Stmt[]; d: number; st: number } | string {
  const find = (ss: readonly Stmt[]): readonly Stmt[] | undefined => {
    if (declAt(ss, acc) >= 0) return ss;
    for (const s of ss) if (s.k === 'for') { const f = find(s.body); if (f) return f; }
    return undefined;
  };
  const stmts = find(body);
  if (!stmts) return `no decl '${acc}'`;
  const d = declAt(stmts, acc);
  const after = stmts.slice(d + 1);
  const last = after.reduce((n, s, i) => (assignsTo(s, acc) ? i : n), -1);
  const st = d + 1 + last + 1, store = stmts[st];
  if (store?.k !== 'store' || store.value.k !== 'var' || store.value.name !== acc) return `the statement after the last update of '${acc}' does not store it`;
  if (stmts.slice(st + 1).some((s) => readsOf([s]).has(acc))) return `'${acc}' is read after it is stored`;
  const between = stmts.slice(d + 1, st);
  const acc2 = accesses(between);
  if (acc2.arrays.some((x) => x.array === store.buf) || readsOf(between).has(store.buf)) return `'${store.buf}' is accessed while '${acc}' accumulates`;
  const changed = [...readsOf([S.store(store.buf, store.idx, E.i32(0))])].find((v) => acc2.assigned.has(v) || acc2.declared.has(v));
  if (changed) return `the index of the store uses '${changed}', which changes while '${acc}' accumulates`;
  return { stmts, d, st };
}

export const accumulateInto = primitive<AccumulateIntoArgs>({
  name: 'accumulateInto',
  check: (k, a) => {
    const r = accumulation(k.body, a.acc);
    if (typeof r === 'string') return r;
    const store = r.stmts[r.st] as Extract<Stmt, { k: 'store' }>;
    const isLocal = (ss: readonly Stmt[]): boolean => ss.some((s) => (s.k === 'local' && s.name === store.buf) || (s.k === 'for' && isLocal(s.body)));
    if (!isLocal(k.body)) return `'${store.buf}' is not a local array`;
    return undefined;
  },
  apply: (k, a) => {
    const r = accumulation(k.body, a.acc) as Exclude<ReturnType<typeof accumulation>, string>;
    const store = r.stmts[r.st] as Extract<Stmt, { k: 'store' }>;
    const decl = r.stmts[r.d] as Extract<Stmt, { k: 'decl' }>;
    const cell = E.load(store.buf, store.idx, decl.t);
    const updating = assignsToStores(r.stmts.slice(r.d + 1, r.st), a.acc, (v) => S.store(store.buf, store.idx, v), cell);
    const stmts = [...r.stmts.slice(0, r.d), S.store(store.buf, store.idx, decl.init), ...updating, ...r.stmts.slice(r.st + 1)];
    const swap = (ss: readonly Stmt[]): Stmt[] => (ss === r.stmts ? stmts : ss.map((s) => (s.k === 'for' ? { ...s, body: swap(s.body) } : s)));
    return { body: swap(k.body) };
  },
});
