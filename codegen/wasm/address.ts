// Addressing analyses of the wasm renderer: affine indices, pointer locals of serial loops, splatted decls.
// An index affine in loop variables puts its constant into the memory instruction's offset and, inside a serial loop,
// its loop-invariant part into a pointer local stepped once per iteration: V8 neither hoists a wasm address out of a
// loop nor folds an i32 add that could wrap into the addressing mode.
import type { Expr, Stmt } from '../loop/ir.js';
import { type Affine, affineOf } from '../loop/schedules/loops.js';
import { forEachExpr, stmtExprs, walkStmts } from '../loop/visit.js';

export type { Affine };

/**
 * The index as an affine form in loop variables (loops.ts affineOf) with non-negative coefficients, so its variable
 * part is never negative and never above the index itself; undefined for anything else (a decl's value, a product
 * of variables, a division). `consts` are the unrolled loop variables' values; `isLoopVar` says which names are
 * loop variables.
 */
export function affine(e: Expr, consts: ReadonlyMap<string, number>, isLoopVar: (name: string) => boolean): Affine | undefined {
  const f = affineOf(e);
  if (!f) return undefined;
  const terms = new Map<string, number>();
  let c = f.c;
  for (const [v, k] of f.terms) {
    const value = consts.get(v);
    if (value !== undefined) c += k * value;
    else if (k < 0 || !isLoopVar(v)) return undefined;
    else terms.set(v, k);
  }
  return { terms, c };
}

/** A serial loop being rendered: the pointer locals of the addresses in it, by their variable part. */
export class LoopPointers {
  /** key -> the pointer local, its byte value at iteration 0 (terms of outer variables) and its step per iteration */
  readonly pointers = new Map<string, { local: number; start: Map<string, number>; step: number }>();

  /** v: the loop's variable; outer: the loop variables defined outside the loop (constant during it). */
  constructor(readonly v: string, private readonly outer: ReadonlySet<string>) {}

  /**
   * The pointer local holding `size` * (the variable part of a) in bytes, created on first use; undefined when
   * a uses a loop variable of a loop inside this one.
   */
  pointer(a: Affine, size: number, newLocal: () => number): number | undefined {
    if ([...a.terms.keys()].some((v) => v !== this.v && !this.outer.has(v))) return undefined;
    const key = `${size}:${[...a.terms].sort(([x], [y]) => (x < y ? -1 : 1)).map(([v, k]) => `${v}*${k}`).join('+')}`;
    let p = this.pointers.get(key);
    if (!p) {
      const start = new Map([...a.terms].filter(([v]) => v !== this.v).map(([v, k]) => [v, k * size]));
      p = { local: newLocal(), start, step: (a.terms.get(this.v) ?? 0) * size };
      this.pointers.set(key, p);
    }
    return p.local;
  }
}

/**
 * f32 and i32 decls initialized by a load outside vector loops and read only inside them, where every read splats the
 * value to four lanes: the renderer loads them splatted at once (v128.load32_splat, one broadcast load on x86-64
 * instead of a scalar load and a shuffle per use). Assigned decls, and loads of register arrays (`locals`), are
 * left alone.
 */
export function splatDecls(body: readonly Stmt[], locals: ReadonlySet<string>): Set<string> {
  const candidates = new Set<string>(), scalarUse = new Set<string>(), vectorUse = new Set<string>(), assigned = new Set<string>();
  walkStmts(body, (s, loops) => {
    const inVector = loops.some((l) => l.kind === 'vector');
    if (s.k === 'decl' && s.t !== 'bool' && !inVector && s.init.k === 'load' && !locals.has(s.init.buf)) candidates.add(s.name);
    if (s.k === 'assign') assigned.add(s.name);
    for (const e of stmtExprs(s)) forEachExpr(e, (x) => { if (x.k === 'var') (inVector ? vectorUse : scalarUse).add(x.name); });
  });
  return new Set([...candidates].filter((n) => vectorUse.has(n) && !scalarUse.has(n) && !assigned.has(n)));
}
