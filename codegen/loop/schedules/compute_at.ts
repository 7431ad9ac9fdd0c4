// computeAt: decls are computed at the start of the bodies of loops that use them (TVM compute_at, for scalars): a
// kernel's loop-invariant scalars go into each GPU launch that reads them, a decl in a launch's body moves to its
// start. Each loop gets copies of the listed decls it reads (directly or through listed decls), in list order; a
// listed decl goes when nothing else reads it (else the copies are renamed). With `place: 'use'` a copy goes just
// before the first statement reading it, in the innermost body holding all the loop's reads of it. Legal when each copy computes the value the decl computed: the scalars it reads are visible
// there and never assigned, and no array it loads is written between the decl and a copy.
import { operands } from '../analysis.js';
import { E, type Expr, type Stmt } from '../ir.js';
import { type For, findLoop, mapStmtExprs, readsOf, varsOf } from './loops.js';
import { primitive } from './primitive.js';

export interface ComputeAtArgs {
  /** decls in bodies around the loops or in them; each loop gets copies of those it needs, in this order */
  readonly decls: readonly string[];
  readonly loops: readonly string[];
  /** where in each loop the copies go: the start of its body (default), or just before their first use */
  readonly place?: 'start' | 'use';
}

type Decl = Extract<Stmt, { k: 'decl' }>;

/** The statement lists from the kernel's top level down to the body of loop v, with the position taken in each. */
function pathTo(body: readonly Stmt[], v: string): { list: readonly Stmt[]; at: number }[] | undefined {
  for (const [i, s] of body.entries()) {
    if (s.k !== 'for') continue;
    if (s.v === v) return [{ list: body, at: i }, { list: s.body, at: -1 }];
    const inner = pathTo(s.body, v);
    if (inner) return [{ list: body, at: i }, ...inner];
  }
  return undefined;
}

const writes = (ss: readonly Stmt[], arrays: ReadonlySet<string>): boolean =>
  ss.some((s) => (s.k === 'store' && arrays.has(s.buf)) || (s.k === 'for' && writes(s.body, arrays)));

function loadsOf(e: Expr, out = new Set<string>()): Set<string> {
  if (e.k === 'load') out.add(e.buf);
  for (const x of operands(e)) loadsOf(x, out);
  return out;
}

function assignedNames(ss: readonly Stmt[], out = new Set<string>()): Set<string> {
  for (const s of ss) {
    if (s.k === 'assign') out.add(s.name);
    else if (s.k === 'for') assignedNames(s.body, out);
  }
  return out;
}

/** Why copying the decls to the start of loop v's body may change a value, or undefined. */
function problem(body: readonly Stmt[], decls: readonly string[], v: string): string | undefined {
  const path = pathTo(body, v);
  if (!path) return `no loop '${v}' in the kernel`;
  const assigned = assignedNames(body);
  const n = path.length - 1; // path[n] is the loop's own body
  for (const [di, name] of decls.entries()) {
    const lvl = path.findIndex((p) => p.list.some((s) => s.k === 'decl' && s.name === name));
    if (lvl < 0) return `'${name}' is not a decl of a body around or in loop '${v}'`;
    const { list, at } = path[lvl]!;
    const p = list.findIndex((s) => s.k === 'decl' && s.name === name);
    const d = list[p] as Decl;
    if (lvl < n && p > at) return `'${name}' is declared after the loop '${v}' it would move into`;
    if (assigned.has(name)) return `'${name}' is assigned (not a value computed once)`;
    // the scalars it reads: moved before it, loop variables around the copy, or decls before the copy, never assigned
    for (const x of varsOf(d.init)) {
      if (decls.slice(0, di).includes(x)) continue;
      const visible = path.some((q, i) => (i < n && q.list[q.at]?.k === 'for' && (q.list[q.at] as For).v === x)
        || (i < n && q.list.slice(0, q.at).some((s) => s.k === 'decl' && s.name === x)));
      if (!visible) return `'${name}' reads '${x}', which is not visible at the start of loop '${v}'`;
      if (assigned.has(x)) return `'${name}' reads '${x}', which is assigned`;
    }
    const arrays = loadsOf(d.init);
    if (!arrays.size) continue;
    const changed = `'${name}' loads an array written between it and loop '${v}'`;
    if (lvl === n) {
      if (writes(list.slice(0, p), arrays)) return changed;
      continue;
    }
    if (writes(list.slice(p + 1, at), arrays)) return changed;
    // inside the statement holding the loop: the copy runs once, before any write
    const holder = path.slice(lvl + 1);
    if (writes([list[at]!], arrays)) {
      const once = path.slice(lvl, n).every((q) => (q.list[q.at] as For).extent === 1);
      if (!once || holder.some((q, i) => i < holder.length - 1 && writes(q.list.slice(0, q.at), arrays))) return changed;
    }
  }
  return undefined;
}

/** Reads of variable name outside the loops named in `skip` (and outside the decl itself). */
function readOutside(body: readonly Stmt[], name: string, skip: ReadonlySet<string>, moved: ReadonlySet<string>): boolean {
  return body.some((s) => {
    if (s.k === 'for') return !skip.has(s.v) && readOutside(s.body, name, skip, moved);
    if (s.k === 'decl' && (s.name === name || moved.has(s.name))) return false;
    return readsOf([s]).has(name);
  });
}

