// Primitive and recipe: parity specialization. A max pooling's gradient over windows of stride m (autodiff's
// maxWindowGrad: for every window offset, the candidate output whose window holds this input, its argmax test and
// its gradient, kept where `o % m` says the offset is this input's: `select(o2 % 2 < 1, ...)`) evaluates every
// candidate's loads for each input, though one alone is live. parity splits the nest's loops v read that way into
// v = m*h + p and runs the m^d values of p as copies of the body in each iteration of the h loops; in each copy the
// selects whose conditions the constant p decides (evaluated over every value of the few loop variables they read,
// a chain of selects sharing their false branch as one conjunction) become the branch taken, and min/max that the
// loops' ranges decide their operand. The rewrites are exact integer identities and selects of decided conditions:
// every value computed is the same, bit for bit; the dead candidates' decls go (dropDeadDecls) and the copies share
// their equal loads (shareDecls) once simplifyIndices has made equal indices equal.
import { E, type Expr, S, type Stmt } from '../ir.js';
import { assigned } from '../analysis.js';
import { loopEnv, rangeOf } from '../range.js';
import { walkStmts } from '../visit.js';
import { dropDeadDecls } from './dead_decls.js';
import { simplifyIndices } from './cleanup.js';
import { renamed } from './gpu_loops.js';
import type { Recipe } from './index.js';
import { type For, declaredNames, key, mapExpr, substExpr, substStmts, varsOf } from './loops.js';
import { primitive } from './primitive.js';

export interface ParityArgs {
  /** a top-level serial nest of perfectly nested loops whose innermost body is decls and stores */
  readonly nest: string;
  /** the nest's loops to split by m */
  readonly loops: readonly string[];
  readonly m: number;
}

/** Most evaluations of one condition (the product of the extents of the loop variables it reads). */
const MAX_CASES = 4096;

/** The perfectly nested loops of a top-level serial nest and their innermost body (decls and stores only), or why not. */
function parse(k: { body: readonly Stmt[] }, a: { nest: string }) {
  const top = k.body.find((s): s is For => s.k === 'for' && s.v === a.nest);
  if (top?.kind !== 'serial') return `no top-level serial nest '${a.nest}'`;
  const chain = [top];
  for (let l = top; l.body.length === 1 && l.body[0]!.k === 'for' && l.body[0]!.kind === 'serial';) chain.push((l = l.body[0] as For));
  const body = chain[chain.length - 1]!.body;
  // (after parity: the stores in unrolled loops over the copies)
  const stores = (ss: readonly Stmt[]): boolean => ss.every((s) => s.k === 'store' || (s.k === 'for' && s.kind === 'unroll' && stores(s.body)));
  if (!body.every((s) => s.k === 'decl' || stores([s])) || assigned([...body]).size) return `the body of nest '${a.nest}' is not decls and stores`;
  return { top, chain, body };
}

type Ints = ReadonlyMap<string, Expr>;

/** The value of an i32/bool expression where `env` gives every variable (decls in `ints` inlined), or undefined. */
function evaluate(e: Expr, env: ReadonlyMap<string, number>, ints: Ints): number | undefined {
  const ev = (x: Expr) => evaluate(x, env, ints);
  switch (e.k) {
    case 'const': return e.t === 'f32' ? undefined : e.v;
    case 'var': return env.get(e.name) ?? (ints.has(e.name) ? ev(ints.get(e.name)!) : undefined);
    case 'unary': { const x = ev(e.a); return e.op === 'not' && x !== undefined ? (x ? 0 : 1) : e.op === 'neg' && x !== undefined ? -x | 0 : undefined; }
    case 'select': { const c = ev(e.c); return c === undefined ? undefined : c ? ev(e.a) : ev(e.b); }
    case 'binary': {
      if (e.a.t === 'f32') return undefined;
      const x = ev(e.a), y = ev(e.b);
      if (x === undefined || y === undefined) return undefined;
      switch (e.op) {
        case 'add': return (x + y) | 0;
        case 'sub': return (x - y) | 0;
        case 'mul': return Math.imul(x, y);
        case 'idiv': return y === 0 ? 0 : Math.floor(x / y) | 0; // as the loop interpreter
        case 'mod': return y === 0 ? 0 : ((x % y) + Math.abs(y)) % Math.abs(y);
        case 'min': return Math.min(x, y);
        case 'max': return Math.max(x, y);
        case 'eq': return +(x === y);
        case 'ne': return +(x !== y);
        case 'lt': return +(x < y);
        case 'le': return +(x <= y);
        case 'gt': return +(x > y);
        case 'ge': return +(x >= y);
        case 'and': return +(x !== 0 && y !== 0);
        case 'or': return +(x !== 0 || y !== 0);
        default: return undefined;
      }
    }
    default: return undefined;
  }
}

