// GPU binding (TVM bind): bind makes serial loops the grid's block loops and a block's thread loops (gpu.ts states
// what the axes mean). Both need iterations that may run at once (iterations.ts); a thread loop's
// uses of a register array declared in its block must be the thread's own slice, `A[t*S + r]` (0 <= r < S), since
// each thread keeps its own copy. privatize then shrinks such an array to one slice, `A[r]` (TVM's "local" scope),
// and drops a thread loop's decls that only its old indices read.
import { E, type Expr, type Stmt } from '../ir.js';
import { Body, complete, digitOfExpr, rangeOf } from './iterations.js';
import { independence } from './iterations.js';
import { type For, affineOf, findLoop, key, mapStmtExprs, readsOf, varsOf } from './loops.js';
import { setKinds } from './kinds.js';
import { independentIterations, pureDecls } from '../analysis.js';
import { primitive } from './primitive.js';

export interface BindArgs {
  /** loops at the top of the kernel or in block loops (bound or in this list): the grid */
  readonly blocks: readonly string[];
  /** loops inside a block loop (bound or in `blocks`): its threads */
  readonly threads: readonly string[];
}

/** MAX threads per block (CUDA's limit, as the verifier's). */
const MAX_THREADS = 1024;

/** The loops around loop v, outermost first (undefined when there is no loop v). */
export function ancestors(body: readonly Stmt[], v: string, out: For[] = []): For[] | undefined {
  for (const s of body) {
    if (s.k !== 'for') continue;
    if (s.v === v) return out;
    const inner = ancestors(s.body, v, [...out, s]);
    if (inner) return inner;
  }
  return undefined;
}

/** Register arrays declared in a block loop outside its thread loops (one copy per thread), by name, with their size. */
function blockRegisters(body: readonly Stmt[], inBlock = false, out = new Map<string, number>()): Map<string, number> {
  for (const s of body) {
    if (s.k === 'local' && inBlock && s.scope === 'register') out.set(s.name, s.size);
    if (s.k === 'for' && s.kind !== 'thread') blockRegisters(s.body, inBlock || s.kind === 'block', out);
  }
  return out;
}

/** Every loop of the statements, by variable. */
function loopsIn(body: readonly Stmt[], out = new Map<string, For>()): Map<string, For> {
  for (const s of body) if (s.k === 'for') { out.set(s.v, s); loopsIn(s.body, out); }
  return out;
}

/**
 * Index idx (of an access in thread loop t, of T threads) as t*S + r with 0 <= r < S: r (in the index's own
 * variables), or undefined. The thread part may be t itself or the digits of t decoded by the loop's decls.
 */
export function threadSlice(t: For, idx: Expr, S: number, extents: ReadonlyMap<string, number>): Expr | undefined {
  const body = new Body(t.body);
  const form = affineOf(idx);
  if (!form) return undefined;
  const digits: { s: number; e?: number; c: number }[] = [];
  let rest: Expr = E.i32(form.c);
  for (const [x, c] of form.terms) {
    const inl = body.inline(E.v(x));
    if (inl.k === 'const') {
      rest = E.add(rest, E.i32(inl.v * c));
      continue;
    }
    if (!varsOf(inl).has(t.v)) {
      rest = E.add(rest, E.mul(E.v(x), E.i32(c)));
      continue;
    }
    const d = x === t.v ? { x: inl, s: 1, e: undefined } : digitOfExpr(inl);
    if (!d || key(d.x) !== t.v) return undefined;
    digits.push({ s: d.s, e: d.e, c });
  }
  // the thread part is S times the digits' weights, and the digits decode t
  if (!digits.every((d) => d.c === S * d.s)) return undefined;
  if (!complete(digits.map((d, i) => ({ name: `#${i}`, x: E.v(t.v), s: d.s, e: d.e })), { lo: 0, hi: t.extent - 1 })) return undefined;
  const r = rangeOf(body.inline(rest), extents);
  return r && r.lo >= 0 && r.hi < S ? rest : undefined;
}

