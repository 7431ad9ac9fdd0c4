// Loop-shape primitives the GPU recipes use (with fuse.ts). addUnitLoop: consecutive statements go into a loop
// of one iteration (TVM add_unit_loop; a launch of one thread). expand: a loop becomes copies of its body, its variable a constant in
// each (Halide unroll). scaleDecl: a decl used only scaled holds the scaled value. All run the same operations
// in the same order (or the same index arithmetic): results are unchanged.
import { E, type Expr, S, type Stmt } from '../ir.js';
import { type Affine, affineOf, findLoop, loopOf, mapStmtExprs, readsOf, replaceLoop, substStmts, varsOf } from './loops.js';
import { primitive } from './primitive.js';

export interface AddUnitLoopArgs {
  /** the loop whose body holds the statements (the kernel's top level when absent) */
  readonly parent?: string;
  /** the first statement's position in that body, and how many statements */
  readonly start: number;
  readonly count: number;
  readonly v: string;
}

/** The statement list addUnitLoop works in. */
function listOf(body: readonly Stmt[], parent: string | undefined): readonly Stmt[] {
  return parent === undefined ? body : loopOf(body, parent).body;
}

export const addUnitLoop = primitive<AddUnitLoopArgs>({
  name: 'addUnitLoop',
  check: (k, a) => {
    if (a.parent !== undefined && !findLoop(k.body, a.parent)) return `no loop '${a.parent}' in the kernel`;
    const list = listOf(k.body, a.parent);
    if (!Number.isInteger(a.start) || !Number.isInteger(a.count) || a.start < 0 || a.count < 1 || a.start + a.count > list.length) return `statements ${a.start}..${a.start + a.count - 1} are not in a body of ${list.length}`;
    const inside = list.slice(a.start, a.start + a.count);
    const declared = inside.flatMap((s) => (s.k === 'decl' || s.k === 'local' ? [s.name] : []));
    const after = readsOf(list.slice(a.start + a.count));
    const used = declared.find((d) => after.has(d));
    return used === undefined ? undefined : `'${used}' is declared in the statements and used after them`;
  },
  apply: (k, a) => {
    const wrap = (list: readonly Stmt[]) => [...list.slice(0, a.start), S.for(a.v, 1, list.slice(a.start, a.start + a.count)), ...list.slice(a.start + a.count)];
    return { body: a.parent === undefined ? wrap(k.body) : replaceLoop(k.body, a.parent, (l) => [{ ...l, body: wrap(l.body) }]) };
  },
});

export interface ExpandArgs {
  readonly loop: string;
}

/** Most copies expand makes (the body is repeated in the program text). */
const MAX_EXPAND = 64;

/** Statements with declared names (decls, local arrays, loop variables) renamed, and their uses. */
export function renamed(stmts: readonly Stmt[], names: ReadonlyMap<string, string>): Stmt[] {
  const re = (n: string) => names.get(n) ?? n;
  const exprs = mapStmtExprs(stmts, (e) => (e.k === 'var' && names.has(e.name) ? { ...e, name: re(e.name) } : e.k === 'load' && names.has(e.buf) ? { ...e, buf: re(e.buf) } : e));
  const visit = (ss: readonly Stmt[]): Stmt[] => ss.map((s): Stmt => {
    switch (s.k) {
      case 'for': return { ...s, v: re(s.v), body: visit(s.body) };
      case 'if': return { ...s, body: visit(s.body) };
      case 'decl': case 'local': return { ...s, name: re(s.name) };
      case 'assign': return { ...s, name: re(s.name) };
      case 'store': return { ...s, buf: re(s.buf) };
      case 'warpTree': case 'arrive': return { ...s, local: re(s.local) };
    }
  });
  return visit(exprs);
}

function declaredIn(stmts: readonly Stmt[], out: string[] = []): string[] {
  for (const s of stmts) {
    if (s.k === 'for') { out.push(s.v); declaredIn(s.body, out); }
    else if (s.k === 'decl' || s.k === 'local') out.push(s.name);
  }
  return out;
}

