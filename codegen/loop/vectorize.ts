// vectorize: whether a loop runs as vector code on a target (a pure function of the loop and the target's caps),
// asked by the scheduler's vectorize (schedules/vectorize.ts), which alone makes vector loops; renderers render every
// `vector` loop as vectors and only assert it (checkVectorLoops).
import { type Expr, type Program, type Stmt } from './ir.js';
import { someExpr } from './visit.js';
import { type LegalizeOptions, legalizeStmts } from './legalize.js';
import { philoxLanes } from './philox_lanes.js';

type For = Extract<Stmt, { k: 'for' }>;

/**
 * f32 ops with a wasm SIMD128 (f32x4) form: the wasm renderer's vector table. exp and tanh are calls of math.ts's
 * f64x2 forms (the scalar helpers' steps lane by lane, so the same bits), recip an f32x4 division (see render.ts).
 */
export const F32X4_UNARY = ['neg', 'abs', 'sqrt', 'floor', 'ceil', 'round', 'recip', 'exp', 'tanh'] as const;
export const F32X4_BINARY = ['add', 'sub', 'mul', 'div', 'max', 'min', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
const UNARY4: ReadonlySet<string> = new Set(F32X4_UNARY), BINARY4: ReadonlySet<string> = new Set(F32X4_BINARY);
/** The casts of i32 lanes (VectorCaps.ints): saturating truncation and conversion, as the scalar casts. */
const INT_CASTS = { 'f32>i32': true, 'i32>f32': true } as const;

/** What a target renders as vector code, and what the scheduler makes of a lane loop with no vector form. */
export interface VectorCaps {
  /**
   * The values that may differ from lane to lane: of 'any' type and op (LLVM, through the helpers of
   * llvm/vector.ts), or 'f32' (wasm SIMD128: f32 lanes and the ops of F32X4_*, f32 selects, and bool lanes as
   * masks: f32 compares, and/or of them, casts of them to f32).
   */
  readonly values: 'any' | 'f32';
  /**
   * Where values are 'f32': the i32 binary ops its vectors also compute, with i32 (and int8) loads and stores, i32
   * selects and f32 <-> i32 casts (wasm SIMD128: the lanes of int8 kernels, dot2 as i32x4.dot_i16x8_s); none without.
   */
  readonly ints?: ReadonlySet<string>;
  /** Extents a vector loop may have (LLVM: the whole loop as one vector of at most 128 lanes; wasm: four lanes at a time and a scalar tail). */
  readonly minExtent: number;
  readonly maxExtent: number;
  /**
   * A kernel's register arrays the target keeps in registers (default: every local array). A lane loop with no
   * vector form that reads or writes one is unrolled, so each lane's element has a constant index.
   */
  readonly registers?: (body: readonly Stmt[]) => ReadonlySet<string>;
  /** Most statements such an unrolled loop may have (default: no limit). */
  readonly maxUnroll?: number;
  /** Whether it renders `fold` loops (fold.ts: a reduction's values as vectors, the fold lane by lane). */
  readonly fold?: boolean;
}

/** wasm SIMD128 (register arrays: those it keeps in wasm locals). */
export const SIMD128: VectorCaps = {
  values: 'f32', minExtent: 4, maxExtent: Infinity, registers: (body) => new Set(promotable(body).keys()),
  ints: new Set(['add', 'sub', 'mul', 'pack16', 'dot2', 'xor']),
};
/** LLVM: every loop one vector of its extent's lanes; unrolled lanes up to 4096 statements (SROA then keeps their local arrays in registers, and the SLP vectorizer forms vectors); fold loops. */
export const LLVM_VECTORS: VectorCaps = { values: 'any', minExtent: 2, maxExtent: 128, maxUnroll: 4096, fold: true };

/**
 * f32 and i32 register arrays of up to 64 elements whose every access sits in unrolled loops or short vector loops: wasm
 * keeps them in locals instead of scratch memory (a micro-kernel's accumulator tile), v128 ones where a vector loop
 * reads them.
 */
export function promotable(body: readonly Stmt[]): Map<string, { size: number; vec: boolean }> {
  const arrays = new Map<string, { size: number; ok: boolean; vec: boolean }>();
  const unrolled = new Set<string>();
  const vectors = new Set<string>();
  const vars = (e: Expr, out: string[] = []): string[] => {
    if (e.k === 'var') out.push(e.name);
    else if (e.k === 'binary') { vars(e.a, out); vars(e.b, out); }
    else if (e.k === 'load' || e.k === 'unary' || e.k === 'cast') vars(e.k === 'load' ? e.idx : e.a, out);
    else if (e.k === 'select') { vars(e.c, out); vars(e.a, out); vars(e.b, out); }
    return out;
  };
  const access = (buf: string, idx: Expr) => {
    const a = arrays.get(buf);
    if (!a) return;
    const vs = vars(idx);
    if (!vs.every((v) => unrolled.has(v) || vectors.has(v))) a.ok = false;
    if (vs.some((v) => vectors.has(v))) a.vec = true;
  };
  const expr = (e: Expr): void => {
    if (e.k === 'load') { access(e.buf, e.idx); expr(e.idx); }
    else if (e.k === 'unary' || e.k === 'cast') expr(e.a);
    else if (e.k === 'binary') { expr(e.a); expr(e.b); }
    else if (e.k === 'select') { expr(e.c); expr(e.a); expr(e.b); }
  };
  const walk = (ss: readonly Stmt[]): void => {
    for (const st of ss) {
      if (st.k === 'local' && st.scope === 'register' && st.t !== 'bool' && st.size <= 64) arrays.set(st.name, { size: st.size, ok: true, vec: false });
      else if (st.k === 'for') {
        const set = st.kind === 'unroll' ? unrolled : st.kind === 'vector' && st.extent <= 64 && st.extent % 4 === 0 ? vectors : undefined;
        set?.add(st.v);
        walk(st.body);
        set?.delete(st.v);
      } else if (st.k === 'store') { access(st.buf, st.idx); expr(st.idx); expr(st.value); }
      else if (st.k === 'decl') expr(st.init);
      else if (st.k === 'assign') expr(st.value);
      else if (st.k === 'if') { expr(st.cond); walk(st.body); }
    }
  };
  walk(body);
  return new Map([...arrays].filter(([, a]) => a.ok).map(([name, a]) => [name, { size: a.size, vec: a.vec && a.size % 4 === 0 }]));
}

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

/**
 * The coefficient of the lane in a contiguous load's index: 1, or a quad's 4 (lane i's word follows lane i - 1's: the
 * lanes are one vector load of 4 bytes per lane).
 */
export const laneStride = (e: Extract<Expr, { k: 'load' }>): number => (e.quad ? 4 : 1);

/** The lanes of one loop: its variable, and the decls of its body that hold a value differing from lane to lane. */
class Lanes {
  private readonly varying = new Set<string>();

  constructor(private readonly v: string, private readonly values: VectorCaps['values'], private readonly ints: ReadonlySet<string> = new Set()) {}

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
    const f32 = this.values === 'f32', ints = this.ints.size > 0;
    switch (e.k) {
      case 'var': return !f32 || e.name !== this.v; // wasm has no vector of lane indices
      case 'load': return this.coef(e.idx) === laneStride(e) && (!f32 || e.t === 'f32' || (ints && e.t === 'i32'));
      case 'unary': return (!f32 || (e.a.t === 'f32' && UNARY4.has(e.op))) && this.value(e.a);
      case 'cast': return (!f32 || (e.t === 'f32' && e.a.t === 'bool') || (ints && `${e.a.t}>${e.t}` in INT_CASTS)) && this.value(e.a);
      case 'binary': {
        // llvm: every op, int8 requantization's and the int16 pair ops of int8 dot products too (llvm/vector.ts);
        // wasm: f32 ops, masks, and the i32 ops it has (ints: the pair ops of int8 dot products)
        const op = !f32 || (e.a.t === 'f32' && BINARY4.has(e.op)) || (e.a.t === 'bool' && (e.op === 'and' || e.op === 'or'))
          || (e.a.t === 'i32' && this.ints.has(e.op));
        return op && this.value(e.a) && this.value(e.b);
      }
      case 'select': return (!f32 || e.t === 'f32' || (ints && e.t === 'i32')) && this.value(e.c) && this.value(e.a) && this.value(e.b);
      // wasm: one block's four words per lane group (philox_lanes.ts)
      case 'philox': return f32 ? philoxLanes(e, this.v, (x) => this.varies(x), (x) => this.coef(x)) : this.value(e.counter) && this.value(e.index);
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
      return s.k === 'store' && this.coef(s.idx) === 1 && this.value(s.value) && (this.values !== 'f32' || s.value.t === 'f32' || (this.ints.size > 0 && s.value.t === 'i32'));
    });
  }
}