/** Whether e reads only loop variables of `extents` (through the decls in `ints`) and integer and bool values. */
function loopVars(e: Expr, extents: ReadonlyMap<string, number>, ints: Ints, out = new Set<string>()): Set<string> | undefined {
  for (const v of varsOf(e)) {
    if (extents.has(v)) out.add(v);
    else if (!ints.has(v) || !loopVars(ints.get(v)!, extents, ints, out)) return undefined;
  }
  let load = false;
  mapExpr(e, (x) => { if (x.k === 'load' || x.t === 'f32') load = true; return x; });
  return load ? undefined : out;
}

/** The value c takes in every iteration where each of `given` holds (true or false), or undefined. */
function decide(c: Expr, given: readonly Expr[], extents: ReadonlyMap<string, number>, ints: Ints): boolean | undefined {
  const vars = new Set<string>();
  for (const x of [c, ...given]) if (!loopVars(x, extents, ints, vars)) return undefined;
  const names = [...vars], cases = names.reduce((n, v) => n * extents.get(v)!, 1);
  if (cases > MAX_CASES) return undefined;
  let seen: boolean | undefined;
  const env = new Map<string, number>();
  for (let i = 0; i < cases; i++) {
    let r = i;
    for (const v of names) { env.set(v, r % extents.get(v)!); r = Math.floor(r / extents.get(v)!); }
    if (!given.every((g) => evaluate(g, env, ints))) continue;
    const v = evaluate(c, env, ints);
    if (v === undefined || (seen !== undefined && seen !== !!v)) return undefined;
    seen = !!v;
  }
  return seen;
}

/**
 * The body with decided selects and min/max folded. A select whose true branch is a decl holding another select with
 * the same false branch is decided on both conditions (`select(c, select(d, x, y), y)` is `select(c && d, x, y)`).
 */
function fold(body: readonly Stmt[], extents: ReadonlyMap<string, number>): Stmt[] {
  const ints = new Map<string, Expr>(), decls = new Map<string, Expr>(), env = loopEnv(extents);
  const rule = (x: Expr): Expr => {
    if (x.k === 'binary' && (x.op === 'min' || x.op === 'max') && x.t === 'i32') {
      const a = rangeOf(x.a, env), b = rangeOf(x.b, env);
      if (a && b && a.hi <= b.lo) return x.op === 'min' ? x.a : x.b;
      if (a && b && b.hi <= a.lo) return x.op === 'min' ? x.b : x.a;
      return x;
    }
    if (x.k !== 'select') return x;
    if (key(x.a) === key(x.b)) return x.a;
    const conds = [x.c];
    for (let t = x.a; t.k === 'var' && decls.get(t.name)?.k === 'select';) {
      const inner = decls.get(t.name) as Extract<Expr, { k: 'select' }>;
      if (key(inner.b) !== key(x.b) || !loopVars(inner.c, extents, ints)) break;
      conds.push(inner.c);
      t = inner.a;
    }
    // false where the conditions never all hold; true where the first always holds
    for (let n = conds.length; n >= 1; n--) if (decide(conds[n - 1]!, conds.slice(0, n - 1), extents, ints) === false) return x.b;
    return decide(x.c, [], extents, ints) === true ? x.a : x;
  };
  return body.map((s) => {
    if (s.k === 'store') return { ...s, idx: mapExpr(s.idx, rule), value: mapExpr(s.value, rule) };
    if (s.k !== 'decl') return s;
    const init = mapExpr(s.init, rule);
    decls.set(s.name, init);
    if (s.t !== 'f32' && loopVars(init, extents, ints)) ints.set(s.name, init);
    return { ...s, init };
  });
}