export const expand = primitive<ExpandArgs>({
  name: 'expand',
  check: (k, a) => {
    const l = findLoop(k.body, a.loop);
    if (!l) return `no loop '${a.loop}' in the kernel`;
    if (l.kind !== 'serial' && l.kind !== 'unroll') return `loop '${a.loop}' is ${l.kind}`;
    return l.extent > MAX_EXPAND ? `loop '${a.loop}' has ${l.extent} iterations, more than ${MAX_EXPAND} copies` : undefined;
  },
  apply: (k, a) => ({
    body: replaceLoop(k.body, a.loop, (l) => Array.from({ length: l.extent }, (_, i) => {
      // the first copy keeps the body's names, the others get fresh ones (names are unique in a kernel)
      const names = new Map(i === 0 ? [] : declaredIn(l.body).map((n) => [n, k.fresh(n.replace(/\d+$/, ''))]));
      return renamed(substStmts(l.body, new Map([[l.v, E.i32(i)]])), names);
    }).flat()),
  }),
});

export interface ScaleDeclArgs {
  /** an i32 decl, never assigned, whose every use is scaled by a multiple of `by` */
  readonly decl: string;
  readonly by: number;
}

/** e with each maximal affine part that reads v rewritten by f (which gets its affine form), or undefined when f refuses. */
function mapAffineUses(e: Expr, v: string, f: (a: Affine) => Expr | undefined): Expr | undefined {
  if (!varsOf(e).has(v)) return e;
  const a = e.t === 'i32' ? affineOf(e) : undefined;
  if (a) return f(a);
  if (e.k === 'var') return undefined;
  const sub = (x: Expr) => mapAffineUses(x, v, f);
  switch (e.k) {
    case 'load': { const idx = sub(e.idx); return idx && { ...e, idx }; }
    case 'unary': case 'cast': { const x = sub(e.a); return x && { ...e, a: x }; }
    case 'binary': { const x = sub(e.a), y = sub(e.b); return x && y && { ...e, a: x, b: y }; }
    case 'select': { const c = sub(e.c), x = sub(e.a), y = sub(e.b); return c && x && y && { ...e, c, a: x, b: y }; }
    case 'philox': { const c = sub(e.counter), i = sub(e.index); return c && i && { ...e, counter: c, index: i }; }
    default: return undefined;
  }
}

/** The affine form with v's coefficient divided by `by` (undefined when it does not divide). */
function unscaled(a: Affine, v: string, by: number): Expr | undefined {
  const c = a.terms.get(v)!;
  if (c % by) return undefined;
  let out: Expr = E.i32(0);
  for (const [x, k] of a.terms) out = E.add(out, E.mul(E.v(x), E.i32(x === v ? c / by : k)));
  return E.add(out, E.i32(a.c));
}

/** Every expression of the statements rewritten by g (undefined when g refuses one). */
function rewriteAll(stmts: readonly Stmt[], g: (e: Expr) => Expr | undefined): Stmt[] | undefined {
  let ok = true;
  const ex = (e: Expr): Expr => {
    const r = g(e);
    if (!r) ok = false;
    return r ?? e;
  };
  const out = stmts.map(function visit(s: Stmt): Stmt {
    switch (s.k) {
      case 'for': return { ...s, body: s.body.map(visit) };
      case 'if': return { ...s, cond: ex(s.cond), body: s.body.map(visit) };
      case 'decl': return { ...s, init: ex(s.init) };
      case 'assign': return { ...s, value: ex(s.value) };
      case 'store': return { ...s, idx: ex(s.idx), value: ex(s.value) };
      case 'arrive': return { ...s, idx: ex(s.idx) };
      case 'local': case 'warpTree': return s;
    }
  });
  return ok ? out : undefined;
}

/**
 * scaleDecl: a decl used only scaled by a factor holds the scaled value (`ty = t // 8` used as `ty*2 + m` ->
 * `ty = t // 8 * 2` used as `ty + m`): the same index arithmetic, once per thread instead of at each use.
 */
