// fold: the form of a `fold` loop (a serial reduction whose folded-in values run as vector lanes, the fold itself lane
// by lane in order), judged once by the schedule's fold primitive and read by the renderer that renders it.
import { freeVars } from './analysis.js';
import { E, type Expr, S, type Stmt } from './ir.js';
import { printExpr } from './printer.js';
import { type VectorCaps, noVectorForm } from './vectorize.js';
import { mapChildren, someExpr, usesVar } from './visit.js';

type For = Extract<Stmt, { k: 'for' }>;
type Assign = Extract<Stmt, { k: 'assign' }>;

/**
 * A fold loop split for rendering: `fold` is its last statement `acc = f(acc, ...)` with each part of f that does not
 * read acc but differs from lane to lane (a value folded in) replaced by the lane variable `laneVar(v, j)` of
 * `parts[j]`. The parts run as vectors of every lane; the fold then runs lane by lane, in order, so the result is the
 * serial loop's bit for bit.
 */
export interface FoldForm {
  readonly fold: Assign;
  readonly parts: readonly Expr[];
}

/** The name standing for lane values of part j of fold loop v's values. */
export const laneVar = (v: string, j: number): string => `${v}$lane${j}`;

/**
 * Where the shape alone is wrong, why loop l cannot be a fold loop: its body must be decls that do not read the
 * accumulator, then `acc = f(acc, ...)` assigning a variable declared outside the loop (checked by the verifier too).
 */
export function foldShape(l: For): string | undefined {
  const last = l.body[l.body.length - 1], decls = l.body.slice(0, -1);
  if (last?.k !== 'assign' || !usesVar(last.value, last.name)) return 'its body does not end in an assignment acc = f(acc, ...)';
  const acc = last.name;
  for (const st of decls) {
    if (st.k !== 'decl') return `its body holds a ${st.k} before the fold (only decls may come first)`;
    if (st.name === acc) return `it declares '${acc}', the variable it folds into`;
    if (usesVar(st.init, acc)) return `decl '${st.name}' reads '${acc}', the variable it folds into`;
  }
  return undefined;
}

/**
 * Loop l (legalized) split as a fold loop on a target's vector unit, or why it cannot be one: the shape, a value folded
 * in that differs from lane to lane, a fold reading only the accumulator, the lanes' parts and values from outside the
 * loop (a decl of the loop in it, a padding mask, would leave scalar code that LLVM contracts), and a vector form for
 * the parts (noVectorForm, as a vector loop of the decls and parts).
 */
export function foldForm(l: For, vector: VectorCaps | undefined): FoldForm | string {
  const shape = foldShape(l);
  if (shape) return shape;
  const last = l.body[l.body.length - 1] as Assign, decls = l.body.slice(0, -1) as Extract<Stmt, { k: 'decl' }>[];
  const acc = last.name, vec = new Set<string>();
  const varying = (e: Expr): boolean => someExpr(e, (x) => x.k === 'var' && (x.name === l.v || vec.has(x.name)));
  for (const st of decls) if (varying(st.init)) vec.add(st.name);
  const parts: Expr[] = [], keys = new Map<string, number>();
  const split = (e: Expr): Expr => {
    if (usesVar(e, acc)) return mapChildren(e, split);
    if (!varying(e)) return e;
    const key = printExpr(e); // legalized expressions are not all interned: compare them as text
    let j = keys.get(key);
    if (j === undefined) keys.set(key, (j = parts.push(e) - 1));
    return E.v(laneVar(l.v, j), e.t);
  };
  const fold = S.assign(acc, split(last.value)) as Assign;
  if (!parts.length) return 'no value it folds in differs from lane to lane';
  const inLoop = new Set(decls.map((st) => st.name)), local = [...freeVars([fold])].find((n) => inLoop.has(n));
  if (local) return `the fold reads '${local}', declared in the loop`;
  const lanes = parts.map((p, j) => S.decl(laneVar(l.v, j), p.t, p));
  const why = noVectorForm(S.for(l.v, l.extent, [...decls, ...lanes], 'vector') as For, vector);
  return why ? `the values it folds in have no vector form: ${why}` : { fold, parts };
}