/** The nest's loops in `a.loops` split by m, the m^d copies of the body (one per p) folded. */
function specialized(k: { body: readonly Stmt[]; fresh: (p: string) => string }, a: ParityArgs) {
  const r = parse(k, a);
  if (typeof r === 'string') return r;
  const split = r.chain.filter((l) => a.loops.includes(l.v));
  if (split.length !== a.loops.length || !split.every((l) => l.extent % a.m === 0 && l.extent > a.m)) return `loops ${a.loops.join(', ')} of nest '${a.nest}' do not split by ${a.m}`;
  const h = new Map(split.map((l) => [l.v, k.fresh(`${l.v.replace(/_?\d+$/, '')}h`)]));
  const extents = new Map(r.chain.map((l) => (h.has(l.v) ? [h.get(l.v)!, l.extent / a.m] : [l.v, l.extent])));
  const store = r.body[r.body.length - 1]!;
  if (store.k !== 'store' || r.body.filter((x) => x.k === 'store').length !== 1) return `nest '${a.nest}' does not end in its one store`;
  const copies: Stmt[] = [], values: Expr[] = [];
  const declared = [...declaredNames(r.body)];
  // the one store, after the copies, indexes by the loops alone (a decl of the body would be the first copy's)
  if (declared.some((n) => varsOf(store.idx).has(n))) return `the store of nest '${a.nest}' indexes through a decl`;
  for (let c = 0; c < a.m ** split.length; c++) {
    let rest = c;
    const at = new Map<string, Expr>();
    for (let i = split.length - 1; i >= 0; i--, rest = Math.floor(rest / a.m)) at.set(split[i]!.v, E.add(E.mul(E.v(h.get(split[i]!.v)!), E.i32(a.m)), E.i32(rest % a.m)));
    const names = new Map(c === 0 ? [] : declared.map((n) => [n, k.fresh(n.replace(/\d+$/, ''))]));
    const copy = fold(renamed(substStmts(r.body, at), names), extents);
    values.push((copy.pop() as Extract<Stmt, { k: 'store' }>).value);
    copies.push(...copy);
  }
  // the copies' values stored by one store in unrolled loops over p (v = m*h + p): one index, which the legality
  // proofs (writesApart, separates) read as mixed radix digits, where stores at constant offsets would not be
  const p = split.map((l) => k.fresh(`${l.v.replace(/_?\d+$/, '')}p`));
  const choose = (level: number, at: number): Expr => {
    if (level === split.length) return values[at]!;
    let out = choose(level + 1, at * a.m + a.m - 1);
    for (let q = a.m - 2; q >= 0; q--) out = E.select(E.binary('eq', E.v(p[level]!), E.i32(q)), choose(level + 1, at * a.m + q), out);
    return out;
  };
  const pv = new Map(split.map((l, i) => [l.v, E.add(E.mul(E.v(h.get(l.v)!), E.i32(a.m)), E.v(p[i]!))]));
  let stores: Stmt[] = [{ ...store, idx: substExpr(store.idx, pv), value: choose(0, 0) }];
  for (let i = split.length - 1; i >= 0; i--) stores = [S.for(p[i]!, a.m, stores, 'unroll')];
  let nest: Stmt[] = [...copies, ...stores];
  for (let i = r.chain.length - 1; i >= 0; i--) {
    const l = r.chain[i]!;
    nest = [{ ...l, v: h.get(l.v) ?? l.v, extent: h.has(l.v) ? l.extent / a.m : l.extent, body: nest }];
  }
  return { top: r.top, nest: nest[0]!, before: r.body };
}

/** Loads of global buffers the stores of a body need, through its decls. */
function liveLoads(body: readonly Stmt[]): number {
  const inits = new Map(body.flatMap((s) => (s.k === 'decl' ? [[s.name, s.init] as const] : [])));
  const seen = new Set<string>();
  let n = 0;
  const count = (e: Expr) => mapExpr(e, (x) => {
    if (x.k === 'load') n++;
    if (x.k === 'var' && inits.has(x.name) && !seen.has(x.name)) { seen.add(x.name); count(inits.get(x.name)!); }
    return x;
  }, new Map());
  const visit = (ss: readonly Stmt[]): void => { for (const s of ss) if (s.k === 'store') { count(s.idx); count(s.value); } else if (s.k === 'for') visit(s.body); };
  visit(body);
  return n;
}