export const scaleDecl = primitive<ScaleDeclArgs>({
  name: 'scaleDecl',
  check: (k, a) => {
    if (!Number.isInteger(a.by) || a.by < 1) return `factor ${a.by} is not a positive integer`;
    const d = findDecl(k.body, a.decl);
    if (!d || d.t !== 'i32') return `no i32 decl '${a.decl}' in the kernel`;
    if (assigns(k.body, a.decl)) return `'${a.decl}' is assigned`;
    return rewriteAll(k.body, (e) => mapAffineUses(e, a.decl, (f) => unscaled(f, a.decl, a.by))) ? undefined : `a use of '${a.decl}' is not scaled by a multiple of ${a.by}`;
  },
  apply: (k, a) => {
    const body = rewriteAll(k.body, (e) => mapAffineUses(e, a.decl, (f) => unscaled(f, a.decl, a.by)))!;
    const scale = (ss: readonly Stmt[]): Stmt[] => ss.map((s) => (s.k === 'decl' && s.name === a.decl ? { ...s, init: E.mul(s.init, E.i32(a.by)) } : s.k === 'for' ? { ...s, body: scale(s.body) } : s));
    return { body: scale(body) };
  },
});

function findDecl(body: readonly Stmt[], name: string): Extract<Stmt, { k: 'decl' }> | undefined {
  for (const s of body) {
    if (s.k === 'decl' && s.name === name) return s;
    if (s.k === 'for') { const d = findDecl(s.body, name); if (d) return d; }
  }
  return undefined;
}

const assigns = (body: readonly Stmt[], name: string): boolean => body.some((s) => (s.k === 'assign' && s.name === name) || (s.k === 'for' && assigns(s.body, name)));

export interface RenumberNestsArgs {
  /** top-level loops, in kernel order: the nests recipes rewrote, each with lowering's number of its first name */
  readonly nests: readonly { readonly loop: string; readonly from: number; readonly prefixes?: Readonly<Record<string, string>> }[];
}

const numbered = /^(.*?)(\d+)$/;
/** gpu_grid's launch names (g_0, t_1): they number launches, not lowering's names, and are kept */
const launchName = /_\d+$/;
const numberOf = (name: string) => Number(numbered.exec(name)![2]);
const lowered = (stmts: readonly Stmt[]) => [...new Set(declaredIn(stmts))].filter((n) => !launchName.test(n));

/**
 * renumberNests: lowering numbers a kernel's names with one counter as it emits them. After recipes rewrote some
 * nests, each is numbered again in print order from where lowering began it (prefix kept, or the one given), and
 * every other name moves up or down by what the rewritten nests before it gained or lost, so the kernel reads as
 * if lowering had emitted the rewritten nests.
 */
export const renumberNests = primitive<RenumberNestsArgs>({
  name: 'renumberNests',
  check: (k, a) => {
    let last = -1;
    for (const n of a.nests) {
      const at = k.body.findIndex((s) => s.k === 'for' && s.v === n.loop);
      if (at <= last) return `no top-level loop '${n.loop}' after the nests before it`;
      last = at;
      if (!Number.isInteger(n.from) || n.from < 0) return `${n.from} is not a name number`;
      const p = Object.entries(n.prefixes ?? {}).find(([, x]) => !/^[A-Za-z]+$/.test(x));
      if (p) return `new prefix '${p[1]}' of '${p[0]}' is not letters`;
    }
    const bad = lowered(k.body).find((n) => !numbered.test(n));
    return bad === undefined ? undefined : `'${bad}' has no number`;
  },
  apply: (k, a) => {
    const nestAt = new Map(a.nests.map((n) => [k.body.findIndex((s) => s.k === 'for' && s.v === n.loop), n]));
    // where lowering began each top-level statement's names: a nest's from, another statement's least number
    const begins = k.body.map((s, i) => nestAt.get(i)?.from ?? Math.min(...lowered([s]).map(numberOf)));
    const names = new Map<string, string>();
    let delta = 0;
    k.body.forEach((s, i) => {
      const n = nestAt.get(i);
      const own = lowered([s]);
      if (!n) {
        for (const x of own) names.set(x, `${numbered.exec(x)![1]}${numberOf(x) + delta}`);
        return;
      }
      own.forEach((x, j) => names.set(x, `${n.prefixes?.[x] ?? numbered.exec(x)![1]}${n.from + delta + j}`));
      // lowering's plain nest ended where the next statement's names began
      const next = Math.min(...begins.slice(i + 1).filter((b) => Number.isFinite(b)));
      if (Number.isFinite(next)) delta += own.length - (next - n.from);
    });
    return { body: renamed(k.body, names) };
  },
});