/** Why a loop of legalized code has no vector form on the target (extent, or a value or access), or undefined. */
export function noVectorForm(loop: For, vector: VectorCaps | undefined): string | undefined {
  if (!vector) return 'the target has no vector loops';
  if (loop.extent < vector.minExtent || loop.extent > vector.maxExtent) return `its extent ${loop.extent} is outside the target's ${vector.minExtent}..${vector.maxExtent}`;
  return new Lanes(loop.v, vector.values, vector.ints).body(loop.body) ? undefined : 'it holds a value or an access with no vector form on the target';
}

/**
 * Whether a loop can run as vector code on the target: an extent it renders, a body of decls and stores whose
 * loads and stores are contiguous or invariant in the loop variable, no assignment carried from lane to lane, and a
 * vector form for every value that differs between lanes, judged on the loop as the target's legalize leaves it.
 */
export function canVectorize(loop: For, caps: VectorTarget): boolean {
  return whyNotVector(loop, caps) === undefined;
}

/** The target a loop is judged for: its vector unit and its legalize. */
export interface VectorTarget {
  readonly vector?: VectorCaps;
  readonly legal: LegalizeOptions;
}

/** Why canVectorize is false (one line), or undefined. */
export function whyNotVector(loop: For, caps: VectorTarget): string | undefined {
  const [legal] = legalizeStmts([loop], caps.legal) as [For];
  return noVectorForm(legal, caps.vector);
}

/**
 * Throws where a `vector` loop of a (legalized) program has no vector form on the target: the schedule's vectorize
 * decides vector loops (canVectorize), and renderers render them without deciding again.
 */
export function checkVectorLoops(p: Program, vector: VectorCaps, target: string): void {
  const visit = (ss: readonly Stmt[], kernel: string): void => {
    for (const s of ss) {
      if (s.k !== 'for') continue;
      const why = s.kind === 'vector' ? noVectorForm(s, vector) : undefined;
      if (why) throw new Error(`${target}: internal error: vector loop '${s.v}' of kernel ${kernel} cannot be rendered as vectors: ${why}`);
      visit(s.body, kernel);
    }
  };
  for (const k of p.kernels) visit(k.body, k.name);
}