const innermost = (s: Stmt): readonly Stmt[] => (s.k === 'for' ? (s.body.length === 1 && s.body[0]!.k === 'for' ? innermost(s.body[0]!) : s.body) : [s]);

export const parity = primitive<ParityArgs>({
  name: 'parity',
  check: (k, a) => {
    const r = specialized(k, a);
    if (typeof r === 'string') return r;
    // worth it where the copies load less than m^d iterations of the body did (the dead candidates' loads gone)
    const after = liveLoads(innermost(r.nest)), before = liveLoads(r.before) * a.m ** a.loops.length;
    return after < before ? undefined : `the copies of nest '${a.nest}' load as much as its iterations (${after} of ${before})`;
  },
  apply: (k, a) => {
    const r = specialized(k, a) as Exclude<ReturnType<typeof specialized>, string>;
    return { body: k.body.map((s) => (s === r.top ? r.nest : s)) };
  },
});

/** A top-level nest's innermost body with each decl whose init equals an earlier one's (no load of a buffer it stores) replaced by it. */
export const shareDecls = primitive<{ readonly nest: string }>({
  name: 'shareDecls',
  check: (k, a) => {
    const r = parse(k, a);
    return typeof r === 'string' ? r : undefined;
  },
  apply: (k, a) => {
    const r = parse(k, a) as Exclude<ReturnType<typeof parse>, string>;
    const stored = new Set<string>();
    walkStmts(r.body, (s) => { if (s.k === 'store') stored.add(s.buf); });
    const same = new Map<string, Expr>(), seen = new Map<string, string>();
    const body = r.body.flatMap((s): Stmt[] => {
      if (s.k !== 'decl') return substStmts([s], same);
      const init = substExpr(s.init, same);
      let reads = false;
      mapExpr(init, (x) => { if (x.k === 'load' && stored.has(x.buf)) reads = true; return x; });
      const id = `${s.t} ${key(init)}`, prev = seen.get(id);
      if (prev && !reads) { same.set(s.name, E.v(prev, s.t)); return []; }
      seen.set(id, s.name);
      return [{ ...s, init }];
    });
    const swap = (s: Stmt): Stmt => (s.k !== 'for' ? s : s.body === r.body ? { ...s, body } : { ...s, body: s.body.map(swap) });
    return { body: k.body.map((s) => (s === r.top ? swap(s) : s)) };
  },
});

/** The modulus m and the loops of a nest some select condition reads as `x % m` (x reading the loop), m of 2 to 4. */
function candidates(chain: readonly For[], body: readonly Stmt[]): { m: number; loops: string[] } | undefined {
  const found = new Map<number, Set<string>>();
  const extents = new Map(chain.map((l) => [l.v, l.extent]));
  const look = (e: Expr) => mapExpr(e, (x) => {
    if (x.k === 'select') mapExpr(x.c, (y) => {
      if (y.k === 'binary' && y.op === 'mod' && y.b.k === 'const' && y.b.v >= 2 && y.b.v <= 4) {
        for (const v of varsOf(y.a)) if (extents.has(v) && extents.get(v)! % y.b.v === 0) found.set(y.b.v, (found.get(y.b.v) ?? new Set()).add(v));
      }
      return y;
    });
    return x;
  }, new Map());
  for (const s of body) if (s.k === 'decl') look(s.init); else if (s.k === 'store') look(s.value);
  const [m, loops] = [...found].sort((x, y) => y[1].size - x[1].size)[0] ?? [];
  // the top loop keeps its name (the recipe's later steps find the nest by it)
  return m ? { m, loops: chain.slice(1).filter((l) => loops!.has(l.v)).map((l) => l.v) } : undefined;
}

/** Parity specialization on every top-level nest it makes load less, then its indices simplified and equal loads shared. */
export const gpuParity: Recipe = {
  name: 'gpu-parity',
  run: (s, caps) => {
    if (!caps.gpu) return;
    for (const top of [...s.body]) {
      if (top.k !== 'for') continue;
      const nest = top.v, r = parse(s, { nest });
      if (typeof r === 'string') continue;
      const c = candidates(r.chain, r.body);
      if (!c?.loops.length || !s.try(parity, { nest, ...c })) continue;
      s.apply(simplifyIndices, { loop: nest });
      s.try(shareDecls, { nest });
      s.try(dropDeadDecls, { loop: nest });
    }
  },
};