/**
 * Statements with decls ds (in dependence order) placed at their uses: in the innermost body holding every read,
 * before each statement the ones it needs (directly or through others) not placed yet.
 */
function placeAtUse(stmts: readonly Stmt[], ds: readonly Stmt[]): Stmt[] {
  const names = ds.map((d) => (d as Decl).name);
  const reads = (s: Stmt) => { const r = readsOf([s]); return names.some((n) => r.has(n)); };
  const readers = stmts.filter(reads);
  const only = readers[0];
  if (readers.length === 1 && only?.k === 'for') return stmts.map((s) => (s === only ? { ...s, body: placeAtUse(s.body, ds) } : s));
  const placed = new Set<string>(), out: Stmt[] = [];
  const need = (s: Stmt, acc: Set<string>): Set<string> => {
    for (const v of readsOf([s])) {
      const d = ds.find((x) => (x as Decl).name === v);
      if (d && !acc.has(v) && !placed.has(v)) { acc.add(v); need(d, acc); }
    }
    return acc;
  };
  for (const s of stmts) {
    const want = need(s, new Set());
    for (const d of ds) if (want.has((d as Decl).name)) { out.push(d); placed.add((d as Decl).name); }
    out.push(s);
  }
  return out;
}

/** The listed decls loop l needs, in list order: those its body reads, directly or through other listed decls. */
function needed(l: For, decls: readonly string[], inits: ReadonlyMap<string, Expr>): string[] {
  const listed = new Set(decls);
  const reads = readsOf(l.body.filter((s) => s.k !== 'decl' || !listed.has(s.name)));
  const need = new Set<string>();
  const visit = (name: string): void => {
    if (!listed.has(name) || need.has(name)) return;
    need.add(name);
    for (const v of varsOf(inits.get(name)!)) visit(v);
  };
  for (const r of reads) visit(r);
  return decls.filter((d) => need.has(d));
}

function declsByName(body: readonly Stmt[], names: ReadonlySet<string>, out = new Map<string, Decl>()): Map<string, Decl> {
  for (const s of body) {
    if (s.k === 'decl' && names.has(s.name)) out.set(s.name, s);
    if (s.k === 'for') declsByName(s.body, names, out);
  }
  return out;
}

export const computeAt = primitive<ComputeAtArgs>({
  name: 'computeAt',
  check: (k, a) => {
    if (!a.decls.length || !a.loops.length) return 'no decls or no loops';
    if (new Set(a.loops).size !== a.loops.length || new Set(a.decls).size !== a.decls.length) return 'a decl or a loop is named twice';
    const decls = declsByName(k.body, new Set(a.decls));
    const missing = a.decls.find((d) => !decls.has(d));
    if (missing) return `no decl '${missing}' in the kernel`;
    const inits = new Map([...decls].map(([n, d]) => [n, d.init]));
    for (const v of a.loops) {
      const l = findLoop(k.body, v);
      if (!l) return `no loop '${v}' in the kernel`;
      const nested = a.loops.find((w) => w !== v && findLoop(l.body, w));
      if (nested) return `loop '${nested}' is inside loop '${v}'`;
      const why = problem(k.body, needed(l, a.decls, inits), v);
      if (why) return why;
    }
    return undefined;
  },
  apply: (k, a) => {
    const skip = new Set(a.loops), moved = new Set(a.decls);
    const declOf = declsByName(k.body, moved);
    const inits = new Map([...declOf].map(([n, d]) => [n, d.init]));
    // a decl still read elsewhere (or by a listed decl that stays) stays, and its copies get fresh names (a name
    // is declared once in a scope)
    const stays = new Set(a.decls.filter((d) => readOutside(k.body, d, skip, moved)));
    for (let grew = true; grew;) {
      grew = false;
      for (const d of a.decls) {
        if (stays.has(d) || ![...stays].some((x) => varsOf(inits.get(x)!).has(d))) continue;
        stays.add(d);
        grew = true;
      }
    }
    const visit = (ss: readonly Stmt[]): Stmt[] => ss.flatMap((s): Stmt[] => {
      if (s.k === 'decl' && moved.has(s.name)) return stays.has(s.name) ? [s] : [];
      if (s.k !== 'for') return [s];
      if (!skip.has(s.v)) return [{ ...s, body: visit(s.body) }];
      const need = needed(s, a.decls, inits);
      const names = new Map(need.filter((d) => stays.has(d)).map((d) => [d, k.fresh(d.replace(/\d+$/, ''))]));
      const copies: Stmt[] = need.map((d) => ({ ...declOf.get(d)!, name: names.get(d) ?? d }));
      const rest = visit(s.body);
      const rn = (stmts: Stmt[]) => (names.size ? mapStmtExprs(stmts, (e) => (e.k === 'var' && names.has(e.name) ? E.v(names.get(e.name)!, e.t) : e)) : stmts);
      if (a.place !== 'use') return [{ ...s, body: rn([...copies, ...rest]) }];
      // the copies just before the first statement reading one, in the innermost body holding every read
      return [{ ...s, body: rn(placeAtUse(rest, copies)) }];
    });
    return { body: visit(k.body) };
  },
});
