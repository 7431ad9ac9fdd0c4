// What recipes recognize in plain loop nests: the chain of a nest's outer loops, its reductions (`acc = init;
// for k.. { acc = f(acc, ...) }`), which of them are matmuls or convolutions, and the roots it stores.
import type { Expr, Scalar, Stmt } from '../ir.js';
import { type For, affineOf, readsOf } from './loops.js';

/** The perfectly nested loops at the top of a nest (each body exactly the next loop), outermost first. */
export function outerChain(top: For): For[] {
  const out = [top];
  for (;;) {
    const last = out[out.length - 1]!, next = last.body[0];
    if (last.body.length !== 1 || next?.k !== 'for' || next.kind !== 'serial') return out;
    out.push(next);
  }
}

/** A reduction in a statement list: the accumulator's decl at `start`, its updates up to `end` (inclusive). */
export interface Reduction {
  readonly acc: string;
  readonly t: Scalar;
  /** the accumulator's initial value */
  readonly init: number;
  readonly start: number;
  readonly end: number;
  /** the loops over the reduced axes (a perfect chain; none when every reduced extent is 1) */
  readonly loops: readonly For[];
  /** the last update's value: `f(acc, ...)` */
  readonly update: Expr;
  /** the statements run per reduction step before the update (decls) */
  readonly step: readonly Stmt[];
}

const assignsTo = (s: Stmt, acc: string): boolean => (s.k === 'assign' && s.name === acc) || (s.k === 'for' && s.body.some((x) => assignsTo(x, acc)));

/** Calls f with every name the statement assigns (in its loops too). */
function forAssigned(s: Stmt, f: (name: string) => void): void {
  if (s.k === 'assign') f(s.name);
  else if (s.k === 'for') for (const x of s.body) forAssigned(x, f);
}

/** Each name assigned in the statements, with the position of the last statement assigning it. */
function lastAssigns(stmts: readonly Stmt[]): Map<string, number> {
  const last = new Map<string, number>();
  stmts.forEach((s, j) => forAssigned(s, (n) => last.set(n, j)));
  return last;
}

/**
 * The reduction whose accumulator is declared at stmts[i], when its updates have the plain form lowering emits.
 * `last`: lastAssigns(stmts), when the caller has it.
 */
export function reductionAt(stmts: readonly Stmt[], i: number, last?: ReadonlyMap<string, number>): Reduction | undefined {
  const d = stmts[i];
  if (d?.k !== 'decl' || d.init.k !== 'const') return undefined;
  let end = -1;
  if (last) end = Math.max(end, last.get(d.name) ?? -1);
  else stmts.forEach((s, j) => { if (j > i && assignsTo(s, d.name)) end = j; });
  if (end <= i) return undefined;
  const region = stmts.slice(i + 1, end + 1);
  let loops: For[] = [], step: readonly Stmt[] = region;
  if (region.length === 1 && region[0]!.k === 'for') {
    loops = outerChain(region[0]!);
    step = loops[loops.length - 1]!.body;
  }
  const tail = step[step.length - 1];
  if (tail?.k !== 'assign' || tail.name !== d.name) return undefined;
  const body = step.slice(0, -1);
  if (!body.every((s) => s.k === 'decl')) return undefined;
  // (no statement after `end` assigns the accumulator: end is the last that does)
  return { acc: d.name, t: d.t, init: d.init.v, start: i, end, loops, update: tail.value, step: body };
}

/** The reductions of a statement list, in order (undefined when one of its decls accumulates otherwise). */
export function reductionsOf(stmts: readonly Stmt[]): Reduction[] {
  const out: Reduction[] = [];
  const last = lastAssigns(stmts);
  for (let i = 0; i < stmts.length; i++) {
    const s = stmts[i]!;
    if (s.k !== 'decl' || (last.get(s.name) ?? -1) <= i) continue;
    const r = reductionAt(stmts, i, last);
    if (r) out.push(r);
  }
  return out;
}

const isVar = (e: Expr, name: string) => e.k === 'var' && e.name === name;

/** `acc + x*y`: the operands x and y of a matmul's update, or undefined. */
export function matmulOperands(r: Reduction): [Expr, Expr] | undefined {
  const u = r.update;
  if (r.init !== 0 || r.loops.length > 1 || u.k !== 'binary' || u.op !== 'add' || !isVar(u.a, r.acc) || u.b.k !== 'binary' || u.b.op !== 'mul') return undefined;
  return [u.b.a, u.b.b];
}

/**
 * `select(c, acc + x*w, acc)` (taps outside the input skipped), or `acc + x*w` where every tap reads the input (no
 * padding: lower.ts leaves the condition out): the operands x and w of a convolution's update, or undefined.
 */
export function convOperands(r: Reduction): [Expr, Expr] | undefined {
  const u = r.update, sum = u.k === 'select' && isVar(u.b, r.acc) ? u.a : u;
  if (r.init !== 0 || sum.k !== 'binary' || sum.op !== 'add' || !isVar(sum.a, r.acc)) return undefined;
  const m = sum.b;
  if (m.k !== 'binary' || m.op !== 'mul') return undefined;
  return [m.a, m.b];
}

/** Names of the local arrays declared in the statements. */
export function localArrays(stmts: readonly Stmt[], out = new Set<string>()): Set<string> {
  for (const s of stmts) {
    if (s.k === 'local') out.add(s.name);
    else if (s.k === 'for') localArrays(s.body, out);
  }
  return out;
}

/**
 * Whether every store of the statements writes a buffer (not one of the local arrays) at the row-major index of
 * the chain: a root of the nest's full shape.
 */
export function storesFullShape(stmts: readonly Stmt[], chain: readonly For[], locals: ReadonlySet<string>): boolean {
  const strides = new Map<string, number>();
  let st = 1;
  for (let d = chain.length - 1; d >= 0; d--) {
    if (chain[d]!.extent > 1) strides.set(chain[d]!.v, st);
    st *= chain[d]!.extent;
  }
  const ok = (s: Stmt): boolean => {
    if (s.k === 'for') return s.body.every(ok);
    if (s.k !== 'store') return true;
    if (locals.has(s.buf)) return false;
    const a = affineOf(s.idx);
    if (!a || a.c !== 0) return false;
    const terms = [...a.terms].filter(([v]) => chain.find((l) => l.v === v)?.extent !== 1);
    return terms.length === strides.size && terms.every(([v, c]) => strides.get(v) === c);
  };
  return stmts.some((s) => s.k === 'store') && stmts.every(ok);
}

/** Statements that only compute decls and store (an epilogue: no loops, no accumulation). */
export function straightLine(stmts: readonly Stmt[]): boolean {
  return stmts.every((s) => s.k === 'decl' || s.k === 'store');
}

/** Whether a reduction reads any of the names (through its step decls or update). */
export function reductionReads(r: Reduction, stmts: readonly Stmt[], names: ReadonlySet<string>): boolean {
  const region = stmts.slice(r.start + 1, r.end + 1);
  return [...readsOf(region)].some((n) => names.has(n) && n !== r.acc);
}