/** Why the thread loop's uses of register arrays of its block are not each thread's own slice, or undefined. */
function slicesProblem(kernel: readonly Stmt[], t: For, block: For): string | undefined {
  const regs = blockRegisters([block], false);
  if (!regs.size) return undefined;
  const extents = new Map([...loopsIn(kernel)].map(([v, l]) => [v, l.extent]));
  const threadLoops = [...loopsIn(block.body).values()].filter((l) => l.kind === 'thread' || l === t);
  const body = new Body(t.body);
  for (const acc of body.accesses) {
    // an array declared in the loop is each iteration's own
    const size = body.declared.has(acc.array) ? undefined : regs.get(acc.array);
    if (size === undefined) continue;
    const other = threadLoops.find((o) => o.extent !== t.extent && readsOf(o.body).has(acc.array));
    if (other) return `register array '${acc.array}' is used by thread loop '${other.v}' of ${other.extent} threads too`;
    if (size % t.extent || !threadSlice(t, acc.idx, size / t.extent, extents)) return `its index ${key(acc.idx)} into register array '${acc.array}' is not the thread's own slice`;
  }
  return undefined;
}

/**
 * gpu_grid's launches: a top-level loop (or a thread loop directly in one, given its block's variable) of lowering's
 * outer loops, whose iterations analysis.ts finds independent (it trusts lowering to store one element per outer
 * index, so it accepts index arithmetic iterations.ts cannot follow, e.g. a reshape's round trip).
 */
function launchIndependent(body: readonly Stmt[], l: For, block?: For): boolean {
  if (!block) {
    const topLocals = new Set(body.flatMap((x) => (x.k === 'local' ? [x.name] : [])));
    return body.includes(l) && independentIterations(l, pureDecls(body), topLocals);
  }
  const locals = new Set(block.body.flatMap((x) => (x.k === 'local' ? [x.name] : [])));
  return body.includes(block) && block.body.includes(l) && independentIterations(l, new Map([...pureDecls(body), [block.v, block]]), locals);
}

/** Why loop v may not become a block loop (its outer loops blocks or becoming blocks), or undefined. */
function blockProblem(body: readonly Stmt[], v: string, blocks: readonly string[]): string | undefined {
  const l = findLoop(body, v)!;
  const around = ancestors(body, v)!;
  const up = around.find((o) => o.kind !== 'block' && !blocks.includes(o.v));
  if (up) return `loop '${v}' is inside loop '${up.v}', not at the top of the kernel or in block loops`;
  const why = independence(l, around);
  return why && !launchIndependent(body, l) ? `loop '${v}': ${why}` : undefined;
}

/** Why loop v may not become a thread loop of the kernel `body` (its blocks already marked), or undefined. */
function threadProblem(body: readonly Stmt[], v: string, threads: readonly string[]): string | undefined {
  const l = findLoop(body, v)!;
  if (l.extent > MAX_THREADS) return `loop '${v}' has ${l.extent} iterations, more than ${MAX_THREADS} threads`;
  const up = ancestors(body, v)!;
  const block = [...up].reverse().find((o) => o.kind === 'block');
  if (!block) return `loop '${v}' is not inside a block loop`;
  const nested = up.find((o) => o.kind === 'thread' || threads.includes(o.v)) ?? [...loopsIn(l.body).values()].find((o) => o.kind === 'thread' || threads.includes(o.v));
  if (nested) return `loops '${v}' and '${nested.v}' nest (threads are one axis)`;
  const why = independence(l, up) ?? slicesProblem(body, l, block);
  return why && !launchIndependent(body, l, block) ? `loop '${v}': ${why}` : undefined;
}

/**
 * bind: loops become GPU block and thread axes (TVM bind to blockIdx.x / threadIdx.x), in one step, as a block's
 * statements must sit in its thread loops (and a kernel's top level be all launches or none).
 */
export const bind = primitive<BindArgs>({
  name: 'bind',
  check: (k, a) => {
    for (const v of [...a.blocks, ...a.threads]) {
      const l = findLoop(k.body, v);
      if (!l) return `no loop '${v}' in the kernel`;
      if (l.kind !== 'serial') return `loop '${v}' is ${l.kind} already`;
    }
    for (const v of a.blocks) {
      const why = blockProblem(k.body, v, a.blocks);
      if (why) return why;
    }
    const withBlocks = setKinds(k.body, new Map(a.blocks.map((v) => [v, 'block' as const])));
    for (const v of a.threads) {
      const why = threadProblem(withBlocks, v, a.threads);
      if (why) return why;
    }
    return undefined;
  },
  apply: (k, a) => ({ body: setKinds(k.body, new Map([...a.blocks.map((v) => [v, 'block'] as const), ...a.threads.map((v) => [v, 'thread'] as const)])) }),
});

export interface PrivatizeArgs {
  /** a register array declared in a block loop, used only in thread loops, each at its thread's slice */
  readonly local: string;
}

