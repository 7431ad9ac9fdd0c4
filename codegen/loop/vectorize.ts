// vectorize: whether a loop runs as vector code on a target, decided once above the renderers (a pure function of
// the loop and the target's caps); renderers render every `vector` loop as vectors without checking again.
import { operands, work } from './analysis.js';
import type { Expr, Program, Stmt } from './ir.js';
import { someExpr } from './visit.js';
import { type LegalizeOptions, legalizeStmts } from './legalize.js';

type For = Extract<Stmt, { k: 'for' }>;

/** f32 ops with a wasm SIMD128 (f32x4) instruction: the wasm renderer's vector table. */
export const F32X4_UNARY = ['neg', 'abs', 'sqrt', 'floor', 'ceil', 'round'] as const;
export const F32X4_BINARY = ['add', 'sub', 'mul', 'div', 'max', 'min', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
const UNARY4: ReadonlySet<string> = new Set(F32X4_UNARY), BINARY4: ReadonlySet<string> = new Set(F32X4_BINARY);

/** What a target renders as vector code. */
export interface VectorCaps {
  /**
   * The values that may differ from lane to lane: of 'any' type and op (LLVM, through the helpers of
   * llvm/vector.ts), or 'f32' (wasm SIMD128: f32 lanes and the ops of F32X4_*, f32 selects, and bool lanes as
   * masks: f32 compares, and/or of them, casts of them to f32).
   */
  readonly values: 'any' | 'f32';
  /** Extents a vector loop may have (LLVM: the whole loop as one vector of at most 128 lanes; wasm: four lanes at a time and a scalar tail). */
  readonly minExtent: number;
  readonly maxExtent: number;
  /** The target's legalize (the vector code is that of the legalized loop). */
  readonly legal: LegalizeOptions;
}

/** wasm SIMD128. */
export const SIMD128: VectorCaps = { values: 'f32', minExtent: 4, maxExtent: Infinity, legal: { ieeeMinMax: true } };
/** LLVM: every loop one vector of its extent's lanes. */
export const LLVM_VECTORS: VectorCaps = { values: 'any', minExtent: 2, maxExtent: 128, legal: { ieeeMinMax: false } };

/**
 * The coefficient of loop variable v in an i32 index affine in it: 0 where varies(e) says e is the same in every
 * lane, undefined where e is not affine in v (or varies through a decl). The renderers find contiguous accesses so.
 */
export function laneCoef(e: Expr, v: string, varies: (e: Expr) => boolean): number | undefined {
  if (!varies(e)) return 0;
  if (e.k === 'var') return e.name === v ? 1 : undefined;
  if (e.k !== 'binary' || e.t !== 'i32') return undefined;
  const a = laneCoef(e.a, v, varies), b = laneCoef(e.b, v, varies);
  if (a === undefined || b === undefined) return undefined;
  if (e.op === 'add') return a + b;
  if (e.op === 'sub') return a - b;
  if (e.op !== 'mul') return undefined;
  return a === 0 && e.a.k === 'const' ? e.a.v * b : b === 0 && e.b.k === 'const' ? e.b.v * a : undefined;
}

/** The lanes of one loop: its variable, and the decls of its body that hold a value differing from lane to lane. */
class Lanes {
  private readonly varying = new Set<string>();

  constructor(private readonly v: string, private readonly values: VectorCaps['values']) {}

  /** Whether e differs from lane to lane (reads the loop variable or a varying decl). */
  varies(e: Expr): boolean {
    return someExpr(e, (x) => x.k === 'var' && (x.name === this.v || this.varying.has(x.name)));
  }

  /** The coefficient of the loop variable in an index affine in it (undefined otherwise, or through a varying decl). */
  coef(e: Expr): number | undefined {
    return laneCoef(e, this.v, (x) => this.varies(x));
  }

  /**
   * Whether e has a vector form: invariant parts are scalar code; varying loads are contiguous (a gather is W scalar
   * loads and inserts, slower and far larger than the scalar loop) and every varying op has a vector form.
   */
  value(e: Expr): boolean {
    if (!this.varies(e)) return true;
    const f32 = this.values === 'f32';
    switch (e.k) {
      case 'var': return !f32 || e.name !== this.v; // wasm has no vector of lane indices
      case 'load': return this.coef(e.idx) === 1 && (!f32 || e.t === 'f32');
      case 'unary': return (!f32 || (e.a.t === 'f32' && UNARY4.has(e.op))) && this.value(e.a);
      case 'cast': return (!f32 || (e.t === 'f32' && e.a.t === 'bool')) && this.value(e.a);
      case 'binary': {
        const op = !f32 || (e.a.t === 'f32' && BINARY4.has(e.op)) || (e.a.t === 'bool' && (e.op === 'and' || e.op === 'or'));
        return op && this.value(e.a) && this.value(e.b);
      }
      case 'select': return (!f32 || e.t === 'f32') && this.value(e.c) && this.value(e.a) && this.value(e.b);
      case 'philox': return !f32 && this.value(e.counter) && this.value(e.index);
      default: return false;
    }
  }

  /** Straight-line decls and stores, each store contiguous (coefficient 1: every lane its own element). */
  body(ss: readonly Stmt[]): boolean {
    return ss.every((s) => {
      if (s.k === 'decl') {
        if (this.varies(s.init)) this.varying.add(s.name);
        return this.value(s.init);
      }
      return s.k === 'store' && this.coef(s.idx) === 1 && this.value(s.value) && (this.values !== 'f32' || s.value.t === 'f32');
    });
  }
}

/**
 * Whether a loop can run as vector code on the target: an extent it renders, a body of decls and stores whose
 * loads and stores are contiguous or invariant in the loop variable, no assignment carried from lane to lane, and a
 * vector form for every value that differs between lanes, judged on the legalized loop.
 */
export function canVectorize(loop: For, caps: { readonly vector?: VectorCaps }): boolean {
  const v = caps.vector;
  if (!v || loop.extent < v.minExtent || loop.extent > v.maxExtent) return false;
  const [legal] = legalizeStmts([loop], v.legal) as [For];
  return new Lanes(legal.v, v.values).body(legal.body);
}

/** Whether the statements load from or store into one of the arrays. */
function touches(ss: readonly Stmt[], arrays: ReadonlySet<string>): boolean {
  const inExpr = (e: Expr): boolean => (e.k === 'load' && arrays.has(e.buf)) || operands(e).some(inExpr);
  return ss.some((s) => (s.k === 'store' ? arrays.has(s.buf) || inExpr(s.idx) || inExpr(s.value) : s.k === 'decl' ? inExpr(s.init)
    : s.k === 'assign' ? inExpr(s.value) : s.k === 'for' && touches(s.body, arrays)));
}

/** Which lane loops with no vector form a target unrolls (their register arrays' elements then have constant indices). */
export interface Unrolling {
  /** A kernel's register arrays the target keeps in registers (default: every local array). */
  readonly registers?: (body: readonly Stmt[]) => ReadonlySet<string>;
  /** Most statements the unrolled loop may have (default: no limit). */
  readonly maxWork?: number;
}

/**
 * The program with every `vector` loop the target cannot render as vectors made unrolled where it reads or writes a
 * register array the target keeps in registers, else serial. Lowering marks the lane loops of its micro-kernels
 * `vector` without asking canVectorize (until they are schedule transforms that do); this is where that decision is
 * completed, once, for every CPU target, as the renderers made it (wasm: over the arrays it keeps in locals; LLVM: over
 * any local array, SROA then keeping it in registers, up to 4096 statements).
 */
export function fitVectorLoops(p: Program, caps: { readonly vector?: VectorCaps }, unrolling: Unrolling = {}): Program {
  const fit = (ss: readonly Stmt[], arrays: ReadonlySet<string> | undefined, locals: ReadonlySet<string>): Stmt[] => {
    const inScope = new Set(locals);
    return ss.map((s) => {
      if (s.k === 'local' && (!arrays || arrays.has(s.name))) inScope.add(s.name);
      if (s.k !== 'for') return s;
      const loop = { ...s, body: fit(s.body, arrays, inScope) };
      if (s.kind !== 'vector' || canVectorize(loop, caps)) return loop;
      const small = work([loop]) <= (unrolling.maxWork ?? Infinity);
      return { ...loop, kind: small && touches(loop.body, inScope) ? 'unroll' : 'serial' };
    });
  };
  return { ...p, kernels: p.kernels.map((k) => ({ ...k, body: fit(k.body, unrolling.registers?.(k.body), new Set()) })) };
}