/** The innermost block loop declaring register array name outside its thread loops, or undefined. */
function declaringBlock(body: readonly Stmt[], name: string, block?: For): For | undefined {
  for (const s of body) {
    if (s.k === 'local' && s.name === name) return s.scope === 'register' ? block : undefined;
    if (s.k === 'for' && s.kind !== 'thread') {
      const b = declaringBlock(s.body, name, s.kind === 'block' ? s : block);
      if (b) return b;
    }
  }
  return undefined;
}

/** The thread loops using the register array and its slice per thread, or why it cannot be privatized. */
function privatizeProblem(body: readonly Stmt[], name: string): { threads: For[]; S: number } | string {
  const block = declaringBlock(body, name);
  if (!block) return `'${name}' is not a register array declared in a block loop outside its thread loops`;
  const size = blockRegisters([block]).get(name)!;
  const outside = (ss: readonly Stmt[]): boolean => ss.some((s) => (s.k === 'for' ? s.kind !== 'thread' && outside(s.body) : readsOf([s]).has(name)));
  if (outside(block.body)) return `'${name}' is used outside the thread loops of its block`;
  const threads = [...loopsIn(block.body).values()].filter((l) => l.kind === 'thread' && readsOf(l.body).has(name));
  const T = threads[0]?.extent;
  if (T === undefined) return `'${name}' is used by no thread loop`;
  if (threads.some((l) => l.extent !== T)) return `'${name}' is used by thread loops of different sizes`;
  if (size % T) return `'${name}' has ${size} elements, not a slice per thread of ${T}`;
  const extents = new Map([...loopsIn(body)].map(([v, l]) => [v, l.extent]));
  for (const t of threads) {
    for (const acc of new Body(t.body).accesses) {
      if (acc.array === name && !threadSlice(t, acc.idx, size / T, extents)) return `index ${key(acc.idx)} into '${name}' is not the thread's own slice`;
    }
  }
  return { threads, S: size / T };
}

/** Names the indices into arr read in the statements, with the decls of the statements they read in turn. */
function indexNames(stmts: readonly Stmt[], arr: string): Set<string> {
  const out = new Set<string>();
  const ex = (e: Expr): Expr => {
    if (e.k === 'load' && e.buf === arr) varsOf(e.idx, out);
    return e;
  };
  const walk = (ss: readonly Stmt[]): void => {
    mapStmtExprs(ss, ex);
    for (const s of ss) {
      if (s.k === 'store' && s.buf === arr) varsOf(s.idx, out);
      if (s.k === 'for') walk(s.body);
    }
  };
  walk(stmts);
  for (let i = stmts.length - 1; i >= 0; i--) {
    const s = stmts[i]!;
    if (s.k === 'decl' && out.has(s.name)) varsOf(s.init, out);
  }
  return out;
}

export const privatize = primitive<PrivatizeArgs>({
  name: 'privatize',
  check: (k, a) => {
    const r = privatizeProblem(k.body, a.local);
    return typeof r === 'string' ? r : undefined;
  },
  apply: (k, a) => {
    const { threads, S } = privatizeProblem(k.body, a.local) as { threads: For[]; S: number };
    const extents = new Map([...loopsIn(k.body)].map(([v, l]) => [v, l.extent]));
    const slice = (t: For): Stmt[] => {
      const at = (idx: Expr) => threadSlice(t, idx, S, extents)!;
      const rewrite = (ss: readonly Stmt[]): Stmt[] => mapStmtExprs(ss, (e) => (e.k === 'load' && e.buf === a.local ? { ...e, idx: at(e.idx) } : e));
      const stores = (ss: readonly Stmt[]): Stmt[] => ss.map((s): Stmt => (s.k === 'store' && s.buf === a.local ? { ...s, idx: at(s.idx) } : s.k === 'for' ? { ...s, body: stores(s.body) } : s));
      // the decls only the old indices read (the thread's digits) go, where the loop reads none of them any more
      const old = indexNames(t.body, a.local);
      const out = rewrite(stores(t.body));
      const rest = readsOf(out.filter((s) => s.k !== 'decl' || !old.has(s.name)));
      return [...rest].some((n) => old.has(n)) ? out : out.filter((s) => s.k !== 'decl' || !old.has(s.name));
    };
    const byName = new Set(threads.map((t) => t.v));
    const visit = (ss: readonly Stmt[]): Stmt[] => ss.map((s): Stmt => {
      if (s.k === 'local' && s.name === a.local) return { ...s, size: S };
      if (s.k !== 'for') return s;
      return { ...s, body: byName.has(s.v) ? slice(s) : visit(s.body) };
    });
    return { body: visit(k.body) };
  },
});
